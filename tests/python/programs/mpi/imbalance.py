"""Load imbalance: in every step one rank (it rotates) computes in pure
Python about 50 times longer than the others, which meanwhile wait in a
collective. argv: STEPS WORK KIND [HOLD], WORK the slow rank's loop length,
HOLD a file name: in step 1 the slow rank also computes until that file
exists (a test creates it once it has its checkpoint), KIND the collective
the fast ranks wait in:
  allreduce  Allreduce of a NumPy array (completes on no rank before all entered)
  barrier    Barrier; half the ranks also exchange messages while they wait
  bcast      Bcast rooted at the slow rank (it completes early at the root)
  gather     Gather to rank 0 (completes early on the leaves)
  pickle     lowercase allgather of a Python object
Each rank writes one line per step to out.<rank>."""
import os
import sys

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
steps, work, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
hold = sys.argv[4] if len(sys.argv) > 4 else None
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")


def compute(n, seed):
    """Pure Python work: no MPI call for its whole duration."""
    x = seed
    for _ in range(n):
        x = (x * 1103515245 + 12345) % 2147483648
    return x


def computing_until_released():
    """The hold: computes until the file HOLD exists (a checkpoint may fall
    between two compute() calls, here)."""
    while not os.path.exists(hold):
        compute(10_000, 0)


def exchange_while_waiting(step):
    """The fast ranks of the lower half trade messages with their partner in
    the upper half while the slow rank computes."""
    half = size // 2
    if rank == step % size or half == 0 or rank >= 2 * half:
        return 0
    partner = (rank + half) % (2 * half)
    if partner == step % size:
        return 0
    got = np.zeros(8, "i8")
    comm.Sendrecv(np.full(8, rank * 1000 + step, "i8"), dest=partner, sendtag=step, recvbuf=got, source=partner,
                  recvtag=step)
    return int(got.sum())


total = 0
for step in range(steps):
    slow = step % size
    x = compute(work if rank == slow else work // 50, step * size + rank)
    if hold and step == 1 and rank == slow:
        computing_until_released()
    mine = np.array([x % 1000, rank, step], "i8")
    if kind == "allreduce":
        result = np.zeros(3, "i8")
        comm.Allreduce(mine, result, op=MPI.SUM)
    elif kind == "barrier":
        traded = exchange_while_waiting(step)
        comm.Barrier()
        result = np.array([traded], "i8")
    elif kind == "bcast":
        result = mine.copy()
        comm.Bcast(result, root=slow)
    elif kind == "gather":
        result = np.zeros(3 * size, "i8")
        comm.Gather(mine, result, root=0)
    elif kind == "pickle":
        result = np.array(comm.allgather(int(mine[0])), "i8")
    else:
        raise SystemExit(f"unknown KIND {kind}")
    total += int(result.sum())
    out.write(f"{step} {result.tolist()} {total}\n")
    out.flush()
if rank == 0:
    print(f"imbalance {kind} done: {total}", flush=True)
