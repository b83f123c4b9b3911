"""mpi4py objects in the heap.

Handles are process-local; they are pickled as libpyckpt_mpi.so's stable ids
and turned back into handles of the restarted job (pyckpt._core converts
between mpi4py objects and handles with mpi4py's public py2f/f2py).
Predefined objects (MPI.COMM_WORLD, MPI.DOUBLE, MPI.SUM, ...) are pickled by
name, so identity (`comm is MPI.COMM_WORLD`) survives; so are the buffer
sentinels MPI.IN_PLACE and MPI.BOTTOM, whose classes mpi4py does not export.
"""
from . import _core, heap
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


def _reduce_handle(obj):
    MPI = _mpi()
    name = _predefined_names().get(id(obj))
    if name is not None:
        return getattr, (MPI, name)
    if not _core.mpi_loaded():
        raise UnsupportedStateError(f"{type(obj).__name__} objects are captured only in a job run with "
                                    f"libpyckpt_mpi.so preloaded")
    cls = type(obj)
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
                                       (MPI.File, MPI.FILE_NULL, _core.mpi_file_id, _file_from_id)):
        if isinstance(obj, kind):
            if obj == null:
                return cls, ()
            ident = to_id(obj)
            if ident:
                return rebuild, (cls, ident)
            break
    raise UnsupportedStateError(f"cannot capture {obj!r}: this kind of MPI object ({cls.__name__}) is not "
                                f"recorded by pyckpt (supported: communicators, datatypes, requests, files, "
                                f"predefined objects such as MPI.SUM)")


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
