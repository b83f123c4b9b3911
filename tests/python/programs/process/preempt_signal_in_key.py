"""An unmodified program that asks for a checkpoint (SIGUSR1, as `pyckpt run`
listens to by default) from inside a key function called by sorted(): the
checkpoint must be taken at the next safe point, after sorted() returned."""
import os
import signal

requested = []


def key(x):
    if x == 500 and not requested:
        requested.append(x)
        os.kill(os.getpid(), signal.SIGUSR1)
    return -x


print("before")
result = sorted(range(1000), key=key)
after_sorted = result[:3]
print("after sorted", after_sorted, requested)
print("end", sum(result))
