"""An mpi4py.futures application that spawns its pool's workers
(MPI_Comm_spawn): `futures_spawn.py TASKS SECONDS WORKERS`, run as one rank.
It first computes alone for SECONDS (checkpoints can be taken then), then
submits TASKS tasks to a pool of WORKERS spawned processes and prints the
sum of their results."""
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor


def square(x):
    return x * x


if __name__ == "__main__":
    tasks, seconds, workers = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    print(f"program start: rank {MPI.COMM_WORLD.Get_rank()}", file=sys.stderr, flush=True)
    end, x = time.monotonic() + seconds, 1
    while time.monotonic() < end:  # computes alone: checkpoints are possible
        x = (x * 1103515245 + 12345) % 2147483648
    with MPIPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(square, range(tasks)))
    print(f"sum of squares {total}", flush=True)
