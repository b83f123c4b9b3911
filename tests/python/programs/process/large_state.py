"""An unmodified program with a large state (NumPy arrays of MIB MiB in
all) that changes a part of it each step, for kills that fall while a
checkpoint is written: a progress line per step (deterministic)."""
import sys
import time

import numpy as np

MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 64
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 40
blocks = [np.arange(MIB * 2**15, dtype=np.float64) * (b + 1) for b in range(4)]  # 4 x MIB/4 MiB
history = []
for step in range(STEPS):
    block = blocks[step % len(blocks)]
    block[step::97] += step
    history.append(float(block[::4099].sum()))
    print(f"step {step}: {history[-1]:.1f} {len(history)}", flush=True)
    time.sleep(0.02)
print("done", sum(history))
