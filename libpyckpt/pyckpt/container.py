"""NumPy-level helpers over the checkpoint container (pyckpt._core.Writer/Reader)."""
import numpy as np

from .errors import CheckpointFileError


def load_array(reader, rank, name):
    """A fresh ndarray holding dataset `name` of `rank`, read straight into its
    memory (checksum verified). The stored dtype, shape and order are kept."""
    info = next((d for d in reader.datasets(rank) if d["name"] == name and d["kind"] == "array"), None)
    if info is None:
        raise CheckpointFileError(f"{reader.file}: rank {rank} has no array {name!r}")
    out = np.empty(info["shape"], dtype=info["dtype"], order=info["order"])
    reader.read_array(rank, name, out)
    return out


def load_global_slab(reader, name, offset, count):
    """A fresh ndarray holding box [offset, offset+count) of global array `name`."""
    info = next((g for g in reader.global_arrays() if g["name"] == name), None)
    if info is None:
        raise CheckpointFileError(f"{reader.file}: no global array {name!r}")
    out = np.empty(tuple(count), dtype=info["dtype"])
    reader.read_global_slab(name, list(offset), list(count), out)
    return out
