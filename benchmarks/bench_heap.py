"""Capture of 10^6 small Python objects by pyckpt.heap vs pickle.dumps of the
same graph (the baseline, measured in the same run). Target: ratio <= 1.3.

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_heap.py [--objects N]
"""
import argparse
import gc
import pickle
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


def build_graph(n_objects):
    """A realistic mix: records (dicts) holding ints, floats, strs, tuples and
    lists, shared strings, and one Particle per 100 records. Each record holds
    ~25 objects counting containers and atoms (ints and floats are objects too)."""
    names = [f"name-{i}" for i in range(1000)]
    records = []
    for i in range(n_objects // 25):
        record = {
            "id": i,
            "name": names[i % 1000],
            "label": f"rec{i}",
            "values": [i * 0.1, i * 0.2, i * 0.3, float(i)],
            "shape": (i % 7, i % 11, 3),
            "flags": [True, i % 3 == 0, None],
            "meta": {"owner": names[(i * 7) % 1000], "weight": i / 3.0, "rank": i % 64},
        }
        if i % 100 == 0:
            record["particle"] = Particle(i)
        records.append(record)
    return {"records": records, "index": {r["label"]: r for r in records[::10]}}


def best_of(repeat, funcs):
    """Best time and last result of each function, run in turns so that a
    change in machine load affects them alike."""
    best, results = [float("inf")] * len(funcs), [None] * len(funcs)
    for _ in range(repeat):
        for i, func in enumerate(funcs):
            gc.collect()
            start = time.perf_counter()
            results[i] = func()
            best[i] = min(best[i], time.perf_counter() - start)
    return best, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10 ** 6)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    graph = build_graph(args.objects)
    (t_pickle, t_heap), (data, (heap_data, _arrays)) = best_of(
        args.repeat, [lambda: pickle.dumps(graph, protocol=5), lambda: heap.dumps(graph)])
    print(f"objects              {args.objects:>10}")
    print(f"pickle.dumps         {t_pickle * 1e3:10.1f} ms  {len(data) / 1e6:8.2f} MB   (baseline)")
    print(f"pyckpt.heap.dumps    {t_heap * 1e3:10.1f} ms  {len(heap_data) / 1e6:8.2f} MB")
    print(f"ratio heap/pickle    {t_heap / t_pickle:10.2f}   (target <= 1.3)")


if __name__ == "__main__":
    main()
