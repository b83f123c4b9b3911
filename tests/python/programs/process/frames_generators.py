"""Generators: suspended ones (one mid-iteration, one never started, one
finished) held in variables at the checkpoint, a checkpoint inside a running
generator driven by a for loop, inside `yield from`, and via next()/send();
suspended and running generators see the module's globals rebound after the
restart (not a copy taken at the checkpoint)."""
from ckpt import checkpoint

scale = 1


def scaled():
    while True:
        yield scale * 10


def running_reads_global():
    checkpoint()
    global scale
    scale = 3
    yield helper()


def helper():
    return "helper sees scale %d" % scale


def counter(n):
    total = 0
    for i in range(n):
        received = yield i
        if received:
            total += received
    return total


def with_checkpoint(n):
    for i in range(n):
        if i == 1:
            checkpoint()
        yield i * 10


def delegating():
    result = yield from counter(3)
    yield ("inner returned", result)
    yield from with_checkpoint(3)


suspended = counter(5)
print(next(suspended), next(suspended))
never_started = counter(2)
finished = counter(1)
print(list(finished))
sc = scaled()
print(next(sc))
checkpoint()
scale = 5
print("suspended continues:", list(suspended))
print("never started:", list(never_started))
print("finished:", list(finished))

print([x for x in with_checkpoint(3)])
scale = 2
print(next(sc), [x for x in running_reads_global()], next(sc))
for item in delegating():
    print("delegated", item)

g = counter(3)
next(g)
print(g.send(5), next(g))
try:
    g.send(7)
except StopIteration as stop:
    print("returned", stop.value)


def sender():
    acc = []
    while True:
        value = yield len(acc)
        if value is None:
            return acc
        if value == "ckpt":
            checkpoint()
        acc.append(value)


s = sender()
next(s)
print(s.send("a"), s.send("ckpt"), s.send("b"))
