"""random's and NumPy's global RNG state and numpy.random.Generators (two
sharing a bit generator; a random.Random instance) continue the same
sequences after the restart."""
import random

import numpy as np

from ckpt import checkpoint

random.seed(42)
np.random.seed(7)
gen = np.random.default_rng(123)
bitgen = np.random.PCG64(9)
g1, g2 = np.random.Generator(bitgen), np.random.Generator(bitgen)
own = random.Random(5)
print(random.random(), np.random.rand(), gen.integers(1000), own.randint(0, 99))
checkpoint()
print(random.random(), random.sample(range(100), 3), np.random.rand(2).tolist())
print(gen.integers(1000, size=3).tolist(), gen.normal(), own.randint(0, 99))
print(g1.integers(100), g2.integers(100), g1.bit_generator is g2.bit_generator)
