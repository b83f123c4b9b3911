"""Comprehensions (list, set, dict, generator expression, nested) with a
checkpoint inside their body. The generator expression is consumed by a for
loop: under sum() a C function would sit between the frames
(test_process_errors covers that refusal)."""
from ckpt import checkpoint


def f(x):
    if x == 2:
        checkpoint()
    return x * x


print([f(x) for x in range(4)])
print(sorted({f(x) % 3 for x in range(4)}))
print({x: f(x) for x in range(1, 4)})
total = 0
for v in (f(x) + 1 for x in range(4)):
    total += v
print(total)
print([[y + f(x) for y in range(2)] for x in range(3) if x != 1])
