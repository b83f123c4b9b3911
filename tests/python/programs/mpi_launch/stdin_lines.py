"""Reads its input from stdin (`< input.txt`; mpirun forwards it to rank 0):
rank 0 iterates over sys.stdin line by line and sends each line to the
other ranks; every rank writes one line per input line to out.<rank>.
argv: SECONDS to sleep per line. After a restart the input must go on
where the checkpointed run was, not from its start."""
import sys
import time

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
pause = float(sys.argv[1])
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")


def lines():
    """Rank 0's input lines, sent to the other ranks (point to point), then None."""
    if rank != 0:
        line = comm.recv(source=0, tag=1)
        while line is not None:
            yield line
            line = comm.recv(source=0, tag=1)
        return
    for line in sys.stdin:
        for dest in range(1, size):
            comm.send(line, dest=dest, tag=1)
        yield line
    for dest in range(1, size):
        comm.send(None, dest=dest, tag=1)


count = 0
for line in lines():
    count += 1
    out.write(f"{count}: {line.rstrip()[::-1]}\n")
    out.flush()
    time.sleep(pause)
out.close()
if rank == 0:
    print(f"lines read {count}")
