"""The pause of a checkpoint of an object-heavy heap against pickle.dumps of
the same heap (issue 12: target <= 1.5x).

The heap holds N instances of the program's own classes, a third in each of
three shapes: a complete binary tree of `Node` objects, a list of dataclass
records, a dict of `Item` objects by string key. It is a global of this
script (the checkpoint's __main__) and a local of the measuring function, so
the checkpoint's summary of the frame's locals sees it too. Measured in the
same process, in an order that rotates from round to round:

* pickle:       pickle.dumps(heap, protocol=5), the garbage collector on, as
                a program would call it (the baseline);
* pickle-nogc:  the same with gc.disable() around it (a stricter baseline:
                the checkpoint's pickler runs with the collector off);
* heap:         pyckpt.heap.dumps(heap) alone, the pickler's share of a
                checkpoint;
* sync:         pyckpt.checkpoint(): the program's pause, from the call to
                its return (stack capture, pickle, summary, HDF5 write, fsync,
                commit);
* async:        pyckpt.checkpoint(asynchronous=True): the program's pause
                (capture and fork; a forked writer commits, waited for
                untimed before the next measurement).

A first pickle.dumps, untimed, gives every instance its __dict__ object
(CPython 3.11 creates it when pickling asks for it), so every measurement
sees the heap in the same state. With --cold, each measurement gets a heap
built for it instead, as a program that keeps making new objects gives each
checkpoint: pickling then makes a container per instance, and the cyclic
garbage collector runs while the pickler works (pickle's case; the
checkpoint pickles with it off). Ratios are medians of the per-round ratios
to `pickle`, of the wall time (the pause the program sees) and of this
process's CPU time (which a loaded machine disturbs less); the load average
is printed at the start and the end.

Run: PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_objects.py [--objects 100000 1000000] [--rounds 5]
"""
import argparse
import dataclasses
import gc
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time

import pyckpt
from pyckpt import heap as pyckpt_heap


class Node:
    """A node of a binary tree."""

    def __init__(self, key, left, right):
        self.key, self.left, self.right = key, left, right


@dataclasses.dataclass
class Record:
    id: int
    name: str
    score: float
    tags: tuple


class Item:
    def __init__(self, i, owner):
        self.value = i * 0.5
        self.owner = owner
        self.count = i


def build_heap(n_objects):
    """{"tree", "records", "items"}: n_objects user-class instances in all."""
    n = n_objects // 3
    nodes = [None] * n
    for i in reversed(range(n)):  # children first: node i has 2i+1 and 2i+2
        left, right = 2 * i + 1, 2 * i + 2
        nodes[i] = Node(i, nodes[left] if left < n else None, nodes[right] if right < n else None)
    tree = nodes[0]
    del nodes
    names = [f"name-{i}" for i in range(1000)]
    tags = [("a",), ("a", "b"), ("b", "c"), ()]
    records = [Record(i, names[i % 1000], i * 0.25, tags[i % 4]) for i in range(n)]
    owners = names[:16]
    items = {f"k{i}": Item(i, owners[i % 16]) for i in range(n_objects - 2 * n)}
    return {"tree": tree, "records": records, "items": items}


MEASURES = ["pickle", "pickle-nogc", "heap", "sync", "async"]


def measure(heap, name, work):
    """(wall, CPU) seconds `name` takes on `heap` (see the module's
    docstring); CPU: this process's, not a forked writer's."""
    target = os.path.join(work, name)
    if name == "pickle-nogc":
        gc.disable()
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        if name in ("pickle", "pickle-nogc"):
            pickle.dumps(heap, protocol=5)
        elif name == "heap":
            pyckpt_heap.dumps(heap)
        elif name == "sync":
            pyckpt.checkpoint(target, asynchronous=False)
        elif name == "async":
            pyckpt.checkpoint(target, asynchronous=True)
        return time.perf_counter() - start, time.process_time() - start_cpu
    finally:
        gc.enable()
        if name == "async" and not pyckpt.wait():
            raise SystemExit("the background checkpoint failed")
        shutil.rmtree(target, ignore_errors=True)


def run(n_objects, rounds, names, work, cold):
    global HEAP
    started = time.perf_counter()
    HEAP = heap = build_heap(n_objects)
    built = time.perf_counter() - started
    size = len(pickle.dumps(heap, protocol=5))  # also makes every instance's __dict__ (see above)
    print(f"\n{n_objects:,} objects of user classes (built in {built:.1f} s), pickle {size / 2**20:.1f} MiB; "
          f"{'a new heap for each measurement (cold); ' if cold else ''}load {os.getloadavg()[0]:.1f}", flush=True)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if cold:
                HEAP = heap = None
                gc.collect()
                HEAP = heap = build_heap(n_objects)
            gc.collect()
            times[name].append(measure(heap, name, work))
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1][0]:.3f} s" for k, v in times.items()), flush=True)
    print(f"  medians of {rounds} rounds, wall (the pause) and CPU time of this process; ratios: medians of the "
          f"per-round ratios to pickle; load {os.getloadavg()[0]:.1f}:")
    for name in names:
        walls, cpus = ([t[i] for t in times[name]] for i in (0, 1))
        wall_ratio, cpu_ratio = (statistics.median(t[i] / p[i] for t, p in zip(times[name], times["pickle"]))
                                 for i in (0, 1))
        print(f"    {name:<12} wall {statistics.median(walls):8.3f} s {wall_ratio:6.2f}x   "
              f"CPU {statistics.median(cpus):8.3f} s {cpu_ratio:6.2f}x", flush=True)
    HEAP = None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[10**5, 10**6])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=os.environ.get("PYCKPT_BENCH_DIR"),
                        help="where the checkpoints are written (default: a temporary directory)")
    parser.add_argument("--cold", action="store_true",
                        help="measure each on a heap built for it, whose instances have no __dict__ object yet")
    parser.add_argument("--measure", nargs="+", choices=MEASURES, default=MEASURES,
                        help="what to measure (pickle always)")
    args = parser.parse_args()
    names = ["pickle"] + [name for name in MEASURES if name in args.measure and name != "pickle"]
    work = tempfile.mkdtemp(prefix="bench_objects.", dir=args.dir)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    try:
        for n in args.objects:
            run(n, args.rounds, names, work, args.cold)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
