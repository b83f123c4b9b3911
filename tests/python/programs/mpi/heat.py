"""1-D heat diffusion: halo exchange with Sendrecv (PROC_NULL at the ends) and
Allreduce of the total heat and the largest change, NumPy buffers."""
import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 150
n = 2000
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
x = (rank * n + np.arange(n)) / (size * n)
u = np.zeros(n + 2)
u[1:-1] = np.exp(-200.0 * (x - 0.3) ** 2) + 0.5 * np.exp(-500.0 * (x - 0.7) ** 2)
left = rank - 1 if rank > 0 else MPI.PROC_NULL
right = rank + 1 if rank < size - 1 else MPI.PROC_NULL
alpha = 0.4
sums = np.zeros(2)
for step in range(steps):
    comm.Sendrecv(u[1:2], dest=left, sendtag=1, recvbuf=u[-1:], source=right, recvtag=1)
    comm.Sendrecv(u[-2:-1], dest=right, sendtag=2, recvbuf=u[0:1], source=left, recvtag=2)
    if left == MPI.PROC_NULL:
        u[0] = u[1]
    if right == MPI.PROC_NULL:
        u[-1] = u[-2]
    new = u[1:-1] + alpha * (u[:-2] - 2 * u[1:-1] + u[2:])
    local = np.array([new.sum(), np.abs(new - u[1:-1]).max()])
    u[1:-1] = new
    comm.Allreduce(local[:1], sums[:1], op=MPI.SUM)
    comm.Allreduce(local[1:], sums[1:], op=MPI.MAX)
    out.write(f"step {step} local {local[0]:.15e} total {sums[0]:.15e} change {sums[1]:.15e}\n")
    out.flush()
    time.sleep(0.01)
out.close()
total = comm.allreduce(float(u[1:-1].sum()))
if rank == 0:
    print(f"final total heat {total:.15e}")
