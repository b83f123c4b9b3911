"""Checkpoint and restart of a whole Python process.

The glue between the three parts that do the work: the interpreter layer
(pyckpt._core: frames, generators, safe points), the object graph
(pyckpt.heap) and the container (pyckpt._core.Writer/Reader). One checkpoint
of a rank is:

- blob ``process``: the heap pickle of the process state (frames, __main__,
  argv, working directory, how to resume);
- array datasets named by the pickle's keys (``a0``, ``a1``, ...): the NumPy
  arrays the pickle refers to, written zero-copy, each in its own dtype and
  shape, with the variables that hold them in the attribute ``refs``;
- blob ``frames.json``: a readable summary of the stack for ``pyckpt inspect``
  (file, line, function, locals' reprs, which variables hold which array).

How a checkpoint is triggered (API, signal, timer) and resumed is in
doc/process.md.
"""
import atexit
import hashlib
import json
import os
import signal
import stat
import sys
import threading
import time
import types

import numpy as np

from . import _core, heap
from .container import ArrayLoader, add_array
from .errors import CheckpointError, CheckpointFileError, UnsupportedStateError

PROCESS_BLOB = "process"
SUMMARY_BLOB = "frames.json"
DEFAULT_DIRECTORY = "pyckpt.d"


class _Session:
    """How this process checkpoints: set by `pyckpt run`/`restart`, else the
    defaults of a plain `python3 app.py` that calls pyckpt.checkpoint()."""

    def __init__(self):
        self.directory = None   # None: $PYCKPT_DIR, else ./pyckpt.d
        self.keep = 2
        self.interval = None    # seconds between preemptive checkpoints
        self.signal_name = None  # signal that triggers a checkpoint
        self.asynchronous = False  # commit in a forked writer (see below)
        # Outermost frame to capture: the script's code object under
        # `pyckpt run` (its frame sits below the runner's), None otherwise
        # (the outermost frame, or in a restarted process the outermost
        # resumed one).
        self.base = None
        self.timer = None
        self.last_done = 0.0    # time.monotonic() when the last checkpoint was handed off
        self.retry = False      # a preemptive checkpoint was postponed: request it again
        # In an MPI job (pyckpt.mpi attached), checkpoint() is collective.
        self.collective_checkpoint = None
        # `pyckpt run`/`restart` handed control to the program (see
        # start_program): an exception from now on is the program's own.
        self.program_started = False

    def resolved_directory(self, directory=None):
        return directory or self.directory or os.environ.get("PYCKPT_DIR") or DEFAULT_DIRECTORY

    def options(self):
        """What a restarted process needs to go on checkpointing the same way."""
        return {"directory": self.directory, "keep": self.keep, "interval": self.interval,
                "signal": self.signal_name, "asynchronous": self.asynchronous}


_session = _Session()


def session_base():
    """The outermost frame a capture starts from (see _Session.base)."""
    return _session.base


def set_collective_checkpoint(function):
    """pyckpt.mpi: checkpoint() calls `function(directory)` instead."""
    _session.collective_checkpoint = function


# --- what the pickler needs to know about interpreter objects ---------------

class _ModuleDict:
    """Stands for a module's __dict__ (a frame's globals) in a captured state:
    a plain dict would be pickled by value, detaching the resumed frame from its
    module. Restored as the dict of the restored (or reimported) module."""

    def __init__(self, module):
        self.module = module

    def __reduce__(self):
        return vars, (self.module,)


def _module_of(globals_):
    name = globals_.get("__name__")
    module = sys.modules.get(name)
    if module is None or vars(module) is not globals_:
        raise UnsupportedStateError(f"a frame runs in globals of module {name!r}, which is not in sys.modules")
    return module


def _encode_state(state):
    """The interp state with module globals replaced by _ModuleDict markers."""
    fmt, frames = state
    encoded = []
    for frame in frames:
        frame = list(frame)
        globals_ = frame[2]
        marker = _ModuleDict(_module_of(globals_))
        frame[2] = marker
        if frame[3] is globals_:
            frame[3] = marker
        encoded.append(tuple(frame))
    return fmt, tuple(encoded)


def _reduce_generator(gen):
    # A suspended generator's frame runs in its module's globals, which must
    # come back as that module's dict, not as a copy of it.
    gstate = _core.capture_generator(gen)
    if isinstance(gstate[2], dict):
        gstate = (*gstate[:2], _ModuleDict(_module_of(gstate[2])), *gstate[3:])
    return _core.rebuild_generator, (gstate,)


def _reduce_traceback(_tb):
    # Tracebacks hold frames, which only make sense as part of a stack state;
    # a saved exception comes back without its traceback.
    return type(None), ()


heap.register_reduce(types.GeneratorType, _reduce_generator)
heap.register_reduce(types.TracebackType, _reduce_traceback)


# --- readable summary -------------------------------------------------------

def _line_of(code, offset):
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line
    return code.co_firstlineno


def _local_names(code, count):
    """Names of the localsplus slots: fast locals, then cells that are not
    also arguments, then free variables (CPython 3.11's layout)."""
    names = list(code.co_varnames)
    names += [c for c in code.co_cellvars if c not in code.co_varnames]
    names += list(code.co_freevars)
    return names if len(names) == count else [f"slot{i}" for i in range(count)]


def _short_repr(value, limit=80):
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break a checkpoint
        text = f"<{type(value).__name__}: repr failed: {exc!r}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _root_array(value):
    while isinstance(value.base, np.ndarray):
        value = value.base
    return value


def _summary(state, arrays):
    """frames.json: the stack outermost first, and the variables holding each array."""
    by_pointer = {}
    for key, a in arrays:
        by_pointer[(a.__array_interface__["data"][0], a.nbytes)] = key
    array_refs = {}
    null = _core.NULL
    frames = []
    for code, kind, globals_, locals_, localsplus, *_rest in state[1]:
        offset = _rest[1]
        if kind == "module":
            items = [(k, v) for k, v in (locals_ or globals_).items()
                     if not k.startswith("__") and not isinstance(v, types.ModuleType)]
        else:
            items = list(zip(_local_names(code, len(localsplus)), localsplus))
        shown = {}
        for name, value in items:
            if isinstance(value, types.CellType):
                try:
                    value = value.cell_contents
                except ValueError:
                    continue
            if value is null:
                continue
            if isinstance(value, np.ndarray):
                root = _root_array(value)
                key = by_pointer.get((root.__array_interface__["data"][0], root.nbytes))
                if key is not None:
                    array_refs.setdefault(key, []).append(f"{code.co_qualname}:{name}")
            if len(shown) < 40:
                shown[name] = _short_repr(value)
        frames.append({"file": code.co_filename, "line": _line_of(code, offset), "function": code.co_qualname,
                       "kind": kind, "locals": shown})
    return {"frames": frames, "arrays": array_refs}


# --- writing ------------------------------------------------------------------

def _stream_positions():
    """For stdout and stderr redirected to regular files: (device, inode,
    length) after flushing, so that a restart writing to the same file can cut
    off what the killed run printed after this checkpoint."""
    positions = {}
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            positions[fd] = (st.st_dev, st.st_ino, st.st_size)
    return positions


def _source_digests():
    """sha256 of the __main__ script and of the user's own modules, so a
    restart can warn about sources edited since the checkpoint."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file:
        return {}
    user_dir = os.path.join(os.path.dirname(os.path.realpath(main_file)), "")
    digests = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.endswith(".py") and os.path.realpath(path).startswith(user_dir):
            try:
                with open(path, "rb") as f:
                    digests[os.path.realpath(path)] = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                pass
    return digests


def next_epoch(directory):
    if not os.path.isdir(directory):
        return 1
    return max((e["epoch"] for e in _core.list_checkpoints(directory)), default=0) + 1


def capture_state(state, resume_result):
    """Pickles the process state: (pickle bytes, [(key, ndarray)], summary bytes).
    The arrays are the program's own (zero-copy): they must not change until
    the commit is done, which holds for a synchronous write and for a forked
    writer (its memory is a copy-on-write snapshot)."""
    sys.stdout.flush()
    sys.stderr.flush()
    root = {
        "state": _encode_state(state),
        "resume_result": resume_result,
        "main": sys.modules["__main__"],
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "session": _session.options(),
        "streams": _stream_positions(),
    }
    data, arrays = heap.dumps(root)
    return data, arrays, json.dumps(_summary(state, arrays)).encode()


def commit_state(directory, epoch, trigger, data, arrays, summary, *, comm=None, extra_blobs=None,
                 attributes=None, rank_attributes=None):
    """Writes what capture_state() returned as checkpoint `epoch` of
    `directory` and commits it; with an mpi4py `comm`, collectively (every rank
    its own state). Returns the commit information."""
    writer = _core.Writer(directory, epoch, comm=comm, keep=_session.keep)
    writer.set_attribute("trigger", trigger)
    writer.set_attribute("argv", list(sys.argv) or [""])
    writer.set_attribute("python_version", sys.version.split()[0])
    writer.set_attribute("numpy_version", np.__version__)
    writer.set_attribute("hash_seed", os.environ.get("PYTHONHASHSEED", "random"))
    writer.set_attribute("interp_format", _core.INTERP_FORMAT)
    digests = _source_digests()
    if digests:
        writer.set_attribute("sources", [f"{digest} {path}" for path, digest in sorted(digests.items())])
    for name, value in (attributes or {}).items():
        writer.set_attribute(name, value)
    writer.set_rank_attribute("pid", os.getpid())
    for name, value in (rank_attributes or {}).items():
        writer.set_rank_attribute(name, value)
    writer.add_blob(PROCESS_BLOB, data)
    writer.add_blob(SUMMARY_BLOB, summary)
    for name, blob in (extra_blobs or {}).items():
        writer.add_blob(name, blob)
    refs = json.loads(summary)["arrays"]
    for key, array in arrays:
        add_array(writer, key, array, {"refs": refs[key]} if key in refs else None)
    return writer.commit()


# --- asynchronous commit by a forked writer -------------------------------------
#
# fork() gives the writer a copy-on-write snapshot of the whole process: the
# application goes on at once and only the pages it modifies meanwhile are
# copied by the kernel, so the arrays are still written zero-copy. One writer
# at a time, so that epochs commit in order. While it writes, the marker
# DIR/.writing.<epoch> holds its pid: `pyckpt restart` waits for a live writer
# instead of restarting from the previous checkpoint.

WRITING_MARKER = ".writing."


class _Writer:
    pid = None
    epoch = None
    marker = None


_writer = _Writer()


def wait():
    """Waits until a checkpoint being written in the background is committed.
    Returns False if that write failed (the reason is on stderr; the previous
    checkpoint is intact), True otherwise."""
    pid, _writer.pid = _writer.pid, None
    if pid is None:
        return True
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        try:
            os.unlink(_writer.marker)  # the writer died before removing it
        except OSError:
            pass
        return False
    return True


def _write_in_child(directory, epoch, trigger, data, arrays, summary, marker):
    """Body of the forked writer; never returns."""
    status = 1
    try:
        _core.set_safe_point_callback(None)
        _core.cancel_safe_point()
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        commit_state(directory, epoch, trigger, data, arrays, summary)
        status = 0
    except BaseException as exc:  # noqa: B902 -- reported, then the child exits
        print(f"pyckpt: checkpoint {epoch} in {directory} failed: {exc}", file=sys.stderr, flush=True)
    finally:
        try:
            os.unlink(marker)
        except OSError:
            pass
        os._exit(status)


def write_checkpoint(state, directory, trigger, resume_result, asynchronous=False):
    """Writes and commits one checkpoint of this process from an interp state.
    Synchronous: returns the commit information (path, bytes, timings).
    Asynchronous: returns None once a forked writer has taken over."""
    if not wait():
        print("pyckpt: the previous background checkpoint failed", file=sys.stderr, flush=True)
    started = time.perf_counter()
    data, arrays, summary = capture_state(state, resume_result)
    epoch = next_epoch(directory)
    if not asynchronous:
        info = commit_state(directory, epoch, trigger, data, arrays, summary)
        info["seconds_capture"] = time.perf_counter() - started
        return info
    try:
        os.makedirs(directory, exist_ok=True)
        marker = os.path.join(directory, f"{WRITING_MARKER}{epoch}")
        open(marker, "w").close()
    except OSError as exc:
        raise CheckpointFileError(f"{directory}: cannot write a checkpoint there: {exc.strerror}") from exc
    pid = os.fork()
    if pid == 0:
        _write_in_child(directory, epoch, trigger, data, arrays, summary, marker)
    _writer.pid, _writer.epoch, _writer.marker = pid, epoch, marker
    return None


def wait_for_writers(directory, timeout=600.0):
    """Before a restart: waits while a background writer of `directory` is
    alive, and removes the markers of writers that died."""
    deadline = time.monotonic() + timeout
    announced = set()
    while True:
        live = []
        for name in os.listdir(directory) if os.path.isdir(directory) else ():
            if not name.startswith(WRITING_MARKER):
                continue
            path = os.path.join(directory, name)
            try:
                with open(path) as f:
                    text = f.read().strip()
                age = time.time() - os.path.getmtime(path)
            except OSError:
                continue
            if text.isdigit() and _alive(int(text)) or not text and age < 10:
                live.append((name, text))
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        if not live or time.monotonic() > deadline:
            return
        for name, pid in live:
            if name not in announced:
                announced.add(name)
                print(f"pyckpt restart: waiting for checkpoint {name[len(WRITING_MARKER):]} "
                      f"being written by pid {pid or '?'}", file=sys.stderr, flush=True)
        time.sleep(0.05)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (dead, not yet reaped by its killed parent's reaper) is gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


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
    Raises UnsupportedStateError if the process holds state that cannot be
    captured (e.g. this call is made from a function that a C function such as
    sorted() called); no checkpoint is written then.
    """
    if _session.collective_checkpoint is not None:
        return _session.collective_checkpoint(directory)
    _refuse_unsupported_context(sys._getframe(1))
    state = _core.capture_stack(_session.base)
    if state is True:  # resumed: capture_stack returned resume_stack's result
        return True
    if asynchronous is None:
        asynchronous = _session.asynchronous
    write_checkpoint(state, _session.resolved_directory(directory), "api", True, asynchronous)
    return False


def _at_exit():
    """The program is done: no more checkpoints; the last one gets committed."""
    _core.set_safe_point_callback(None)
    _core.cancel_safe_point()
    if not wait():
        print("pyckpt: the last background checkpoint failed", file=sys.stderr, flush=True)


atexit.register(_at_exit)


# --- preemptive triggers --------------------------------------------------------

def _on_safe_point(state):
    """Safe-point callback: write a checkpoint, or say why none could be."""
    if isinstance(state, BaseException):
        print(f"pyckpt: checkpoint skipped: {state}", file=sys.stderr, flush=True)
        return
    if _writer.pid is not None and _alive(_writer.pid):
        # The previous checkpoint is still being written: rather than stop the
        # program until it is, take this one once it is committed.
        _session.retry = True
        return
    try:
        write_checkpoint(state, _session.resolved_directory(), "preemptive", None, _session.asynchronous)
    except CheckpointError as exc:
        # A failed preemptive checkpoint must not kill the application: the
        # previous checkpoint is intact, the next trigger tries again.
        print(f"pyckpt: checkpoint failed: {exc}", file=sys.stderr, flush=True)
    finally:
        _session.last_done = time.monotonic()


def _timer_loop(interval):
    """Requests a safe point `interval` seconds after the previous checkpoint
    was handed off (not on a fixed clock: a slow commit must leave the
    program time to run), and again for one that was postponed."""
    while True:
        time.sleep(0.02)
        due = _session.retry or (interval and time.monotonic() - _session.last_done >= interval)
        if due and not _core.safe_point_pending() and not (_writer.pid is not None and _alive(_writer.pid)):
            _session.retry = False
            _core.request_safe_point()


def arm_triggers():
    """Installs the session's signal handler and interval timer."""
    _core.set_safe_point_callback(_on_safe_point, base=_session.base)
    if _session.signal_name:
        signum = signal.Signals[_session.signal_name]
        signal.signal(signum, lambda _signum, _frame: _core.request_safe_point())
    if (_session.interval or _session.signal_name) and _session.timer is None:
        _session.last_done = time.monotonic()
        _session.timer = threading.Thread(target=_timer_loop, args=(_session.interval,),
                                          name="pyckpt-timer", daemon=True)
        _session.timer.start()


def start_program(run, *args):
    """Hands control to the program: arms the triggers and returns run(*args)
    (the script's code run from its start, or its resumed frames). Whatever
    it raises, SystemExit included, is the program's own and must reach
    Python's top level as in an uninterrupted run (program_started())."""
    arm_triggers()
    _session.program_started = True
    return run(*args)


def program_started():
    """Whether this process runs the program yet (see start_program): before,
    an error is pyckpt's, for `pyckpt run`/`restart` to report as such."""
    return _session.program_started


def configure(directory=None, keep=2, interval=None, signal_name=None, asynchronous=False):
    """Sets how this process checkpoints (used by `pyckpt run` and restart)."""
    _session.directory = directory
    _session.keep = keep
    _session.interval = interval
    _session.signal_name = signal_name
    _session.asynchronous = asynchronous


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

def _check_compatible(reader, world_size):
    attrs = reader.attributes
    if world_size is not None and reader.world_size != world_size:
        raise CheckpointFileError(f"{reader.file}: written by {reader.world_size} MPI ranks; restart it with "
                                  f"`pyckpt restart --mpirun -np {reader.world_size}`")
    if attrs.get("interp_format") != _core.INTERP_FORMAT:
        raise CheckpointFileError(f"{reader.file}: frames of interpreter {attrs.get('interp_format')!r}, "
                                  f"this is {_core.INTERP_FORMAT!r} (Python {sys.version.split()[0]})")
    if not any(d["name"] == PROCESS_BLOB for d in reader.datasets(0)):
        raise CheckpointFileError(f"{reader.file}: holds no Python process state (blob {PROCESS_BLOB!r})")


def _warn_changed_sources(reader):
    for entry in reader.attributes.get("sources", []):
        digest, path = entry.split(" ", 1)
        try:
            with open(path, "rb") as f:
                current = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            current = None
        if current != digest:
            what = "is gone" if current is None else "changed"
            print(f"pyckpt restart: warning: {path} {what} since the checkpoint; resuming the code saved in it",
                  file=sys.stderr, flush=True)


def _cut_streams(positions):
    """Cuts stdout/stderr files back to their length at the checkpoint, if this
    process writes to the very same files (Slurm output, `>> out`)."""
    for fd, (dev, ino, length) in positions.items():
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == (dev, ino) and st.st_size >= length:
            os.ftruncate(fd, length)
            os.lseek(fd, length, os.SEEK_SET)


def open_checkpoint(path, world_size=1):
    """The Reader of the checkpoint to restart from `path` (file or directory),
    once a background writer of that directory has committed. world_size: the
    rank count it must have been written by (None: pyckpt.mpi checks)."""
    wait_for_writers(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)))
    reader = _core.Reader(path)
    _check_compatible(reader, world_size)
    return reader


def restart(reader, rank=0, after_load=None):
    """Resumes the process state of rank `rank` of `reader`'s checkpoint in
    this process; returns when the resumed program's main module finishes (its
    exceptions, SystemExit included, propagate). after_load(arrays): called
    with {key: restored ndarray} once the heap is rebuilt, before the frames
    resume (pyckpt.mpi re-posts receives into them)."""
    _warn_changed_sources(reader)
    main = types.ModuleType("__main__")
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    loader = ArrayLoader(reader, rank)
    arrays = {}

    def read_array(key):
        arrays[key] = loader(key)
        return arrays[key]

    root = heap.loads(reader.read_blob(rank, PROCESS_BLOB), read_array, main_module=main)
    if after_load is not None:
        after_load(arrays)
    sys.argv = root["argv"]
    if root["argv"] and root["argv"][0]:
        sys.path[0] = os.path.dirname(os.path.abspath(root["argv"][0]))
    try:
        os.chdir(root["cwd"])
    except OSError:
        print(f"pyckpt restart: warning: cannot enter the original working directory {root['cwd']}; "
              f"staying in {os.getcwd()}", file=sys.stderr, flush=True)
    options = root["session"]
    configure(options["directory"] or os.path.dirname(os.path.abspath(reader.file)), options["keep"],
              options["interval"], options["signal"], options["asynchronous"])
    _session.base = None
    _cut_streams(root["streams"])
    fmt, frames = root["state"]
    return start_program(_core.resume_stack, (fmt, frames), root["resume_result"])

