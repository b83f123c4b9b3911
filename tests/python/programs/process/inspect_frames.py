"""A checkpoint three calls deep with locals of several kinds, arrays among
them, for `pyckpt inspect`."""
import numpy as np

from ckpt import checkpoint

grid = np.zeros((16, 8), dtype=np.float32)


def solve(iterations, tolerance=1e-6):
    residual = np.ones(100, dtype=np.int64)
    long_text = "x" * 500
    return step(iterations, residual, long_text)


def step(n, residual, text):
    counts = {"n": n, "items": list(range(5))}
    view = grid[2:4]
    checkpoint()
    return n + int(residual.sum()) + len(text) + len(counts) + view.size


print(solve(7))
