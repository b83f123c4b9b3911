"""Two checkpoints, an array and some output around them (for restarts of
a damaged newest checkpoint, of the previous one, and of edited sources)."""
import numpy as np

import usermod
from ckpt import checkpoint

values = np.arange(1000, dtype=np.float64)
print("start")
checkpoint()
values *= 2
usermod.register("first")
print("after first", values.sum(), usermod.registry)
checkpoint()
values += 1
print("after second", values.sum(), usermod.registry)
