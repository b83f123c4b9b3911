"""Serialisation of a process's Python object graph (the heap part of a checkpoint).

One `Pickler` per rank turns a root object into a pickle stream (protocol 5,
the C pickler) plus a list of `(key, ndarray)` to be written as typed datasets;
one memo, so identity (`a is b`) holds across everything it dumps. `Unpickler`
rebuilds the graph from the stream and a function reading a fresh ndarray by key.

What plain pickle cannot do is added in the Pickler's reducer_override, which the
C pickler only calls for objects that are not of a built-in container or atom
type, and only once per object (the memo is checked first); the decision per type
is cached by _core.ReduceDispatch, so the common case costs one dict lookup in C.
See doc/heap.md.
"""
import _thread
import abc
import builtins
import codecs
import collections
import dataclasses
import enum
import functools
import gc
import importlib
import importlib.util
import io
import itertools
import logging
import marshal
import mmap
import os
import pickle
import random
import re
import struct
import sys
import sysconfig
import threading
import types
import weakref

import numpy as np

from . import _core, buffers
from .errors import CheckpointError, CheckpointFileError, UnsupportedStateError

__all__ = [
    "Pickler", "Unpickler", "dumps", "loads", "register_reducer", "register_reduce", "register_buffer_owner",
]

PROTOCOL = 5

# The stack the pickler runs on (_core.call_on_large_stack): reserved, not
# committed, so it may be as large as the memory; the recursion it allows
# touches less than half of it (1 KiB per level granted, <= 400 bytes used).
# 23 GiB of memory: 23 million levels, a linked list of 7 million objects.
_LARGE_STACK_BYTES = min(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), 64 << 30)

# --- extension registry ----------------------------------------------------
# type -> reduce function, consulted before the built-in rules and matched along
# the MRO. Filled by users (register_reducer) and by the frame-capture layer
# (register_reduce, for frames and generators).
_registry = {}


def register_reduce(cls, reduce):
    """Low-level hook: `reduce(obj)` returns a pickle reduce tuple
    `(callable, args[, state[, listitems[, dictitems[, state_setter]]]])` for
    instances of `cls` and its subclasses, like `object.__reduce_ex__`. Objects
    in args are rebuilt before the callable runs; objects in state may refer back
    to the object being rebuilt (cycles). Register before creating a Pickler."""
    if not isinstance(cls, type):
        raise TypeError(f"register_reduce needs a type, got {cls!r}")
    _registry[cls] = reduce


# type -> describe(owner) for objects that own memory NumPy arrays are views
# of (the object at the end of an array's .base chain, e.g. an mpi4py RMA
# window's memory). See register_buffer_owner.
_buffer_owners = {}


def register_buffer_owner(cls, describe):
    """Arrays that are views of the memory of an instance of `cls` (exact
    type; NumPy's `.base` chain ends at it) may stay views after a restart:
    `describe(owner)` returns `(address, rebuild, args)` -- the address of the
    owner's memory, and a function rebuilding, in the restarted process, an
    object that exports the same memory by the buffer protocol -- or None to
    capture the array by content (a fresh array after a restart). The owner's
    content is not captured: whoever rebuilds it restores it."""
    if not isinstance(cls, type):
        raise TypeError(f"register_buffer_owner needs a type, got {cls!r}")
    _buffer_owners[cls] = describe


def register_reducer(cls, save, load):
    """Domain-specific state capture: instances of `cls` (and its subclasses) are
    checkpointed as `save(obj)`, which must return something pyckpt can capture,
    and restored as `load(saved)`. `load` is captured with the checkpoint (by
    reference, or by value if defined in __main__). The saved value must not
    refer back to `obj` itself; use register_reduce for cyclic state."""
    register_reduce(cls, lambda obj: (load, (save(obj),)))


# --- helpers that run on load (referenced by name from the stream) ----------

def _getattr_path(obj, qualname):
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# Stand-ins in the stream for what only the Unpickler knows (the array reader,
# the module that becomes __main__); Unpickler.find_class binds them.
def _read_array(*_args):
    raise CheckpointError("this pickle stream needs pyckpt.heap.Unpickler to load it")


def _main_module(spec_name=None):
    _read_array()


def _load_code(version, magic, data):
    if magic != importlib.util.MAGIC_NUMBER:
        raise CheckpointFileError(
            f"the checkpoint holds bytecode of Python {version} (magic {magic!r}); "
            f"this is Python {'.'.join(map(str, sys.version_info[:3]))} "
            f"(magic {importlib.util.MAGIC_NUMBER!r}): restart with Python {version}")
    return marshal.loads(data)


def _make_function(code, namespace, name, closure):
    globals_ = vars(namespace) if isinstance(namespace, types.ModuleType) else namespace
    return types.FunctionType(code, globals_, name, None, closure)


def _set_function_state(func, state):
    attrs = state.pop("__dict__", None)
    for key, value in state.items():
        setattr(func, key, value)
    if attrs:
        vars(func).update(attrs)


def _set_cell(cell, state):
    (cell.cell_contents,) = state


def _make_class(metaclass, name, bases, namespace, kwds):
    return types.new_class(name, bases, dict(kwds, metaclass=metaclass), lambda ns: ns.update(namespace))


def _set_class_state(cls, state):
    attrs, abc_registered = state
    for key, value in attrs.items():
        setattr(cls, key, value)
    if isinstance(cls, abc.ABCMeta):
        abc.update_abstractmethods(cls)
        for subclass in abc_registered:
            cls.register(subclass)


def _make_enum(metaclass, name, bases, namespace, kwds, members):
    def body(ns):
        for key, value in itertools.chain(namespace.items(), members):
            ns[key] = value
    return types.new_class(name, bases, dict(kwds, metaclass=metaclass), body)


def _set_default_state(obj, state):
    """What pickle does with a state when the object has no __setstate__."""
    state, slots = state if isinstance(state, tuple) and len(state) == 2 else (state, None)
    if state:
        obj.__dict__.update(state)
    for name, value in (slots or {}).items():
        object.__setattr__(obj, name, value)
    return obj


def _make_codec_info(encode, decode, streamreader, streamwriter, incrementalencoder, incrementaldecoder, name,
                     is_text_encoding):
    return codecs.CodecInfo(encode, decode, streamreader, streamwriter, incrementalencoder, incrementaldecoder, name,
                            _is_text_encoding=is_text_encoding)


def _import_library_module(name, submodules):
    for submodule in submodules:
        importlib.import_module(submodule)
    return importlib.import_module(name)


def _new_module(name):
    return types.ModuleType(name)


def _set_module_attrs(module, attrs):
    vars(module).update(attrs)


def _set_module_state(module, state):
    _definitions_set, data = state
    _set_module_attrs(module, data)


def _restore_set_layouts(sets, elements, layouts):
    """The last step of a load: `sets` get the hash tables they had at
    capture (_core.set_layouts); returns those left in pickle's order."""
    return _core.restore_set_layouts(sets, elements, layouts)


class _SetLayouts:
    """The last item of every dump: stands for the table layouts of the sets
    the dump wrote before it (Pickler._reduce_set_layouts)."""


class _Call:
    """Pickled as the call `func(*args)`: runs a step of a restore in stream order."""

    def __init__(self, func, *args):
        self.func, self.args = func, args


def _is_file(found, path):
    if found is None:
        return False
    if os.path.realpath(found) == os.path.realpath(path):
        return True  # also a module imported from the source a checkpoint saved, its file gone (pyckpt.sources)
    return os.path.exists(found) and os.path.exists(path) and os.path.samefile(found, path)


def _import_user_module(name, path):
    """Imports a module of the user's script directory, from `path` if the name
    alone does not find it (the restarted process runs from another directory)."""
    module = sys.modules.get(name)
    if module is None:
        root = os.path.dirname(path)
        if os.path.basename(path) == "__init__.py":
            root = os.path.dirname(root)
        for _ in range(name.count(".")):
            root = os.path.dirname(root)
        before = set(sys.modules)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            module = None
        if module is None or not _is_file(getattr(module, "__file__", None), path):
            # Not found, or the name found something else first (a directory of
            # that name in the working directory is a namespace package):
            # forget what this attempt imported, import from the script's tree.
            top = name.partition(".")[0]
            for key in set(sys.modules) - before:
                if key.partition(".")[0] == top:
                    del sys.modules[key]
            sys.path.insert(0, root)
            importlib.invalidate_caches()
            module = importlib.import_module(name)
    found = getattr(module, "__file__", None)
    if not _is_file(found, path):
        raise CheckpointError(f"module {name!r} was captured from {path}, but here it is {found}")
    return module


def _dict_view(mapping, kind):
    return getattr(mapping, kind)()


def _dict_iterator(mapping, kind, reverse, consumed):
    view = getattr(mapping, kind)()
    it = reversed(view) if reverse else iter(view)
    collections.deque(itertools.islice(it, consumed), maxlen=0)
    return it


def _pairwise(it, old):
    return itertools.pairwise(itertools.chain((old,), it))


_OPEN_FLAGS = {"r": os.O_RDONLY, "w": os.O_WRONLY, "a": os.O_WRONLY | os.O_APPEND}


def read_state(f):
    """How far the program has read the readable text file `f`, where tell()
    cannot say it (the file is being iterated, or it is a pipe):
    (position, read_ahead), or None if the position is unknown. position:
    where the bytes its text layer took from its buffer end, in the byte
    stream (from the stream's start; for a pipe, from where this process
    began reading it); read_ahead: for restore_read_ahead(), what the
    text layer took beyond what the program has read (the decoded text,
    the decoder's state: bytes not decoded yet) and whether tell() works."""
    text, decoder, telling = _core.text_read_ahead(f)
    position = _core.buffered_read_position(f.buffer)
    if position is None:
        return None
    return position, (text, decoder.getstate() if decoder is not None else None, telling)


def restore_read_ahead(f, read_ahead):
    """Makes the text file `f`, which has read nothing since it was opened
    or positioned with seek() at the position read_state() gave, go on
    exactly where the captured one was: its read-ahead text first."""
    text, decoder_state, telling = read_ahead
    _core.set_text_read_ahead(f, text, telling)
    decoder = _core.text_read_ahead(f)[1]
    if decoder is not None and decoder_state is not None:
        decoder.setstate(decoder_state)


def read_position(f):
    """Where a reopened `f` must be put to read on as `f` would: (position,
    read_ahead), tell()'s cookie and None where tell() works, else what
    read_state() gives for a text file (iterated, or a pipe). Raises
    OSError if neither can tell. seek_read_position() puts a file there."""
    try:
        return f.tell(), None
    except OSError:
        if isinstance(f, io.TextIOWrapper):
            state = read_state(f)
            if state is not None:
                return state
        raise


def seek_read_position(f, position, read_ahead):
    """Puts the file `f`, which has read nothing yet, where read_position() was."""
    f.seek(position)
    if read_ahead is not None:
        restore_read_ahead(f, read_ahead)


def _reopen_file(path, mode, raw_mode, position, text, buffered, read_ahead=None):
    """Reopens a file captured open: never truncates nor creates it ('w' and 'x'
    are reopened without O_TRUNC/O_EXCL), then restores the position. `text`:
    (encoding, errors, line_buffering, write_through) of a text file, else None.
    read_ahead: see read_state(), for a text file that was being iterated."""
    flags = _OPEN_FLAGS[raw_mode[0]]
    if "+" in raw_mode:
        flags = (flags & ~os.O_WRONLY) | os.O_RDWR
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except OSError as exc:
        raise CheckpointError(f"cannot reopen {path!r} (captured open in mode {mode!r}): {exc}") from exc
    if text is None:
        f = open(fd, raw_mode, buffering=-1 if buffered else 0)
        raw = getattr(f, "raw", f)
    else:
        encoding, errors, line_buffering, write_through = text
        f = open(fd, raw_mode.replace("b", ""), encoding=encoding, errors=errors)
        f.reconfigure(line_buffering=line_buffering, write_through=write_through)
        f.mode = mode
        raw = f.buffer.raw
    raw.name = path
    seek_read_position(f, position, read_ahead)
    return f


def _closed_file(text):
    f = open(os.devnull, "r" if text else "rb")
    f.close()
    return f


def _std_stream(name, attr):
    stream = getattr(sys, name)
    return getattr(stream, attr) if attr else stream


def _restore_random_global(state):
    random._inst.setstate(state)
    return random._inst


def _restore_numpy_global(state):
    rng = np.random.mtrand._rand
    rng.set_state(state)
    return rng


def _make_view(base, shape, dtype, offset, strides, writeable):
    view = np.ndarray(shape, dtype, buffer=base, offset=offset, strides=strides)
    if not writeable:
        view.flags.writeable = False
    return view


def _object_array(shape, dtype, order, items, writeable):
    out = np.empty(shape, dtype, order=order)
    flat = out.reshape(-1, order=order)
    for i, item in enumerate(items):
        flat[i] = item
    if not writeable:
        out.flags.writeable = False
    return out


def _make_lock(locked):
    lock = threading.Lock()
    if locked:
        lock.acquire()
    return lock


def _make_rlock(count):
    lock = threading.RLock()
    for _ in range(count):
        lock.acquire()
    return lock


def _make_rlock_owned(count, thread):
    # Held by a captured thread (pyckpt.threads.Slot), which gives it to its
    # new thread before any thread resumes.
    lock = threading.RLock()
    thread.owns(lock, count)
    return lock


def _new_thread(cls):
    return cls.__new__(cls)


def _dead_weakref():
    return weakref.ref(set())


def _make_weak_container(cls, contents):
    container = cls()
    container.update(contents)
    return container


def _make_lru_cache(func, maxsize, typed):
    return functools.lru_cache(maxsize=maxsize, typed=typed)(func)


# --- capture ---------------------------------------------------------------

# C types that are not reachable under their own __qualname__ (e.g. 'function'),
# by the names the standard library gives them.
_NAMED_BUILTIN_TYPES = {}
for _module in (types, collections.abc):
    for _name, _value in vars(_module).items():
        if isinstance(_value, type) and not _name.startswith("__"):
            _NAMED_BUILTIN_TYPES.setdefault(_value, (_module.__name__, _name))
for _value in (type(None), type(NotImplemented), type(...)):
    _NAMED_BUILTIN_TYPES.pop(_value, None)  # pickle has opcodes for these
# The lock type (`_thread.lock`, a heap type), whose methods are on the
# stack of a thread waiting in acquire() (pyckpt.threads).
_NAMED_BUILTIN_TYPES[_thread.LockType] = ("_thread", "LockType")

_DICT_VIEW_KINDS = {}
_DICT_ITERATOR_KINDS = {}
for _kind in ("keys", "values", "items"):
    for _mapping in ({}, collections.OrderedDict()):
        _DICT_VIEW_KINDS[type(getattr(_mapping, _kind)())] = _kind
    _DICT_ITERATOR_KINDS[type(iter(getattr({}, _kind)()))] = (_kind, False)
    _DICT_ITERATOR_KINDS[type(reversed(getattr({}, _kind)()))] = (_kind, True)

# What a program configures on a logging.Logger.
_LOGGER_STATE = ("level", "handlers", "filters", "propagate", "disabled")

_FILE_TYPES = (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.FileIO)

# Module-level sentinels compared by identity (`f._field_type is _FIELD`): they
# must come back as the library's own objects, not copies.
# Library types whose instances are constants of the type's module and that
# pickle cannot save by value: dataclasses' sentinels, and re's opcodes
# (re._constants._NamedIntConstant sets __reduce__ = None; a checkpoint taken
# while re compiles a pattern holds them). Captured by reference to the
# module's global (`_reduce_module_constant`); so is an instance of any
# library class that sets __reduce__ = None (`Pickler._resolve`).
_MODULE_CONSTANT_TYPES = {type(dataclasses.MISSING), type(dataclasses._FIELD), type(dataclasses._HAS_DEFAULT_FACTORY)}

# Class-dict entries made by the enum metaclass itself, not by the class body.
_ENUM_BODY_SUNDERS = {"_missing_", "_generate_next_value_", "_numeric_repr_", "_ignore_",
                      "_iter_member_", "_iter_member_by_value_", "_iter_member_by_def_"}

# Module entries that belong to the import system of the process that runs it.
_MODULE_MACHINERY = {"__builtins__", "__loader__", "__spec__", "__cached__"}

_DEFINITION_TYPES = (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)

_RLOCK_REPR = re.compile(r"<(\w+) .*owner=(\d+) count=(\d+)")


def _import_name(module):
    """The name `module` was imported as, which C modules of the standard
    library do not all carry as __name__ (`_io` says "io", `_decimal`
    "decimal"): the one of its import spec."""
    spec = getattr(module, "__spec__", None)
    return getattr(spec, "name", None) or module.__name__


def _library_dirs():
    paths = sysconfig.get_paths()
    return tuple({os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")})


class Pickler(pickle.Pickler):
    """Captures an object graph. After `dump(obj)`, `arrays` lists the
    `(key, ndarray)` pairs to store as datasets: each ndarray is C-contiguous and
    shares memory with the captured array (no copy), except for non-contiguous
    arrays that are not views of a contiguous base, which are copied once.

    `user_dirs`: directories holding the user's own modules, whose module-level
    variables are captured with the checkpoint and which are reimported from
    their file on restart; default: the directory of the __main__ script.

    `threads`: {ident: pyckpt.threads.Slot} of the other threads whose
    stacks are captured with it; their Thread objects and the RLocks they
    hold are captured (else refused)."""

    def __init__(self, file, *, user_dirs=None, threads=None):
        super().__init__(file, protocol=PROTOCOL)
        self._threads = threads or {}
        self.arrays = []
        self._memo_laid_out = 0  # memo entries whose sets an earlier dump laid out
        self._module_kinds = {}
        self._namespaces = {}
        self._module_constants = {}  # module -> {id(global value): name}
        self._submodules = None  # package name -> [imported submodule names]
        if user_dirs is None:
            main_file = getattr(sys.modules.get("__main__"), "__file__", None)
            user_dirs = [os.path.dirname(os.path.abspath(main_file))] if main_file else []
        self._user_dirs = tuple(os.path.join(os.path.realpath(d), "") for d in user_dirs)
        self._library_dirs = tuple(os.path.join(d, "") for d in _library_dirs())

    def dump(self, obj):
        """Writes obj, and the state of the global random number generators of
        `random` and NumPy, which the program reaches through module functions
        (random.random(), np.random.rand()) that are captured by reference,
        then the table layouts of the sets written whose order pickle would
        not reproduce. An object that cannot be captured raises
        UnsupportedStateError naming its type and its path from obj."""
        # The C pickler calls reducer_override for every object that is not
        # of a built-in atom or container type (every instance of the
        # program's classes), the first time it meets it: the per-type
        # decision (_resolve) is made in C. An instance attribute for this
        # dump only: it refers back to the Pickler (its bound methods), a
        # cycle that would keep the memo, every captured object, alive until
        # the next garbage collection; an mmap with a buffer export could not
        # be closed.
        dispatch = self.reducer_override = _core.ReduceDispatch(self._resolve)
        # Pickling an instance gives it a __dict__ object (CPython 3.11 keeps
        # attributes inline until asked for it): one new container per
        # instance, so the cyclic garbage collector would run again and again
        # over the whole heap while the pickler works, half of the time of a
        # deep graph. The capture frees nothing cyclic.
        collecting = gc.isenabled()
        gc.disable()
        try:
            # The C pickler recurses once per nesting level (a linked list of
            # 10^6 objects nests 3 * 10^6 deep): it runs on a stack of its own.
            root = (obj, random._inst, np.random.mtrand._rand, _SetLayouts())
            _core.call_on_large_stack(functools.partial(super().dump, root), _LARGE_STACK_BYTES)
        except Exception as exc:
            raise self._unsupported(obj, exc, dispatch.last) from exc
        finally:
            del self.reducer_override
            if collecting:
                gc.enable()

    def _resolve(self, cls):
        """How instances of `cls` are reduced: a function of the instance
        returning a reduce tuple, or None for pickle's own reduction."""
        for base in cls.__mro__:
            if base in _registry:
                return _registry[base]
        exact = {
            types.FunctionType: self._reduce_function,
            types.CodeType: self._reduce_code,
            types.CellType: self._reduce_cell,
            types.MethodType: self._reduce_method,
            staticmethod: self._reduce_method_wrapper,
            classmethod: self._reduce_method_wrapper,
            property: self._reduce_property,
            itertools.pairwise: self._reduce_pairwise,
            random.Random: self._reduce_random,
            np.random.RandomState: self._reduce_numpy_randomstate,
            np.random.Generator: self._reduce_numpy_generator,
            np.ndarray: self._reduce_ndarray,
            buffers.MemoryContents: self._reduce_memory_contents,
            mmap.mmap: buffers.reduce_mmap,
            type(threading.Lock()): self._reduce_lock,
            type(threading.RLock()): self._reduce_rlock,
            weakref.ref: self._reduce_weakref,
            weakref.WeakValueDictionary: self._reduce_weak_container,
            weakref.WeakKeyDictionary: self._reduce_weak_container,
            weakref.WeakSet: self._reduce_weak_container,
            codecs.CodecInfo: self._reduce_codec_info,
            types.MappingProxyType: self._reduce_mappingproxy,
            _Call: self._reduce_call,
            _SetLayouts: self._reduce_set_layouts,
            functools._lru_cache_wrapper: self._reduce_lru_cache,
            struct.Struct: self._reduce_struct,
            logging.Logger: self._reduce_logger,
            logging.RootLogger: self._reduce_logger,
        }
        exact.update(dict.fromkeys(_DICT_VIEW_KINDS, self._reduce_dict_view))
        exact.update(dict.fromkeys(_DICT_ITERATOR_KINDS, self._reduce_dict_iterator))
        exact.update(dict.fromkeys(_FILE_TYPES, self._reduce_file))
        exact.update(dict.fromkeys(_MODULE_CONSTANT_TYPES, self._reduce_module_constant))
        if cls in exact:
            return exact[cls]
        if issubclass(cls, type):
            return self._reduce_class
        if issubclass(cls, types.ModuleType):
            return self._reduce_module
        if issubclass(cls, threading.Thread):
            return self._reduce_thread
        if any("__reduce__" in vars(base) and base.__reduce__ is None for base in cls.__mro__):
            return self._reduce_module_constant
        if hasattr(cls, "__getattr__") and not hasattr(cls, "__setstate__"):
            return self._reduce_with_state_setter
        return None

    # --- modules, and functions and classes by reference --------------------

    def _module_kind(self, module):
        """'main', 'library' (reimported by name), 'user' (reimported from its
        file, globals captured) or 'dynamic' (rebuilt from its globals)."""
        cached = self._module_kinds.get(id(module))
        if cached is not None and cached[0] is module:
            return cached[1]
        name = _import_name(module)
        if module.__name__ == "__main__":
            kind = "main"
        elif getattr(module, "__spec__", None) is None or sys.modules.get(name) is not module:
            kind = "dynamic"
        else:
            path = getattr(module, "__file__", None)
            path = os.path.realpath(path) if path else ""
            user = (path.startswith(self._user_dirs) and not path.startswith(self._library_dirs)
                    and name.partition(".")[0] != __package__)
            kind = "user" if user else "library"
        self._module_kinds[id(module)] = (module, kind)
        return kind

    def _imported_submodules(self, name):
        """The submodules of package `name` that the program had imported
        (bound as attributes: `dulwich.repo` after `import dulwich.repo`),
        all levels, parents first: importing the package alone at restart
        does not bind them, and the program's `dulwich.repo.Repo` would
        fail."""
        if self._submodules is None:
            self._submodules = collections.defaultdict(list)
            for full, child in list(sys.modules.items()):
                parent, _, last = full.rpartition(".")
                if parent and child is not None and getattr(sys.modules.get(parent), last, None) is child:
                    self._submodules[parent].append(full)
        found, pending = [], [name]
        while pending:
            children = sorted(self._submodules.get(pending.pop(0), ()))
            found += children
            pending += children
        return found

    def _module_state(self, module):
        """Definitions (functions, classes, modules) are put into the restored
        module first, then the data, so that objects restored by calling code
        (register_reducer loads, __reduce__) find the module's names defined."""
        definitions, data = {}, {}
        for key, value in vars(module).items():
            if key not in _MODULE_MACHINERY:
                definitions_or_data = definitions if isinstance(value, _DEFINITION_TYPES) else data
                definitions_or_data[key] = value
        return _Call(_set_module_attrs, module, definitions), data

    def _reduce_module(self, module):
        kind = self._module_kind(module)
        if kind == "library":
            name = _import_name(module)
            return _import_library_module, (name, self._imported_submodules(name))
        if kind == "user":
            callable_, args = _import_user_module, (_import_name(module), os.path.realpath(module.__file__))
        elif kind == "main":
            # Run as `python3 -m NAME`: the restored __main__ gets NAME's spec.
            callable_, args = _main_module, (getattr(module.__spec__, "name", None),)
        else:
            callable_, args = _new_module, (module.__name__,)
        return callable_, args, self._module_state(module), None, None, _set_module_state

    def _by_reference(self, obj):
        """How to pickle a function or class by reference: NotImplemented (the
        C pickler's own by-name record), a reduce tuple going through its user
        module, or None if it cannot be found by name and goes by value."""
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
        if module is None or self._module_kind(module) not in ("library", "user"):
            return None
        try:
            if _getattr_path(module, obj.__qualname__) is not obj:
                return None
        except AttributeError:
            return None
        if self._module_kind(module) == "user":
            return _getattr_path, (module, obj.__qualname__)
        return NotImplemented

    # --- functions, code, cells ----------------------------------------------

    def _reduce_function(self, func):
        by_reference = self._by_reference(func)
        if by_reference is not None:
            return by_reference
        namespace = self._namespace(func.__globals__)
        state = {
            "__qualname__": func.__qualname__, "__module__": func.__module__, "__doc__": func.__doc__,
            "__defaults__": func.__defaults__, "__kwdefaults__": func.__kwdefaults__,
            "__annotations__": func.__annotations__, "__dict__": func.__dict__,
        }
        return (_make_function, (func.__code__, namespace, func.__name__, func.__closure__),
                state, None, None, _set_function_state)

    def _namespace(self, globals_):
        """The module whose dict globals_ is (its dict is its state, see
        _reduce_module), else globals_ itself."""
        module = sys.modules.get(globals_.get("__name__", ""))
        if module is not None and vars(module) is globals_:
            return module
        key = id(globals_)
        if key not in self._namespaces:  # a module not in sys.modules: rare, and slow to find
            modules = [m for m in gc.get_referrers(globals_)
                       if isinstance(m, types.ModuleType) and vars(m) is globals_]
            self._namespaces[key] = (globals_, modules[0] if modules else globals_)
        return self._namespaces[key][1]

    def _reduce_code(self, code):
        version = ".".join(map(str, sys.version_info[:3]))
        return _load_code, (version, importlib.util.MAGIC_NUMBER, marshal.dumps(code))

    def _reduce_cell(self, cell):
        # Contents go in the state, so a closure referring to its own function
        # (recursion, the __class__ cell of a method) is not a cycle in args.
        try:
            contents = cell.cell_contents
        except ValueError:
            return types.CellType, ()
        return types.CellType, (), (contents,), None, None, _set_cell

    def _reduce_method(self, method):
        return types.MethodType, (method.__func__, method.__self__)

    def _reduce_method_wrapper(self, wrapper):
        return type(wrapper), (wrapper.__func__,)

    def _reduce_property(self, prop):
        return type(prop), (prop.fget, prop.fset, prop.fdel, prop.__doc__)

    def _reduce_lru_cache(self, wrapper):
        by_reference = self._by_reference(wrapper)
        if by_reference is not None:
            return by_reference
        params = wrapper.cache_parameters()
        return _make_lru_cache, (wrapper.__wrapped__, params["maxsize"], params["typed"])

    # --- classes ---------------------------------------------------------------

    def _reduce_class(self, cls):
        by_reference = self._by_reference(cls)
        if by_reference is not None:
            return by_reference
        if cls in _NAMED_BUILTIN_TYPES:
            module, name = _NAMED_BUILTIN_TYPES[cls]
            return _getattr_path, (sys.modules[module], name)
        if cls in (type(None), type(NotImplemented), type(...)):
            return NotImplemented
        if not cls.__flags__ & (1 << 9):  # Py_TPFLAGS_HEAPTYPE: a C type cannot be rebuilt
            home = self._module_holding(cls)
            if home is None:
                raise UnsupportedStateError(
                    f"the built-in type {cls.__module__}.{cls.__qualname__} cannot be found by name")
            return _getattr_path, (home, cls.__name__)
        if isinstance(cls, enum.EnumMeta):
            return self._reduce_enum(cls)
        attrs = self._class_attrs(cls)
        namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        if "__slots__" in attrs:
            namespace["__slots__"] = attrs.pop("__slots__")
        abc_registered = []
        if "_abc_impl" in attrs:
            del attrs["_abc_impl"]
            abc_registered = [ref() for ref in abc._get_dump(cls)[0] if ref() is not None]
        return (_make_class, (type(cls), cls.__name__, cls.__bases__, namespace, {}),
                (attrs, abc_registered), None, None, _set_class_state)

    def _module_holding(self, cls):
        """A library or user module that has the C type `cls` under its name,
        or None. For extension types whose C name carries no module (gmpy2's
        `xmpz`: __module__ is then "builtins"), found as pickle's whichmodule
        finds functions; only module dicts are read, so no lazy module
        attribute hook runs."""
        for module in list(sys.modules.values()):
            if (isinstance(module, types.ModuleType) and vars(module).get(cls.__name__) is cls
                    and self._module_kind(module) in ("library", "user")):
                return module
        return None

    def _class_attrs(self, cls):
        """The class dict without what type creation makes itself (slot and
        __dict__/__weakref__ descriptors, also when copied from another class
        as dataclass(slots=True) does)."""
        return {k: v for k, v in vars(cls).items()
                if not (isinstance(v, types.MemberDescriptorType) and v.__objclass__ is cls
                        or isinstance(v, types.GetSetDescriptorType) and k in ("__dict__", "__weakref__"))}

    def _reduce_enum(self, cls):
        # Members must exist when the metaclass runs, with what creates them
        # (__new__, __init__); everything else is set afterwards, so methods
        # that refer to the class (super(), class attributes) are no cycle.
        attrs = self._class_attrs(cls)
        namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        if "__new_member__" in attrs:
            namespace["__new__"] = attrs["__new_member__"]
        if "__init__" in attrs:
            namespace["__init__"] = attrs["__init__"]
        members = [(name, member._value_) for name, member in cls._member_map_.items()]
        kwds = {"boundary": attrs["_boundary_"]} if "_boundary_" in attrs else {}
        skip = set(cls._member_map_) | {"__new__", "__new_member__", "__init__", "__qualname__"}
        state = {k: v for k, v in attrs.items()
                 if k not in skip and not (enum._is_sunder(k) and k not in _ENUM_BODY_SUNDERS)}
        return (_make_enum, (type(cls), cls.__name__, cls.__bases__, namespace, kwds, members),
                (state, []), None, None, _set_class_state)

    def _reduce_module_constant(self, obj):
        module = sys.modules.get(type(obj).__module__)
        if module is None or self._module_kind(module) != "library":
            return NotImplemented  # a user module's globals are captured by value
        names = self._module_constants.get(module)
        if names is None:
            names = self._module_constants[module] = {id(value): name for name, value in vars(module).items()}
        name = names.get(id(obj))
        if name is None or vars(module).get(name) is not obj:
            return NotImplemented
        return _getattr_path, (module, name)

    # --- builtin iterators -----------------------------------------------------

    def _reduce_dict_view(self, view):
        mapping, = (r for r in gc.get_referents(view) if isinstance(r, dict))
        return _dict_view, (mapping, _DICT_VIEW_KINDS[type(view)])

    def _reduce_dict_iterator(self, it):
        kind, reverse = _DICT_ITERATOR_KINDS[type(it)]
        mappings = [r for r in gc.get_referents(it) if isinstance(r, dict)]
        if not mappings:  # exhausted
            return iter, ((),)
        mapping, = mappings
        return _dict_iterator, (mapping, kind, reverse, len(mapping) - it.__length_hint__())

    def _reduce_pairwise(self, it):
        refs = gc.get_referents(it)  # [iterator, last item] once started, [] when exhausted
        if len(refs) == 2:
            return _pairwise, tuple(refs)
        return itertools.pairwise, (refs[0] if refs else (),)

    # --- files -----------------------------------------------------------------

    def _reduce_file(self, f):
        for name in ("stdin", "stdout", "stderr"):
            for stream in (getattr(sys, name), getattr(sys, f"__{name}__")):
                if f is stream:
                    return _std_stream, (name, None)
                if f is getattr(stream, "buffer", None):
                    return _std_stream, (name, "buffer")
        text = isinstance(f, io.TextIOWrapper)
        if f.closed:
            return _closed_file, (text,)
        buffer = f.buffer if text else f
        raw = getattr(buffer, "raw", buffer)
        if not isinstance(raw, io.FileIO):
            raise UnsupportedStateError(f"it wraps a {type_name(type(raw))}, not a file")
        if not isinstance(raw.name, str):
            raise UnsupportedStateError(f"{f!r} is open on file descriptor {raw.name}, not on a named file")
        if f.writable():
            f.flush()
        raw_mode = raw.mode.replace("x", "w")
        text_args = (f.encoding, f.errors, f.line_buffering, f.write_through) if text else None
        position, read_ahead = read_position(f)
        return _reopen_file, (os.path.abspath(raw.name), f.mode, raw_mode, position, text_args, buffer is not raw,
                              read_ahead)

    # --- random number generators ----------------------------------------------

    def _reduce_random(self, rng):
        if rng is random._inst:  # behind random.random() & co: must stay the module's
            return _restore_random_global, (rng.getstate(),)
        return NotImplemented

    def _reduce_numpy_randomstate(self, rng):
        if rng is np.random.mtrand._rand:  # behind np.random.rand() & co
            return _restore_numpy_global, (rng.get_state(legacy=False),)
        return NotImplemented

    def _reduce_numpy_generator(self, gen):
        # numpy's own reduction would copy the bit generator; keep it shared.
        return np.random.Generator, (gen.bit_generator,)

    # --- NumPy arrays ----------------------------------------------------------

    def _reduce_ndarray(self, a):
        writeable = a.flags.writeable
        base = a
        while isinstance(base.base, np.ndarray):
            base = base.base
        describe = _buffer_owners.get(type(base.base))
        if base is a and describe is not None:
            described = describe(base.base)
            if described is not None:
                address, rebuild, args = described
                offset = a.__array_interface__["data"][0] - address
                return _make_view, (_Call(rebuild, *args), a.shape, a.dtype, offset, a.strides, writeable)
        owner = buffers.owner_of(base)
        if owner is not None:  # np.frombuffer(an mmap, MPI memory): stays a view of it
            offset = a.__array_interface__["data"][0] - buffers.address_of(owner)
            return _make_view, (owner, a.shape, a.dtype, offset, a.strides, writeable)
        if base is not a and (base.flags.c_contiguous or base.flags.f_contiguous):
            offset = a.__array_interface__["data"][0] - base.__array_interface__["data"][0]
            return _make_view, (base, a.shape, a.dtype, offset, a.strides, writeable)
        fortran = a.flags.f_contiguous and not a.flags.c_contiguous
        if a.dtype.hasobject:
            order = "F" if fortran else "C"
            return _object_array, (a.shape, a.dtype, order, list(a.reshape(-1, order=order)), writeable)
        if a.flags.c_contiguous or a.flags.f_contiguous:
            # As it lies in memory: the container writes a Fortran-ordered
            # array with order "F" (doc/format.md), read back the same way.
            data = a
        else:  # strided, and not a view of anything captured: the one copy
            data = np.ascontiguousarray(a)
        return self._out_of_band(data, writeable)

    def _reduce_memory_contents(self, contents):
        # The bytes of an mmap or MPI memory (pyckpt.buffers), not a view of it.
        return self._out_of_band(contents, contents.flags.writeable)

    def _out_of_band(self, data, writeable):
        key = f"a{len(self.arrays)}"
        self.arrays.append((key, data))
        # `transposed` (False): checkpoints written before order "F" stored
        # a Fortran array as its C-ordered transpose.
        return _read_array, (key, data.shape, data.dtype, False, writeable)

    # --- threads, locks, weak references ----------------------------------------

    def _reduce_thread(self, thread):
        if thread is threading.main_thread():
            return threading.main_thread, ()
        # Running ones are rebound to their new thread by pyckpt.threads; one
        # not started or finished is only its attributes.
        if thread.ident in self._threads or not thread.is_alive():
            return _new_thread, (type(thread),), vars(thread)
        raise UnsupportedStateError(f"thread {thread.name!r}: its stack is not captured with the checkpoint")

    def _reduce_lock(self, lock):
        return _make_lock, (lock.locked(),)

    def _reduce_rlock(self, lock):
        state, owner, count = _RLOCK_REPR.match(repr(lock)).groups()
        if state == "locked" and int(owner) != threading.get_ident():
            if int(owner) in self._threads:
                return _make_rlock_owned, (int(count), self._threads[int(owner)])
            raise UnsupportedStateError("an RLock held by another thread")
        return _make_rlock, (int(count),)

    def _reduce_logger(self, logger):
        # The library's logger of that name, configured as the program left
        # it (Logger.__reduce__ gives the name only: a restart would lose its
        # handlers, such as a QueueHandler feeding a QueueListener thread).
        name = None if isinstance(logger, logging.RootLogger) else logger.name
        return logging.getLogger, (name,), {key: getattr(logger, key) for key in _LOGGER_STATE}

    def _reduce_struct(self, packer):
        return struct.Struct, (packer.format,)

    def _reduce_call(self, call):
        return call.func, call.args

    def _reduce_set_layouts(self, _marker):
        # Reached after the whole graph: the memo holds every set written
        # (those of earlier dumps have lower memo indices).
        sets, self._memo_laid_out = _core.memoized_sets(self, self._memo_laid_out)
        return _restore_set_layouts, _core.set_layouts(sets)

    def _reduce_mappingproxy(self, proxy):
        mapping, = gc.get_referents(proxy)
        return types.MappingProxyType, (mapping,)

    def _reduce_weakref(self, ref):
        target = ref()
        if target is None:
            return _dead_weakref, ()
        return weakref.ref, (target, ref.__callback__) if ref.__callback__ else (target,)

    def _reduce_with_state_setter(self, obj):
        # Loading the object's state, pickle looks __setstate__ up on the new,
        # empty instance: a __getattr__ that forwards to an attribute not set
        # yet (codecs' stream wrappers: self.stream) recurses until the
        # RecursionError. An explicit state setter is called instead.
        reduced = obj.__reduce_ex__(PROTOCOL)
        if not isinstance(reduced, tuple) or len(reduced) < 3 or reduced[2] is None:
            return reduced
        reduced = list(reduced) + [None] * (6 - len(reduced))
        if reduced[5] is None:
            reduced[5] = _set_default_state
        return tuple(reduced)

    def _reduce_codec_info(self, info):
        # A tuple subclass whose __new__ takes the fields as arguments: pickle
        # saves it as CodecInfo(tuple) and cannot load it. By value: the
        # registry cannot be asked for the very object (codecs.lookup caches
        # by the name it was asked, which the CodecInfo does not keep).
        return _make_codec_info, (info.encode, info.decode, info.streamreader, info.streamwriter,
                                  info.incrementalencoder, info.incrementaldecoder, info.name, info._is_text_encoding)

    def _reduce_weak_container(self, container):
        # What it holds now; its KeyedRefs and the removal callbacks that
        # close over the container itself are made again by a new one.
        contents = list(container.items()) if isinstance(container, weakref.WeakValueDictionary | weakref.WeakKeyDictionary) \
            else list(container)
        return _make_weak_container, (type(container), contents)

    # --- errors ----------------------------------------------------------------

    def _unsupported(self, root, exc, culprit):
        if isinstance(exc, RecursionError):
            reason = (f"the object graph is nested deeper than the {_core.large_stack_levels(_LARGE_STACK_BYTES):,} "
                      f"levels of pickling the checkpoint stack holds")
        else:
            reason = str(exc) or type(exc).__name__
        # A reducer that refuses what no reducer of the user's could save
        # (an event loop) says so with suggest_reducer = False.
        suggest_reducer = not isinstance(exc, RecursionError) and getattr(exc, "suggest_reducer", True)
        path = None if culprit is None else find_path(root, culprit)
        error = UnsupportedStateError(unsupported_message(path, culprit, reason, suggest_reducer))
        # For a caller that can name where the culprit is in its own terms
        # (pyckpt.state: the frame and variable).
        error.culprit, error.reason, error.suggest_reducer = culprit, reason, suggest_reducer
        return error


def type_name(cls):
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def unsupported_message(where, culprit, reason, suggest_reducer=True):
    """The message of an UnsupportedStateError for `culprit` (None: unknown),
    reached at `where` (a path, or a frame and variable; None: unknown)."""
    what = "an object" if culprit is None else f"a {type_name(type(culprit))} object"
    message = f"{where}: cannot capture {what} ({reason})" if where else f"cannot capture {what} ({reason})"
    if suggest_reducer and culprit is not None:
        message += (f"; pyckpt.register_reducer({type_name(type(culprit))}, save, load) tells pyckpt "
                    f"how to save and rebuild it")
    return message


_PATH_STEP = re.compile(r"\.<[^>]*>|\.[^.\[<]+|\[[^\]]*\]|<[^>]*>")
_PATH_LIMIT = 160


def _short_path(path):
    """`head.next.next...` of a long chain written `head.next*396`, and what
    is still longer than _PATH_LIMIT cut in the middle: an error message
    names the way to the object, it does not spell out a linked list."""
    steps = _PATH_STEP.findall(path)
    if "".join(steps) != path[len(path) - len("".join(steps)):]:
        steps = []
    out = [path[: len(path) - len("".join(steps))]]
    i = 0
    while i < len(steps):
        j = i
        while j < len(steps) and steps[j] == steps[i]:
            j += 1
        out.append(steps[i] if j - i < 3 else f"{steps[i]}*{j - i}")
        i = j
    short = "".join(out)
    if len(short) > _PATH_LIMIT:
        half = _PATH_LIMIT // 2
        short = f"{short[:half]}...{short[-half:]}"
    return short


def find_path(root, target):
    """A readable path from root to target (`cfg['a'].handler[2]`, long
    chains shortened), None if target is not reachable. Only for errors."""
    found = _find_path([("", root)], target)
    return None if found is None else found[1]


def find_variable(variables, target):
    """Which of `variables` ((name, value) pairs, the first preferred at
    equal depth) reaches target by the shortest path: (its index, the path
    from its name), or None."""
    return _find_path(variables, target)


def _find_path(roots, target):
    """Breadth-first walk from all of `roots` ((path, object) pairs) at once:
    (index of the root, shortened path) of the nearest way to target."""
    def label(obj):
        return obj.__name__ if isinstance(obj, types.ModuleType) else None

    def children(obj, path):
        if isinstance(obj, types.ModuleType):
            for key, value in vars(obj).items():
                yield f"{obj.__name__}.{key}", value
        elif isinstance(obj, dict):
            for key, value in obj.items():
                bare = path == "" and isinstance(key, str) and key.isidentifier()
                yield (key if bare else f"{path}[{key!r}]"), value
                yield f"{path}<key {key!r}>", key
        elif isinstance(obj, (list, tuple)):
            for i, value in enumerate(obj):
                yield f"{path}[{i}]", value
        elif isinstance(obj, types.FunctionType):
            for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or ()):
                yield f"{path}.<closure {name}>", cell
            for name in ("__defaults__", "__kwdefaults__", "__dict__", "__globals__"):
                yield f"{path}.{name}", getattr(obj, name)
        elif isinstance(obj, types.CellType):
            for value in gc.get_referents(obj):  # empty cells have none
                yield f"{path}.cell_contents", value
        else:
            attrs = getattr(obj, "__dict__", None)
            if isinstance(attrs, dict):
                for key, value in attrs.items():
                    yield f"{path}.{key}", value
            for i, value in enumerate(gc.get_referents(obj)):
                if value is not attrs:
                    yield f"{path}.<referent {i}>", value

    queue = collections.deque()
    seen = set()
    for index, (root_path, root) in enumerate(roots):
        if root is target:
            return index, root_path or label(root)
        seen.add(id(root))
        queue.append((index, root, root_path or label(root) or ""))
    while queue:
        index, obj, path = queue.popleft()
        for child_path, child in children(obj, path):
            if child is target:
                return (index, _short_path(child_path)) if child_path else None
            if id(child) not in seen and not isinstance(child, (str, bytes, int, float, type(None))):
                seen.add(id(child))
                queue.append((index, child, child_path))
    return None


class Unpickler(pickle.Unpickler):
    """Rebuilds what a Pickler captured. `read_array(key)` returns a fresh
    ndarray read from the checkpoint for an entry of `Pickler.arrays`.
    `main_module`: the module to fill with the captured __main__ globals (the
    restart driver passes the module it installs as __main__); default a new
    module, available as the `main_module` attribute after load()."""

    def __init__(self, file, read_array, *, main_module=None):
        super().__init__(file)
        self._read = read_array
        self.main_module = main_module
        self.unordered_sets = []

    def load(self):
        """The captured object. `unordered_sets` then lists the restored sets
        that iterate in another order than at capture: elements whose hash
        differs in this process (hashed by identity), so their table could
        not be laid out as it was (doc/heap.md, "Sets")."""
        # Streams written before set layouts end with the random generators.
        obj, _random_state, _numpy_random_state, *unordered = super().load()
        self.unordered_sets.extend(unordered[0] if unordered else ())
        return obj

    def find_class(self, module, name):
        if module == __name__ and name == "_read_array":
            return self._read_array
        if module == __name__ and name == "_main_module":
            return self._main_module
        return super().find_class(module, name)

    def _read_array(self, key, shape, dtype, transposed, writeable):
        a = self._read(key)
        if a.shape != shape or a.dtype != dtype:
            raise CheckpointFileError(f"array {key!r}: expected {dtype} {shape}, the file holds {a.dtype} {a.shape}")
        if transposed:
            a = a.T
        if not writeable:
            a.flags.writeable = False
        return a

    def _main_module(self, spec_name=None):
        if self.main_module is None:
            self.main_module = types.ModuleType("__main__")
        vars(self.main_module).setdefault("__builtins__", builtins)
        if spec_name is not None:
            spec = importlib.util.find_spec(spec_name)
            vars(self.main_module).update(__spec__=spec, __loader__=getattr(spec, "loader", None))
        return self.main_module


def dumps(obj, *, user_dirs=None, threads=None):
    """Captures obj: returns (pickle bytes, [(key, ndarray) to write as datasets])."""
    buffer = io.BytesIO()
    pickler = Pickler(buffer, user_dirs=user_dirs, threads=threads)
    pickler.dump(obj)
    return buffer.getvalue(), pickler.arrays


def loads(data, read_array, *, main_module=None, unordered_sets=None):
    """Rebuilds what dumps() captured; see Unpickler for the arguments.
    unordered_sets: a list, extended with Unpickler.unordered_sets."""
    unpickler = Unpickler(io.BytesIO(data), read_array, main_module=main_module)
    try:
        obj = unpickler.load()
        if unordered_sets is not None:
            unordered_sets.extend(unpickler.unordered_sets)
        return obj
    finally:
        # The memo holds the Unpickler's bound methods (find_class): a
        # reference cycle that would keep every object read, and the arrays
        # read into an mmap (buffer exports: it could not be closed), alive
        # until the next garbage collection.
        unpickler.memo.clear()
