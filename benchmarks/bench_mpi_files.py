#!/usr/bin/env python3
"""What the app's MPI-IO files cost under pyckpt (doc/mpi.md, "Files").

One `pyckpt mpirun` job (2 ranks, --np; no interval) measures

* collective file calls through the interposer against the same calls around
  it: each collective file call is entered together (an Ibarrier on the
  file's communicator first), and an open also makes the file a
  communicator. Paired blocks of calls in one job, through / around
  (pyckpt_mpi_internal_begin/end: every MPI call passes straight through),
  order alternating, median of the per-pair ratios, as bench_mpi_overhead.py
  does for point-to-point;
* a checkpoint (pyckpt.checkpoint(), barrier to barrier) with no file open,
  with files open and nothing written since the last checkpoint, and with
  files open and MiB written per rank and file since the last one (what
  each rank fsyncs at the cut).

    python3 benchmarks/bench_mpi_files.py --build <build dir> [--np 2] [--pairs 30]

With --np 1 the entry barrier has no peer to wait for: what is left is the
library's own work per call.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def paired_costs(comm, pairs, block_s):
    """Per collective file call: median seconds per call around / through
    the interposer, and the median ratio of paired blocks. (Its own function:
    the ctypes handle must not be in a frame when a checkpoint is taken.)"""
    import ctypes

    import numpy as np
    from mpi4py import MPI

    lib = ctypes.CDLL(None)
    costs = {}

    def paired(name, call):
        def block(through, loop):
            if not through:
                lib.pyckpt_mpi_internal_begin()
            try:
                comm.Barrier()
                t = time.perf_counter()
                for i in range(loop):
                    call(i)
                t = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
            finally:
                if not through:
                    lib.pyckpt_mpi_internal_end()
            return t / loop
        loop = 2
        while block(False, loop) * loop < block_s / 2 and loop < 1 << 16:
            loop *= 2
        around, through, ratio = [], [], []
        for k in range(pairs):
            t = {k % 2 == 1: block(k % 2 == 1, loop)}
            t[k % 2 == 0] = block(k % 2 == 0, loop)
            around.append(t[False])
            through.append(t[True])
            ratio.append(t[True] / t[False])
        costs[name] = [statistics.median(around), statistics.median(through), statistics.median(ratio)]

    fh = MPI.File.Open(comm, "bench.paired.bin", MPI.MODE_WRONLY | MPI.MODE_CREATE)
    for n in (8, 64 << 10, 1 << 20):
        def write(i, data=np.full(n, comm.rank, dtype=np.uint8)):
            fh.Write_at_all((i % 64 * comm.size + comm.rank) * data.nbytes, data)
        paired(f"Write_at_all {n} B", write)
    fh.Close()
    paired("Open+Close", lambda i: MPI.File.Open(comm, "bench.open.bin", MPI.MODE_WRONLY | MPI.MODE_CREATE).Close())
    return costs


def worker(pairs, block_s, checkpoints, files, mib):
    import numpy as np
    from mpi4py import MPI

    import pyckpt

    comm = MPI.COMM_WORLD
    report = {"paired": paired_costs(comm, pairs, block_s), "checkpoint": {}}

    def timed_checkpoint():
        comm.Barrier()
        t = time.perf_counter()
        pyckpt.checkpoint()
        comm.Barrier()
        return time.perf_counter() - t

    # Rounds of the three cases in turn, so that load from other processes
    # hits them alike.
    block = np.full(mib << 20, comm.rank, dtype=np.uint8)
    cases = ["no file open", f"{files} files open, nothing written since the last checkpoint",
             f"{files} files open, {mib} MiB per rank and file written since the last one"]
    times = {case: [] for case in cases}
    for i in range(checkpoints):
        times[cases[0]].append(timed_checkpoint())
        handles = [MPI.File.Open(comm, f"bench.{k}.bin", MPI.MODE_WRONLY | MPI.MODE_CREATE) for k in range(files)]
        timed_checkpoint()  # the files' creation is made durable at this one
        times[cases[1]].append(timed_checkpoint())
        for f in handles:
            f.Write_at_all((i * comm.size + comm.rank) * block.nbytes, block)
        times[cases[2]].append(timed_checkpoint())
        for f in handles:
            f.Close()
        del handles
    report["checkpoint"] = {case: statistics.median(t) for case, t in times.items()}
    if comm.rank == 0:
        print("PYCKPT_FILES " + json.dumps(report), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", help="build directory (bin/pyckpt)")
    parser.add_argument("--np", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--block", type=float, default=0.02, help="seconds per block of calls")
    parser.add_argument("--checkpoints", type=int, default=7)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.pairs, args.block, args.checkpoints, args.files, args.mib)
        return
    if args.build is None:
        parser.error("--build is required")
    with tempfile.TemporaryDirectory(dir=".") as work:
        cmd = [os.path.join(args.build, "bin", "pyckpt"), "mpirun", "--dir", os.path.join(work, "ckpt.d"),
               "--bind-to", "none", "-np", str(args.np), os.path.abspath(__file__), "--worker",
               "--pairs", str(args.pairs), "--block", str(args.block), "--checkpoints", str(args.checkpoints),
               "--files", str(args.files), "--mib", str(args.mib)]
        proc = subprocess.run(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=1800)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("PYCKPT_FILES ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}")
    report = json.loads(line[len("PYCKPT_FILES "):])
    print(f"{f'collective file call ({args.np} ranks)':<28} {'around':>10} {'through':>10} {'paired x':>9}")
    for name, (around, through, ratio) in report["paired"].items():
        print(f"{name:<28} {around * 1e6:8.1f}us {through * 1e6:8.1f}us {ratio:8.2f}x")
    print(f"\n{'checkpoint (median, barrier to barrier)':<72} {'time':>8}")
    for name, t in report["checkpoint"].items():
        print(f"{name:<72} {t * 1e3:6.1f}ms")


if __name__ == "__main__":
    main()
