"""Memory that the program's buffers live in and that is not a NumPy array's
own: `mmap.mmap` maps (here) and MPI.Alloc_mem memory (pyckpt.mpi_handles).

Such an object owns its memory (an "owner"); NumPy arrays made over it
(`np.frombuffer(mm)`) are views of it. The heap captures an array over an
owner as a view of the owner (pyckpt.heap), so that after a restart writes
through the array are visible in the owner, as before.

An owner whose contents are captured hands them to the heap as a
`MemoryContents` array: the owner's own bytes (zero-copy), written as a uint8
dataset like any array, with an `allocation` ([allocator, args]) that the
container records beside it. At restart, pyckpt.container.ArrayLoader
allocates memory that way (a new mmap of the same kind, MPI.Alloc_mem) and
reads the dataset straight into it; the restored owner is the object that
memory belongs to. A receive pending at the cut into such memory is re-posted
into that same memory (pyckpt.mpi reads those arrays before the heap).

mmap maps (see doc/heap.md for the table):
- anonymous, writable: size, flags, prot, access, position and contents;
- anonymous, read-only: no contents (they are zeros: nothing could write them);
- file-backed, shared: file path, offset, length, flags, prot, access and
  position; flushed at the checkpoint, so the file holds the data, and mapped
  again from the file at restart;
- file-backed, private and writable (ACCESS_COPY): as shared, plus the
  contents (the program's private copy), written over the new map;
- closed: a closed mmap.
Flags and prot are not attributes of Python's mmap: they are read from the
kernel's view of the mapping (/proc/self/maps), access, length, position and
offset from the object's repr (CPython 3.11).
"""
import mmap
import os
import re

import numpy as np

from . import container
from .errors import CheckpointError, UnsupportedStateError

__all__ = ["MemoryContents", "register_owner", "owner_of", "address_of", "owner_from_contents"]


class MemoryContents(np.ndarray):
    """The bytes of a buffer owner, as an entry of heap.Pickler.arrays:
    `allocation` = [allocator name, JSON-able args] tells the restart how to
    allocate the memory they are read into (pyckpt.container)."""

    allocation = None

    @classmethod
    def of(cls, owner, allocator, args):
        contents = np.frombuffer(owner, dtype=np.uint8).view(cls)
        contents.allocation = [allocator, args]
        return contents


_owner_types = (mmap.mmap,)


def register_owner(cls):
    """Instances of `cls` own memory that NumPy arrays may view (np.frombuffer):
    such arrays are captured as views of the instance, which must itself be
    capturable (register a reducer for it)."""
    global _owner_types
    if cls not in _owner_types:
        _owner_types += (cls,)


def owner_of(array):
    """The buffer owner whose memory `array` (an ndarray not viewing another
    ndarray, see heap._reduce_ndarray) lies in, or None."""
    obj = array.base
    if isinstance(obj, memoryview):  # np.frombuffer(mm) keeps a memoryview of mm
        obj = obj.obj
    return obj if isinstance(obj, _owner_types) else None


def address_of(owner):
    return np.frombuffer(owner, dtype=np.uint8).__array_interface__["data"][0]


def owner_from_contents(contents):
    """At restart: the owner of the memory ArrayLoader read `contents` into."""
    base = contents
    while isinstance(base.base, np.ndarray):
        base = base.base
    return owner_of(base)


# --- mmap.mmap -----------------------------------------------------------------

_ACCESS_MODES = {name: getattr(mmap, name) for name in ("ACCESS_DEFAULT", "ACCESS_READ", "ACCESS_WRITE", "ACCESS_COPY")}
_READ_WRITE = mmap.PROT_READ | mmap.PROT_WRITE
# The flags and prot each access mode maps with (CPython's mmap_new).
_ACCESS_MAPPING = {
    "ACCESS_DEFAULT": (mmap.MAP_SHARED, _READ_WRITE),
    "ACCESS_READ": (mmap.MAP_SHARED, mmap.PROT_READ),
    "ACCESS_WRITE": (mmap.MAP_SHARED, _READ_WRITE),
    "ACCESS_COPY": (mmap.MAP_PRIVATE, _READ_WRITE),
}
_MMAP_REPR = re.compile(r"access=(\w+), length=(\d+), pos=(\d+), offset=(\d+)")
# How the kernel names anonymous memory in /proc/self/maps: nothing (private),
# the shmem file behind a shared anonymous map, or a [bracketed] label.
_ANONYMOUS_SHARED = "/dev/zero (deleted)"
_DELETED = " (deleted)"


def _mapping_at(address):
    """(perms, path) of the kernel's mapping that holds `address`, from
    /proc/self/maps: perms is 'rwxs'-style, path '' for anonymous memory."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.rstrip("\n").split(maxsplit=5)
            low, high = (int(bound, 16) for bound in fields[0].split("-"))
            if low <= address < high:
                return fields[1], fields[5] if len(fields) > 5 else ""
    raise UnsupportedStateError(f"no mapping holds address {address:#x} in /proc/self/maps")


def _describe_mmap(mm):
    """(spec, position, anonymous) of an open mmap; spec is what _new_mmap takes."""
    match = _MMAP_REPR.search(repr(mm))
    if match is None:
        raise UnsupportedStateError(f"cannot read the state of {mm!r} (an mmap repr of CPython 3.11 expected)")
    access, length, position, offset = match.group(1), *map(int, match.groups()[1:])
    perms, path = _mapping_at(address_of(mm))
    flags = mmap.MAP_SHARED if perms[3] == "s" else mmap.MAP_PRIVATE
    prot = ((mmap.PROT_READ if perms[0] == "r" else 0) | (mmap.PROT_WRITE if perms[1] == "w" else 0)
            | (mmap.PROT_EXEC if perms[2] == "x" else 0))
    anonymous = path in ("", _ANONYMOUS_SHARED) or path.startswith("[")
    if not anonymous and path.endswith(_DELETED):
        raise UnsupportedStateError(f"an mmap of {path[:-len(_DELETED)]!r}, a file that was deleted: it cannot be "
                                    f"mapped again at restart")
    spec = {"length": length, "flags": flags, "prot": prot, "access": access,
            "path": None if anonymous else path, "offset": offset}
    return spec, position, anonymous


def reduce_mmap(mm):
    """heap reduction of an mmap.mmap (see the module doc)."""
    if mm.closed:
        return _closed_mmap, ()
    spec, position, anonymous = _describe_mmap(mm)
    writable = spec["prot"] & mmap.PROT_WRITE
    if writable and spec["flags"] & mmap.MAP_SHARED and not anonymous:
        mm.flush()  # the file must hold what the restart maps
    if writable and (anonymous or spec["flags"] & mmap.MAP_PRIVATE):
        if not spec["prot"] & mmap.PROT_READ:
            raise UnsupportedStateError(f"a write-only mmap ({mm!r}): its contents cannot be read")
        return _mmap_with_contents, (MemoryContents.of(mm, "mmap", spec), position)
    return _mmap, (spec, position)


def _new_mmap(spec):
    """A new map as `spec` describes (_describe_mmap): the access mode is passed
    when it implies the captured flags and prot (so repr and behaviour are the
    same), else flags and prot."""
    length, access, path, offset = spec["length"], spec["access"], spec["path"], spec["offset"]
    if _ACCESS_MAPPING.get(access) == (spec["flags"], spec["prot"]):
        mode = {"access": _ACCESS_MODES[access]}
    else:
        mode = {"flags": spec["flags"], "prot": spec["prot"]}
    if path is None:
        return mmap.mmap(-1, length, **mode)
    shared_writable = spec["flags"] & mmap.MAP_SHARED and spec["prot"] & mmap.PROT_WRITE
    what = f"the mmap of {path!r} (offset {offset}, length {length}, {access})"
    try:
        fd = os.open(path, (os.O_RDWR if shared_writable else os.O_RDONLY) | os.O_CLOEXEC)
    except OSError as exc:
        raise CheckpointError(f"cannot map {path!r} again for {what}: {exc.strerror}") from exc
    try:
        return mmap.mmap(fd, length, offset=offset, **mode)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot map {path!r} again for {what}: {exc}") from exc
    finally:
        os.close(fd)


def _allocate_mmap(nbytes, spec):
    if nbytes != spec["length"]:
        raise CheckpointError(f"an mmap of {spec['length']} bytes has {nbytes} bytes of contents in the checkpoint")
    return _new_mmap(spec)


container.register_allocator("mmap", _allocate_mmap)


def _mmap(spec, position):
    mm = _new_mmap(spec)
    mm.seek(position)
    return mm


def _mmap_with_contents(contents, position):
    mm = owner_from_contents(contents)
    mm.seek(position)
    return mm


def _closed_mmap():
    mm = mmap.mmap(-1, 1)
    mm.close()
    return mm
