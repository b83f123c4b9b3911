"""Prints to stdout and stderr around two checkpoints, for the output
counts of `pyckpt inspect`."""
import sys

from ckpt import checkpoint

for part in range(3):
    for i in range(5):
        print(f"part {part} line {i}: {'x' * (part * 7 + i)}")
    print(f"part {part} on stderr", file=sys.stderr)
    if part < 2:
        checkpoint()
