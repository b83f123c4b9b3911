"""A collective pyckpt.checkpoint() made by all ranks at one step: it returns
False in the job that wrote the checkpoint, True in the job resumed from it.
The sentinels MPI.IN_PLACE and MPI.BOTTOM, held in a local across it, are
the very same objects afterwards."""
import sys
import time

from mpi4py import MPI

import pyckpt  # found on the path the preloaded interposer set up at MPI_Init

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 80
at = int(sys.argv[2]) if len(sys.argv) > 2 else 20
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
value = rank
resumed = None
sentinels = (MPI.IN_PLACE, MPI.BOTTOM)
for step in range(steps):
    value = comm.allreduce(value * 3 + step, op=MPI.SUM) % 1000003
    out.write(f"step {step} value {value}\n")
    out.flush()
    if step == at:
        resumed = pyckpt.checkpoint()
        out.write(f"checkpoint returned {resumed}\n")
        out.write(f"sentinels kept {sentinels[0] is MPI.IN_PLACE and sentinels[1] is MPI.BOTTOM}\n")
        out.flush()
    time.sleep(0.02)
out.close()
if rank == 0:
    print(f"final value {value}, checkpoint returned {resumed}")
