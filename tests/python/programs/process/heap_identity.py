"""Object identity across frames and globals: `a is b` still holds after the
restart for objects shared between globals, locals of several frames, a
container, a closure cell and an instance attribute; a self-referencing list."""
from ckpt import checkpoint

shared = {"payload": [1, 2, 3]}
alias = shared
holder = [shared, shared["payload"]]
cyclic = [0]
cyclic.append(cyclic)


class Node:
    def __init__(self, ref):
        self.ref = ref


node = Node(shared)


def inner(x, y):
    checkpoint()
    return x is y is shared


def outer():
    mine = shared["payload"]
    same = inner(shared, alias)
    return same, mine is holder[1], mine is shared["payload"]


print(outer())
print(alias is shared, holder[0] is shared, node.ref is shared, cyclic[1] is cyclic)
shared["payload"].append(4)
print(holder[1], node.ref["payload"])
