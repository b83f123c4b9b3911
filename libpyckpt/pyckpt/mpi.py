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
import json
import os
import signal
import sys
import time

import numpy as np

from . import _core, commit, mpi_handles, session, settings, slurm, state
from .container import ArrayLoader
from .errors import CheckpointError, CheckpointFileError, UnsupportedStateError

MPI_STATE_BLOB = "mpi"           # mpi_wrap's state bytes (lineage, channel messages)
REQUESTS_BLOB = "mpi_requests"   # pending receives: request id -> (array key, byte offset)
CHANNEL_BLOB = "mpi_channel"     # channel state, for `pyckpt inspect` (JSON list)
# The signal number whose Python handler the interposer's waker runs (see
# attach); the application must not install a handler of its own for it.
WAKE_SIGNAL = signal.SIGRTMAX - 1
RESUME_FAILED_EXIT = 2  # MPI_Abort's code when a rank cannot resume (the CLI's error status)


class _Job:
    """This rank's attachment to the interposer."""
    attached = False
    rank = 0
    size = 1
    directory = None
    keep = settings.DEFAULT_KEEP
    api_state = None     # frames captured by pyckpt.checkpoint() for the cut it starts
    line_state = None    # frames captured at the Python line this rank serves a cut from
    line_refused = False  # said once that this rank's stack cannot be captured at a line
    captured = None      # what capture() hands to write()
    resume = None        # _Resume while this rank resumes a checkpoint
    command = None       # the application's command line (resume_rank(): not this process's argv)


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
    if _job.resume is not None:
        _restore_interposer(_job.resume)


def checkpoint(directory=None):
    """pyckpt.checkpoint() in an MPI job: collective over all ranks. Returns
    False after the checkpoint is committed, True in the restarted job."""
    if directory is not None and os.path.abspath(directory) != _job.directory:
        raise CheckpointError(f"an MPI job checkpoints into its PYCKPT_DIR ({_job.directory}), "
                              f"not {directory}")
    captured_state = _core.capture_stack(session.base())
    if captured_state is True:
        return True
    _job.api_state = captured_state
    try:
        _core.mpi_checkpoint()
    finally:
        _job.api_state = None
    return False


def _on_safe_point(captured_state):
    """Interpreter safe point, asked for by the interposer's waker while a
    checkpoint is pending and this rank runs Python code: the cut may be
    taken here, at this line."""
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

def _locate_receives(requests, arrays):
    """Pending receives -> (array key, byte offset): the restarted job re-posts
    them into the restored arrays."""
    bounds = [(key, *np.byte_bounds(a)) for key, a in arrays]
    located = {}
    for req in requests:
        if not req.is_recv or req.completed:
            continue
        end = req.buf + req.bytes
        found = next(((k, lo) for k, lo, hi in bounds if lo <= req.buf and end <= hi), None)
        if found is None:
            raise UnsupportedStateError(
                f"a nonblocking receive (request {req.id}, {req.bytes} bytes) is pending into memory that is not "
                f"a NumPy array of the program (e.g. mpi4py's lowercase irecv()); complete it before the "
                f"checkpoint or receive into a NumPy array with Irecv")
        located[str(req.id)] = (found[0], req.buf - found[1])
    return located


# mpi4py methods made of several point-to-point operations (pickle-based
# reductions run as a p2p tree; sendrecv posts an isend, then receives). A cut
# inside one would re-issue the operations already done: the cut waits for a
# safe point outside them.
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
    mpi_handles.register_reducers()
    trigger = "api" if _job.api_state is not None else "preemptive"
    captured_state = _job.api_state if _job.api_state is not None else _job.line_state
    if captured_state is None:
        captured_state = _core.capture_stack(session.base(), reissue_c_call=True)
        if _in_compound_call(captured_state):
            return False
    captured = state.capture(captured_state, True if trigger == "api" else None, session.options())
    located = _locate_receives(_core.mpi_pending_requests(), captured[1])
    blobs = {MPI_STATE_BLOB: _core.mpi_state_save(),
             REQUESTS_BLOB: json.dumps(located).encode(),
             CHANNEL_BLOB: json.dumps(_core.mpi_channel_messages()).encode()}
    _job.captured = (time.perf_counter(), trigger, captured, blobs)
    return True


def _write():
    """Collective: every rank's captured state into one checkpoint file."""
    started, trigger, captured, blobs = _job.captured
    _job.captured = None
    MPI = mpi_handles._mpi()
    # Not COMM_WORLD: an application collective may be pending on it.
    comm = _core.mpi_write_comm(MPI.Comm)
    info = commit.commit_state(_job.directory, None, trigger, captured, keep=_job.keep, comm=comm,
                               extra_blobs=blobs,
                               attributes={"command": _job.command or sys.orig_argv[1:], "keep": _job.keep,
                                           **settings.job_triggers(), **slurm.environment_attributes()},
                               rank_attributes={"host": MPI.Get_processor_name(), **slurm.rank_attributes()})
    if _job.rank == 0 and settings.verbose():
        print(f"pyckpt: checkpoint {info['epoch']} ({trigger}) committed: {info['path']}, "
              f"{time.perf_counter() - started:.3f} s", file=sys.stderr, flush=True)
    _hold_if_stopping(comm, info["epoch"])


def _hold_if_stopping(comm, epoch):
    """After a committed checkpoint: if `pyckpt mpirun --slurm-requeue` asked
    the job to stop after it (pyckpt.slurm), every rank flushes its output
    and waits here to be ended, so that nothing it would print again once
    resumed from this checkpoint reaches the job's output. Rank 0 alone
    reads the request: all ranks hold or none."""
    if not comm.bcast(slurm.stop_requested(_job.directory) if _job.rank == 0 else None, root=0):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    comm.Barrier()  # every rank flushed: nothing of theirs is printed after the supervisor's stop
    if _job.rank == 0:
        slurm.report_stopped(_job.directory, epoch)
    while True:
        time.sleep(3600)  # until the supervisor ends mpirun, which ends this rank


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


def _repost_receives(reader, rank):
    """Reads the arrays that receives pending at the cut were posted into and
    re-posts those receives, before the heap is read: the unpickled
    mpi4py Request objects then get their handles."""
    located = json.loads(reader.read_blob(rank, REQUESTS_BLOB))
    loader = ArrayLoader(reader, rank)
    arrays = {}
    for ident, (key, offset) in located.items():
        if key not in arrays:
            arrays[key] = loader(key)
        _core.mpi_request_repost(int(ident), arrays[key].ctypes.data + offset)
    return arrays


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
        return session.restart(reader, rank=_job.rank, preloaded=_repost_receives(reader, _job.rank))
    except BaseException as exc:
        if session.program_started():
            raise  # the resumed program's own
        # The other ranks are resuming, or waiting in a re-issued MPI call for
        # this one: a rank that cannot resume ends the whole job, now.
        print(f"pyckpt: rank {MPI.COMM_WORLD.Get_rank()}: cannot resume from {reader.file}: "
              f"{type(exc).__name__}: {exc}; ending the job", file=sys.stderr, flush=True)
        MPI.COMM_WORLD.Abort(RESUME_FAILED_EXIT)
