"""A program under pyckpt: `pyckpt run` starts it, `pyckpt restart` resumes
it, and pyckpt.checkpoint() checkpoints it from inside.

The session holds how this process checkpoints (directory, keep, triggers,
synchronous or forked commit) and which frame is the program's outermost
one. It ties the parts together: the interpreter layer (pyckpt._core:
frames, safe points), pyckpt.state (what a checkpoint holds), pyckpt.commit
(writing it) and pyckpt.triggers (when). In an MPI job pyckpt.mpi takes over
checkpoint() (collective) and the triggers (carried by libpyckpt_mpi.so).
How a checkpoint is triggered and resumed is in doc/process.md.
"""
import atexit
import os
import sys
import threading
import time
import types

from . import _core, commit, lock, settings, threads
from .errors import AuthenticationError, CheckpointError, CheckpointFileError, UnsupportedStateError
from .triggers import Triggers


class _Session:
    """How this process checkpoints: set by `pyckpt run`/`restart`, else the
    defaults of a plain `python3 app.py` that calls pyckpt.checkpoint()."""

    def __init__(self):
        self.directory = None   # None: $PYCKPT_DIR, else the default
        self.keep = settings.DEFAULT_KEEP
        self.interval = None    # seconds between preemptive checkpoints
        self.signal_name = None  # signal that triggers a checkpoint
        self.asynchronous = False  # commit in a forked writer (pyckpt.commit)
        # Outermost frame to capture: the code object of the program's
        # outermost frame under `pyckpt run` (the script's, whose frame sits
        # below the runner's) and `pyckpt restart` (the outermost resumed
        # frame's); None for a plain `python3 app.py` (the outermost frame).
        self.base = None
        self.triggers = Triggers(_core.request_safe_point)
        # In an MPI job, pyckpt.mpi (see attach_job): checkpoint() is
        # collective, safe points serve the job's checkpoints, the job's
        # triggers are its own.
        self.job = None
        # `pyckpt run`/`restart` handed control to the program (see
        # start_program): an exception from now on is the program's own.
        self.program_started = False
        # The last reason printed for a preemptive checkpoint that could not
        # be taken: one retried every interval fails the same way each time,
        # and is said once per cause (as the ranks of an MPI job do).
        self.last_failure = None

    def resolved_directory(self, directory=None):
        return settings.directory(directory or self.directory)

    def options(self):
        """What a restarted process needs to go on checkpointing the same way."""
        return {"directory": self.directory, "keep": self.keep, "interval": self.interval,
                "signal": self.signal_name, "asynchronous": self.asynchronous}


_session = _Session()


def base():
    """The outermost frame a capture starts from (see _Session.base)."""
    return _session.base


def options():
    return _session.options()


class Job:
    """How an MPI job (pyckpt.mpi) takes over this process's checkpoints:
    checkpoint(directory) for pyckpt.checkpoint(), on_safe_point(state) for
    the interpreter's safe points."""

    def __init__(self, checkpoint, on_safe_point):
        self.checkpoint = checkpoint
        self.on_safe_point = on_safe_point


def attach_job(job, running):
    """pyckpt.mpi attached this process to an MPI job (a Job). running: the
    program runs already (it made MPI_Init); else its safe points start with
    start_program(), after a restart has restored it."""
    _session.job = job
    if running:
        if _session.base is None:
            _session.base = _main_module_frame()
        _core.set_safe_point_callback(job.on_safe_point, base=_session.base)


def _main_module_frame():
    """The outermost frame running the __main__ module's code: under `python3
    -m module` the frames of runpy around it are not the program's (they
    entered it through exec(), a C function that cannot be resumed). None
    if it is not on the stack (the outermost frame is then the base)."""
    main = vars(sys.modules["__main__"])
    frame, found = sys._getframe(), None
    while frame is not None:
        if frame.f_globals is main and frame.f_code.co_name == "<module>":
            found = frame
        frame = frame.f_back
    return found


def configure(directory=None, keep=settings.DEFAULT_KEEP, interval=None, signal_name=None, asynchronous=False):
    """Sets how this process checkpoints (used by `pyckpt run`, restart and
    pyckpt.mpi)."""
    _session.directory = directory
    _session.keep = keep
    _session.interval = interval
    _session.signal_name = signal_name
    _session.asynchronous = asynchronous


def _state():
    """pyckpt.state, imported at the first checkpoint or restart rather than
    with this module: it brings the heap and NumPy, and `pyckpt run` starts
    the program without waiting for them."""
    from . import state
    return state


def _write(captured_state, trigger, resume_result, directory=None, asynchronous=False):
    stopped_at = time.perf_counter()
    try:
        captured = _state().capture(captured_state, resume_result, _session.options(), with_threads=True)
        directory = _session.resolved_directory(directory)
        lock.hold(directory)  # a plain `python3 app.py`: from its first checkpoint on
        return commit.write(captured, directory, trigger, _session.keep, stopped_at, asynchronous)
    finally:
        # The other threads stay parked until the arrays, the program's own
        # memory, are written (or a forked writer has its snapshot of them).
        _core.release_threads()


_ASYNC_FLAGS = {0x80: "coroutine", 0x100: "coroutine", 0x200: "async generator"}  # CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR


def _refuse_unsupported_context(frame):
    """UnsupportedStateError for a checkpoint() called where the stack cannot
    be captured for a reason clearer than "a C function sits between frames":
    a thread other than the main thread, a coroutine (asyncio)."""
    thread = threading.current_thread()
    if thread is not threading.main_thread():
        raise UnsupportedStateError(f"checkpoint() called in thread {thread.name!r}: only the main thread's stack "
                                    f"can be captured")
    while frame is not None:
        kind = next((k for flag, k in _ASYNC_FLAGS.items() if frame.f_code.co_flags & flag), None)
        if kind is not None:
            raise UnsupportedStateError(
                f"checkpoint() called inside {kind} {frame.f_code.co_qualname} "
                f"({frame.f_code.co_filename}:{frame.f_lineno}): coroutines, async generators and asyncio "
                f"event loops cannot be captured")
        frame = frame.f_back


def checkpoint(directory=None, *, asynchronous=None):
    """Writes a checkpoint of the whole process and returns False; in a process
    restarted from that checkpoint, the same call returns True.

    directory: where checkpoints go; default the `pyckpt run --dir`, else
    $PYCKPT_DIR, else ./pyckpt.d. asynchronous: return as soon as the state is
    captured and let a forked writer commit it (pyckpt.wait() waits for it);
    default: as `pyckpt run` was told (asynchronous unless --sync), else False.
    In an MPI job (collective): asynchronous returns once every rank's data
    is copied, and a thread of each rank writes it; default PYCKPT_ASYNC
    (`pyckpt mpirun --async`; doc/mpi-jobs.md).
    Raises UnsupportedStateError if the process holds state that cannot be
    captured (e.g. this call is made from a function that a C function such as
    sorted() called); no checkpoint is written then.
    """
    if _session.job is not None:
        return _session.job.checkpoint(directory, asynchronous)
    _refuse_unsupported_context(sys._getframe(1))
    captured_state = _core.capture_stack(_session.base)
    if captured_state is True:  # resumed: capture_stack returned resume_stack's result
        return True
    if asynchronous is None:
        asynchronous = _session.asynchronous
    _write(captured_state, "api", True, directory, asynchronous)
    return False


def wait():
    """Waits until a checkpoint being written in the background is committed.
    Returns False if that write failed (the reason is on stderr; the previous
    checkpoint is intact), True otherwise. In an MPI job (asynchronous
    checkpoints), rank 0 returns once every rank's part reached it."""
    if _session.job is not None:
        return _core.async_commit_wait() is not False
    return commit.wait()


def _at_exit():
    """The program is done: no more checkpoints; the last one gets committed."""
    _core.set_safe_point_callback(None)
    _core.cancel_safe_point()
    if not commit.wait():
        print("pyckpt: the last background checkpoint failed", file=sys.stderr, flush=True)


atexit.register(_at_exit)


# --- preemptive checkpoints -------------------------------------------------------

def _base_running():
    """Whether a frame of the program's outermost code runs (see
    _Session.base); False just before the program starts and once it ended."""
    if not isinstance(_session.base, types.CodeType):
        return True
    frame = sys._getframe()
    while frame is not None and frame.f_code is not _session.base:
        frame = frame.f_back
    return frame is not None


def _on_safe_point(captured_state):
    """Safe-point callback: write a checkpoint, or say why none could be."""
    triggers = _session.triggers
    _state()  # imported at the first checkpoint: a one-time cost, not part of the pause that paces the interval
    triggers.begin()
    if isinstance(captured_state, BaseException):
        if _base_running():
            _say_failure(f"pyckpt: checkpoint skipped: {captured_state}")
        # else the request came as the program was starting or ending: there
        # is nothing of the program to capture, and nothing to report.
        triggers.done()
        return
    if commit.writing():
        # A checkpoint of pyckpt.checkpoint(asynchronous=True) is still being
        # written: rather than stop the program until it is, take this one
        # once it is committed.
        triggers.done(commit.writer_pid(), postponed=True)
        return
    try:
        _write(captured_state, "preemptive", None, asynchronous=_session.asynchronous)
        _session.last_failure = None  # a cause that comes back is said again
    except CheckpointError as exc:
        # A failed preemptive checkpoint must not kill the application: the
        # previous checkpoint is intact, the next trigger tries again.
        _say_failure(f"pyckpt: checkpoint failed: {exc}", exc)
    finally:
        triggers.done(commit.writer_pid())


def _say_failure(message, error=None):
    """Prints why a preemptive checkpoint was not taken, once per cause: an
    object refused is the same cause wherever the program's line is when
    it is met again."""
    culprit = getattr(error, "culprit", None)
    cause = message if culprit is None else (type(culprit), getattr(error, "reason", None))
    if cause != _session.last_failure:
        print(message, file=sys.stderr, flush=True)
        _session.last_failure = cause


def start_program(run, *args):
    """Hands control to the program: arms the triggers and returns run(*args)
    (the script's code run from its start, or its resumed frames). Whatever
    it raises, SystemExit included, is the program's own and must reach
    Python's top level as in an uninterrupted run (program_started())."""
    if _session.job is not None:  # a resumed rank: the job's triggers and safe points
        _core.set_safe_point_callback(_session.job.on_safe_point, base=_session.base)
    else:
        lock.hold(_session.resolved_directory())
        _core.set_safe_point_callback(_on_safe_point, base=_session.base, threads=True)
        # Imported before the program starts: a first checkpoint that paid
        # for these imports (0.1-0.5 s) would often come too late for a
        # program killed soon after its start.
        _state()
        _session.triggers.start(_session.resolved_directory(), _session.interval, _session.signal_name)
    _session.program_started = True
    try:
        return run(*args)
    finally:
        if _session.job is None:
            _program_ended()


def _program_ended():
    """The program's frames are gone (it returned, raised, or was
    interrupted): a request still pending now would capture pyckpt's or
    Python's own frames (the traceback printer), so none is taken any more."""
    _session.triggers.stop()
    _core.set_safe_point_callback(None)
    _core.cancel_safe_point()


def program_started():
    """Whether this process runs the program yet (see start_program): before,
    an error is pyckpt's, for `pyckpt run`/`restart` to report as such."""
    return _session.program_started


def run_script(path, args):
    """Runs the script at `path` as __main__ with argv [path, *args], with the
    session's triggers armed. Returns when the script finishes."""
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    sys.argv = [path, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    _session.base = code
    start_program(exec, code, vars(main))


# --- restart --------------------------------------------------------------------

def open_checkpoint(path, world_size=1, fallback=True, verify_data=True):
    """The Reader of the checkpoint to restart from `path`, once a background
    writer of that directory has committed. world_size: the rank count it
    must have been written by (None: pyckpt.mpi checks).

    A file is restarted as named or refused. A directory restarts its
    newest checkpoint that verifies (newest_verified): when `latest` is
    refused (corrupt, torn, forged), the reason and the older file resumed
    instead are said on stderr; fallback=False (the ranks of an MPI job,
    which must all open one file) opens `latest` or refuses it.
    verify_data=False (a serial restart): the candidates' data checksums are
    not read beforehand; the restore verifies them as it reads the data,
    once, and a failure runs the restart again without that file
    (pyckpt.cli, PYCKPT_REFUSED).

    The file must be authenticated with the user's key (doc/security.md):
    restarting a checkpoint runs the code its pickles name, so one that
    anyone else wrote or changed is refused before a byte of it is unpickled."""
    is_directory = os.path.isdir(path)
    commit.wait_for_writers(path if is_directory else os.path.dirname(os.path.abspath(path)))
    if is_directory and fallback:
        reader = newest_verified(path, _verified if verify_data else _open_authenticated,
                                 settings.refused_checkpoints())
    else:
        reader = _open_authenticated(path)
    _state().check_compatible(reader, world_size)
    return reader


def _open_authenticated(path):
    try:
        return _core.Reader(path)
    except AuthenticationError as exc:
        raise AuthenticationError(
            f"{exc}. Refusing to restart it: restarting runs the code a checkpoint holds, so only checkpoints "
            f"written with your key and unchanged since are restarted (nothing of this one was run). Restart an "
            f"older checkpoint (`pyckpt ls DIR`), or, if you know where this one came from, restart it with the "
            f"key that wrote it (--key-file); `pyckpt inspect --trust` shows it without running it") from None


def _verified(path):
    """The Reader of `path` if it is authenticated and every dataset matches
    its checksum (what `pyckpt verify` checks); CheckpointFileError naming
    the first fault otherwise."""
    reader = _open_authenticated(path)
    bad = [(name, message) for name, ok, message in reader.verify() if not ok]
    if bad:
        name, message = bad[0]
        raise CheckpointFileError(f"{reader.file}: {name}: {message}"
                                  + (f" (and {len(bad) - 1} more dataset(s))" if len(bad) > 1 else ""))
    return reader


def newest_verified(directory, check=_verified, refused_before=()):
    """The Reader of the newest checkpoint of `directory` that verifies
    (check: _verified, every checksum; or _open_authenticated, the header
    and metadata only): `latest`, else the committed files by descending
    epoch, but those of refused_before ((path, why): refused by an earlier
    attempt). Each refused file is reported on stderr with its reason, and
    the file chosen instead named. Every process that asks gets the same
    answer for the same files, which is how `pyckpt mpirun` and `restart
    --mpirun` pick one file for all ranks. CheckpointFileError if none
    verifies."""
    ckpt_dir = _core.CheckpointDir(directory)
    try:
        latest = ckpt_dir.latest()
    except CheckpointFileError as exc:  # `latest` points to a missing file
        print(f"pyckpt: {exc}", file=sys.stderr, flush=True)
        latest = None
    older = [entry["path"] for entry in reversed(ckpt_dir.list()) if not entry["latest"]]
    candidates = [latest, *older] if latest is not None else older
    if not candidates:
        return _open_authenticated(directory)  # the container's own "no checkpoint" error
    refused = []  # (path, why), newest first
    earlier = {os.path.realpath(path): why for path, why in refused_before}
    for path in candidates:
        if os.path.realpath(path) in earlier:
            refused.append((path, earlier[os.path.realpath(path)]))
            continue
        try:
            reader = check(path)
        except CheckpointFileError as exc:
            refused.append((path, exc))
            continue
        for newer, why in refused:
            print(f"pyckpt: refused {newer}: {why}", file=sys.stderr, flush=True)
        if refused:
            how = "which verifies" if check is _verified else "its data checked as it is read"
            print(f"pyckpt: resuming the older checkpoint {reader.file}, {how} "
                  f"({len(refused)} newer one(s) refused, see above)", file=sys.stderr, flush=True)
        return reader
    if len(refused) == 1:
        raise refused[0][1]  # the one checkpoint there: its refusal, in one line
    for path, why in refused:
        print(f"pyckpt: refused {path}: {why}", file=sys.stderr, flush=True)
    raise CheckpointFileError(f"{directory}: none of its {len(candidates)} checkpoint(s) verifies (reasons above); "
                              f"nothing to restart from")


def restart(reader, rank=0, preloaded=None):
    """Resumes the process state of rank `rank` of `reader`'s checkpoint in
    this process; returns when the resumed program's main module finishes (its
    exceptions, SystemExit included, propagate). preloaded: arrays read
    before the heap (see state.restore)."""
    if _session.job is None:  # refused before anything of the checkpoint is restored
        lock.hold(os.path.dirname(os.path.abspath(reader.file)))
    root = _state().restore(reader, rank, preloaded)
    # Not kept while the program runs: an array read into an mmap holds a
    # buffer export of it, and an exported mmap cannot be closed.
    del preloaded
    saved = root["session"]
    configure(saved["directory"] or os.path.dirname(os.path.abspath(reader.file)), saved["keep"],
              saved["interval"], saved["signal"], saved["asynchronous"])
    # The resumed outermost frame runs the program's outermost code object:
    # as under `pyckpt run`, no checkpoint is taken while no frame runs it
    # (before the frames are resumed, after the program ended), in every
    # restart of a restart chain.
    _session.base = root["state"].frames[0].code
    # The other threads first, each waiting again where it waited (pyckpt.threads).
    threads.resume(root.get("threads", ()))
    main_state = threads.remap_owner(root["state"], root.get("ident"), threading.get_ident())
    return start_program(_core.resume_stack, main_state, root["resume_result"])
