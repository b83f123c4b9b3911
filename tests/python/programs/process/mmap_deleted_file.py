"""A shared map of a file deleted while mapped cannot be mapped again at a
restart: checkpoint() refuses it with an error naming the file, and the
program goes on."""
import mmap
import os

import pyckpt

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mmap_gone.bin")
with open(path, "wb") as f:
    f.write(b"x" * mmap.PAGESIZE)
with open(path, "r+b") as f:
    mapped = mmap.mmap(f.fileno(), 0)
os.remove(path)
try:
    pyckpt.checkpoint()
    print("no error")
except pyckpt.CheckpointError as e:
    print(f"{type(e).__name__}: {e}")
print("continued", mapped[:3])
