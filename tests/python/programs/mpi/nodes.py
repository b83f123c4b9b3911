"""A job that uses a node-local communicator (Split_type(COMM_TYPE_SHARED))
every step, with results that do not depend on the placement: each rank's
share of its node's sum is node_sum / node_size, and the world's sum of those
shares is the sum over all ranks, however the ranks are spread over nodes. A
restart on another number of nodes must compute the same (the node-local
communicator is re-created on the new placement).

    nodes.py STEPS
"""
import sys
import time

from mpi4py import MPI

world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
node = world.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
out = open(f"out.{rank}", "w")
value = rank + 1
for step in range(int(sys.argv[1])):
    share = node.allreduce(value) / node.Get_size()
    total = round(world.allreduce(share))
    value = (value * 7 + total + step) % 1009
    out.write(f"step {step} total {total} value {value}\n")
    out.flush()
    time.sleep(0.02)
out.close()
if rank == 0:
    print(f"final value {value}")
