"""Capture + commit of a process state dominated by 1 GiB of NumPy arrays.

Four ways of making the same arrays durable, measured back to back in every
round, in an order that rotates from round to round (the disk of a virtual
machine varies from second to second, and what ran before matters: the
write-back of the previous file). Ratios are medians of the per-round
ratios, so that each compares measurements taken seconds apart:

* checkpoint: pyckpt.checkpoint() -- frame capture, heap pickle, the arrays
  written zero-copy as datasets, checksums, fsync, atomic commit;
* async:      pyckpt.checkpoint(asynchronous=True) -- the time the program is
  stopped (capture, fork); a forked writer commits meanwhile (its commit is
  waited for, untimed, before the next measurement);
* pickle:     pickle.dump(protocol=5) of the same objects to a file, fsync
  (the target: checkpoint >= 1.5x faster);
* raw:        the same arrays through the container alone (pyckpt._core.Writer)
  (the target: checkpoint >= 0.9x of its throughput).

Run: PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_process.py [--gib 1] [--rounds 7]
"""
import argparse
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

import pyckpt
from pyckpt import _core
from pyckpt.container import add_array


def pickle_to_file(objects, path):
    with open(path, "wb") as f:
        pickle.dump(objects, f, protocol=5)
        f.flush()
        os.fsync(f.fileno())


def raw_container(arrays, directory, epoch):
    writer = _core.Writer(directory, epoch)
    for name, a in arrays.items():
        add_array(writer, name, a)
    writer.commit()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dir", default=os.environ.get("PYCKPT_BENCH_DIR"))
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench_process.", dir=args.dir)
    n_arrays = 8
    per_array = int(args.gib * 2**30) // n_arrays // 8
    arrays = {f"field{i}": np.random.default_rng(i).random(per_array) for i in range(n_arrays)}
    # The process state is the arrays plus a little ordinary Python data.
    globals()["state"] = {"arrays": arrays, "step": 42, "params": {"dt": 0.1, "name": "bench"}}
    nbytes = sum(a.nbytes for a in arrays.values())

    times = {"checkpoint": [], "async": [], "pickle": [], "raw": []}
    try:
        names = list(times)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                target = os.path.join(work, name)
                shutil.rmtree(target, ignore_errors=True)
                os.sync()
                start = time.perf_counter()
                if name == "checkpoint":
                    pyckpt.checkpoint(target)
                elif name == "async":
                    pyckpt.checkpoint(target, asynchronous=True)
                elif name == "pickle":
                    os.makedirs(target)
                    pickle_to_file(globals()["state"], os.path.join(target, "state.pkl"))
                else:
                    raw_container(arrays, target, 1)
                times[name].append(time.perf_counter() - start)
                if name == "async" and not pyckpt.wait():
                    raise SystemExit("the background checkpoint failed")
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}

    def ratio(a, b):  # median over rounds of times[a] / times[b]
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    print(f"\n{nbytes / 2**30:.2f} GiB in {n_arrays} arrays, median of {args.rounds} rounds:")
    for k in times:
        print(f"  {k:<10} {med[k]:.3f} s  {nbytes / med[k] / 1e9:.2f} GB/s")
    print("median of the per-round ratios:")
    print(f"  checkpoint vs pickle.dump+fsync: {ratio('pickle', 'checkpoint'):.2f}x faster (target >= 1.5x)")
    print(f"  async checkpoint (program stopped) vs pickle.dump+fsync: {ratio('pickle', 'async'):.1f}x faster")
    print(f"  checkpoint vs raw container:     {ratio('raw', 'checkpoint'):.2f}x its throughput (target >= 0.9x)")


if __name__ == "__main__":
    sys.exit(main())
