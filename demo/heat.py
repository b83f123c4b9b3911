"""1-D heat diffusion over MPI ranks: an ordinary mpi4py program.

It knows nothing of pyckpt. Run under `pyckpt mpirun --interval S`, it is
checkpointed every S seconds (every rank's frames, heap and arrays, and the
messages in flight); killed, the same command resumes it from the latest
checkpoint (see demo/run.sh and doc/mpi-jobs.md).

Each rank owns a slab of the rod and trades one halo cell with each neighbour
per step (Sendrecv); every --report steps an Allreduce gives the total heat.
At the end rank 0 gathers the rod and writes it to --out (.npy).
"""
import argparse
import hashlib
import time

import numpy as np
from mpi4py import MPI


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--cells", type=int, default=1 << 20, help="cells of the whole rod")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--report", type=int, default=100, help="print the total heat every N steps")
    p.add_argument("--step-sleep", type=float, default=0.0, help="seconds of pretend work per step")
    p.add_argument("--out", required=True, help="where rank 0 writes the final rod (.npy)")
    return p.parse_args()


def exchange_halos(comm, u, left, right):
    """Ghost cells u[0] and u[-1] get the neighbours' edge cells."""
    comm.Sendrecv(u[1:2], dest=left, sendtag=0, recvbuf=u[-1:], source=right, recvtag=0)
    comm.Sendrecv(u[-2:-1], dest=right, sendtag=1, recvbuf=u[0:1], source=left, recvtag=1)


def main():
    args = parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    n = args.cells // size
    left, right = (rank - 1) % size, (rank + 1) % size
    rng = np.random.default_rng(1234 + rank)
    u = np.zeros(n + 2)                      # one ghost cell at each end
    u[1:-1] = rng.random(n) * 100.0
    alpha = 0.25
    for step in range(1, args.steps + 1):
        exchange_halos(comm, u, left, right)
        u[1:-1] += alpha * (u[:-2] - 2.0 * u[1:-1] + u[2:])
        u[1:-1] += 0.001 * rng.standard_normal(n)  # a noisy source: the RNG state matters
        if args.step_sleep:
            time.sleep(args.step_sleep)
        if step % args.report == 0:
            total = comm.allreduce(u[1:-1].sum(), op=MPI.SUM)
            if rank == 0:
                print(f"step {step:5d}  total heat {total:.9e}", flush=True)
    rod = comm.gather(u[1:-1], root=0)
    if rank == 0:
        rod = np.concatenate(rod)
        np.save(args.out, rod)
        print(f"final: {rod.size} cells, total heat {rod.sum():.9e}, "
              f"sha256 {hashlib.sha256(rod.tobytes()).hexdigest()[:16]}", flush=True)


if __name__ == "__main__":
    main()
