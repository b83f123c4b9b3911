"""Worker threads that compute at Python level all the time (running, not
waiting, at every checkpoint: each is brought to a safe point of its own)
while the main thread computes too; each thread keeps its results in a
list of its own, printed at the end. argv: STEPS [--api: checkpoint()
every 10 steps]."""
import sys
import threading

import ckpt

steps = int(sys.argv[1])
api = "--api" in sys.argv


def compute(seed, out, count):
    total = seed
    for _ in range(count):
        for i in range(5000):
            total = (total * 31 + i) % 1000003
        out.append(total)


outs = [[], []]
threads = [threading.Thread(target=compute, args=(k + 1, outs[k], steps * 8), name=f"compute-{k}") for k in range(2)]
for t in threads:
    t.start()

total = 0
for step in range(steps):
    for i in range(20000):
        total = (total * 31 + i) % 1000003
    print(f"step {step} {total}", flush=True)
    if api and step % 10 == 9:
        ckpt.checkpoint()
for t in threads:
    t.join()
print([len(out) for out in outs], [out[-1] for out in outs])
print("done")
