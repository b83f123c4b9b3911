#!/usr/bin/env python3
"""Interposition overhead of libpyckpt_mpi.so: ping-pong latency and
bandwidth with and without LD_PRELOAD, interleaved in one run.

Two ping-pongs between 2 ranks, each run in both configurations in every
round, the order alternating from round to round so that load from other
processes hits both sides alike:

* mpi4py: the `ringtest` of `python -m mpi4py.bench` (mpi4py 3.1 has no
  `pingpong` command; with 2 ranks its ring is a ping-pong of
  comm.Send/comm.Recv), called for several sizes in one process;
* C++: bin/mpi_pingpong (Google Benchmark, MPI_Send/MPI_Recv).

For each size and round: ratio = with / without (latency) and
without / with (bandwidth, i.e. time ratio inverted); the report gives the
medians over rounds. Targets (issue 4): small-message latency <= 1.05x,
large-message bandwidth >= 0.98x.

On a loaded machine (other builds and tests) separate processes see load
bursts of seconds, and per-round ratios scatter by 10x. So every round also
runs a paired comparison inside one preloaded job: short blocks (~3 ms) of
round trips, alternately through the interposer and around it, 40 pairs per
size, median of the per-pair ratios. Around it means: PMPI_Send/PMPI_Recv
for C++ (mpi_pingpong --paired; exactly no interposer code), and for mpi4py
pyckpt_mpi_internal_begin() (every MPI call passes straight through; what is
left is one call and a thread-local check, ~2 ns per MPI call).

    python3 benchmarks/bench_mpi_overhead.py --build /tmp/build-h5 [--rounds 7]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe"]
PY_SIZES = [8, 1024, 65536, 1 << 20, 4 << 20]
SMALL, LARGE = 8, 4 << 20  # the sizes the targets are checked on


def label(n):
    if n >= 1 << 20:
        return f"{n >> 20}MiB"
    if n >= 1024:
        return f"{n >> 10}KiB"
    return f"{n}B"


# --- worker: runs under mpirun, 2 ranks -------------------------------------

def worker(sizes, seconds, repeats):
    """mpi4py.bench's ringtest for each size; rank 0 prints JSON: per size
    the median seconds per round trip over `repeats` timed runs."""
    from mpi4py import MPI, bench
    comm = MPI.COMM_WORLD
    out = {}
    for n in sizes:
        # Calibrate the loop count to ~`seconds` per timed run (rank 0 decides).
        loop = 16
        while True:
            t = bench.ringtest(comm, ["-q", "-n", str(n), "-l", str(loop), "-s", "2"])
            t = comm.bcast(t, root=0)
            if t >= seconds / 4 or loop >= 1 << 22:
                break
            loop *= 4
        loop = max(4, int(loop * seconds / max(t, 1e-9)))
        times = []
        for _ in range(repeats):
            t = bench.ringtest(comm, ["-q", "-n", str(n), "-l", str(loop), "-s", str(max(2, loop // 20))])
            times.append(comm.bcast(t, root=0) / loop)
        out[n] = statistics.median(times)
    if comm.rank == 0:
        print("PYCKPT_BENCH " + json.dumps({"preloaded": "LD_PRELOAD" in os.environ and
                                            "pyckpt_mpi" in os.environ["LD_PRELOAD"], "rt": out}))


def worker_paired(sizes, pairs, block_s):
    """Paired blocks of ringtest loops, interposer on / bypassed (mpi4py)."""
    import ctypes
    from mpi4py import MPI, bench
    lib = ctypes.CDLL(None)
    begin, end = lib.pyckpt_mpi_internal_begin, lib.pyckpt_mpi_internal_end
    comm = MPI.COMM_WORLD

    def block(on, n, loop):
        if not on:
            begin()
        try:
            t = bench.ringtest(comm, ["-q", "-n", str(n), "-l", str(loop), "-s", "1"])
        finally:
            if not on:
                end()
        return comm.bcast(t, root=0) / loop

    out = {}
    for n in sizes:
        loop = 4
        while True:
            t = block(False, n, loop) * loop
            if t >= block_s / 2 or loop >= 1 << 20:
                break
            loop *= 2
        loop = max(2, int(loop * block_s / max(t, 1e-9)))
        off, on, ratio = [], [], []
        for i in range(pairs):
            first = i % 2 == 1
            t = {first: block(first, n, loop)}
            t[not first] = block(not first, n, loop)
            off.append(t[False]); on.append(t[True]); ratio.append(t[True] / t[False])
        out[n] = [statistics.median(off), statistics.median(on), statistics.median(ratio)]
    if comm.rank == 0:
        print("PYCKPT_PAIRED " + json.dumps(out))


# --- driver -------------------------------------------------------------------

def run(cmd, timeout):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}")
    return p.stdout


def mpirun_prefix(args, preload):
    cmd = MPIRUN + ["--bind-to", args.bind, "-np", "2", "-x", "PYCKPT_RESTART=never"]
    if preload:
        cmd += ["-x", f"LD_PRELOAD={args.lib}"]
    return cmd


def run_mpi4py(args, preload):
    cmd = mpirun_prefix(args, preload) + [args.python, os.path.abspath(__file__), "--worker",
                                          "--seconds", str(args.seconds), "--repeats", "3"]
    for line in run(cmd, 600).splitlines():
        if line.startswith("PYCKPT_BENCH "):
            d = json.loads(line[len("PYCKPT_BENCH "):])
            if d["preloaded"] != preload:
                sys.exit("mpi4py worker: preload state is not what was asked for")
            return {int(k): v for k, v in d["rt"].items()}
    sys.exit("mpi4py worker printed no result")


def parse_paired(text):
    for line in text.splitlines():
        if line.startswith("PYCKPT_PAIRED "):
            return {int(k): v for k, v in json.loads(line[len("PYCKPT_PAIRED "):]).items()}
    sys.exit("no paired result printed")


def run_paired(args, what):
    if what == "mpi4py":
        cmd = mpirun_prefix(args, True) + [args.python, os.path.abspath(__file__), "--worker-paired"]
    else:
        cmd = mpirun_prefix(args, True) + [args.pingpong, "--paired", "40"]
    return parse_paired(run(cmd, 600))


def report_paired(title, rounds):
    """rounds: list of dicts size -> [off s, on s, median ratio] (per round trip)."""
    print(f"\n{title}, paired blocks in one preloaded job: medians over {len(rounds)} rounds")
    print(f"{'size':>7} {'lat_us off':>11} {'lat_us on':>10} {'lat x':>7} "
          f"{'GB/s off':>9} {'GB/s on':>8} {'bw x':>7}  {'lat x min..max':>14}")
    for n in sorted(rounds[0]):
        off = statistics.median(r[n][0] for r in rounds)
        on = statistics.median(r[n][1] for r in rounds)
        ratios = [r[n][2] for r in rounds]
        x = statistics.median(ratios)
        print(f"{label(n):>7} {off / 2 * 1e6:11.3f} {on / 2 * 1e6:10.3f} {x:7.3f} "
              f"{2 * n / off / 1e9:9.3f} {2 * n / on / 1e9:8.3f} {1 / x:7.3f}  "
              f"{min(ratios):6.3f}..{max(ratios):.3f}")


def run_cpp(args, preload):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = mpirun_prefix(args, preload) + [args.pingpong, f"--benchmark_out={f.name}",
                                              "--benchmark_out_format=json",
                                              f"--benchmark_min_time={args.seconds}"]
        run(cmd, 600)
        d = json.load(open(f.name))
    if d["context"].get("interposer") != ("preloaded" if preload else "absent"):
        sys.exit("mpi_pingpong: preload state is not what was asked for")
    rt = {}
    for b in d["benchmarks"]:
        size = b["name"].split("/")[1]
        assert b["time_unit"] == "ns"
        rt[size] = b["real_time"] * 1e-9
    return rt


def size_bytes(lbl):
    mult = {"MiB": 1 << 20, "KiB": 1024, "B": 1}
    for suf, m in mult.items():
        if lbl.endswith(suf):
            return int(lbl[: -len(suf)]) * m
    raise ValueError(lbl)


def report(title, rounds, sizes):
    """rounds: list of (without, with) dicts size -> seconds per round trip."""
    print(f"\n{title}: medians over {len(rounds)} rounds")
    print(f"{'size':>7} {'lat_us off':>11} {'lat_us on':>10} {'lat x':>7} "
          f"{'GB/s off':>9} {'GB/s on':>8} {'bw x':>7}  {'lat x min..max':>14}")
    summary = {}
    for s in sizes:
        n = s if isinstance(s, int) else size_bytes(s)
        off = [r[0][s] for r in rounds]
        on = [r[1][s] for r in rounds]
        ratios = [b / a for a, b in zip(off, on)]
        lat_x = statistics.median(ratios)
        bw_x = statistics.median([1 / x for x in ratios])
        moff, mon = statistics.median(off), statistics.median(on)
        print(f"{label(n):>7} {moff / 2 * 1e6:11.3f} {mon / 2 * 1e6:10.3f} {lat_x:7.3f} "
              f"{2 * n / moff / 1e9:9.3f} {2 * n / mon / 1e9:8.3f} {bw_x:7.3f}  "
              f"{min(ratios):6.3f}..{max(ratios):.3f}")
        summary[n] = (lat_x, bw_x)
    ok_lat = summary[SMALL][0] <= 1.05
    ok_bw = summary[LARGE][1] >= 0.98
    print(f"  small ({label(SMALL)}) latency ratio {summary[SMALL][0]:.3f} (target <= 1.05: "
          f"{'met' if ok_lat else 'MISSED'}); large ({label(LARGE)}) bandwidth ratio "
          f"{summary[LARGE][1]:.3f} (target >= 0.98: {'met' if ok_bw else 'MISSED'})")
    return ok_lat and ok_bw


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=".",
                    help="build directory (has lib/libpyckpt_mpi.so, lib/libpyckpt_python_rank.so, bin/mpi_pingpong)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.3, help="timed seconds per size and run")
    ap.add_argument("--bind", default="core", help="mpirun --bind-to (core: Open MPI's default for 2 ranks)")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with mpi4py")
    ap.add_argument("--only", choices=["mpi4py", "cpp"], help="run one of the two ping-pongs")
    ap.add_argument("--no-paired", action="store_true", help="skip the paired in-process comparison")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-paired", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(PY_SIZES, args.seconds, args.repeats)
    if args.worker_paired:
        return worker_paired(PY_SIZES, 40, 3e-3)

    # What `pyckpt preload-path` names: the interposer, and the library that
    # attaches pyckpt to a Python rank at MPI_Init (a no-op in mpi_pingpong).
    libs = [os.path.abspath(os.path.join(args.build, "lib", name))
            for name in ("libpyckpt_mpi.so", "libpyckpt_python_rank.so")]
    args.lib = ":".join(libs)
    args.pingpong = os.path.abspath(os.path.join(args.build, "bin", "mpi_pingpong"))
    for p in (*libs, args.pingpong):
        if not os.path.exists(p):
            sys.exit(f"not found: {p} (build the project, or pass --build)")
    print(f"{datetime.datetime.now().isoformat(timespec='seconds')}  {os.uname().nodename}  "
          f"{os.cpu_count()} CPUs  load {os.getloadavg()[0]:.2f}")
    print(f"preload: {args.lib}; mpirun --bind-to {args.bind} -np 2; {args.rounds} rounds, "
          f"order alternating")
    t0 = time.time()
    py_rounds, cpp_rounds, py_paired, cpp_paired = [], [], [], []
    for r in range(args.rounds):
        order = [False, True] if r % 2 == 0 else [True, False]
        if args.only != "cpp":
            res = {p: run_mpi4py(args, p) for p in order}
            py_rounds.append((res[False], res[True]))
            if not args.no_paired:
                py_paired.append(run_paired(args, "mpi4py"))
        if args.only != "mpi4py":
            res = {p: run_cpp(args, p) for p in order}
            cpp_rounds.append((res[False], res[True]))
            if not args.no_paired:
                cpp_paired.append(run_paired(args, "cpp"))
        print(f"  round {r + 1}/{args.rounds} done ({time.time() - t0:.0f} s, load "
              f"{os.getloadavg()[0]:.2f})", flush=True)
    ok = True
    if py_rounds:
        ok &= report("mpi4py.bench ringtest, 2 ranks (comm.Send/comm.Recv)", py_rounds, PY_SIZES)
    if cpp_rounds:
        ok &= report("C++ mpi_pingpong (MPI_Send/MPI_Recv)", cpp_rounds,
                     [s for s in cpp_rounds[0][0] if s in cpp_rounds[0][1]])
    if py_paired:
        report_paired("mpi4py.bench ringtest", py_paired)
    if cpp_paired:
        report_paired("C++ mpi_pingpong", cpp_paired)
    print(f"\nload at end {os.getloadavg()[0]:.2f}; lat x = with/without time, "
          f"bw x = without/with time (> 1: faster with the preload)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
