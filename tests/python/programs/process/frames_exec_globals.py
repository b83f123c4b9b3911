"""Frames running in globals that are no module's dict: code run by exec()
with a dict of its own, the way decorator libraries generate their wrappers
(SQLAlchemy's deprecation decorators, `decorator`): the wrapper's frame is on
the stack at the checkpoint; its dict is captured by value, shared with the
wrapper function, and its names still resolve after the restart."""
from ckpt import checkpoint

calls = []


def generated_wrapper(fn):
    namespace = {"target": fn, "calls": calls, "__name__": __name__}
    exec("def wrapper(*args, **kwargs):\n"
         "    calls.append(target.__name__)\n"
         "    result = target(*args, **kwargs)\n"
         "    calls.append(len(calls))\n"
         "    return result\n", namespace)
    return namespace["wrapper"]


@generated_wrapper
def work(n):
    total = 0
    for i in range(n):
        total += i
        if i == n // 2:
            checkpoint()
    return total


print(work(10), work(4))
print(calls, work.__globals__["target"].__name__, work.__globals__ is not globals())
scratch = {"base": 100}
exec("def step(k):\n    from ckpt import checkpoint\n    checkpoint()\n    return base + k\n", scratch)
print(scratch["step"](5), scratch["step"].__globals__ is scratch)
