"""Many messages in flight: every rank but 0 sends 100 messages to rank 0
as fast as it can (pickled objects, every 10th a 16 KiB NumPy array that
needs a rendezvous), with four tags; rank 0 is slow and takes them in order
of (message, sender, tag)."""
import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
buf = np.zeros(2000)
if rank == 0:
    for i in range(count):
        for src in range(1, size):
            if i % 10 == 9:
                comm.Recv(buf, source=src, tag=i % 4)
                got = f"array sum {buf.sum():.1f} first {buf[0]:.1f}"
            else:
                got = repr(comm.recv(source=src, tag=i % 4))
            out.write(f"from {src} message {i}: {got}\n")
            out.flush()
            time.sleep(delay)
else:
    for i in range(count):
        if i % 10 == 9:
            comm.Send(np.arange(2000.0) + 1000 * rank + i, dest=0, tag=i % 4)
        else:
            comm.send((rank, i, "x" * i, {"i": i}), dest=0, tag=i % 4)
        out.write(f"sent {i}\n")
        out.flush()
out.close()
comm.barrier()
if rank == 0:
    print(f"final received {count * (size - 1)} messages")
