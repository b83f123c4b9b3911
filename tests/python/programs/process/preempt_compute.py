"""An unmodified program (no pyckpt) for preemptive checkpoints: NumPy and
pure-Python work in nested calls, a generator, a dict and a list growing,
random numbers, and a progress line per step (deterministic)."""
import random
import sys

import numpy as np

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
random.seed(1)
rng = np.random.default_rng(2)
field = rng.random((120, 120))
history = {}


def relax(a, sweeps):
    for _ in range(sweeps):
        a[1:-1, 1:-1] = 0.25 * (a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:])
    return a


def pure_python(n):
    total = 0
    for i in range(n):
        total = (total * 31 + i * i) % 1000003
    return total


def steps(n):
    for step in range(n):
        yield step, random.randrange(1000)


for step, r in steps(STEPS):
    relax(field, 20)
    h = pure_python(20000 + r)
    history[step] = h
    print(f"step {step} r={r} h={h} field={field.sum():.10f}", flush=step % 7 == 0 or step < 2)
print("done", sum(history.values()), f"{field.mean():.12f}")
