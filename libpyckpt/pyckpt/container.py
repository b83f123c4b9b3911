"""NumPy-level helpers over the checkpoint container (pyckpt._core.Writer/Reader).

The container stores each array in an HDF5 type of its own; the exact NumPy
dtype (datetime units, field titles, ...) goes beside it in the attribute
DESCR_ATTR, so a reader gets back precisely the dtype that was written.
"""
import ast
import json

import numpy as np

from .errors import CheckpointFileError

DESCR_ATTR = "numpy_descr"
# [allocator name, args] of an array that is the memory of an mmap or of
# MPI.Alloc_mem (an `allocation` attribute of the array written, see
# pyckpt.buffers): ArrayLoader reads the dataset into memory allocated the
# same way, which the restored object then owns.
ALLOCATION_ATTR = "allocation"

_allocators = {}


def register_allocator(name, allocate):
    """`allocate(nbytes, args)` returns a new object exporting a writable
    buffer of nbytes bytes (e.g. an mmap), for datasets recorded with
    allocation [name, args]."""
    _allocators[name] = allocate


def add_array(writer, name, array, attrs=None):
    """Adds `array` to `writer` (zero-copy, written at commit) with its dtype,
    and with its allocation if it has one."""
    attrs = dict(attrs or {})
    attrs[DESCR_ATTR] = repr(np.lib.format.dtype_to_descr(array.dtype))
    allocation = getattr(array, "allocation", None)
    if allocation is not None:
        attrs[ALLOCATION_ATTR] = json.dumps(allocation)
    writer.add_array(name, array, attrs)


def dtype_of(info):
    """The NumPy dtype of a dataset described by Reader.datasets()."""
    descr = info["attrs"].get(DESCR_ATTR)
    if descr is None:
        return info["dtype"]
    return np.lib.format.descr_to_dtype(ast.literal_eval(descr))


class ArrayLoader:
    """Reads arrays of one rank into fresh ndarrays (checksum verified),
    listing the rank's datasets once."""

    def __init__(self, reader, rank):
        self.reader = reader
        self.rank = rank
        self.infos = {d["name"]: d for d in reader.datasets(rank) if d["kind"] == "array"}

    def __call__(self, name):
        info = self.infos.get(name)
        if info is None:
            raise CheckpointFileError(f"{self.reader.file}: rank {self.rank} has no array {name!r}")
        allocation = info["attrs"].get(ALLOCATION_ATTR)
        if allocation is None:
            out = np.empty(info["shape"], dtype=dtype_of(info), order=info["order"])
        else:
            out = self._allocate(name, info, *json.loads(allocation))
        self.reader.read_array(self.rank, name, out)
        return out

    def _allocate(self, name, info, allocator, args):
        """The bytes of a new buffer owner as a uint8 array (whose base leads
        to the owner: pyckpt.buffers.owner_of)."""
        allocate = _allocators.get(allocator)
        if allocate is None:
            raise CheckpointFileError(f"{self.reader.file}: rank {self.rank}: array {name!r} is memory of kind "
                                      f"{allocator!r}, which cannot be allocated in this process")
        nbytes = int(np.prod(info["shape"]))
        return np.frombuffer(allocate(nbytes, args), dtype=np.uint8, count=nbytes)


def load_array(reader, rank, name):
    """A fresh ndarray holding dataset `name` of `rank`, read straight into its
    memory (checksum verified). The stored dtype, shape and order are kept."""
    return ArrayLoader(reader, rank)(name)


def load_global_slab(reader, name, offset, count):
    """A fresh ndarray holding box [offset, offset+count) of global array `name`."""
    info = next((g for g in reader.global_arrays() if g["name"] == name), None)
    if info is None:
        raise CheckpointFileError(f"{reader.file}: no global array {name!r}")
    out = np.empty(tuple(count), dtype=info["dtype"])
    reader.read_global_slab(name, list(offset), list(count), out)
    return out
