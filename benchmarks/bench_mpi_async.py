#!/usr/bin/env python3
"""What an asynchronous MPI checkpoint costs the program (issue 11,
"Asynchronous MPI checkpoints"; doc/mpi-jobs.md, "Asynchronous checkpoints").

One `pyckpt mpirun` job (4 ranks by default, each holding --mib MiB of
float64 arrays) measures, in the same run:

* cut: the pause of an asynchronous checkpoint of the program before it
  allocates its arrays (the protocol, the capture, the file's descriptors):
  what a checkpoint costs that has no data to copy;
* memcpy: one copy of the rank's arrays into memory that was written before
  (np.copyto), all ranks at once, as the checkpoint's copy runs;
* async: the pause of pyckpt.checkpoint(asynchronous=True), barrier to the
  call's return (slowest rank): cut, capture, the copy;
* sync: the pause of pyckpt.checkpoint(asynchronous=False), the same job and
  data: the program waits until the file is committed;
* commit: after an asynchronous checkpoint, until pyckpt.wait() returns on
  rank 0 (the data drained, checksummed, committed) while the ranks wait.

Rounds alternate the order of sync and async; medians over rounds. The
targets: async <= 1.2 x (memcpy + cut) and sync >= 10 x async. Peak RSS of
each rank (ru_maxrss) against its state shows the copy's memory.

    python3 benchmarks/bench_mpi_async.py --build <build dir> [--np 4] [--mib 256] [--rounds 5]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


class Scratch:
    """The memcpy baseline's destination arrays: scratch memory the program
    would rebuild, so not part of its checkpointed state (its reducer
    saves nothing), or the checkpoints would copy and write twice the state."""

    def __init__(self, arrays=()):
        import numpy as np
        self.arrays = [np.empty_like(a) for a in arrays]
        for c, a in zip(self.arrays, arrays):
            c[:] = a  # written once: the copies below pay no page faults


def resident_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def worker(mib, rounds, cuts):
    import numpy as np
    from mpi4py import MPI

    import pyckpt

    comm = MPI.COMM_WORLD
    pyckpt.register_reducer(Scratch, lambda scratch: None, lambda _: Scratch())

    def paused(asynchronous):
        comm.Barrier()
        t = time.perf_counter()
        pyckpt.checkpoint(asynchronous=asynchronous)
        return comm.allreduce(time.perf_counter() - t, op=MPI.MAX)

    def committed():
        comm.Barrier()
        t = time.perf_counter()
        pyckpt.wait()
        elapsed = time.perf_counter() - t
        comm.Barrier()
        return elapsed

    report = {"cut": [], "memcpy": [], "async": [], "sync": [], "commit": [], "first_async": None}
    for _ in range(cuts):
        report["cut"].append(paused(True))
        committed()
    rss = {"before": resident_kib()}
    n = (mib << 20) // 8 // 4
    arrays = [np.random.default_rng(comm.rank * 4 + k).random(n) for k in range(4)]
    rss["state"] = resident_kib()
    scratch = Scratch(arrays)
    rss["scratch"] = resident_kib() - rss["state"]

    def memcpy():
        comm.Barrier()
        t = time.perf_counter()
        for c, a in zip(scratch.arrays, arrays):
            np.copyto(c, a)
        return comm.allreduce(time.perf_counter() - t, op=MPI.MAX)

    for k in range(rounds):
        for asynchronous in ((True, False) if k % 2 else (False, True)):
            report["memcpy"].append(memcpy())
            pause = paused(asynchronous)
            if asynchronous:
                if report["first_async"] is None:
                    report["first_async"] = pause  # the copy's memory is new: page faults
                    rss["staging"] = resident_kib() - rss["state"] - rss["scratch"]
                else:
                    report["async"].append(pause)
                report["commit"].append(committed())
            else:
                report["sync"].append(pause)
            for a in arrays:
                a += 1.0  # the program goes on changing its state
    rss["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    rss = comm.gather(rss, root=0)
    load = os.getloadavg()
    if comm.rank == 0:
        report = {k: (statistics.median(v) if isinstance(v, list) else v) for k, v in report.items()}
        report.update(rss_kib=rss, load=load, state_mib=mib, ranks=comm.size)
        print("PYCKPT_ASYNC " + json.dumps(report), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", help="build directory (bin/pyckpt)")
    parser.add_argument("--np", type=int, default=4)
    parser.add_argument("--mib", type=int, default=256, help="MiB of arrays per rank")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cuts", type=int, default=5, help="checkpoints without arrays, for the cut")
    parser.add_argument("--dir", default=".", help="where the checkpoints go (a temporary directory in it)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.mib, args.rounds, args.cuts)
        return
    if args.build is None:
        parser.error("--build is required")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        cmd = [os.path.join(os.path.abspath(args.build), "bin", "pyckpt"), "mpirun", "--dir", os.path.join(work, "ckpt.d"),
               "--oversubscribe", "--bind-to", "none", "-np", str(args.np), os.path.abspath(__file__), "--worker",
               "--mib", str(args.mib), "--rounds", str(args.rounds), "--cuts", str(args.cuts)]
        proc = subprocess.run(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=3600)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("PYCKPT_ASYNC ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}")
    r = json.loads(line[len("PYCKPT_ASYNC "):])
    ms = lambda s: f"{s * 1e3:8.1f} ms"
    print(f"{r['ranks']} ranks x {r['state_mib']} MiB, medians of {args.rounds} paired rounds "
          f"(load average at the end {' '.join(f'{x:.2f}' for x in r['load'])})")
    print(f"  cut (checkpoint without arrays)     {ms(r['cut'])}")
    print(f"  memcpy of the rank's arrays          {ms(r['memcpy'])}")
    print(f"  async checkpoint: pause              {ms(r['async'])}   (first one: {r['first_async'] * 1e3:.1f} ms)")
    print(f"  async checkpoint: until committed    {ms(r['commit'])}   after the pause")
    print(f"  sync checkpoint: pause               {ms(r['sync'])}")
    print(f"  async / (memcpy + cut)               {r['async'] / (r['memcpy'] + r['cut']):8.2f}x   (target <= 1.2)")
    print(f"  sync / async                         {r['sync'] / r['async']:8.1f}x   (target >= 10)")
    for rank, m in enumerate(r["rss_kib"]):
        print(f"  rank {rank} peak RSS {m['peak'] / 1024:5.0f} MiB: {m['before'] / 1024:.0f} MiB before its arrays, "
              f"{m['state'] / 1024:.0f} MiB with them, + {m['scratch'] / 1024:.0f} MiB the memcpy baseline's "
              f"scratch, + {m['staging'] / 1024:.0f} MiB staging buffer after the first async checkpoint")


if __name__ == "__main__":
    main()
