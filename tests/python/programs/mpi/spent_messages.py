"""Matched-message handles kept in variables across checkpoints: rank 1
takes every message with mprobe()/Mprobe() and then receives it, so the
spent handle (MESSAGE_NULL) stays in `msg` and `matched`, and `noproc` holds
MESSAGE_NO_PROC (a probe of PROC_NULL) all along."""
import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
noproc = comm.Mprobe(source=MPI.PROC_NULL)
buf = np.zeros(4, np.int64)
for step in range(steps):
    if rank == 0:
        comm.send({"step": step}, dest=1, tag=7)
        comm.Send(np.arange(4, dtype=np.int64) * step, dest=1, tag=8)
    elif rank == 1:
        msg = comm.mprobe(source=0, tag=7)
        value = msg.recv()
        matched = comm.Mprobe(source=0, tag=8)
        matched.Recv(buf)
        out.write(f"step {step}: {value} {buf.tolist()} spent {msg == MPI.MESSAGE_NULL and matched == MPI.MESSAGE_NULL}"
                  f" no-proc {noproc == MPI.MESSAGE_NO_PROC}\n")
        out.flush()
    comm.Barrier()
    time.sleep(0.03)
out.close()
if rank == 0:
    print(f"final spent messages {steps} steps")
