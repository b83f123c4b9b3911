"""A thread blocked in os.read() on a pipe (a C call pyckpt cannot run again
after a restart) while the main thread computes: checkpoints are refused,
naming the thread and the call. The first phase lasts at least 3 s (spinning
at Python level after its work), longer than pyckpt waits for a thread before
it says why a checkpoint is skipped. Then the main thread writes to the
pipe, the reader ends, and a second phase computes without it.
argv: STEPS [--api: try checkpoint() once while the reader waits]."""
import os
import sys
import threading
import time

import ckpt

steps = int(sys.argv[1])
r, w = os.pipe()
got = []
reader = threading.Thread(target=lambda: got.append(os.read(r, 1)), name="reader")
reader.start()

phase_end = time.monotonic() + 3
total = 0
for step in range(steps):
    for i in range(30000):
        total = (total * 31 + i) % 1000003
    if "--api" in sys.argv and step == 0:
        try:
            ckpt.checkpoint()
        except Exception as exc:
            print(type(exc).__name__, str(exc).split(" (at ")[0], flush=True)
while time.monotonic() < phase_end:
    pass
print("phase 1", total, flush=True)
os.write(w, b"x")
reader.join()
for step in range(steps):
    for i in range(30000):
        total = (total * 31 + i) % 1000003
    print(f"step {step} {total}", flush=True)
print("read", got, "done")
