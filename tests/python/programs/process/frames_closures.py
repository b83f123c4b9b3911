"""Closures sharing cells, `nonlocal` and `global` rebinding across the
checkpoint; a closure created before and called after."""
from ckpt import checkpoint

level = "module"


def make_counter():
    count = 0
    history = []

    def increment(step=1):
        nonlocal count
        count += step
        history.append(count)
        return count

    def peek():
        return count, list(history)

    return increment, peek


def rebind_global():
    global level
    level = "rebound before"
    checkpoint()
    level += " and after"


inc, peek = make_counter()
inc()
inc(5)


def outer():
    x = "outer-x"

    def inner():
        nonlocal x
        checkpoint()
        x = x + "+inner"
        return x

    return inner(), x


print(outer())
rebind_global()
print(level)
print(inc(10), peek())
inc2, peek2 = make_counter()
print(inc2(), peek2(), peek())
