"""An unmodified program that spends most of its time in key functions called
by sorted() and map(): a C function sits between the frames there, so a
preemptive checkpoint must wait for the next safe point."""
import sys

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 25


def slow_key(x):
    v = x
    for _ in range(40):
        v = (v * 7919 + 13) % 10007
    return v


data = list(range(1500))
for r in range(ROUNDS):
    ordered = sorted(data, key=slow_key)
    mapped = list(map(slow_key, ordered[:300]))
    data = [(x + r) % 4099 for x in ordered]
    print(r, ordered[:3], sum(mapped) % 9973, flush=True)
print("done", data[:5])
