"""Checkpoint/restart of mpi4py jobs: the Python side of libpyckpt_mpi.so.

The preloaded interposer (mpi_wrap) does the MPI part: it counts messages,
runs the consistent cut, drains in-flight messages into channel state and
re-creates communicators at restart. This module is what it calls back:

- attach(): run by the interposer at the end of MPI_Init (mpi4py's import),
  in every rank. Registers the capture/restore callbacks, arms the triggers
  (signal, interval, `pyckpt request`), and routes pyckpt.checkpoint() to a
  collective checkpoint.
- the capture callback runs on every rank inside the cut, i.e. inside the
  application's MPI call that was at a safe point (a blocked Recv, the entry
  of an Allreduce, ...). It captures the frames down to the one making that
  call, positioned to make it again after a restart (mpi_wrap makes the
  re-issued call complete as the cut requires), pickles the heap with
  mpi4py objects as stable handle ids, and all ranks write one checkpoint
  file collectively.
- resume_rank(): `python3 -m pyckpt resume-rank -- <command>`, which the
  interposer exec's instead of the application when PYCKPT_DIR has a
  checkpoint to resume (doc/mpi.md, "Restart").

Environment (set by `pyckpt mpirun` or by hand with `mpirun -x`):
PYCKPT_DIR (default ./pyckpt.d), PYCKPT_INTERVAL (seconds), PYCKPT_SIGNAL
(default SIGUSR1; "none" for no signal), PYCKPT_KEEP (default 2),
PYCKPT_RESTART (auto | never).
"""
import ctypes
import json
import os
import signal
import sys
import threading
import time

import numpy as np

from . import _core, heap, process
from .errors import CheckpointError, CheckpointFileError, UnsupportedStateError

MPI_STATE_BLOB = "mpi"           # mpi_wrap's state bytes (lineage, channel messages)
REQUESTS_BLOB = "mpi_requests"   # pending receives: request id -> (array key, byte offset)
CHANNEL_BLOB = "mpi_channel"     # channel state, for `pyckpt inspect` (JSON list)
REQUEST_FILE = ".request"        # `pyckpt request DIR` creates it


class _ChannelMessage(ctypes.Structure):
    _fields_ = [("comm", ctypes.c_uint64), ("source", ctypes.c_int32), ("dest", ctypes.c_int32),
                ("tag", ctypes.c_int32), ("bytes", ctypes.c_uint64)]


class _RequestInfo(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("is_recv", ctypes.c_int32), ("completed", ctypes.c_int32),
                ("buf", ctypes.c_void_p), ("bytes", ctypes.c_uint64)]


_CAPTURE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64)
_RESTORE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


def _interposer():
    """libpyckpt_mpi.so's C ABI, as loaded in this process (preloaded)."""
    lib = ctypes.CDLL(None)
    if not hasattr(lib, "pyckpt_mpi_set_callbacks"):
        raise CheckpointError("libpyckpt_mpi.so is not loaded in this process: run the job with "
                              "`pyckpt mpirun` or `mpirun -x LD_PRELOAD=$(pyckpt preload-path) ...`")
    handle = ctypes.c_void_p
    for name, res, args in [
        ("pyckpt_mpi_set_callbacks", ctypes.c_int, [_CAPTURE_FN, _RESTORE_FN, ctypes.c_void_p]),
        ("pyckpt_mpi_request_checkpoint", None, []),
        ("pyckpt_mpi_install_signal_trigger", ctypes.c_int, [ctypes.c_int]),
        ("pyckpt_mpi_checkpoint", ctypes.c_int, []),
        ("pyckpt_mpi_state_save", ctypes.c_int, [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]),
        ("pyckpt_mpi_free", None, [ctypes.c_void_p]),
        ("pyckpt_mpi_state_restore", ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t]),
        ("pyckpt_mpi_comm_id", ctypes.c_uint64, [handle]),
        ("pyckpt_mpi_comm_from_id", handle, [ctypes.c_uint64]),
        ("pyckpt_mpi_type_id", ctypes.c_uint64, [handle]),
        ("pyckpt_mpi_type_from_id", handle, [ctypes.c_uint64]),
        ("pyckpt_mpi_request_id", ctypes.c_uint64, [handle]),
        ("pyckpt_mpi_request_from_id", handle, [ctypes.c_uint64]),
        ("pyckpt_mpi_pending_requests", ctypes.c_int,
         [ctypes.POINTER(ctypes.POINTER(_RequestInfo)), ctypes.POINTER(ctypes.c_size_t)]),
        ("pyckpt_mpi_request_repost", ctypes.c_int, [ctypes.c_uint64, ctypes.c_void_p]),
        ("pyckpt_mpi_channel_messages", ctypes.c_int,
         [ctypes.POINTER(ctypes.POINTER(_ChannelMessage)), ctypes.POINTER(ctypes.c_size_t)]),
        ("pyckpt_mpi_last_error", ctypes.c_char_p, []),
    ]:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


class _Job:
    """This rank's attachment to the interposer."""
    lib = None
    rank = 0
    size = 1
    directory = None
    keep = 2
    callbacks = None     # the ctypes callback objects, kept alive
    api_state = None     # frames captured by pyckpt.checkpoint() for the cut it starts
    resume = None        # _Resume while this rank resumes a checkpoint
    command = None       # the application's command line (resume_rank(): not this process's argv)


_job = _Job()


def _check(rc, what):
    if rc != 0:
        raise CheckpointError(f"{what}: {_job.lib.pyckpt_mpi_last_error().decode(errors='replace')}")


def attached():
    return _job.lib is not None


def attach(rank, size):
    """Called by libpyckpt_mpi.so at the end of MPI_Init in a Python rank,
    i.e. in the middle of mpi4py.MPI's import: nothing here may use mpi4py
    (its module is still being initialised)."""
    if attached():
        return
    _job.lib = _interposer()
    _job.rank, _job.size = rank, size
    _job.directory = os.path.abspath(os.environ.get("PYCKPT_DIR") or process.DEFAULT_DIRECTORY)
    _job.keep = int(os.environ.get("PYCKPT_KEEP", "2"))
    _job.callbacks = (_CAPTURE_FN(_on_capture), _RESTORE_FN(_on_restore))
    _check(_job.lib.pyckpt_mpi_set_callbacks(*_job.callbacks, None), "registering the checkpoint callbacks")
    process.configure(_job.directory, _job.keep)
    process.set_collective_checkpoint(checkpoint)
    _arm_triggers()


def _arm_triggers():
    name = os.environ.get("PYCKPT_SIGNAL", "SIGUSR1")
    if name.lower() != "none":
        signum = signal.Signals[name if name.upper().startswith("SIG") else "SIG" + name.upper()]
        _check(_job.lib.pyckpt_mpi_install_signal_trigger(int(signum)), f"installing the {signum.name} trigger")
    interval = float(os.environ.get("PYCKPT_INTERVAL") or 0)
    if _job.rank == 0:  # any one rank's request starts a checkpoint on all
        threading.Thread(target=_watch, args=(interval,), name="pyckpt-trigger", daemon=True).start()


def _watch(interval):
    """Rank 0: requests a checkpoint every `interval` seconds (if > 0) and
    whenever `pyckpt request DIR` drops its request file."""
    request_file = os.path.join(_job.directory, REQUEST_FILE)
    due = time.monotonic() + interval if interval > 0 else None
    while True:
        time.sleep(min(interval, 0.1) if interval > 0 else 0.1)
        if due is not None and time.monotonic() >= due:
            due = time.monotonic() + interval
            _job.lib.pyckpt_mpi_request_checkpoint()
        if os.path.exists(request_file):
            try:
                os.unlink(request_file)
            except OSError:
                continue  # another rank's watcher or a restart took it
            _job.lib.pyckpt_mpi_request_checkpoint()


def request(directory):
    """`pyckpt request DIR`: asks the job checkpointing into DIR for a checkpoint."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, REQUEST_FILE), "w") as f:
        f.write(f"{time.time()}\n")


def checkpoint(directory=None):
    """pyckpt.checkpoint() in an MPI job: collective over all ranks. Returns
    False after the checkpoint is committed, True in the restarted job."""
    if directory is not None and os.path.abspath(directory) != _job.directory:
        raise CheckpointError(f"an MPI job checkpoints into its PYCKPT_DIR ({_job.directory}), "
                              f"not {directory}")
    state = _core.capture_stack(process.session_base())
    if state is True:
        return True
    _job.api_state = state
    try:
        _check(_job.lib.pyckpt_mpi_checkpoint(), "checkpoint")
    finally:
        _job.api_state = None
    return False


# --- capture (inside the cut, on every rank) -----------------------------------

PYCKPT_MPI_EAGAIN = 6  # pyckpt_mpi.h: retry at the next safe point


def _on_capture(_user, epoch):
    try:
        return PYCKPT_MPI_EAGAIN if _write_checkpoint(epoch) == _AGAIN else 0
    except BaseException as exc:  # noqa: B902 -- a ctypes callback must not raise
        print(f"pyckpt: rank {_job.rank}: checkpoint failed: {exc}", file=sys.stderr, flush=True)
        return 1


def _pending_requests():
    infos = ctypes.POINTER(_RequestInfo)()
    count = ctypes.c_size_t()
    _check(_job.lib.pyckpt_mpi_pending_requests(ctypes.byref(infos), ctypes.byref(count)), "listing requests")
    return [infos[i] for i in range(count.value)]


def _channel_messages():
    listed = ctypes.POINTER(_ChannelMessage)()
    count = ctypes.c_size_t()
    _check(_job.lib.pyckpt_mpi_channel_messages(ctypes.byref(listed), ctypes.byref(count)), "listing the channel")
    return [{name: getattr(listed[i], name) for name, _ in _ChannelMessage._fields_} for i in range(count.value)]


def _locate_receives(requests, arrays):
    """Pending receives -> (array key, byte offset): the restarted job re-posts
    them into the restored arrays."""
    bounds = [(key, *np.byte_bounds(a)) for key, a in arrays]
    located = {}
    for req in requests:
        if not req.is_recv or req.completed:
            continue
        end = req.buf + req.bytes
        key = next((k for k, lo, hi in bounds if lo <= req.buf and end <= hi), None)
        if key is None:
            raise UnsupportedStateError(
                f"a nonblocking receive (request {req.id}, {req.bytes} bytes) is pending into memory that is not "
                f"a NumPy array of the program (e.g. mpi4py's lowercase irecv()); complete it before the "
                f"checkpoint or receive into a NumPy array with Irecv")
        located[str(req.id)] = (key, req.buf - dict((k, lo) for k, lo, _ in bounds)[key])
    return located


def _world():
    """MPI.COMM_WORLD, once mpi4py's import is complete (in the callbacks;
    their MPI calls are internal: not counted, not cut)."""
    return _mpi().COMM_WORLD


def _world_max(value):
    """The maximum of an integer over all ranks. Buffer-based on purpose: the
    callback may have interrupted one of mpi4py's pickle-based collectives,
    whose private communicator and tags must not be used re-entrantly."""
    buf = np.array([value], dtype=np.int64)
    _world().Allreduce(_mpi().IN_PLACE, buf, op=_mpi().MAX)
    return int(buf[0])


# mpi4py methods made of several point-to-point operations (pickle-based
# reductions run as a p2p tree; sendrecv posts an isend, then receives). A cut
# inside one would re-issue the operations already done: the cut waits for a
# safe point outside them.
_COMPOUND_METHODS = frozenset({"reduce", "allreduce", "scan", "exscan", "sendrecv"})


def _in_compound_call(state):
    """Whether the innermost captured frame is calling one of them."""
    MPI = _mpi()
    stack = state[1][-1][5]
    for obj in reversed(stack):
        name = getattr(obj, "__name__", None)
        if name not in _COMPOUND_METHODS:
            continue
        owner = getattr(obj, "__objclass__", None) or type(getattr(obj, "__self__", None))
        if isinstance(owner, type) and issubclass(owner, MPI.Comm):
            return True
    return False


_OK, _AGAIN, _FAILED = 0, 1, 2


def _write_checkpoint(epoch):
    started = time.perf_counter()
    _register_reducers()
    local, error, outcome = None, None, _OK
    try:
        state = _job.api_state
        trigger = "api" if state is not None else "preemptive"
        if state is None:
            state = _core.capture_stack(process.session_base(), reissue_c_call=True)
        if trigger == "preemptive" and _in_compound_call(state):
            outcome = _AGAIN
        else:
            data, arrays, summary = process.capture_state(state, True if trigger == "api" else None)
            located = _locate_receives(_pending_requests(), arrays)
            local = (trigger, data, arrays, summary, located)
    except Exception as exc:  # agreed below, then re-raised on this rank
        error, outcome = exc, _FAILED
    outcome = _world_max(outcome)
    if error is not None:
        raise error
    if outcome == _FAILED:
        raise CheckpointError("capturing the process state failed on another rank (see its message)")
    if outcome == _AGAIN:
        return _AGAIN
    trigger, data, arrays, summary, located = local
    MPI = _mpi()
    epoch = _world_max(max(int(epoch), process.next_epoch(_job.directory)))
    blob = ctypes.c_void_p()
    size = ctypes.c_size_t()
    _check(_job.lib.pyckpt_mpi_state_save(ctypes.byref(blob), ctypes.byref(size)), "saving the MPI state")
    try:
        mpi_state = ctypes.string_at(blob, size.value)
    finally:
        _job.lib.pyckpt_mpi_free(blob)
    info = process.commit_state(_job.directory, epoch, trigger, data, arrays, summary, comm=_world(),
                                extra_blobs={MPI_STATE_BLOB: mpi_state,
                                             REQUESTS_BLOB: json.dumps(located).encode(),
                                             CHANNEL_BLOB: json.dumps(_channel_messages()).encode()},
                                attributes={"command": _job.command or sys.orig_argv[1:], "keep": _job.keep,
                                            # for `pyckpt restart --mpirun`: go on checkpointing the same way
                                            "interval": os.environ.get("PYCKPT_INTERVAL", ""),
                                            "signal": os.environ.get("PYCKPT_SIGNAL", "")},
                                rank_attributes={"host": MPI.Get_processor_name()})
    if _job.rank == 0 and os.environ.get("PYCKPT_VERBOSE"):
        print(f"pyckpt: checkpoint {epoch} ({trigger}) committed: {info['path']}, "
              f"{time.perf_counter() - started:.3f} s", file=sys.stderr, flush=True)


# --- mpi4py objects in the heap ---------------------------------------------------
#
# Handles are process-local; they are pickled as the interposer's stable ids
# and turned back into handles of the restarted job. Predefined objects
# (MPI.COMM_WORLD, MPI.DOUBLE, MPI.SUM, ...) are pickled by name, so identity
# (`comm is MPI.COMM_WORLD`) survives.

def _mpi():
    from mpi4py import MPI
    return MPI


_predefined = None


def _predefined_names():
    global _predefined
    if _predefined is None:
        MPI = _mpi()
        kinds = (MPI.Comm, MPI.Datatype, MPI.Op, MPI.Request, MPI.Group, MPI.Info, MPI.Errhandler, MPI.Message)
        _predefined = {id(v): k for k, v in vars(MPI).items() if k.isupper() and isinstance(v, kinds)}
    return _predefined


def _with_handle(cls, handle):
    """A new mpi4py object of class cls wrapping a C handle (not owned: mpi4py
    will not free it)."""
    MPI = _mpi()
    obj = cls()
    ctypes.c_void_p.from_address(MPI._addressof(obj)).value = handle
    return obj


def _comm_from_id(cls, ident):
    handle = _job.lib.pyckpt_mpi_comm_from_id(ident)
    if not handle:
        raise CheckpointFileError(f"communicator {ident} of the checkpoint was not re-created")
    return _with_handle(cls, handle)


def _type_from_id(cls, ident):
    handle = _job.lib.pyckpt_mpi_type_from_id(ident)
    if not handle:
        raise CheckpointFileError(f"datatype {ident} of the checkpoint was not re-created")
    return _with_handle(cls, handle)


def _request_from_id(cls, ident):
    # A receive pending at the cut gets its handle when it is re-posted into
    # its restored buffer (see _repost); the others are complete already.
    obj = _with_handle(cls, _job.lib.pyckpt_mpi_request_from_id(ident))
    if _job.resume is not None:
        _job.resume.requests.append((obj, ident))
    return obj


def _status(source, tag, error, count):
    status = _mpi().Status()
    status.Set_source(source)
    status.Set_tag(tag)
    status.Set_error(error)
    status.Set_elements(_mpi().BYTE, count)
    return status


def _reduce_handle(obj):
    MPI = _mpi()
    name = _predefined_names().get(id(obj))
    if name is not None:
        return getattr, (MPI, name)
    lib = _job.lib
    if lib is None:
        raise UnsupportedStateError(f"{type(obj).__name__} objects are captured only in a job run with "
                                    f"libpyckpt_mpi.so preloaded")
    handle = MPI._handleof(obj)
    cls = type(obj)
    if isinstance(obj, MPI.Comm):
        if obj == MPI.COMM_NULL:
            return cls, ()
        ident = lib.pyckpt_mpi_comm_id(handle)
        if ident:
            return _comm_from_id, (cls, ident)
    elif isinstance(obj, MPI.Datatype):
        if obj == MPI.DATATYPE_NULL:
            return cls, ()
        ident = lib.pyckpt_mpi_type_id(handle)
        if ident:
            return _type_from_id, (cls, ident)
    elif isinstance(obj, MPI.Request):
        if obj == MPI.REQUEST_NULL:
            return cls, ()
        ident = lib.pyckpt_mpi_request_id(handle)
        if ident:
            return _request_from_id, (cls, ident)
    raise UnsupportedStateError(f"cannot capture {obj!r}: this kind of MPI object ({cls.__name__}) is not "
                                f"recorded by pyckpt (supported: communicators, datatypes, requests, "
                                f"predefined objects such as MPI.SUM)")


def _reduce_status(status):
    return _status, (status.Get_source(), status.Get_tag(), status.Get_error(),
                     status.Get_elements(_mpi().BYTE))


_reducers_registered = False


def _register_reducers():
    """Teaches the heap pickler mpi4py's objects (before a capture or a
    restart, when mpi4py's import is complete)."""
    global _reducers_registered
    if _reducers_registered:
        return
    _reducers_registered = True
    MPI = _mpi()
    for cls in (MPI.Comm, MPI.Datatype, MPI.Request, MPI.Op, MPI.Group, MPI.Info, MPI.Errhandler, MPI.Message,
                MPI.Win, MPI.File):
        heap.register_reduce(cls, _reduce_handle)
    heap.register_reduce(MPI.Status, _reduce_status)


# --- restart ---------------------------------------------------------------------

class _Resume:
    def __init__(self, reader):
        self.reader = reader
        self.error = None
        self.requests = []   # (mpi4py Request, id) rebuilt by the unpickler


def _on_restore(_user):
    """End of MPI_Init in a resuming rank: re-create the MPI state."""
    resume = _job.resume
    if resume is None:
        return 0
    try:
        reader = resume.reader
        size = _job.size
        if reader.world_size != size:
            raise CheckpointFileError(
                f"{reader.file} was written by {reader.world_size} MPI ranks, this job has {size}: restart it "
                f"with -np {reader.world_size} (resharding to another rank count is not supported yet)")
        data = reader.read_blob(_job.rank, MPI_STATE_BLOB)
        _check(_job.lib.pyckpt_mpi_state_restore(data, len(data)), f"{reader.file}: restoring the MPI state")
        return 0
    except BaseException as exc:  # noqa: B902 -- reported by resume_rank()
        resume.error = exc
        return 1


def _repost(resume, arrays_by_key):
    located = json.loads(resume.reader.read_blob(_job.rank, REQUESTS_BLOB))
    for ident, (key, offset) in located.items():
        array = arrays_by_key[key]
        _check(_job.lib.pyckpt_mpi_request_repost(int(ident), array.ctypes.data + offset),
               f"re-posting receive request {ident}")
    MPI = _mpi()
    for obj, ident in resume.requests:
        ctypes.c_void_p.from_address(MPI._addressof(obj)).value = _job.lib.pyckpt_mpi_request_from_id(ident)


def resume_rank(reader, command):
    """Body of `python3 -m pyckpt resume-rank -- COMMAND...` in each rank:
    resumes this rank of `reader`'s checkpoint if it was written by a job
    running `command`, else runs `command` from the start."""
    directory = os.environ["PYCKPT_RESUME_DIR"]
    recorded = list(reader.attributes.get("command", []))
    if recorded != list(command):
        print(f"pyckpt: {directory} holds a checkpoint of `{' '.join(recorded)}`, not of "
              f"`{' '.join(command)}`: running it from the start", file=sys.stderr, flush=True)
        os.environ["PYCKPT_RESTART"] = "never"
        os.execv(sys.executable, [sys.executable, *command])
    _job.resume = _Resume(reader)
    # Checkpoints of the resumed job record the application's command, not
    # `-m pyckpt resume-rank -- ...`, so that the next restart resumes too.
    _job.command = list(command)
    from mpi4py import MPI  # noqa: F401 -- MPI_Init: attach() and _on_restore() run in it
    if not attached():
        raise CheckpointError("libpyckpt_mpi.so did not attach to this interpreter at MPI_Init")
    if _job.resume.error is not None:
        raise _job.resume.error
    _register_reducers()
    return process.restart(reader, rank=_job.rank, after_load=lambda arrays: _repost(_job.resume, arrays))
