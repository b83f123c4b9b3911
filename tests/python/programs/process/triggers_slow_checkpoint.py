"""A heap of many small objects, so that a checkpoint takes far longer than
the interval it runs under (`--interval 0.001`): the program must still get
on, and stops once argv[2] checkpoints exist in the directory argv[1]."""
import os
import sys
import time


class Particle:
    def __init__(self, i):
        self.x, self.y, self.mass = float(i), float(-i), 1.0 + i % 7


def checkpoints(directory):
    return [n for n in os.listdir(directory) if n.endswith(".h5")] if os.path.isdir(directory) else []


particles = [Particle(i) for i in range(50_000)]
deadline = time.monotonic() + 200  # a starved program fails the test, not hangs it
steps = 0
while len(checkpoints(sys.argv[1])) < int(sys.argv[2]):
    for p in particles[:2000]:
        p.x += 0.5 * p.mass
    steps += 1
    if time.monotonic() > deadline:
        sys.exit(f"only {len(checkpoints(sys.argv[1]))} checkpoints after {steps} steps")
print("done")
