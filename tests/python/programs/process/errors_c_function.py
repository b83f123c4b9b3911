"""An explicit checkpoint() where a C function sits between two Python
frames (argv[1]: sorted key, map, property getter, __init__ called by
type.__call__, __eq__ called by list.index) raises CheckpointError naming
the C function and the frames; no checkpoint is written, the program goes on."""
import sys

import pyckpt

kind = sys.argv[1]


def key_fn(x):
    pyckpt.checkpoint()
    return x


class Holder:
    def __init__(self):
        pyckpt.checkpoint()

    @property
    def prop(self):
        pyckpt.checkpoint()
        return 1


class Eq:
    def __eq__(self, other):
        pyckpt.checkpoint()
        return True


try:
    if kind == "sorted":
        sorted([2, 1], key=key_fn)
    elif kind == "map":
        list(map(key_fn, [1]))
    elif kind == "property":
        Holder.__new__(Holder).prop
    elif kind == "init":
        Holder()
    elif kind == "eq":
        [1, Eq()].index(0)
    print("no error")
except pyckpt.CheckpointError as e:
    print("CheckpointError:", type(e).__name__)
    print("message:", e)
print("continued")
