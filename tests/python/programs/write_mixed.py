"""Writes one checkpoint from every rank of COMM_WORLD (or serially with
--serial) holding arrays of many dtypes, layouts and shapes, a blob and a
global array, all derived from the rank so a reader can recompute them.

Usage: write_mixed.py DIR EPOCH [--serial]
"""
import sys

import numpy as np


def arrays_for(rank):
    """name -> the array a rank writes (also what readers expect back)."""
    rng = np.random.default_rng(rank)
    base = rng.standard_normal((6, 8))
    structured = np.zeros(3, dtype=[("x", "<f8"), ("n", "<i4"), ("tag", "S3"), ("v", "<f4", (2,))])
    structured["x"] = [rank, rank + 0.5, rank + 0.25]
    structured["n"] = [1, 2, 3]
    structured["tag"] = [b"ab", b"cde", b""]
    structured["v"] = [[1, 2], [3, 4], [5, 6]]
    return {
        "i32": np.arange(10, dtype=np.int32) * (rank + 1),
        "u8": np.arange(7, dtype=np.uint8),
        "i64_be": (np.arange(5) - rank).astype(">i8"),
        "f16": np.linspace(0, 1, 9, dtype=np.float16),
        "f64_fortran": np.asfortranarray(base),
        "c128": (base[0] + 1j * base[1]).astype(np.complex128),
        "bool": base[2] > 0,
        "bytes": np.array([b"alpha", b"be", b""], dtype="S5"),
        "unicode": np.array(["héllo", "wörld", f"r{rank}"], dtype="U5"),
        "structured": structured,
        "strided_view": base[::2, ::-3],
        "scalar": np.array(3.5 + rank),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def blob_for(rank):
    return bytes(range(256)) * (rank + 1)


GLOBAL_SHAPE = (12, 5)


def global_part(rank, size):
    """Rows [lo, hi) of the global array written by `rank` of `size`."""
    lo, hi = rank * GLOBAL_SHAPE[0] // size, (rank + 1) * GLOBAL_SHAPE[0] // size
    full = np.arange(np.prod(GLOBAL_SHAPE), dtype=np.float64).reshape(GLOBAL_SHAPE)
    return lo, full[lo:hi]


def main():
    directory, epoch = sys.argv[1], int(sys.argv[2])
    from pyckpt import _core
    from pyckpt.container import add_array
    if "--serial" in sys.argv:
        comm, rank, size = None, 0, 1
    else:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
    w = _core.Writer(directory, epoch, comm=comm)
    w.set_attribute("trigger", "test")
    w.set_attribute("argv", sys.argv)
    w.set_rank_attribute("note", f"rank {rank}")
    keep = arrays_for(rank)
    for name, a in keep.items():
        add_array(w, name, a)
    w.add_blob("stream", blob_for(rank))
    lo, part = global_part(rank, size)
    w.add_global_slab("field", GLOBAL_SHAPE, [lo, 0], part)
    info = w.commit()
    if rank == 0:
        print(info["path"])


if __name__ == "__main__":
    main()
