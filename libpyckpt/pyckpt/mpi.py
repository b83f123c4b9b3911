"""Checkpoint/restart of mpi4py jobs: what libpyckpt_mpi.so calls up into.

The preloaded interposer (mpi_wrap) does the MPI part: it counts messages,
runs the consistent cut, drains in-flight messages into channel state, agrees
on each checkpoint's outcome and re-creates communicators at restart. This
module is reached through pyckpt._core's binding of its C ABI:

- attach(): called by libpyckpt's Python-rank preload library at the end of
  MPI_Init (mpi4py's import) in every rank. Registers the capture and write
  callbacks, arms the triggers (signal, interval, `pyckpt request`), routes
  pyckpt.checkpoint() to a collective checkpoint and the interpreter's safe
  points to the job, and in a resuming rank restores the interposer's state.
- safe points: a rank that computes in Python is woken by the interposer's
  thread when a checkpoint is pending; at its next line the stack is
  captured there and the checkpoint served (_on_safe_point), so no rank
  delays a checkpoint by computing (doc/mpi.md, "Bounded latency").
- capture (inside the cut, every rank, local): uses the frames captured at
  the Python line the rank serves from, or else captures the frames down to
  the one making the MPI call that was at a safe point, positioned to make
  it again after a restart (mpi_wrap makes the re-issued call complete as
  the cut requires), and pickles the heap with mpi4py objects as stable
  handle ids (pyckpt.mpi_handles). Returns False to ask for a retry at the
  next safe point.
- write (inside the cut, every rank, only if every capture succeeded): all
  ranks write one checkpoint file collectively.
- resume_rank(): `python3 -m pyckpt resume-rank -- <command>`, which the
  preload library exec's instead of the application when the checkpoint
  directory has a checkpoint to resume (doc/mpi-jobs.md, "Restart").

Configuration: pyckpt.settings (PYCKPT_DIR, PYCKPT_INTERVAL, PYCKPT_SIGNAL,
PYCKPT_KEEP, PYCKPT_RESTART).
"""
import atexit
import ctypes
import json
import os
import signal
import sys
import time

import numpy as np

from . import _core, commit, mpi_handles, session, settings, slurm, state
from .container import ArrayLoader
from .errors import CheckpointError, CheckpointFileError, UnsupportedStateError
from .triggers import WAKE_SIGNAL  # the handler the interposer's waker runs (see attach)

MPI_STATE_BLOB = "mpi"           # mpi_wrap's state bytes (lineage, channel messages)
# Requests posted again after a restart (pending receives, nonblocking
# collectives the cut fell before): id -> (array key, byte offset) of the
# receive buffer, or None if it has none; {"reissued": "pending"|"complete"}
# for a receive of mpi4py's lowercase irecv, which the heap makes again.
REQUESTS_BLOB = "mpi_requests"
CHANNEL_BLOB = "mpi_channel"     # channel state, for `pyckpt inspect` (JSON list)
WINDOWS_BLOB = "mpi_windows"     # RMA windows: id -> where their memory comes from at restart
KEYVALS_BLOB = "mpi_keyvals"     # the program's attribute keyvals, [kind, number, nopython] (JSON)
WIN_CREATE = 1                   # pyckpt_mpi_window_info.flavor: MPI_Win_create (the program's memory)
RESUME_FAILED_EXIT = 2  # MPI_Abort's code when a rank cannot resume (the CLI's error status)


class _Job:
    """This rank's attachment to the interposer."""
    attached = False
    rank = 0
    size = 1
    directory = None
    keep = settings.DEFAULT_KEEP
    api_state = None     # frames captured by pyckpt.checkpoint() for the cut it starts
    api_asynchronous = None  # its `asynchronous` argument (None: PYCKPT_ASYNC decides)
    line_state = None    # frames captured at the Python line this rank serves a cut from
    line_refused = False  # said once that this rank's stack cannot be captured at a line
    captured = None      # what capture() hands to write()
    resume = None        # _Resume while this rank resumes a checkpoint
    command = None       # the application's command line (resume_rank(): not this process's argv)
    requeue_declined = False  # rank 0 said the job is not requeued (--pyckpt-max-restarts reached)
    window_blocks = []   # MPI.Alloc_mem blocks of windows re-created over them (_recreate_windows)


_job = _Job()


def attach():
    """Called at the end of MPI_Init in a Python rank, i.e. in the middle of
    mpi4py.MPI's import: nothing here may use mpi4py (its module is still
    being initialised)."""
    if _job.attached:
        return
    _job.rank, _job.size = _core.mpi_world()
    _job.directory = os.path.abspath(settings.directory())
    _job.keep = settings.keep()
    _core.mpi_set_capture_callbacks(_capture, _write)
    _core.mpi_wrap_compound_methods(_mpi4py_comm_types())
    _job.attached = True
    session.configure(_job.directory, _job.keep)
    session.attach_job(session.Job(checkpoint, _on_safe_point), running=_job.resume is None)
    # The interposer's waker thread makes the main thread run this handler
    # when a checkpoint is pending while the rank computes; the safe point
    # it asks for serves the checkpoint at the next line (_on_safe_point).
    # No OS signal is involved: the number only names the handler.
    signal.signal(WAKE_SIGNAL, lambda _signum, _frame: _core.request_safe_point())
    _core.mpi_enable_wake(int(WAKE_SIGNAL))
    atexit.register(_core.mpi_disable_wake)  # mpi4py finalises MPI after the interpreter
    # The triggers are the interposer's, in C: they work while a rank waits
    # in MPI or computes in Python (a Python thread could be starved of the
    # GIL for seconds by the computing main thread).
    signal_name = settings.signal_name()
    if signal_name:
        _core.mpi_install_signal_trigger(int(signal.Signals[signal_name]))
    if _job.rank == 0:  # any one rank's request starts a checkpoint on all
        _core.mpi_set_triggers(_core.CheckpointDir(_job.directory).request_path, settings.interval() or 0)
        if settings.end_file():
            # At the interpreter's exit, not when a signal kills it: tells
            # `pyckpt mpirun --slurm-requeue` that the program ended (mpirun
            # ended by Slurm may exit 0 too).
            atexit.register(slurm.report_program_end, settings.end_file())
        if settings.slurm_requeue_max_restarts() is not None:
            # No supervisor marks the run finished (the SPANK plugin's
            # --pyckpt-requeue): rank 0 does, when its program ends by itself.
            slurm.mark_complete_at_exit(_job.directory)
    if _job.resume is not None:
        _restore_interposer(_job.resume)


def _mpi4py_comm_types():
    """(mpi4py.MPI.Comm, mpi4py.MPI.Intracomm) while mpi4py.MPI is still
    being imported (attach runs inside its MPI_Init, before the module is in
    sys.modules): its types are ready by then, Comm a subclass of object and
    Intracomm of Comm (scan and exscan are Intracomm's methods)."""
    comm = next((cls for cls in object.__subclasses__()
                 if cls.__module__ == "mpi4py.MPI" and cls.__name__ == "Comm"), None)
    intracomm = next((cls for cls in comm.__subclasses__() if cls.__name__ == "Intracomm"), None) if comm else None
    if intracomm is None:
        raise CheckpointError("mpi4py.MPI.Comm and Intracomm not found at MPI_Init: is this mpi4py 3.1?")
    return comm, intracomm


def checkpoint(directory=None, asynchronous=None):
    """pyckpt.checkpoint() in an MPI job: collective over all ranks (every
    rank passes the same arguments). Returns False after the checkpoint is
    committed -- asynchronous (default: PYCKPT_ASYNC): once every rank's data
    is copied; pyckpt.wait() waits for the commit --, True in the restarted
    job."""
    if directory is not None and os.path.abspath(directory) != _job.directory:
        raise CheckpointError(f"an MPI job checkpoints into its PYCKPT_DIR ({_job.directory}), "
                              f"not {directory}")
    captured_state = _core.capture_stack(session.base())
    if captured_state is True:
        return True
    _job.api_state, _job.api_asynchronous = captured_state, asynchronous
    try:
        _core.mpi_checkpoint()
    finally:
        _job.api_state = _job.api_asynchronous = None
    return False


def _on_safe_point(captured_state):
    """Interpreter safe point, asked for by the interposer's waker while a
    checkpoint is pending and this rank runs Python code: the cut may be
    taken here, at this line."""
    if _core.mpi_compound_active():
        # A line of a Python function that an mpi4py compound call runs (the
        # operation of a pickled reduction): the cut falls at that call's
        # next MPI operation, which rolls the call back to its start.
        return
    if isinstance(captured_state, BaseException):
        # Not at a line (e.g. inside a coroutine): the checkpoint waits for
        # this rank's next MPI call instead.
        if not _job.line_refused:
            _job.line_refused = True
            print(f"pyckpt: rank {_job.rank}: checkpoints wait for this rank's MPI calls: {captured_state}",
                  file=sys.stderr, flush=True)
        return
    _job.line_state = captured_state
    try:
        _core.mpi_poll()
    finally:
        _job.line_state = None


# --- inside the cut, on every rank ---------------------------------------------

def _locate_reposted(requests, arrays, reissued):
    """Receive buffers of the requests a restarted job posts again -- pending
    receives, nonblocking collectives the cut fell before (their send
    buffers are saved by the interposer) -- as (array key, byte offset) in
    the captured NumPy arrays, None for a collective without one here.
    A receive of mpi4py's lowercase irecv (`reissued`) is made again by the
    heap, which re-issues the call (pyckpt.mpi_handles): {"reissued":
    "pending"}, or "complete" if its message arrived before the cut."""
    bounds = [(key, *np.byte_bounds(a)) for key, a in arrays]
    located = {}
    for req in requests:
        if req.id in reissued:
            located[str(req.id)] = {"reissued": "complete" if req.completed else "pending"}
            continue
        if req.completed:
            continue
        if req.buf is None:
            located[str(req.id)] = None
            continue
        end = req.buf + req.bytes
        found = next(((k, lo) for k, lo, hi in bounds if lo <= req.buf and end <= hi), None)
        if found is None:
            what = "receive" if req.is_recv else "collective"
            raise UnsupportedStateError(
                f"a nonblocking {what} (request {req.id}, {req.bytes} bytes) is pending into memory that is not a "
                f"NumPy array of the program, nor the buffer of an mpi4py irecv() request the program holds; "
                f"complete it before the checkpoint or receive into a NumPy array")
        located[str(req.id)] = (found[0], req.buf - found[1])
    return located


def _bytes_at(address, size):
    """A uint8 array over size bytes of memory at address (no copy)."""
    return np.ctypeslib.as_array((ctypes.c_ubyte * size).from_address(address))


def _locate_windows(arrays):
    """This rank's RMA windows -> where a restart gets their memory from. An
    MPI_Win_create window's memory lies in a captured NumPy array of the
    program (array key, byte offset): the window is created again over the
    restored array. One over a block of MPI.Alloc_mem that the program
    reaches only through the window (mpi4py keeps the MPI.memory in the
    window object, out of the heap's sight; mpi4py's nxtval demo): the
    block's content is added to `arrays` (no copy) and a block allocated
    again at restart gets it. An allocated window's memory is MPI's: its
    content is added too and read into the new window's memory."""
    bounds = [(key, *np.byte_bounds(a)) for key, a in arrays]
    located = {}
    for w in _core.mpi_windows():
        ident, base, size = w["id"], w["base"], w["size"]
        key = f"mpi_window_{ident}"
        if size == 0:
            located[str(ident)] = {}
        elif w["flavor"] == WIN_CREATE:
            found = next(((k, lo) for k, lo, hi in bounds if lo <= base and base + size <= hi), None)
            block = _core.mpi_alloc_mem_size(base) if found is None else None
            if found is not None:
                located[str(ident)] = {"array": found[0], "offset": base - found[1]}
            elif block is not None and block >= size:
                arrays.append((key, _bytes_at(base, block)))
                located[str(ident)] = {"alloc_mem": key, "bytes": block}
            else:
                raise UnsupportedStateError(
                    f"MPI window {ident} ({w['origin']}, {size} bytes): its memory is not in a NumPy array the "
                    f"program holds, nor a block of MPI.Alloc_mem; create the window over a NumPy array the "
                    f"program keeps, or with MPI.Win.Allocate")
        else:
            arrays.append((key, _bytes_at(base, size)))
            located[str(ident)] = {"content": key}
    return located


# mpi4py methods made of several point-to-point operations (pickle-based
# reductions run as a p2p tree; sendrecv posts an isend, then receives). The
# interposer rolls a call of them back to its start at a cut (attach wraps
# them: mpi_wrap_compound_methods); one it cannot roll back (nested in
# another) waits for a safe point outside it.
_COMPOUND_METHODS = frozenset({"reduce", "allreduce", "scan", "exscan", "sendrecv"})


def _in_compound_call(captured_state):
    """Whether the innermost captured frame is calling one of them."""
    MPI = mpi_handles._mpi()
    for obj in reversed(captured_state.frames[-1].stack):
        name = getattr(obj, "__name__", None)
        if name not in _COMPOUND_METHODS:
            continue
        owner = getattr(obj, "__objclass__", None) or type(getattr(obj, "__self__", None))
        if isinstance(owner, type) and issubclass(owner, MPI.Comm):
            return True
    return False


def _capture():
    """Local: this rank's state, kept for _write. False: not at this safe point."""
    stopped_at = time.perf_counter()
    mpi_handles.register_reducers()
    trigger = "api" if _job.api_state is not None else "preemptive"
    captured_state = _job.api_state if _job.api_state is not None else _job.line_state
    if captured_state is None:
        rollback = _core.mpi_compound_active()
        if rollback < 0:
            return False
        captured_state = _core.capture_stack(session.base(), reissue_c_call=True)
        if not rollback and _in_compound_call(captured_state):
            return False
    requests = _core.mpi_pending_requests()
    mpi_handles.begin_cut_capture(requests)
    try:
        captured = state.capture(captured_state, True if trigger == "api" else None, session.options())
    finally:
        reissued = mpi_handles.end_cut_capture()
    located = _locate_reposted(requests, captured[1], reissued)
    windows = _locate_windows(captured[1])
    blobs = {MPI_STATE_BLOB: _core.mpi_state_save(),
             REQUESTS_BLOB: json.dumps(located).encode(),
             WINDOWS_BLOB: json.dumps(windows).encode(),
             KEYVALS_BLOB: json.dumps(mpi_handles.keyvals()).encode(),
             CHANNEL_BLOB: json.dumps(_core.mpi_channel_messages()).encode()}
    # Where `pyckpt mpirun` puts the job's input at restart (rank 0's stdin).
    rank_attributes = {"stdin_position": (state.stdin_position() or (0,))[0]}
    _job.captured = (stopped_at, trigger, captured, blobs, rank_attributes)
    return True


def _write():
    """Collective: every rank's captured state into one checkpoint file; with
    PYCKPT_ASYNC, every rank's data copied, and written by a thread of each
    rank while the job goes on (committed by the interposer's safe points,
    or at the latest by the next checkpoint or MPI_Finalize)."""
    stopped_at, trigger, captured, blobs, rank_attributes = _job.captured
    _job.captured = None
    MPI = mpi_handles._mpi()
    # Not COMM_WORLD: an application collective may be pending on it.
    comm = _core.mpi_write_comm(MPI.Comm)
    # Epochs commit in order, and one copy of the data at a time.
    _core.async_commit_wait()
    asynchronous = settings.asynchronous() if _job.api_asynchronous is None else _job.api_asynchronous
    report = _job.rank == 0 and settings.verbose()
    info = commit.commit_state(_job.directory, None, trigger, captured, keep=_job.keep, asynchronous=asynchronous,
                               report=report,
                               seconds_stopped=time.perf_counter() - stopped_at, comm=comm, extra_blobs=blobs,
                               attributes={"command": _job.command or sys.orig_argv[1:], "keep": _job.keep,
                                           **settings.job_triggers(), **slurm.environment_attributes()},
                               rank_attributes={**_placement(MPI), **slurm.rank_attributes(), **rank_attributes})
    if report and not asynchronous:
        print(f"pyckpt: checkpoint {info['epoch']} ({trigger}) committed: {info['path']}, "
              f"{time.perf_counter() - stopped_at:.3f} s after this rank stopped", file=sys.stderr, flush=True)
    _hold_if_stopping(comm, info["epoch"])


def _hold_if_stopping(comm, epoch):
    """After a committed checkpoint: if the job is to stop after it, every
    rank flushes its output and waits here to be ended, so that nothing it
    would print again once resumed from this checkpoint reaches the job's
    output. Asked for by `pyckpt mpirun --slurm-requeue`'s supervisor (a
    file, pyckpt.slurm: it ends mpirun and requeues the job), or, under the
    SPANK plugin's --pyckpt-requeue, by a checkpoint signal (Slurm's
    time-limit signal): then rank 0 requeues the job itself, and Slurm ends
    the ranks. Rank 0 alone decides: all ranks hold or none. A job with
    neither (no PYCKPT_END_FILE, no PYCKPT_SLURM_REQUEUE: the same on every
    rank) is never asked, and spends no collective on it in the pause."""
    if settings.end_file() is None and settings.slurm_requeue_max_restarts() is None:
        return
    stop = comm.bcast(_stop_after_checkpoint() if _job.rank == 0 else None, root=0)
    if stop is None:
        return
    _core.async_commit_wait()  # an asynchronous checkpoint is committed before the job stops
    sys.stdout.flush()
    sys.stderr.flush()
    comm.Barrier()  # every rank flushed: nothing of theirs is printed after the stop
    held = True
    if _job.rank == 0:
        if stop == "supervisor":
            slurm.report_stopped(_job.directory, epoch)
        else:
            held = slurm.requeue_self(epoch)
    if comm.bcast(held, root=0):
        while True:
            time.sleep(3600)  # until the supervisor ends mpirun, or Slurm the requeued job's ranks
    _job.requeue_declined = True  # the requeue failed (said): the job goes on


def _stop_after_checkpoint():
    """Rank 0: "supervisor", "requeue" (see _hold_if_stopping) or None."""
    if slurm.stop_requested(_job.directory):
        return "supervisor"
    max_restarts = settings.slurm_requeue_max_restarts()
    if max_restarts is None or _job.requeue_declined or not _core.mpi_stats()["trigger_signals"]:
        return None
    if not slurm.may_requeue(max_restarts):
        _job.requeue_declined = True  # said once; the job goes on until it ends or Slurm ends it
        return None
    return "requeue"


def _placement(MPI):
    """Where this rank ran, for `pyckpt inspect`: its host, and how many
    node-local communicators (Split_type) it holds, which a restart on another
    placement re-creates with other members."""
    placement = {"host": MPI.Get_processor_name()}
    node_local = _core.mpi_stats()["node_local_comms"]
    if node_local:
        placement["node_local_comms"] = node_local
    return placement


# --- restart ---------------------------------------------------------------------

class _Resume:
    def __init__(self, reader):
        self.reader = reader
        self.error = None    # raised by resume_rank() once MPI_Init returned


def _restore_interposer(resume):
    """In attach() of a resuming rank: re-create the MPI state. An error is
    raised by resume_rank() after mpi4py's import, as a CLI error."""
    try:
        reader = resume.reader
        if reader.world_size != _job.size:
            raise CheckpointFileError(
                f"{reader.file} was written by {reader.world_size} MPI ranks, this job has {_job.size}: restart it "
                f"with -np {reader.world_size} (resharding to another rank count is not supported yet)")
        _core.mpi_state_restore(reader.read_blob(_job.rank, MPI_STATE_BLOB))
    except CheckpointError as exc:
        resume.error = exc


def _repost_requests(reader, rank):
    """Reads the arrays that receives pending at the cut were posted into
    (and the buffers of nonblocking collectives the cut fell before) and
    posts those requests again, in posting order, before the heap is read:
    the unpickled mpi4py Request objects then get their handles."""
    located = json.loads(reader.read_blob(rank, REQUESTS_BLOB))
    loader = ArrayLoader(reader, rank)
    arrays = {}

    for ident, location in located.items():
        if isinstance(location, dict):  # a lowercase irecv: the heap re-issues it
            continue
        address = None
        if location is not None:
            key, offset = location
            if key not in arrays:
                arrays[key] = loader(key)
            address = arrays[key].ctypes.data + offset
        _core.mpi_request_repost(int(ident), address)
    return arrays


def _recreate_windows(reader, rank, preloaded):
    """Creates the checkpoint's RMA windows again (collective), after the
    receives were re-posted and before the heap is read: MPI_Win_create ones
    over their restored arrays (read now into `preloaded`, so that the heap
    gets those very arrays), allocated ones with their content read back.
    The heap's window objects and views of window memory then find them."""
    located = json.loads(reader.read_blob(rank, WINDOWS_BLOB))
    loader = ArrayLoader(reader, rank)
    bases = {}
    for ident, where in located.items():
        if "array" in where:
            if where["array"] not in preloaded:
                preloaded[where["array"]] = loader(where["array"])
            bases[int(ident)] = preloaded[where["array"]].ctypes.data + where["offset"]
        elif "alloc_mem" in where:
            # Kept for the rest of the process, as mpi4py's window object
            # kept the original (the program cannot free what it never held).
            block = mpi_handles._mpi().Alloc_mem(where["bytes"])
            _job.window_blocks.append(block)
            reader.read_array(rank, where["alloc_mem"], _bytes_at(block.address, where["bytes"]))
            bases[int(ident)] = block.address
    _core.mpi_windows_recreate(bases)
    created = {str(w["id"]): w for w in _core.mpi_windows()}
    for ident, where in located.items():
        if "content" in where:
            w = created[ident]
            reader.read_array(rank, where["content"], _bytes_at(w["base"], w["size"]))
    # Only now may peers reach this rank's window memory.
    _core.mpi_windows_reopen()
    return preloaded


def _restore_mpi4py_contexts(MPI):
    """mpi4py keeps, per communicator it ran pickled reductions on, a private
    duplicate and a tag counter (a communicator attribute, not restored by
    lineage replay). Made again here: mpi4py's MPI_Comm_dup of the
    communicator gets the duplicate lineage replay re-created (channel state
    and the rolled-back call's messages are on it), and the counter is
    advanced to where it was at the cut, one mpi4py call per tag (under 1 us
    each). A counter of 0 belongs to the rolled-back call that made the
    context: the re-issued call makes it again itself."""
    for comm_id, next_tag in _core.mpi_mpi4py_contexts():
        comm = _core.mpi_comm_from_id(MPI.Intracomm, comm_id)
        for _ in range(next_tag):
            MPI._commctx_intra(comm)


def resume_rank(reader, command):
    """Body of `python3 -m pyckpt resume-rank -- COMMAND...` in each rank:
    resumes this rank of `reader`'s checkpoint if it was written by a job
    running `command`, else runs `command` from the start."""
    directory = settings.resume_directory()
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
    from mpi4py import MPI  # MPI_Init: attach() runs in it
    try:
        if not _job.attached:
            raise CheckpointError("libpyckpt_mpi.so did not attach to this interpreter at MPI_Init")
        if _job.resume.error is not None:
            raise _job.resume.error
        mpi_handles.register_reducers()
        if any(d["name"] == KEYVALS_BLOB for d in reader.datasets(_job.rank)):  # written since issue 14
            mpi_handles.recreate_keyvals(json.loads(reader.read_blob(_job.rank, KEYVALS_BLOB)))
        _restore_mpi4py_contexts(MPI)
        # Passed on, not held here: this frame lives as long as the program,
        # and a reference to the preloaded arrays would keep their buffers
        # exported (an mmap they view could not be closed).
        return session.restart(reader, rank=_job.rank,
                               preloaded=_recreate_windows(reader, _job.rank, _repost_requests(reader, _job.rank)))
    except BaseException as exc:
        if session.program_started():
            raise  # the resumed program's own
        # The other ranks are resuming, or waiting in a re-issued MPI call for
        # this one: a rank that cannot resume ends the whole job, now.
        print(f"pyckpt: rank {MPI.COMM_WORLD.Get_rank()}: cannot resume from {reader.file}: "
              f"{type(exc).__name__}: {exc}; ending the job", file=sys.stderr, flush=True)
        MPI.COMM_WORLD.Abort(RESUME_FAILED_EXIT)
