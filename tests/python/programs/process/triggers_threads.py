"""Computes under `pyckpt run --interval` until a checkpoint exists in the
directory argv[1], then prints the names of the Python threads: pyckpt's
triggers are not one of them (they run in a C thread that never takes the
GIL)."""
import os
import sys
import threading
import time


def checkpoints(directory):
    return [n for n in os.listdir(directory) if n.endswith(".h5")] if os.path.isdir(directory) else []


deadline = time.monotonic() + 100  # a broken trigger fails the test, not hangs it
total = 0
while not checkpoints(sys.argv[1]):
    total += sum(i * i for i in range(1000))
    if time.monotonic() > deadline:
        sys.exit("no checkpoint was taken")
print(sorted(t.name for t in threading.enumerate()))
