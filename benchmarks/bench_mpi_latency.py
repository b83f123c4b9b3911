#!/usr/bin/env python3
"""Bounded checkpoint latency under load imbalance, and what the
collective wrapping costs (issue 14; doc/mpi.md, "Collectives across a cut"
and "Bounded latency"). Never run by ctest.

  python3 benchmarks/bench_mpi_latency.py --build <build dir> latency [--ranks 2 4 8] [--seconds 60]
  python3 benchmarks/bench_mpi_latency.py --build <build dir> collectives [--ranks 2 4] [--rounds 5]

latency: a job under `pyckpt mpirun` in which rank 0 computes in pure
Python for SECONDS without any MPI call while every other rank waits in an
Allreduce. Every 5 s the harness drops the request file (what `pyckpt
request` does) and times it to the commit (the checkpoint directory's
`latest` changes); PYCKPT_VERBOSE=1 has rank 0 print how long capture and
write took, the rest is trigger delivery and protocol. Before the waker and
the cut before collectives, no checkpoint was taken until rank 0 called MPI
again, i.e. after SECONDS.

collectives: paired blocks in one preloaded job (as bench_mpi_overhead.py
does for point-to-point): short blocks (--block-ms, 0.5 ms) of one
collective through the interposer, then bypassing it
(pyckpt_mpi_internal_begin/end: every MPI call goes straight to PMPI), order
alternating, --pairs pairs per collective (200), median of the per-pair
ratios with its interquartile range; medians over rounds (separate jobs).
Short blocks and many pairs: on a shared 2-core machine a block that meets
a burst of other jobs is slow for a scheduler slice; with 3 ms blocks and
40 pairs the per-round ratios of one build spread over 1.3-2.5x (load 9),
with 0.5 ms blocks and 200 pairs the quartiles of a round are within 5-10%
of its median (load 13-21).
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]
PERIOD = 5.0  # seconds between two requests


# --- workers (run as MPI ranks) -----------------------------------------------

def worker_imbalance(seconds):
    import numpy as np
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        end, x = time.monotonic() + seconds, 1
        while time.monotonic() < end:
            for _ in range(10_000):
                x = (x * 1103515245 + 12345) % 2147483648
    result = np.zeros(1)
    comm.Allreduce(np.ones(1), result)
    if comm.rank == 0:
        print(f"done {result[0]:.0f}", flush=True)


COLLECTIVES = ["Allreduce 8B", "Allreduce 8B in place", "Barrier", "Bcast 8B", "Allreduce 64KiB"]


def worker_collectives(pairs, block_s):
    """Prints, per collective: median seconds per call off and on, the
    median per-pair ratio (on / off) and its quartiles."""
    import numpy as np
    from mpi4py import MPI
    lib = ctypes.CDLL(None)
    begin, end = lib.pyckpt_mpi_internal_begin, lib.pyckpt_mpi_internal_end
    comm = MPI.COMM_WORLD
    small, small_out = np.ones(1), np.zeros(1)
    large, large_out = np.ones(8192), np.zeros(8192)
    calls = {
        "Allreduce 8B": lambda: comm.Allreduce(small, small_out),
        "Allreduce 8B in place": lambda: comm.Allreduce(MPI.IN_PLACE, small_out),
        "Barrier": comm.Barrier,
        "Bcast 8B": lambda: comm.Bcast(small_out, root=0),
        "Allreduce 64KiB": lambda: comm.Allreduce(large, large_out),
    }

    def block(on, call, loop):
        comm.Barrier()
        if not on:
            begin()
        t = time.perf_counter()
        for _ in range(loop):
            call()
        t = time.perf_counter() - t
        if not on:
            end()
        return comm.allreduce(t, op=MPI.MAX) / loop

    out = {}
    for name in COLLECTIVES:
        call, loop = calls[name], 8
        while block(False, call, loop) * loop < block_s / 2 and loop < 1 << 20:
            loop *= 2
        off, on, ratio = [], [], []
        for i in range(pairs):
            first = i % 2 == 1
            t = {first: block(first, call, loop)}
            t[not first] = block(not first, call, loop)
            off.append(t[False]), on.append(t[True]), ratio.append(t[True] / t[False])
        q1, _, q3 = statistics.quantiles(ratio, n=4)
        out[name] = [statistics.median(off), statistics.median(on), statistics.median(ratio), q1, q3]
    if comm.rank == 0:
        print("PYCKPT_COLLECTIVES " + json.dumps(out), flush=True)


# --- driver -------------------------------------------------------------------

def load():
    return os.getloadavg()[0]


def run_latency(args, ranks):
    with tempfile.TemporaryDirectory() as work:
        directory = os.path.join(work, "ckpt.d")
        env = dict(os.environ, PYCKPT_VERBOSE="1")
        cmd = [args.python, os.path.join(args.build, "bin", "pyckpt"), "mpirun", "--dir", directory,
               *MPIRUN[1:], "-np", str(ranks), args.python, os.path.abspath(__file__), "--worker-imbalance",
               str(args.seconds)]
        job = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.makedirs(directory, exist_ok=True)
        request = os.path.join(directory, ".request")
        time.sleep(3.0)  # start-up
        latencies, last = [], None
        while job.poll() is None:
            requested = time.monotonic()
            with open(request, "w") as f:
                f.write(f"{time.time()}\n")
            while job.poll() is None:
                try:
                    now = os.readlink(os.path.join(directory, "latest"))
                except OSError:
                    now = None
                if now != last:
                    latencies.append(time.monotonic() - requested)
                    last = now
                    break
                time.sleep(0.005)
            time.sleep(max(0.0, PERIOD - (time.monotonic() - requested)))
        _, err = job.communicate()
        if job.returncode != 0:
            sys.exit(f"job failed:\n{err[-3000:]}")
        writes = [float(line.rsplit(", ", 1)[1].split()[0]) for line in err.splitlines()
                  if line.startswith("pyckpt: checkpoint ") and " committed: " in line]
        return latencies, writes


def run_collectives(args, ranks):
    lib = os.path.join(args.build, "lib", "libpyckpt_mpi.so")
    cmd = MPIRUN + ["-np", str(ranks), "-x", "PYCKPT_RESTART=never", "-x", f"LD_PRELOAD={lib}", args.python,
                    os.path.abspath(__file__), "--worker-collectives", "--pairs", str(args.pairs),
                    "--block-ms", str(args.block_ms)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    for line in p.stdout.splitlines():
        if line.startswith("PYCKPT_COLLECTIVES "):
            return json.loads(line.split(" ", 1)[1])
    sys.exit(f"no result ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", choices=["latency", "collectives"])
    ap.add_argument("--build", default="build")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--ranks", type=int, nargs="+", default=None)
    ap.add_argument("--seconds", type=float, default=60.0, help="latency: how long rank 0 computes")
    ap.add_argument("--rounds", type=int, default=5, help="collectives: separate jobs")
    ap.add_argument("--pairs", type=int, default=200, help="collectives: pairs of blocks per collective and job")
    ap.add_argument("--block-ms", type=float, default=0.5, help="collectives: length of one block")
    ap.add_argument("--worker-imbalance", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--worker-collectives", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_imbalance is not None:
        return worker_imbalance(args.worker_imbalance)
    if args.worker_collectives:
        return worker_collectives(args.pairs, args.block_ms * 1e-3)
    args.build = os.path.abspath(args.build)
    if args.what == "latency":
        for ranks in args.ranks or [2, 4, 8]:
            before = load()
            latencies, writes = run_latency(args, ranks)
            print(f"{ranks} ranks, rank 0 computes {args.seconds:.0f} s, the others wait in Allreduce; a request every "
                  f"{PERIOD:.0f} s (load {before:.1f} -> {load():.1f})")
            print("  trigger-to-commit s: " + " ".join(f"{t:.2f}" for t in latencies))
            print("  capture+write s:     " + " ".join(f"{t:.2f}" for t in writes))
            if latencies:
                print(f"  median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s; "
                      f"median capture+write {statistics.median(writes) if writes else float('nan'):.2f} s")
    elif args.what == "collectives":
        for ranks in args.ranks or [2, 4]:
            before = load()
            rounds = [run_collectives(args, ranks) for _ in range(args.rounds)]
            print(f"{ranks} ranks, paired blocks in one preloaded job, medians over {len(rounds)} rounds "
                  f"(load {before:.1f} -> {load():.1f})")
            print(f"  {'collective':24} {'us off':>9} {'us on':>9} {'x':>7} {'x rounds min..max':>18} "
                  f"{'x quartiles (median round)':>27}")
            for name in COLLECTIVES:
                off = statistics.median(r[name][0] for r in rounds) * 1e6
                on = statistics.median(r[name][1] for r in rounds) * 1e6
                ratios = [r[name][2] for r in rounds]
                middle = sorted(rounds, key=lambda r: r[name][2])[len(rounds) // 2][name]
                print(f"  {name:24} {off:9.2f} {on:9.2f} {statistics.median(ratios):7.3f} "
                      f"{min(ratios):11.3f}..{max(ratios):.3f} {middle[3]:20.3f}..{middle[4]:.3f}")
    else:
        ap.error("say what to measure: latency or collectives")


if __name__ == "__main__":
    main()
