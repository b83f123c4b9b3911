"""Zero-copy capture: a checkpoint of a 96 MiB array must not make the
process copy it (peak RSS grows far less than its size), and the restarted
process reads it straight into one new array (its peak RSS stays below twice
the size). Peak RSS figures go to stderr; stdout is the data check."""
import resource
import sys

import numpy as np

from ckpt import checkpoint

MiB = 1 << 20
data = np.ones(96 * MiB // 8)
data[::4096] = np.arange(data[::4096].size)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
resumed = checkpoint()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"rss-mib before={before} peak={peak} resumed={resumed}", file=sys.stderr)
print(data.size, float(data[::4096].sum()), float(data[1:4096].sum()))
