"""mpi4py objects in the heap.

Handles are process-local; they are pickled as libpyckpt_mpi.so's stable ids
and turned back into handles of the restarted job (pyckpt._core converts
between mpi4py objects and handles with mpi4py's public py2f/f2py).
Predefined objects (MPI.COMM_WORLD, MPI.DOUBLE, MPI.SUM, ...) are pickled by
name, so identity (`comm is MPI.COMM_WORLD`) survives; so are the buffer
sentinels MPI.IN_PLACE and MPI.BOTTOM, whose classes mpi4py does not export.
An object that is another handle to a predefined one (what Get_errhandler()
returns, `MPI.Op(MPI.SUM)`) becomes that predefined object.

Local objects are pickled by value: a group as the world ranks of its members
(the restarted job has the same world), an Info as its key/value pairs.
A communicator also keeps its error handler: mpi4py sets MPI_ERRORS_RETURN on
every communicator it creates, but the interposer re-creates communicators
itself at restart, where they inherit whatever their parent has then.
MPI.memory objects (MPI.Alloc_mem) are captured by content: pyckpt.buffers.
A request of mpi4py's lowercase comm.irecv() holds its receive buffer in the
request object: it is pickled as the call that makes it again (see
_reduce_lowercase_irecv).

Attributes: the keyvals the program made (Comm/Win/Datatype.Create_keyval,
which mpi4py lists in MPI._keyval_registry) are made again at restart with
the same numbers, before the heap is read (keyvals(), recreate_keyvals());
their copy and delete functions come back with the heap (a root extension);
the values a communicator, window or derived datatype holds for them are
pickled with it and set again when it is rebuilt. Predefined attributes
(MPI.TAG_UB, ...) and mpi4py's own cached ones (its duplicate for pickled
collectives, made again at first use) are not keyvals of the registry.
"""
import gc

from . import _core, buffers, container, heap, state
from .errors import CheckpointFileError, UnsupportedStateError


def _mpi():
    from mpi4py import MPI
    return MPI


_predefined = None


def _sentinel_types(MPI):
    return type(MPI.IN_PLACE), type(MPI.BOTTOM)


def _predefined_names():
    global _predefined
    if _predefined is None:
        MPI = _mpi()
        kinds = (MPI.Comm, MPI.Datatype, MPI.Op, MPI.Request, MPI.Group, MPI.Info, MPI.Errhandler, MPI.Message,
                 *_sentinel_types(MPI))
        _predefined = {id(v): k for k, v in vars(MPI).items() if k.isupper() and isinstance(v, kinds)}
    return _predefined


def _rebuilt(what, from_id):
    def rebuild(cls, ident):
        obj = from_id(cls, ident)
        if obj is None:
            raise CheckpointFileError(f"{what} {ident} of the checkpoint was not re-created")
        return obj
    rebuild.__qualname__ = rebuild.__name__ = f"_{what}_from_id"
    return rebuild


# Module-level, so that the pickle refers to them by name.
_communicator_from_id = _rebuilt("communicator", _core.mpi_comm_from_id)
_datatype_from_id = _rebuilt("datatype", _core.mpi_type_from_id)
# A receive pending at the cut was re-posted into its restored buffer before
# the heap is read (pyckpt.mpi), so every request has its handle by then.
_request_from_id = _rebuilt("request", _core.mpi_request_from_id)
# Files were reopened when the interposer's state was restored (at MPI_Init).
_file_from_id = _rebuilt("file", _core.mpi_file_from_id)
# RMA windows were created again before the heap is read (pyckpt.mpi).
_window_from_id = _rebuilt("window", _core.mpi_win_from_id)


_equality_candidates = None


def _predefined_equal(obj):
    """The name of the predefined object `obj` is a handle to, or None."""
    global _equality_candidates
    MPI = _mpi()
    name = _predefined_names().get(id(obj))
    kinds = (MPI.Errhandler, MPI.Op, MPI.Group, MPI.Info)
    if name is None and isinstance(obj, kinds):
        if _equality_candidates is None:  # once: a checkpoint may pickle many handles
            _equality_candidates = [(k, getattr(MPI, k)) for k in _predefined_names().values()
                                    if isinstance(getattr(MPI, k), kinds)]
        name = next((k for k, v in _equality_candidates if type(v) is type(obj) and v == obj), None)
    return name


def _group_from_world_ranks(ranks):
    MPI = _mpi()
    world = MPI.COMM_WORLD.Get_group()
    try:
        return world.Incl(ranks)
    finally:
        world.Free()


def _reduce_group(group):
    MPI = _mpi()
    world = MPI.COMM_WORLD.Get_group()
    try:
        ranks = MPI.Group.Translate_ranks(group, list(range(group.Get_size())), world)
    finally:
        world.Free()
    if MPI.UNDEFINED in ranks:
        raise UnsupportedStateError("the group has members outside MPI.COMM_WORLD "
                                    "(from a spawned or connected job)")
    return _group_from_world_ranks, (list(ranks),)


def _info_from_items(items):
    info = _mpi().Info.Create()
    for key, value in items:
        info.Set(key, value)
    return info


def _reduce_info(info):
    return _info_from_items, (list(info.items()),)


def _errhandler_name(comm):
    """The predefined error handler set on comm (pickled with it)."""
    handler = comm.Get_errhandler()
    try:
        name = _predefined_equal(handler)
    finally:
        if _predefined_names().get(id(handler)) is None:
            handler.Free()
    if name is None:
        raise UnsupportedStateError("it has a user-defined error handler")
    return name


def _predefined_communicator(name, errhandler, attributes=()):
    MPI = _mpi()
    comm = getattr(MPI, name)
    comm.Set_errhandler(getattr(MPI, errhandler))
    return _with_attributes(comm, attributes)


def _communicator(cls, ident, errhandler, attributes=()):
    comm = _communicator_from_id(cls, ident)
    comm.Set_errhandler(getattr(_mpi(), errhandler))
    return _with_attributes(comm, attributes)


# --- attributes ------------------------------------------------------------------

_KEYVAL_KINDS = ("Comm", "Win", "Datatype")


def _keyval_registry():
    return _mpi()._keyval_registry


def _attributes(obj):
    """[(keyval, value)] of the keyvals the program made that obj holds
    (mpi4py's Get_attr gives None for an attribute not set)."""
    kind = next(k for k in _KEYVAL_KINDS if isinstance(obj, getattr(_mpi(), k)))
    found = []
    for keyval in sorted(_keyval_registry()[kind]):
        value = obj.Get_attr(keyval)
        if value is not None:
            found.append((keyval, value))
    return found


def _with_attributes(obj, attributes):
    for keyval, value in attributes:
        # The same handle may be rebuilt from several mpi4py objects: setting
        # an attribute again would call the keyval's delete function.
        if obj.Get_attr(keyval) is not value:
            obj.Set_attr(keyval, value)
    return obj


def _rebuilt_with_attributes(rebuild, cls, ident, attributes):
    return _with_attributes(rebuild(cls, ident), attributes)


def keyvals():
    """The keyvals the program made, [kind, number, nopython], for the
    checkpoint (JSON)."""
    return sorted(([kind, keyval, bool(state.nopython)] for kind in _KEYVAL_KINDS
                   for keyval, state in _keyval_registry()[kind].items()), key=lambda k: k[1])


def recreate_keyvals(saved):
    """At restart, before the heap is read: the program's keyvals made again
    with their numbers (its variables hold the numbers). MPI gives the lowest
    free number: the numbers in between (keyvals mpi4py made for itself, or
    the program freed) are taken by placeholders, freed at the end."""
    MPI = _mpi()
    placeholders = []
    for kind, number, nopython in saved:
        cls = getattr(MPI, kind)
        while (made := cls.Create_keyval(nopython=nopython)) != number:
            if made > number:
                raise CheckpointFileError(f"the attribute keyval {number} ({kind}.Create_keyval) of the checkpoint "
                                          f"cannot be made again: MPI gives {made}")
            placeholders.append((cls, made))
    for cls, made in placeholders:
        cls.Free_keyval(made)


class _KeyvalFunctions:
    """The copy and delete functions of the program's keyvals, pickled by
    the heap (they may be functions of __main__); unpickling sets them on the
    keyvals recreate_keyvals() made."""

    def __init__(self):
        self.table = [(kind, keyval, state.copy_fn, state.delete_fn) for kind in _KEYVAL_KINDS
                      for keyval, state in _keyval_registry()[kind].items()]

    def __reduce__(self):
        return _set_keyval_functions, (self.table,)


def _set_keyval_functions(table):
    registry = _keyval_registry()
    for kind, keyval, copy_fn, delete_fn in table:
        registry[kind][keyval].copy_fn = copy_fn
        registry[kind][keyval].delete_fn = delete_fn


# --- lowercase irecv ---------------------------------------------------------------
# mpi4py's comm.irecv(buf, source, tag) posts MPI_Irecv into a buffer it keeps
# in the request object (an MPI.memory: over a bytes object it allocated, 32
# KiB without buf, or over the program's buf), and req.wait()/test() unpickle
# the message from it. The program cannot reach that buffer, and only mpi4py
# can give a request one, so a pending (or completed, not yet waited for)
# lowercase irecv is pickled as the call, made again when the heap is read:
# the interposer hands that call the request of the checkpoint
# (pyckpt_mpi_request_expect_reissue): re-posted into mpi4py's new buffer if it
# was pending at the cut, restored complete (the message already in the
# buffer pickled with it) if it completed before the cut.

class _CutRequests:
    """The requests of the cut being captured (pyckpt.mpi sets them before
    the heap is pickled): id -> pyckpt._core.RequestInfo, and the ids of the
    receives pickled as a lowercase irecv made again."""
    pending = None
    reissued = set()


_cut_requests = _CutRequests()


def begin_cut_capture(requests):
    """Before the heap of a cut is pickled: the pending requests the
    interposer lists."""
    _cut_requests.pending = {r.id: r for r in requests}
    _cut_requests.reissued = set()


def end_cut_capture():
    """After the heap of a cut is pickled: the ids of the receives made again
    by their lowercase irecv at restart (not re-posted by pyckpt.mpi)."""
    reissued, _cut_requests.pending, _cut_requests.reissued = _cut_requests.reissued, None, set()
    return reissued


def _lowercase_irecv_buffer(request):
    """The MPI.memory an mpi4py request made by comm.irecv() receives into,
    None for any other request (mpi4py keeps the buffer in a field Python
    cannot read; the garbage collector's view of the object lists it)."""
    memory = _mpi().memory
    return next((o for o in gc.get_referents(request) if type(o) is memory), None)


def _reissued_irecv(ident, comm_id, source, tag, buf):
    comm = _communicator_from_id(_mpi().Comm, comm_id)
    _core.mpi_request_expect_reissue(ident)
    request = comm.irecv(buf, source, tag)
    if _core.mpi_request_id(request) != ident:
        raise CheckpointFileError(f"the lowercase irecv (request {ident}, source {source}, tag {tag}) of the "
                                  f"checkpoint was not made again: the interposer did not take the re-issued "
                                  f"call as it")
    return request


def _reduce_lowercase_irecv(request, memory):
    ident = _core.mpi_request_id(request)
    info = _cut_requests.pending.get(ident) if _cut_requests.pending is not None else None
    if info is None or not info.is_recv:
        raise UnsupportedStateError(f"cannot capture {request!r}: a request of comm.irecv() that the interposer "
                                    f"does not list as a receive of this checkpoint")
    # mpi4py's own allocation (a bytes object the program cannot reach) is
    # allocated again by the re-issued call; the program's buffer is pickled
    # as the program's (identity kept).
    own = type(memory.obj) is bytes
    if info.completed:  # the message is in the buffer: keep it
        buf = bytearray(memory) if own else memory
    else:
        buf = len(memory) if own else memory
    _cut_requests.reissued.add(ident)
    return _reissued_irecv, (ident, info.comm, info.source, info.tag, buf)


def _reduce_handle(obj):
    MPI = _mpi()
    name = _predefined_equal(obj)
    if name is not None:
        if isinstance(obj, MPI.Comm) and obj != MPI.COMM_NULL:
            return _predefined_communicator, (name, _errhandler_name(obj), _attributes(obj))
        return getattr, (MPI, name)
    if isinstance(obj, MPI.Group):
        return _reduce_group(obj)
    if isinstance(obj, MPI.Info):
        return _reduce_info(obj)
    if isinstance(obj, MPI.Op):
        raise UnsupportedStateError("a user-defined reduction (MPI.Op.Create) holds a "
                                    "Python function that mpi4py does not give back; create the operation "
                                    "again after the checkpoint instead of keeping it across one")
    if not _core.mpi_loaded():
        raise UnsupportedStateError(f"{type(obj).__name__} objects are captured only in a job run with "
                                    f"libpyckpt_mpi.so preloaded")
    cls = type(obj)
    if isinstance(obj, MPI.Request) and obj != MPI.REQUEST_NULL:
        memory = _lowercase_irecv_buffer(obj)
        if memory is not None:
            return _reduce_lowercase_irecv(obj, memory)
    if isinstance(obj, MPI.Message):
        # `msg = comm.mprobe(); msg.recv()` leaves the spent handle in `msg`.
        # A matched message not yet received is never in the heap at a cut
        # (mpi_wrap defers the cut until it is received): what a program
        # holds is MESSAGE_NULL or, from a probe of PROC_NULL, MESSAGE_NO_PROC.
        for spent in (MPI.MESSAGE_NULL, MPI.MESSAGE_NO_PROC):
            if obj == spent:
                return cls, (spent,)
    for kind, null, to_id, rebuild in ((MPI.Comm, MPI.COMM_NULL, _core.mpi_comm_id, _communicator_from_id),
                                       (MPI.Datatype, MPI.DATATYPE_NULL, _core.mpi_type_id, _datatype_from_id),
                                       (MPI.Request, MPI.REQUEST_NULL, _core.mpi_request_id, _request_from_id),
                                       (MPI.File, MPI.FILE_NULL, _core.mpi_file_id, _file_from_id),
                                       (MPI.Win, MPI.WIN_NULL, _core.mpi_win_id, _window_from_id)):
        if isinstance(obj, kind):
            if obj == null:
                return cls, ()
            ident = to_id(obj)
            if ident and kind is MPI.Comm:
                return _communicator, (cls, ident, _errhandler_name(obj), _attributes(obj))
            if ident and kind in (MPI.Win, MPI.Datatype):
                return _rebuilt_with_attributes, (rebuild, cls, ident, _attributes(obj))
            if ident:
                return rebuild, (cls, ident)
            if kind is MPI.Datatype:
                raise UnsupportedStateError("a derived datatype is recorded when it is "
                                            "committed (Commit()), and this one never was")
            break
    raise UnsupportedStateError(f"this kind of MPI object ({cls.__name__}) is not "
                                f"recorded by pyckpt (supported: communicators, datatypes, requests, files, "
                                f"groups, infos, RMA windows, predefined objects such as MPI.SUM)")


# --- RMA window memory -------------------------------------------------------------
# The memory of a window (win.tomemory(), win.Shared_query(rank), or a
# window itself, which exports its memory) is rebuilt as the same place of
# the window created again after a restart: NumPy arrays over it stay views
# of the window's memory. Its content is restored with the window
# (pyckpt.mpi).

def _window_memory(ident, rank, offset, size, readonly):
    address = _core.mpi_window_address(ident, rank, offset)
    if address is None:
        raise CheckpointFileError(f"RMA window {ident} of the checkpoint was not re-created")
    return _mpi().memory.fromaddress(address, size, readonly)


def _freed_window_memory(size):
    # The program may not use the memory of a freed window: a stand-in of
    # its size keeps its views valid objects.
    return bytearray(size)


def _window_segment(owner):
    """(address, size, readonly) of the memory an mpi4py memory object or
    window exports."""
    memory = owner.tomemory() if isinstance(owner, _mpi().Win) else owner
    return memory.address, len(memory), memory.readonly


def _describe_window_memory(owner):
    """heap.register_buffer_owner: a window's memory, or None (captured by
    content)."""
    if not _core.mpi_loaded():
        return None
    address, size, readonly = _window_segment(owner)
    found = _core.mpi_window_locate(address, size) if size else None
    if found is None:
        return None
    if found[0] == 0:  # the window was freed: its memory must not be read
        return address, _freed_window_memory, (size,)
    return address, _window_memory, (*found, size, readonly)



def _status(source, tag, error, count):
    MPI = _mpi()
    status = MPI.Status()
    status.Set_source(source)
    status.Set_tag(tag)
    status.Set_error(error)
    status.Set_elements(MPI.BYTE, count)
    return status


def _reduce_status(status):
    return _status, (status.Get_source(), status.Get_tag(), status.Get_error(), status.Get_elements(_mpi().BYTE))


def _memory_over(obj, offset, length, readonly):
    whole = _mpi().memory.frombuffer(obj, readonly=readonly)
    return whole if (offset, length) == (0, len(whole)) else whole[offset:offset + length]


def _reduce_memory(mem):
    """An MPI.memory: the memory of an RMA window (Win.tomemory(),
    Win.Shared_query(peer), made before or after the window was freed), the
    same place in the re-created window; over another object's buffer
    (memory.frombuffer, a slice of another memory), that object and where
    in its buffer; released (Free_mem) or empty, an empty memory; a block of
    MPI.Alloc_mem, its contents (pyckpt.buffers), allocated again with
    MPI.Alloc_mem at restart."""
    MPI = _mpi()
    # Before the buffer of mem.obj: a window's memory keeps the window alive
    # as its obj, but Shared_query(peer) lies in the peer's segment, not in
    # the window's buffer (this rank's own segment).
    window = _describe_window_memory(mem) if mem.obj is None or isinstance(mem.obj, MPI.Win) else None
    if window is not None:
        return window[1:]
    if isinstance(mem.obj, MPI.Win) and len(mem) == 0:  # e.g. Shared_query(peer) of an empty segment
        return MPI.memory, ()
    if mem.obj is not None:
        whole = MPI.memory.frombuffer(mem.obj, readonly=True)
        offset = mem.address - whole.address
        if offset < 0 or offset + len(mem) > len(whole):
            raise UnsupportedStateError(
                f"an MPI.memory of {len(mem)} bytes at {mem.address:#x} that lies outside the buffer of the "
                f"{type(mem.obj).__name__} it keeps alive (e.g. Win.Shared_query(peer) of a window pyckpt does not "
                f"record): it cannot be rebuilt after a restart")
        return _memory_over, (mem.obj, offset, len(mem), mem.readonly)
    if mem.address == 0:
        return MPI.memory, ()
    size = _core.mpi_alloc_mem_size(mem.address) if _core.mpi_loaded() else None
    if size != len(mem):
        raise UnsupportedStateError(
            f"an MPI.memory of {len(mem)} bytes at {mem.address:#x} that is not a block of MPI.Alloc_mem (made by "
            f"MPI.memory.fromaddress, or outside a job run with libpyckpt_mpi.so preloaded): only Alloc_mem memory "
            f"is captured by content")
    return buffers.owner_from_contents, (buffers.MemoryContents.of(mem, "mpi_alloc_mem", None),)


def _alloc_mem(nbytes, _args):
    return _mpi().Alloc_mem(nbytes)


_registered = False


def register_reducers():
    """Teaches the heap pickler mpi4py's objects (before a capture or a
    restart, once mpi4py's import is complete)."""
    global _registered
    if _registered:
        return
    _registered = True
    MPI = _mpi()
    for cls in (MPI.Comm, MPI.Datatype, MPI.Request, MPI.Op, MPI.Group, MPI.Info, MPI.Errhandler, MPI.Message,
                MPI.Win, MPI.File, *_sentinel_types(MPI)):
        heap.register_reduce(cls, _reduce_handle)
    heap.register_reduce(MPI.Status, _reduce_status)
    state.register_root_extension("mpi_keyval_functions", _KeyvalFunctions)
    heap.register_reduce(MPI.memory, _reduce_memory)
    buffers.register_owner(MPI.memory)
    container.register_allocator("mpi_alloc_mem", _alloc_mem)
    for owner in (MPI.memory, MPI.Win):
        heap.register_buffer_owner(owner, _describe_window_memory)
