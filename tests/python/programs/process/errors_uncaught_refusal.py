"""After its checkpoint the program calls pyckpt.checkpoint() where it is
refused (in a key function of sorted()) and does not catch the
UnsupportedStateError: an uncaught exception of the program like any other,
reported by Python (traceback on stderr, status 1), uninterrupted, under
`pyckpt run` or resumed by `pyckpt restart` alike."""
import pyckpt
from ckpt import checkpoint


def key_fn(x):
    pyckpt.checkpoint()
    return x


def finish(values):
    print("sorting", values)
    return sorted(values, key=key_fn)


checkpoint()
print(finish([2, 1]))
print("not reached")
