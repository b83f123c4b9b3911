"""NumPy-level helpers over the checkpoint container (pyckpt._core.Writer/Reader).

The container stores each array in an HDF5 type of its own; the exact NumPy
dtype (datetime units, field titles, ...) goes beside it in the attribute
DESCR_ATTR, so a reader gets back precisely the dtype that was written.
"""
import ast

import numpy as np

from .errors import CheckpointFileError

DESCR_ATTR = "numpy_descr"


def add_array(writer, name, array, attrs=None):
    """Adds `array` to `writer` (zero-copy, written at commit) with its dtype."""
    attrs = dict(attrs or {})
    attrs[DESCR_ATTR] = repr(np.lib.format.dtype_to_descr(array.dtype))
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
        out = np.empty(info["shape"], dtype=dtype_of(info), order=info["order"])
        self.reader.read_array(self.rank, name, out)
        return out


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
