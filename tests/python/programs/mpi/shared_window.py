"""A node-local halo exchange through a shared-memory window, deterministic
output per rank.

    shared_window.py STEPS

The ranks of a node (Split_type(COMM_TYPE_SHARED)) each allocate a segment
of one window (Win.Allocate_shared; segments of different lengths) and hold
NumPy views of their own segment and of their neighbours' on the node,
obtained with Shared_query(peer) in the two ways programs write it
(np.ndarray(buffer=...), np.frombuffer), plus the bare MPI.memory of the
node's first segment. Each step a rank writes its cells, fences, reads the
neighbours' boundary cells straight from their segments (no MPI call), sums
every segment of the node through the memory of the first, and fences again
before the next write. After a restart every view must alias the peer's
segment in the re-created window: a stale pointer crashes, a copy reads
values that are never updated.
"""
import sys
import time

import numpy as np
from mpi4py import MPI

world = MPI.COMM_WORLD
rank = world.Get_rank()
steps = int(sys.argv[1])
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
node = world.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
me, members = node.Get_rank(), node.Get_size()
length = 16 + 4 * me  # cells of this rank's segment
window = MPI.Win.Allocate_shared(8 * length, 8, comm=node)
left, right = (me - 1) % members, (me + 1) % members
left_memory, itemsize = window.Shared_query(left)
left_cells = np.ndarray(buffer=left_memory, dtype="d", shape=(len(left_memory) // itemsize,))
right_cells = np.frombuffer(window.Shared_query(right)[0], dtype="d")
own = np.frombuffer(window.Shared_query(me)[0], dtype="d")
first_memory = window.Shared_query(0)[0]  # the node's first segment, summed each step
lengths = [len(window.Shared_query(peer)[0]) // 8 for peer in range(members)]
own[:] = (rank + 1) * np.linspace(0.0, 1.0, length)
window.Fence()

out = open(f"out.{rank}", "w")
for step in range(steps):
    halo = 0.5 * (left_cells[-1] + right_cells[0])
    node_sum = float(np.frombuffer(first_memory, dtype="d").sum())
    seen = [float(np.ndarray(buffer=window.Shared_query(peer)[0], dtype="d", shape=(n,)).sum())
            for peer, n in enumerate(lengths)]
    out.write(f"step {step} halo {halo!r} first {node_sum!r} segments {sum(seen)!r} own {float(own.sum())!r}\n")
    out.flush()
    window.Fence()  # every rank read the segments before any writes its own
    interior = own.copy()
    own[1:-1] = 0.5 * interior[1:-1] + 0.25 * (interior[:-2] + interior[2:])
    own[0] = 0.5 * interior[0] + 0.25 * (halo + interior[1])
    own[-1] = 0.5 * interior[-1] + 0.25 * (interior[-2] + halo) + 0.001 * step
    window.Fence()  # every segment written
    time.sleep(0.02)
out.close()
total = world.allreduce(float(own.sum()))
window.Free()  # its memory is gone: no view of it is used any more
if rank == 0:
    print(f"final sum {total!r}")
