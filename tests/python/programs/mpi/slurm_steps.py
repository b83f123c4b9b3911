"""A 4-rank (any count) time-stepped job for the Slurm tests: each step
updates a NumPy field, exchanges halos with both ring neighbours
(Sendrecv) and agrees on a global sum (Allreduce). Rank 0 prints one line
per step on stdout, every rank appends one to its out.<rank>; a step takes
about STEP_SECONDS, so that the job runs long enough to meet Slurm's
signals. The output depends on nothing but the step count."""
import sys
import time

import numpy as np
from mpi4py import MPI

STEP_SECONDS = 0.25

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
steps = int(sys.argv[1])
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
field = np.arange(64, dtype=np.float64) * (rank + 1)
left, right = (rank - 1) % size, (rank + 1) % size
halo = np.empty(1)
total = np.empty(1)
out = open(f"out.{rank}", "w")
for step in range(steps):
    comm.Sendrecv(field[-1:], dest=right, sendtag=step, recvbuf=halo, source=left, recvtag=step)
    field = np.roll(field, 1)
    field[0] = 0.5 * (field[0] + halo[0])
    field = np.sqrt(field * 1.01 + 1.0)
    comm.Allreduce(np.array([field.sum()]), total, op=MPI.SUM)
    out.write(f"step {step} local {field.sum():.12f} total {total[0]:.12f}\n")
    out.flush()
    if rank == 0:
        print(f"step {step} total {total[0]:.12f}", flush=True)
    time.sleep(STEP_SECONDS)
out.close()
if rank == 0:
    print(f"done after {steps} steps", flush=True)
