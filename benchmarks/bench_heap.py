"""Capture of 10^6 small Python objects by pyckpt.heap vs pickle.dumps of the
same graph (the baseline, measured in the same run). Target: ratio <= 1.3.

Three graphs: records of plain data; the same records each also holding a
set of 6 strings made by 6 adds (whose table pickle's rebuild mostly
reproduces: pyckpt checks it by simulating the rebuild); and one made by 8
adds and 2 discards (a table pickle's rebuild does not reproduce, so pyckpt
records its layout: doc/heap.md, "Sets"). For each, the capture
(heap.dumps vs pickle.dumps), the part of the capture spent finding and
recording set layouts, and the restore (heap.loads vs pickle.loads).
Rounds alternate the order of the two sides; figures are medians of the
per-round ratios.

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_heap.py [--objects N] [--rounds R]
"""
import argparse
import gc
import io
import os
import pickle
import statistics
import time

from pyckpt import heap


class Particle:
    """A user class of __main__: pyckpt captures it by value, pickle by name."""

    def __init__(self, i):
        self.pos = (i * 0.5, i * 0.25, -i * 1.0)
        self.species = "electron" if i % 2 else "ion"
        self.charge = -1 if i % 2 else 1

    def energy(self):
        return sum(x * x for x in self.pos)


def tags_of(i, names, discards):
    """A set of 6 shared strings: 6 adds, or 8 adds and 2 discards."""
    tags = set()
    for k in range(8 if discards else 6):
        tags.add(names[(i * 13 + k * 101) % 1000])
    if discards:
        tags.discard(names[(i * 13) % 1000])
        tags.discard(names[(i * 13 + 303) % 1000])
    return tags


def build_graph(n_objects, sets):
    """A realistic mix: records (dicts) holding ints, floats, strs, tuples and
    lists, shared strings, and one Particle per 100 records. Each record holds
    ~25 objects counting containers and atoms (ints and floats are objects
    too); with sets ("added", "discarded"): ~32, one of them a set of 6
    strings."""
    names = [f"name-{i}" for i in range(1000)]
    records = []
    for i in range(n_objects // (32 if sets else 25)):
        record = {
            "id": i,
            "name": names[i % 1000],
            "label": f"rec{i}",
            "values": [i * 0.1, i * 0.2, i * 0.3, float(i)],
            "shape": (i % 7, i % 11, 3),
            "flags": [True, i % 3 == 0, None],
            "meta": {"owner": names[(i * 7) % 1000], "weight": i / 3.0, "rank": i % 64},
        }
        if sets:
            record["tags"] = tags_of(i, names, sets == "discarded")
        if i % 100 == 0:
            record["particle"] = Particle(i)
        records.append(record)
    return {"records": records, "index": {r["label"]: r for r in records[::10]}}


class TimedPickler(heap.Pickler):
    """heap.Pickler timing its set-layout step (the memo walk and the
    simulation; pickling the records that step returns is not included)."""
    set_step = 0.0

    def _reduce_set_layouts(self, marker):
        start = time.perf_counter()
        reduced = super()._reduce_set_layouts(marker)
        TimedPickler.set_step = time.perf_counter() - start
        return reduced


def heap_dumps(graph):
    buffer = io.BytesIO()
    pickler = TimedPickler(buffer)
    pickler.dump(graph)
    return buffer.getvalue(), dict(pickler.arrays)


def paired(rounds, a, b):
    """Times of a() and b() per round, the order alternating (load changes
    affect both alike), with each side's last result."""
    times, results = ([], []), [None, None]
    for r in range(rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            gc.collect()
            start = time.perf_counter()
            results[side] = (a, b)[side]()
            times[side].append(time.perf_counter() - start)
    return times, results


def measure(graph, rounds):
    (t_pickle, t_heap), (data, (heap_data, arrays)) = paired(rounds, lambda: pickle.dumps(graph, protocol=5),
                                                   lambda: heap_dumps(graph))
    set_steps = []
    for _ in range(rounds):  # the step's share of a capture, per round
        start = time.perf_counter()
        heap_dumps(graph)
        set_steps.append(TimedPickler.set_step / (time.perf_counter() - start))
    unordered = []
    (t_unpickle, t_load), _ = paired(rounds, lambda: pickle.loads(data),
                                     lambda: heap.loads(heap_data, arrays.__getitem__, unordered_sets=unordered))
    assert not unordered
    ratio = statistics.median(h / p for h, p in zip(t_heap, t_pickle))
    load_ratio = statistics.median(h / p for h, p in zip(t_load, t_unpickle))
    return {
        "capture": f"{statistics.median(t_heap) * 1e3:7.1f} vs {statistics.median(t_pickle) * 1e3:7.1f} ms, "
                   f"{ratio:.2f}x",
        "set-layout step": f"{statistics.median(set_steps) * 100:.1f}% of the capture",
        "stream": f"{len(heap_data) / 1e6:.2f} vs {len(data) / 1e6:.2f} MB",
        "restore": f"{statistics.median(t_load) * 1e3:7.1f} vs {statistics.median(t_unpickle) * 1e3:7.1f} ms, "
                   f"{load_ratio:.2f}x",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10 ** 6)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"objects {args.objects}, {args.rounds} rounds, load {os.getloadavg()[0]:.1f} "
          f"(pyckpt.heap vs pickle, medians; target: capture <= 1.3x)")
    for sets in (None, "added", "discarded"):
        graph = build_graph(args.objects, sets)
        label = f"{len(graph['records'])} sets {sets}" if sets else "no sets"
        for key, value in measure(graph, args.rounds).items():
            print(f"{label:<22} {key:<16} {value}")
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
