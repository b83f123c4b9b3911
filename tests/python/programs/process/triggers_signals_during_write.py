"""Asks for a checkpoint with SIGUSR1, then sends itself SIGUSR1 three more
times from inside that checkpoint (a reducer runs while the heap is pickled,
during the synchronous write). Those three must give one more checkpoint,
not three: the program computes until two checkpoints exist in the
directory argv[1], then as many steps again, and prints how many exist."""
import os
import signal
import sys
import time

import pyckpt


class Noisy:
    """Signals its own process the first time it is captured."""
    signalled = False


def save_noisy(_obj):
    if not Noisy.signalled:
        Noisy.signalled = True
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGUSR1)
    return None


def load_noisy(_saved):
    return Noisy()


def checkpoints(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".h5")) if os.path.isdir(directory) else []


pyckpt.register_reducer(Noisy, save_noisy, load_noisy)
noisy = Noisy()
os.kill(os.getpid(), signal.SIGUSR1)
deadline = time.monotonic() + 100
steps = 0
while len(checkpoints(sys.argv[1])) < 2:
    steps += sum(i * i for i in range(1000)) > 0
    if time.monotonic() > deadline:
        sys.exit(f"{len(checkpoints(sys.argv[1]))} checkpoints after {steps} steps")
for _ in range(steps + 1000):
    sum(i * i for i in range(1000))
print(len(checkpoints(sys.argv[1])), "checkpoints")
