"""Views stay views of their base after the restart: basic slices, strided
slices, reshapes, transposes, a view with another dtype, a field of a
structured array, a view of a view; writing through a view changes the
base (and other views of it), and np.shares_memory holds."""
import numpy as np

from ckpt import checkpoint

base = np.arange(24, dtype=np.int64).reshape(4, 6)
row = base[1]
strided = base[::2, ::3]
flat = base.reshape(-1)
transposed = base.T
as_bytes = base[0].view(np.uint8)
sub_of_view = row[2:5]
rec = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])
field_b = rec["b"]
fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
fcol = fortran[:, 1]
checkpoint()
print(np.shares_memory(row, base), np.shares_memory(strided, flat), np.shares_memory(fcol, fortran))
print(row.base is base or row.base is base.base, strided.strides == base[::2, ::3].strides)
row[0] = -1
strided[1, 1] = -2
sub_of_view[:] = [-7, -8, -9]
transposed[5, 3] = -3
as_bytes[0] = 255
field_b[:] = [0.5, 1.5, 2.5]
fcol[:] = -1.0
print(base.tolist())
print(flat[:12].tolist(), flat[-1])
print(rec.tolist())
print(fortran.tolist(), fortran.flags.f_contiguous)
