"""Every sample of stdlib_samples.py that pickle can capture, held across
two checkpoints (half of them used between the two): each comes back with
its state (positions, buffered text, iterator progress, newline settings)."""
from ckpt import checkpoint
from stdlib_samples import REFUSED, SAMPLES

values = {name: factory() for name, (factory, _describe) in SAMPLES.items() if name not in REFUSED}
names = sorted(values)
half = len(names) // 2
checkpoint()
for name in names[:half]:
    print(f"{name}: {SAMPLES[name][1](values[name])}")
checkpoint()
for name in names[half:]:
    print(f"{name}: {SAMPLES[name][1](values[name])}")
