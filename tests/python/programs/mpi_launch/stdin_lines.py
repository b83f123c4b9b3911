"""Reads its input from stdin (`< input.txt`; mpirun forwards it to rank 0):
rank 0 iterates over sys.stdin line by line and broadcasts each line; every
rank writes one line per input line to out.<rank>. argv: SECONDS to sleep
per line. After a restart the input must go on where the checkpointed run
was, not from its start."""
import sys
import time

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
pause = float(sys.argv[1])
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
count = 0
lines = sys.stdin if rank == 0 else iter(lambda: None, 0)
for line in lines:
    line = comm.bcast(line, root=0)
    if line is None:
        break
    count += 1
    out.write(f"{count}: {line.rstrip()[::-1]}\n")
    out.flush()
    time.sleep(pause)
if rank == 0:
    comm.bcast(None, root=0)
out.close()
if rank == 0:
    print(f"lines read {count}")
