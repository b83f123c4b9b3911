"""What a checkpoint of one Python process holds, and how it comes back.

Capture turns an interpreter state (pyckpt._core.capture_stack: the frames
as FrameRecords) and the objects it reaches into

- blob ``process``: the heap pickle of the process state (frames, __main__,
  argv, working directory, how to resume);
- array datasets named by the pickle's keys (``a0``, ``a1``, ...): the NumPy
  arrays the pickle refers to, zero-copy, with the variables that hold them
  in the attribute ``refs``;
- blob ``frames.json``: a readable summary of the stack for ``pyckpt inspect``
  (file, line, function, locals' reprs, which variables hold which array);
- blob ``sources``: the user's own modules' source (pyckpt.sources);
- root attributes that describe the program (Python/NumPy versions, hash
  seed, digests of its sources).

The other Python threads are parked and captured with the main thread's
stack, in the same pickle (pyckpt.threads), and resumed before it.

Restore reads them back into this process and hands over the frames to
resume (pyckpt.session runs them).
"""
import io
import json
import os
import stat
import sys
import threading
import types

import numpy as np

from . import _core, heap, settings, sources, threads
from .container import ArrayLoader
from .errors import CheckpointFileError, UnsupportedStateError

PROCESS_BLOB = "process"
SUMMARY_BLOB = "frames.json"


# --- what the pickler needs to know about interpreter objects ---------------

class _ModuleDict:
    """Stands for a module's __dict__ (a frame's globals) in a captured state:
    a plain dict would be pickled by value, detaching the resumed frame from its
    module. Restored as the dict of the restored (or reimported) module."""

    def __init__(self, module):
        self.module = module

    def __reduce__(self):
        return vars, (self.module,)


def _globals_marker(globals_):
    """What stands for a frame's globals in a captured state: a _ModuleDict
    for a module's dict, else the dict itself (globals of code run by exec(),
    e.g. the wrappers that decorator libraries generate), pickled by value as
    a function's non-module globals are (heap.Pickler._namespace), so both
    come back as one dict."""
    module = sys.modules.get(globals_.get("__name__"))
    if module is not None and vars(module) is globals_:
        return _ModuleDict(module)
    return globals_


def _replaced(record, **changes):
    """A copy of a _core record (FrameRecord, GeneratorState, ...) with some
    fields changed."""
    return type(record)(tuple(changes.get(name, value) for name, value in zip(type(record).__match_args__, record)))


def _encode_state(state):
    """The interp state with module globals replaced by _ModuleDict markers."""
    encoded = []
    for frame in state.frames:
        marker = _globals_marker(frame.globals)
        encoded.append(_replaced(frame, globals=marker, **({"locals": marker} if frame.locals is frame.globals else {})))
    return _replaced(state, frames=tuple(encoded))


def _reduce_generator(gen):
    # A suspended generator's frame runs in its module's globals, which must
    # come back as that module's dict, not as a copy of it. Made first and
    # filled afterwards: its state reaches its module, whose globals may hold
    # the generator itself; rebuilt in one step, a second copy would be made
    # for them, and its finalizer would run the generator's `finally` blocks
    # while the checkpoint is read.
    gstate = _core.capture_generator(gen)
    if isinstance(gstate.globals, dict):
        gstate = _replaced(gstate, globals=_globals_marker(gstate.globals))
    return _core.new_generator, (gstate.code,), gstate, None, None, _core.fill_generator


def _reduce_traceback(_tb):
    # Tracebacks hold frames, which only make sense as part of a stack state;
    # a saved exception comes back without its traceback.
    return type(None), ()


def _reduce_async_awaitable(awaitable):
    # asend()/__anext__()/athrow()/aclose() of an async generator, made
    # again on the rebuilt generator.
    return _core.rebuild_async_awaitable, (_core.capture_async_awaitable(awaitable),)


heap.register_reduce(types.GeneratorType, _reduce_generator)
heap.register_reduce(types.CoroutineType, _reduce_generator)
heap.register_reduce(types.AsyncGeneratorType, _reduce_generator)
for _awaitable_type in _core.ASYNC_GENERATOR_AWAITABLES:
    heap.register_reduce(_awaitable_type, _reduce_async_awaitable)
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


class _ReprFull(Exception):
    """The summary's text of a value is long enough."""


# Built-in containers the summary writes itself: (opening, closing, the
# repr of one that contains itself).
_CONTAINER_REPR = {
    list: ("[", "]", "[...]"),
    tuple: ("(", ")", "(...)"),
    dict: ("{", "}", "{...}"),
    set: ("{", "}", "set(...)"),
    frozenset: ("frozenset({", "})", "frozenset(...)"),
}


def _short_repr(value, limit=80):
    """repr(value) cut to `limit` characters, at a cost that does not grow
    with the value: the built-in containers (exact types) are written here
    item by item until the text is long enough (repr() of a list of 10^6
    objects would make all of its text to keep 80 characters), strings and
    bytes are cut before their repr is made. Other objects' own __repr__ is
    called (NumPy's abbreviates large arrays)."""
    parts = []
    length = 0

    def emit(text):
        nonlocal length
        parts.append(text)
        length += len(text)
        if length > limit:
            raise _ReprFull

    def write(obj, active):
        cls = type(obj)
        if cls is str or cls is bytes:
            emit(repr(obj[: limit + 1]))
            return
        brackets = _CONTAINER_REPR.get(cls)
        if brackets is None or not obj:
            emit(repr(obj))
            return
        opening, closing, recursive = brackets
        if id(obj) in active:
            emit(recursive)
            return
        active.add(id(obj))
        emit(opening)
        for i, item in enumerate(obj.items() if cls is dict else obj):
            if i:
                emit(", ")
            if cls is dict:
                write(item[0], active)
                emit(": ")
                item = item[1]
            write(item, active)
        emit("," if cls is tuple and len(obj) == 1 else "")
        emit(closing)
        active.discard(id(obj))

    try:
        write(value, set())
    except _ReprFull:
        pass
    except Exception as exc:  # a broken __repr__ must not break a checkpoint
        parts = [f"<{type(value).__name__}: repr failed: {exc!r}>"]
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _root_array(value):
    while isinstance(value.base, np.ndarray):
        value = value.base
    return value


def _variables(frame):
    """(name, value) of a captured frame's variables: a function's locals
    (cells opened), a module's globals but modules and dunders; unbound
    ones left out."""
    if frame.kind == "module":
        items = [(k, v) for k, v in (frame.locals or frame.globals).items()
                 if not k.startswith("__") and not isinstance(v, types.ModuleType)]
    else:
        items = zip(_local_names(frame.code, len(frame.localsplus)), frame.localsplus)
    for name, value in items:
        if isinstance(value, types.CellType):
            try:
                value = value.cell_contents
            except ValueError:
                continue
        if value is not _core.NULL:
            yield name, value


def _where(frame):
    return f"{frame.code.co_qualname} at {frame.code.co_filename}:{_line_of(frame.code, frame.offset)}"


def _output_summary(positions):
    """How much stdout and stderr the program had written at the cut, for
    the ones that are regular files (their length then, and their path)."""
    output = {}
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if fd in positions:
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = None
            output[name] = {"bytes": positions[fd][2], "file": path}
    return output


def _summary(state, arrays, positions):
    """frames.json: the stack outermost first, the variables holding each
    array, and the output written so far."""
    by_pointer = {}
    for key, a in arrays:
        by_pointer[(a.__array_interface__["data"][0], a.nbytes)] = key
    array_refs = {}
    frames = []
    for frame in state.frames:
        code = frame.code
        shown = {}
        for name, value in _variables(frame):
            if isinstance(value, np.ndarray):
                root = _root_array(value)
                key = by_pointer.get((root.__array_interface__["data"][0], root.nbytes))
                if key is not None:
                    array_refs.setdefault(key, []).append(f"{code.co_qualname}:{name}")
            if len(shown) < 40:
                shown[name] = _short_repr(value)
        frames.append({"file": code.co_filename, "line": _line_of(code, frame.offset),
                       "function": code.co_qualname, "kind": frame.kind, "locals": shown})
    return {"frames": frames, "arrays": array_refs, "output": _output_summary(positions)}


def array_refs(summary):
    """{array key: the variables that hold it} of a capture's summary."""
    return json.loads(summary)["arrays"]


# --- capture ------------------------------------------------------------------

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


def stdin_position():
    """How far the program has read sys.stdin, as heap.read_position() gives
    it, or None if it has read nothing of it (or replaced or closed it).
    Where stdin is a pipe (an MPI rank's: mpirun feeds it the job's input),
    the position counts from the start of the input: the pipe began at
    settings.stdin_offset() of it."""
    stdin = sys.stdin
    if stdin is not sys.__stdin__ or not isinstance(stdin, io.TextIOWrapper) or stdin.closed:
        return None
    position, read_ahead = heap.read_position(stdin)
    if not stdin.seekable():
        position += settings.stdin_offset()
    return (position, read_ahead) if position else None  # at 0 its text layer has taken nothing


def _reposition_stdin(saved):
    """Puts sys.stdin where the program had read it at the checkpoint: a
    regular file (the input again, `< input.txt`) is positioned there; a
    pipe that `pyckpt mpirun` fed from that position on (it repositioned the
    job's input file) gets the read-ahead text back. Any other stdin cannot
    be repositioned: the program reads it from its beginning again, and
    this says so."""
    if saved is None:
        return
    position, read_ahead = saved
    stdin = sys.stdin
    if stdin.seekable():
        heap.seek_read_position(stdin, position, read_ahead)
    elif read_ahead is not None and settings.stdin_offset() == position:
        heap.restore_read_ahead(stdin, read_ahead)
    else:
        print(f"pyckpt restart: warning: stdin is not a regular file (in an MPI job: the job's stdin, which mpirun "
              f"forwards to rank 0): the program reads it from its beginning again, not from byte {position}, where "
              f"it was at the checkpoint", file=sys.stderr, flush=True)


# What other modules add to every capture's root, by name: a callable
# returning a picklable object, called at each capture, whose unpickling
# restores what it describes (pyckpt.mpi_handles: the functions of mpi4py's
# attribute keyvals). Unpickled after the program's frames and __main__.
_root_extensions = {}


def register_root_extension(name, capture):
    _root_extensions[name] = capture


def capture(state, resume_result, options, with_threads=False):
    """Pickles the process state: (pickle bytes, [(key, ndarray)], summary
    bytes, the user's sources: pyckpt.sources.current(), read here, in the
    program's process, not in a forked writer).
    options: what a restarted process needs to go on checkpointing the same
    way (pyckpt.session). The arrays are the program's own (zero-copy): they
    must not change until the commit is done, which holds for a synchronous
    write and for a forked writer (its memory is a copy-on-write snapshot).
    with_threads: the other threads are parked and captured (pyckpt.threads),
    and stay parked until the caller's _core.release_threads() -- once the
    arrays are written, for the same reason; else a running one is refused."""
    _refuse_event_loop(state)
    if not with_threads:
        _refuse_other_threads()
        return _capture(state, resume_result, options, [])
    return _capture(state, resume_result, options, threads.park())


def _capture(state, resume_result, options, parked):
    sys.stdout.flush()
    sys.stderr.flush()
    positions = _stream_positions()
    root = {
        "state": _encode_state(state),
        "resume_result": resume_result,
        "main": sys.modules["__main__"],
        "argv": list(sys.argv),
        # The program's import path as it had made it (sys.path[0]: the
        # script's directory, the working directory (-m, -c) or none (-P);
        # then what it inserted).
        "path": list(sys.path),
        "cwd": os.getcwd(),
        "session": options,
        "streams": positions,
        "stdin": stdin_position(),
        "extensions": {name: capture() for name, capture in _root_extensions.items()},
        # The other threads, and the main thread's ident (pyckpt.threads.remap_owner).
        "threads": [(slot, thread, _encode_state(stack)) for slot, thread, stack in parked],
        "ident": threading.get_ident(),
    }
    try:
        data, arrays = heap.dumps(root, threads={slot.ident: slot for slot, _, _ in parked})
    except UnsupportedStateError as exc:
        raise _in_program_terms(exc, state) from exc.__cause__
    return data, arrays, json.dumps(_summary(state, arrays, positions)).encode(), sources.current()


def _refuse_other_threads():
    """Where threads are not captured (an MPI job), a checkpoint taken while another
    Python thread of the program runs would restart without it, and a
    program that waits for it (a lock it releases, a join) would wait
    forever: refused, naming the thread. Threads started with _thread
    have no threading.Thread object for the heap to refuse, so the
    interpreter's own list of running threads is what is checked."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    capturing = (threading.main_thread().ident, threading.get_ident())
    # Not a loop over all of them: a variable bound to this thread's own
    # frame would make a cycle that keeps the capture's frames, and the
    # buffer exports their locals hold (an mmap could not be closed), alive
    # until the garbage collector runs.
    others = {ident: frame for ident, frame in sys._current_frames().items() if ident not in capturing}
    for ident, frame in others.items():
        # The function the thread was started with: its outermost frame
        # outside threading.py (a library's helper thread, such as
        # multiprocessing.pool's, is then named by its library).
        start = None
        while frame is not None:
            if frame.f_code.co_filename != threading.__file__:
                start = frame
            frame = frame.f_back
        which = f"thread {names[ident]!r}" if ident in names else "a thread started with _thread"
        if start is not None:
            module = start.f_globals.get("__name__")
            where = start.f_code.co_filename if module in (None, "__main__") else module
            which += f" (running {start.f_code.co_name}() of {where})"
        raise UnsupportedStateError(
            f"{which} is running: pyckpt captures only the main thread, and a restart would go on "
            f"without it; checkpoints are taken again once the program's other threads have ended")


_EVENT_LOOP_ADVICE = ("event loops cannot be captured (the selector's epoll descriptor, the self-pipe sockets, "
                      "the scheduled callbacks and the C tasks); checkpoint before asyncio.run() or after it "
                      "returns, or drive the coroutines with send() (coroutines and async generators driven so "
                      "are captured)")


def _refuse_event_loop(state):
    """A running asyncio event loop is refused before anything is pickled,
    naming the program's frame that runs it (`asyncio.run(main())`); a
    preemptive checkpoint is taken again once the loop has stopped. An event
    loop that is not running but reachable is refused by the heap, named by
    the variable that holds it."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return
    heap.register_reduce(asyncio.BaseEventLoop, _refuse_loop_object)
    loop = asyncio.events._get_running_loop()
    if loop is None:
        return
    library = os.path.join(os.path.dirname(asyncio.__file__), "")
    caller = None
    for frame in state.frames:  # outermost first: the last frame before asyncio's own
        if frame.code.co_filename.startswith(library):
            break
        caller = frame
    where = f" (it runs under {_where(caller)})" if caller is not None else ""
    raise UnsupportedStateError(f"the program is running the asyncio event loop {loop!r}{where}: {_EVENT_LOOP_ADVICE}")


def _refuse_loop_object(loop):
    error = UnsupportedStateError(f"an asyncio event loop: {_EVENT_LOOP_ADVICE}")
    error.suggest_reducer = False  # the advice is what to do
    raise error


def _in_program_terms(error, state):
    """The heap's refusal of an object, told as the variable of the
    innermost frame that reaches it (`conn.sock in serve at app.py:12`)
    rather than as a path through pyckpt's own records."""
    culprit = getattr(error, "culprit", None)
    where = None if culprit is None else _locate(culprit, state)
    if where is None:
        return error
    located = UnsupportedStateError(heap.unsupported_message(where, culprit, error.reason, error.suggest_reducer))
    located.culprit, located.reason, located.suggest_reducer = culprit, error.reason, error.suggest_reducer
    return located


def _locate(obj, state):
    """`path in function at file:line`: the variable of the innermost frame
    of `state` that reaches obj, or None."""
    frames, variables = [], []
    for frame in reversed(state.frames):
        for name, value in _variables(frame):
            frames.append(frame)
            variables.append((name, value))
    found = heap.find_variable(variables, obj)
    if found is None:
        return None
    index, path = found
    return f"{path} in {_where(frames[index])}"


def _warn_unordered_sets(sets, state):
    """Says, once, which sets iterate otherwise than they would have in the
    original run (heap.Unpickler.unordered_sets)."""
    where = _locate(sets[0], state)
    which = f"the set {where}" if where else f"a set of {len(sets[0])} elements"
    if len(sets) > 1:
        which += f" and {len(sets) - 1} other set{'s' if len(sets) > 2 else ''} iterate"
    else:
        which += " iterates"
    kinds = ", ".join(sorted({heap.type_name(type(e)) for e in sets[0]})[:3])
    print(f"pyckpt restart: warning: {which} in another order than in the original run: its elements ({kinds}) "
          f"hash differently in this process (by identity), so the order could not be restored; results that "
          f"depend on it may differ", file=sys.stderr, flush=True)


def attributes(user_sources):
    """Root attributes describing the program whose state is captured
    (user_sources: pyckpt.sources.current())."""
    attrs = {
        "argv": list(sys.argv) or [""],
        "python_version": sys.version.split()[0],
        "numpy_version": np.__version__,
        "hash_seed": os.environ.get("PYTHONHASHSEED", "random"),
        # What a restart needs when the seed is random (pyckpt.cli._reexec).
        "hash_secret": _core.hash_secret().hex(),
        "interp_format": _core.INTERP_FORMAT,
    }
    if user_sources:
        attrs["sources"] = sources.digests(user_sources)
    return attrs


# --- restore --------------------------------------------------------------------

def check_compatible(reader, world_size):
    """Refuses a checkpoint this process cannot resume. world_size: the rank
    count it must have been written by (None: not checked here)."""
    attrs = reader.attributes
    if world_size is not None and reader.world_size != world_size:
        raise CheckpointFileError(f"{reader.file}: written by {reader.world_size} MPI ranks; restart it with "
                                  f"`pyckpt restart --mpirun -np {reader.world_size}`")
    if attrs.get("interp_format") != _core.INTERP_FORMAT:
        raise CheckpointFileError(f"{reader.file}: frames of interpreter {attrs.get('interp_format')!r}, "
                                  f"this is {_core.INTERP_FORMAT!r} (Python {sys.version.split()[0]})")
    if not any(d["name"] == PROCESS_BLOB for d in reader.datasets(0)):
        raise CheckpointFileError(f"{reader.file}: holds no Python process state (blob {PROCESS_BLOB!r})")


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


def restore(reader, rank, preloaded=None):
    """Rebuilds rank `rank`'s process state of `reader`'s checkpoint in this
    process: a fresh __main__, the heap, argv, working directory, the output
    files cut back. Returns the root dict (state, resume_result, session
    options). preloaded: {array key: ndarray} read before (pyckpt.mpi
    re-posts receives into them); the pickle gets those very arrays."""
    # Read for its checksum only (inspect's summary): a file damaged anywhere
    # is refused, not resumed from its intact parts.
    reader.read_blob(rank, SUMMARY_BLOB)
    sources.restore(reader, rank)
    main = types.ModuleType("__main__")
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    loader = ArrayLoader(reader, rank)
    arrays = dict(preloaded or {})

    def read_array(key):
        if key not in arrays:
            arrays[key] = loader(key)
        return arrays[key]

    unordered_sets = []
    root = heap.loads(reader.read_blob(rank, PROCESS_BLOB), read_array, main_module=main,
                      unordered_sets=unordered_sets)
    if unordered_sets:
        _warn_unordered_sets(unordered_sets, root["state"])
    sys.argv = root["argv"]
    # The restart's own entries (pyckpt's launcher directory first) go last.
    sys.path[:] = root["path"] + [entry for entry in sys.path[1:] if entry not in root["path"]]
    try:
        os.chdir(root["cwd"])
    except OSError:
        print(f"pyckpt restart: warning: cannot enter the original working directory {root['cwd']}; "
              f"staying in {os.getcwd()}", file=sys.stderr, flush=True)
    _cut_streams(root["streams"])
    _reposition_stdin(root["stdin"])
    return root
