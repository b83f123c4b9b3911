"""Loops with live iterators, one kind per argv[1]: range, list, enumerate,
zip, dict keys/values/items views, a while loop, nested loops; the checkpoint
is taken in the middle of the iteration."""
import sys

from ckpt import checkpoint

kind = sys.argv[1]
data = ["a", "b", "c", "d", "e"]
d = {"x": 1, "y": 2, "z": 3, "w": 4}


def body(i, item):
    print(i, item)
    if i == 2:
        checkpoint()


if kind == "range":
    for i in range(0, 10, 2):
        body(i // 2, i)
elif kind == "list":
    for i, item in zip(range(100), data):
        body(i, item)
elif kind == "enumerate":
    for i, item in enumerate(data, start=0):
        body(i, item)
elif kind == "zip":
    for i, (p, q) in enumerate(zip(data, reversed(data))):
        body(i, p + q)
elif kind == "dict_keys":
    for i, k in enumerate(d.keys()):
        body(i, k)
elif kind == "dict_values":
    for i, v in enumerate(d.values()):
        body(i, v)
elif kind == "dict_items":
    it = iter(d.items())
    for i, kv in enumerate(it):
        body(i, kv)
elif kind == "while":
    i = 0
    total = 0
    while i < 6:
        total += i
        body(i, total)
        i += 1
elif kind == "nested":
    for i in range(3):
        for j, ch in enumerate("pq"):
            for k in [10, 20]:
                print(i, j, ch, k)
                if (i, j, k) == (1, 1, 10):
                    checkpoint()
else:
    raise SystemExit("unknown kind " + kind)
print("done", kind)
