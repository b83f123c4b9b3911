"""1-D heat diffusion over MPI ranks, checkpointed with the pyckpt container.

Each rank owns a slab of the rod and exchanges one halo cell with each
neighbour per step (Sendrecv); an Allreduce gives the total heat every
--report steps. Every --every steps all ranks write one checkpoint file
together (pyckpt._core.Writer): each rank's slab as a typed dataset, the step
counter and the RNG-free state as attributes. Started again with the same
--dir, the job resumes from the directory's `latest` checkpoint.

This is application-level checkpointing through the container API; the
transparent, no-code-change path (pyckpt run / LD_PRELOAD) captures the same
kind of state without the save/load code below.
"""
import argparse
import sys
import time

import numpy as np
from mpi4py import MPI

from pyckpt import _core
from pyckpt.container import load_array


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--cells", type=int, default=1 << 20, help="cells of the whole rod")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--every", type=int, default=50, help="checkpoint every N steps (0: never)")
    p.add_argument("--dir", default="heat.ckpt")
    p.add_argument("--step-sleep", type=float, default=0.0, help="seconds of pretend work per step")
    return p.parse_args()


def main():
    args = parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    n = args.cells // size
    left, right = (rank - 1) % size, (rank + 1) % size

    step = 0
    u = None
    try:
        reader = _core.Reader(args.dir)
    except Exception:  # no checkpoint yet: a fresh start
        reader = None
    if reader is not None:
        if reader.world_size != size:
            sys.exit(f"{reader.file} was written by {reader.world_size} ranks, this job has {size}")
        u = load_array(reader, rank, "u")
        step = reader.attributes["step"]
        if rank == 0:
            print(f"resumed from {reader.file} at step {step}", flush=True)
    else:
        x = np.linspace(rank / size, (rank + 1) / size, n, endpoint=False)
        u = np.exp(-((x - 0.5) ** 2) / 0.01)

    # u has one ghost cell at each end during the update.
    work = np.empty(n + 2)
    written = 0
    n_written = 0
    write_seconds = 0.0
    while step < args.steps:
        work[1:-1] = u
        comm.Sendrecv(u[-1:], dest=right, recvbuf=work[:1], source=left)
        comm.Sendrecv(u[:1], dest=left, recvbuf=work[-1:], source=right)
        u = work[1:-1] + 0.25 * (work[:-2] - 2 * work[1:-1] + work[2:])
        step += 1
        if args.step_sleep:
            time.sleep(args.step_sleep)
        if args.every and step % args.every == 0:
            w = _core.Writer(args.dir, step // args.every, comm=comm)
            w.set_attribute("step", step)
            w.set_attribute("trigger", "demo: every %d steps" % args.every)
            w.add_array("u", u)
            info = w.commit()
            written += info["bytes_total"]
            n_written += 1
            write_seconds += info["seconds_prepare"] + info["seconds_write"] + info["seconds_commit"]
            if rank == 0:
                print(f"step {step}: checkpoint {info['path']}", flush=True)

    total = comm.allreduce(float(u.sum()))
    checksum = comm.allreduce(float((u * np.arange(n)).sum()) * (rank + 1))
    if rank == 0:
        print(f"final step {step} heat {total:.12e} moment {checksum:.12e}")
        if written:
            print(f"this run wrote {n_written} checkpoint(s) of {size} ranks: {human(written)} of arrays "
                  f"in {write_seconds:.2f} s ({written / write_seconds / 1e9:.2f} GB/s)")


def human(n):
    return f"{n / 2**20:.1f} MiB"


if __name__ == "__main__":
    main()
