"""Token ring: rank 0 starts a token that every rank increments and passes on
(lowercase send/recv, specific source and tag)."""
import sys
import time

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
token = 0
for r in range(rounds):
    if rank == 0:
        comm.send(token + 1, dest=1 % size, tag=r)
        token = comm.recv(source=size - 1, tag=r)
    else:
        token = comm.recv(source=rank - 1, tag=r)
        time.sleep(0.01)
        comm.send(token + 1, dest=(rank + 1) % size, tag=r)
    out.write(f"round {r} token {token}\n")
    out.flush()
out.close()
if rank == 0:
    print(f"final token {token}")
