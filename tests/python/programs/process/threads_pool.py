"""A worker pool of threading.Thread idle in queue.Queue.get() between
batches of work, results back through a second queue, a tally kept under a
threading.Lock, and a collector thread waiting on a threading.Condition
(RLock-based) for the batch to be tallied. The main thread hands out a
batch, waits for its results, then computes at Python level (where
checkpoints are taken: the workers are idle in get() then, the collector in
wait()). argv: BATCHES [--api: checkpoint() after each batch].
Prints one line per batch and the joined threads' names."""
import queue
import sys
import threading

import ckpt

batches = int(sys.argv[1])
api = "--api" in sys.argv
work, results = queue.Queue(), queue.Queue()
tally_lock = threading.Lock()
tally = {"items": 0, "sum": 0}
tallied = threading.Condition()
collected = []


def worker(number):
    while True:
        item = work.get()
        if item is None:
            work.task_done()
            return
        value = sum(i * i for i in range(item * 50)) % 9973
        with tally_lock:
            tally["items"] += 1
            tally["sum"] += value
        results.put((item, number, value))
        work.task_done()


def collector(expected):
    with tallied:
        while len(collected) < expected:
            tallied.wait()
    collected.append("collector done")


workers = [threading.Thread(target=worker, args=(n,), name=f"worker-{n}") for n in range(3)]
for t in workers:
    t.start()
collecting = threading.Thread(target=collector, args=(batches,), name="collector", daemon=True)
collecting.start()

for batch in range(batches):
    items = list(range(batch * 5, batch * 5 + 5))
    for item in items:
        work.put(item)
    got = sorted(results.get() for _ in items)
    values = [v for _, _, v in got]
    # Python-level work while the pool is idle: safe points for preemption.
    mix = 0
    for i in range(20000):
        mix = (mix * 31 + values[i % len(values)] + i) % 1000003
    with tallied:
        collected.append(batch)
        tallied.notify()
    print(f"batch {batch}: {values} mix {mix} tally {tally['items']} {tally['sum']}", flush=True)
    if api:
        ckpt.checkpoint()

for _ in workers:
    work.put(None)
for t in workers:
    t.join()
collecting.join()
print("joined", [t.name for t in workers], [t.is_alive() for t in workers], collected[-1])
print("done")
