"""A job that uses a node-local communicator (Split_type(COMM_TYPE_SHARED))
every step, with results that do not depend on the placement: each rank's
share of its node's sum is node_sum / node_size, and the world's sum of those
shares is the sum over all ranks, however the ranks are spread over nodes.

    nodes.py STEPS [KIND]

KIND says how the node's sum is made:
  collective (default): node.Allreduce of NumPy arrays, an MPI collective.
      A restart on another number of nodes re-creates the node-local
      communicator on the new placement and computes the same.
  pickled: node.allreduce of a Python int, which mpi4py runs as
      point-to-point messages on a duplicate of the node-local communicator.
      A restart on another number of nodes is refused. A cut retries while
      a rank is inside such a reduction: each step pauses 0.1 s (not 0.02)
      so that checkpoints find every rank outside it.
  window: each rank stores its value in its slot of a shared-memory window
      (Win.Allocate_shared on the node-local communicator; the node's rank 0
      holds the slots, which every rank reaches with Shared_query(0)), fenced,
      and sums the slots. A restart on another
      number of nodes is refused, naming the window.
"""
import sys
import time

import numpy as np
from mpi4py import MPI

world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
steps = int(sys.argv[1])
kind = sys.argv[2] if len(sys.argv) > 2 else "collective"
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
node = world.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
if kind == "window":
    window = MPI.Win.Allocate_shared(8 * node.Get_size() if node.Get_rank() == 0 else 0, 8, comm=node)
    # The segment's MPI.memory is kept, as programs do, and read each step:
    # the restart rebuilds it, and the view over it, as the node's rank 0's
    # segment.
    segment, _ = window.Shared_query(0)
    slots = np.frombuffer(segment, dtype=np.int64)
    window.Fence()


def node_sum(value):
    if kind == "pickled":
        return node.allreduce(value)
    if kind == "window":
        slots[node.Get_rank()] = value
        window.Fence()
        total = int(np.frombuffer(segment, dtype=np.int64).sum())
        window.Fence()  # every rank read the slots before any writes the next value
        return total
    mine, total = np.array([value], dtype=np.int64), np.zeros(1, dtype=np.int64)
    node.Allreduce(mine, total)
    return int(total[0])


out = open(f"out.{rank}", "w")
value = rank + 1
for step in range(steps):
    share = node_sum(value) / node.Get_size()
    total = round(world.allreduce(share))
    value = (value * 7 + total + step) % 1009
    out.write(f"step {step} total {total} value {value}\n")
    out.flush()
    time.sleep(0.1 if kind == "pickled" else 0.02)
out.close()
if kind == "window":
    window.Free()
if rank == 0:
    print(f"final value {value}")
