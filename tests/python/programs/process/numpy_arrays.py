"""NumPy arrays of every dtype and layout survive a restart: bool, signed and
unsigned ints, float16..longdouble, complex, datetime64/timedelta64, str,
bytes, void, structured (nested, subarray field), big-endian; C and Fortran
order, 0-d, empty, read-only, non-contiguous. Printed: dtype, shape, flags
and values after the restart, then written to (they must be writable fresh
arrays, except the read-only one).

With argv[1] == "describe", also prints as JSON lines the name, dtype, shape
and sha256 of each array, for the HDF5 layout test."""
import hashlib
import json
import sys

import numpy as np

from ckpt import checkpoint

rng = np.random.default_rng(0)
arrays = {
    "b": np.array([True, False, True]),
    "i1": np.arange(-5, 5, dtype=np.int8),
    "i2": np.arange(6, dtype=np.int16).reshape(2, 3) * -300,
    "i4": np.arange(12, dtype=np.int32).reshape(3, 4).copy(),  # owning its data (views: numpy_views)
    "i8": np.array([2 ** 62, -(2 ** 62), 0], dtype=np.int64),
    "u1": np.arange(250, 256, dtype=np.uint8),
    "u2": np.array([65535, 1], dtype=np.uint16),
    "u4": np.array([2 ** 32 - 1], dtype=np.uint32),
    "u8": np.array([2 ** 64 - 1, 3], dtype=np.uint64),
    "f2": np.linspace(0, 1, 5, dtype=np.float16),
    "f4": rng.random((2, 2)).astype(np.float32),
    "f8": np.array([np.pi, np.inf, -0.0, np.nan]),
    "g": np.array([1, 2], dtype=np.longdouble) / 3,
    "c8": np.array([1 + 2j, -3j], dtype=np.complex64),
    "c16": rng.random(3) + 1j * rng.random(3),
    "G": np.array([1 + 1j], dtype=np.clongdouble) / 7,
    "M8ns": np.array(["2024-01-01T00:00:00.123456789", "NaT"], dtype="datetime64[ns]"),
    "M8D": np.arange("2024-02-27", "2024-03-02", dtype="datetime64[D]"),
    "m8s": np.array([1, -2, 3600], dtype="timedelta64[s]"),
    "U": np.array(["héllo", "wörld", ""], dtype="U5"),
    "S": np.array([b"ab", b"\x00c", b"xyz"], dtype="S3"),
    "V": np.array([b"\x01\x02\x03\x04", b"abcd"], dtype="V4"),
    "struct": np.array([(1, (2.5, b"n"), [1, 2, 3]), (4, (5.5, b"m"), [4, 5, 6])],
                       dtype=[("id", "<i4"), ("inner", [("w", "<f8"), ("tag", "S1")]), ("vec", "<i2", (3,))]),
    "be_i4": np.arange(4, dtype=">i4"),
    "be_f8": np.array([1.5, -2.25], dtype=">f8"),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    "fortran3d": np.asfortranarray(np.arange(24, dtype=np.int16).reshape(2, 3, 4)),
    "zero_d": np.array(42.5),
    "zero_d_int": np.array(7, dtype=np.uint16),
    "empty": np.array([], dtype=np.float32),
    "empty_2d": np.zeros((3, 0), dtype=np.int64),
    "readonly": np.arange(5),
    "strided": np.arange(40, dtype=np.int32).reshape(5, 8)[::2, 1::3].copy(order="K"),
    "big": np.arange(300000, dtype=np.float64),
}
arrays["readonly"].flags.writeable = False


def describe(name, a):
    return json.dumps({"name": name, "dtype": a.dtype.str, "descr": repr(np.lib.format.dtype_to_descr(a.dtype)),
                       "shape": list(a.shape),
                       "sha": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()})


if sys.argv[1:] == ["describe"]:
    for name, a in arrays.items():
        print(describe(name, a))
checkpoint()
for name, a in arrays.items():
    f = a.flags
    head = a.ravel(order="K")[:6].tolist() if a.size else []
    print(name, a.dtype.str, a.dtype, a.shape, f.c_contiguous, f.f_contiguous, f.writeable, head)
    if f.writeable and a.size:
        a.flat[0] = a.flat[a.size - 1]
        print("  written", a.ravel(order="K")[:2].tolist())
print(float(arrays["big"].sum()), repr(arrays["zero_d"]), arrays["struct"]["inner"]["w"].tolist())
