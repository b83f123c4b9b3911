"""A matched message held while the rank computes: every step rank 1
takes rank 0's message with Mprobe, computes in pure Python (sizing and
filling its buffer, as a program that learns the size from the probe does),
then receives it with Mrecv; rank 0 waits in a Barrier meanwhile. A
checkpoint requested while rank 1 computes reaches it at a Python line,
where it cannot be cut (it holds the message) and must run on."""
import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 60
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
for step in range(steps):
    if rank == 0:
        comm.Send(np.arange(100 + step, dtype=np.int64), dest=1, tag=step)
    elif rank == 1:
        status = MPI.Status()
        matched = comm.Mprobe(source=0, tag=step, status=status)
        total = 0
        for i in range(60_000):  # ~20-50 ms of Python lines while holding the message
            total += i % 7
        buf = np.zeros(status.Get_count(MPI.INT64_T), np.int64)
        matched.Recv(buf)
        out.write(f"step {step}: {buf.size} values, sum {int(buf.sum())}, computed {total}\n")
        out.flush()
    comm.Barrier()
    time.sleep(0.01)  # paces the job: its length varies less with the load than the compute does
out.close()
if rank == 0:
    print(f"final held message {steps} steps")
