"""Token ring run as a module (`python3 -u -X utf8 -W ... -m launch_ring
ROUNDS`, this directory on PYTHONPATH) under `pyckpt mpirun`: a resumed
rank must run as the module again, with the interpreter options of the
checkpointed one. Each rank writes one line per round to out.<rank> and, at
the end, what it knows of how it runs: its module name, argv, sys.path[0]
and the options (-u makes stdout write through, -X utf8 sets the UTF-8
mode, -W adds a warning filter)."""
import os
import sys
import time

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
rounds = int(sys.argv[1])
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
out.write(f"module {__name__} spec {__spec__.name if __spec__ else None} argv {[os.path.basename(sys.argv[0])] + sys.argv[1:]}\n"
          f"path0 {sys.path[0] == os.getcwd()} write_through {sys.stdout.write_through} "
          f"utf8 {sys.flags.utf8_mode} warnoptions {sys.warnoptions}\n")
out.close()
if rank == 0:
    print(f"final token {token}")
