"""The shape of the Benchmarks Game's pidigits (gmpy2): a C extension type
whose name carries no module (undotted_types.Counter says it is
"builtins.Counter") is imported into the module's globals, and its
instances are live in the loop. argv: STEPS. Prints a line per step."""
import sys

from undotted_types import Counter

steps = int(sys.argv[1])
total = Counter(7)
digits = []
for step in range(steps):
    x = Counter(step)
    for i in range(100000):
        x.add(i % 7)
    total.add(x.value % 1000)
    digits.append(total.value % 10)
    print(f"step {step} total {total.value} digits {''.join(map(str, digits[-20:]))}", flush=True)
print("done", type(total).__name__, total.value)
