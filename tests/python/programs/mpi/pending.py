"""Nonblocking point-to-point pending across checkpoints: each step posts an
Irecv (NumPy buffer) before an Allreduce and a Barrier, its matching Isend is
posted only after the Allreduce, and both are waited for after some compute,
so a cut in the Allreduce or the Barrier finds them pending."""
import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 80
n = 512
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
left, right = (rank - 1) % size, (rank + 1) % size
field = np.sin(np.arange(n) * (rank + 1) / n)
recvbuf = np.zeros(n)
total = np.zeros(1)
for step in range(steps):
    rreq = comm.Irecv(recvbuf, source=left, tag=step)
    comm.Allreduce(np.array([field.sum()]), total, op=MPI.SUM)
    time.sleep(0.005)
    sendbuf = field * (step + 1)
    sreq = comm.Isend(sendbuf, dest=right, tag=step)
    comm.Barrier()
    field = np.cos(field) + 0.001 * step  # compute while the messages travel
    time.sleep(0.01)
    MPI.Request.Waitall([rreq, sreq])
    field += 0.5 * recvbuf / (step + 1)
    out.write(f"step {step} total {total[0]:.15e} received {recvbuf.sum():.15e} field {field.sum():.15e}\n")
    out.flush()
out.close()
final = comm.allreduce(float(field.sum()))
if rank == 0:
    print(f"final field sum {final:.15e}")
