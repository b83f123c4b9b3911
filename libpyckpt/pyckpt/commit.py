"""Writing a captured state into the checkpoint container: synchronously, or
by a forked writer while the program goes on.

fork() gives the writer a copy-on-write snapshot of the whole process: the
application goes on at once and only the pages it modifies meanwhile are
copied by the kernel, so the arrays are still written zero-copy. One writer
at a time, so that epochs commit in order. While it writes, the directory's
writing marker for its epoch (CheckpointDir.writing_marker) names it (pid,
start time, boot id: process_identity): `pyckpt restart` waits for a live
writer instead of restarting from the previous checkpoint, and not for an
unrelated process that got the pid of a dead one.
"""
import os
import sys
import time

from . import _core, privacy, settings
from .errors import CheckpointFileError


def commit_state(directory, epoch, trigger, captured, *, keep, seconds_stopped, forked=False, comm=None,
                 extra_blobs=None, attributes=None, rank_attributes=None, asynchronous=False, report=False):
    """Writes what state.capture() returned as a checkpoint of `directory` and
    commits it; with an mpi4py `comm`, collectively (every rank its own
    state). epoch None: the container numbers it. seconds_stopped: how long
    the program has been stopped for this checkpoint when the write begins
    (forked: when the writer was forked, and the program went on). Returns
    the commit information. asynchronous (an MPI job's): returns once the
    data is copied, {"epoch": ...}; a thread writes and commits it
    (_core.async_commit_wait(); report: say on stderr when it committed)."""
    # Imported here, not with this module: pyckpt.state brings the heap and
    # NumPy, which a program under `pyckpt run` should not wait for at its
    # start (pyckpt.session imports this module).
    from . import sources, state
    from .container import add_array
    data, arrays, summary, user_sources = captured
    writer = _core.Writer(directory, epoch, comm=comm, keep=keep)
    writer.set_attribute("trigger", trigger)
    # With the container's own seconds_prepare/seconds_write, what `pyckpt
    # stats` tells the pause from (doc/format.md).
    writer.set_attribute("write_mode", "forked" if forked else "async" if asynchronous else "inline")
    writer.set_rank_attribute("seconds_stopped", seconds_stopped)
    for name, value in {**state.attributes(user_sources), **(attributes or {})}.items():
        writer.set_attribute(name, value)
    writer.set_rank_attribute("pid", os.getpid())
    for name, value in (rank_attributes or {}).items():
        writer.set_rank_attribute(name, value)
    writer.add_blob(state.PROCESS_BLOB, data)
    writer.add_blob(state.SUMMARY_BLOB, summary)
    writer.add_blob(sources.SOURCES_BLOB, sources.blob(user_sources))
    for name, blob in (extra_blobs or {}).items():
        writer.add_blob(name, blob)
    refs = state.array_refs(summary)
    for key, array in arrays:
        add_array(writer, key, array, {"refs": refs[key]} if key in refs else None)
    if asynchronous:
        return {"epoch": writer.commit_async(report=report, test_delay=settings.test_drain_delay())}
    return writer.commit()


class _Background:
    pid = None
    marker = None


_background = _Background()


def writing():
    """Whether a forked writer is still committing."""
    return _background.pid is not None and process_alive(_background.pid)


def writer_pid():
    """The pid of the forked writer still committing, or None."""
    return _background.pid if writing() else None


def wait():
    """Waits until a checkpoint being written in the background is committed.
    Returns False if that write failed (the reason is on stderr; the previous
    checkpoint is intact), True otherwise."""
    pid, _background.pid = _background.pid, None
    if pid is None:
        return True
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        try:
            os.unlink(_background.marker)  # the writer died before removing it
        except OSError:
            pass
        return False
    return True


def _write_in_child(directory, epoch, trigger, captured, keep, marker, seconds_stopped):
    """Body of the forked writer; never returns."""
    status = 1
    try:
        _core.set_safe_point_callback(None)
        _core.cancel_safe_point()
        privacy.write_file(marker, process_identity())
        commit_state(directory, epoch, trigger, captured, keep=keep, seconds_stopped=seconds_stopped, forked=True)
        status = 0
    except BaseException as exc:  # noqa: B902 -- reported, then the child exits
        print(f"pyckpt: checkpoint {epoch} in {directory} failed: {exc}", file=sys.stderr, flush=True)
    finally:
        try:
            os.unlink(marker)
        except OSError:
            pass
        os._exit(status)


def write(captured, directory, trigger, keep, stopped_at, asynchronous=False):
    """Writes and commits one checkpoint of this process from what
    state.capture() returned; the program stopped for it at time.perf_counter()
    `stopped_at`. Synchronous: returns the commit information (path, bytes,
    timings). Asynchronous: returns None once a forked writer has taken over."""
    if not wait():
        print("pyckpt: the previous background checkpoint failed", file=sys.stderr, flush=True)
    if not asynchronous:
        return commit_state(directory, None, trigger, captured, keep=keep,
                            seconds_stopped=time.perf_counter() - stopped_at)
    ckpt_dir = _core.CheckpointDir(directory, keep)
    epoch = ckpt_dir.next_epoch()
    try:
        privacy.create_directory(directory)
        marker = ckpt_dir.writing_marker(epoch)
        # This process until the writer records itself: a marker always
        # names a process, so a restart can tell a dead writer at once.
        privacy.write_file(marker, process_identity())
    except OSError as exc:
        raise CheckpointFileError(f"{directory}: cannot write a checkpoint there: {exc.strerror}") from exc
    pid = os.fork()
    if pid == 0:
        # The program goes on from here: the clock is shared with the parent.
        _write_in_child(directory, epoch, trigger, captured, keep, marker, time.perf_counter() - stopped_at)
    _background.pid, _background.marker = pid, marker
    return None


# How long after its last change a marker naming a dead process may still
# belong to a writer: the program that forked it died before the writer's
# first statement recorded the writer's pid.
_PID_GRACE = 0.5


def wait_for_writers(directory, timeout=600.0):
    """Before a restart: waits while a background writer of `directory` is
    alive, and removes the markers of writers that died."""
    deadline = time.monotonic() + timeout
    announced = set()
    ckpt_dir = _core.CheckpointDir(directory)
    while True:
        live = []
        for epoch, path in ckpt_dir.writing_markers() if os.path.isdir(directory) else ():
            try:
                with open(path) as f:
                    text = f.read().strip()
                age = time.time() - os.path.getmtime(path)
            except OSError:
                continue
            if _identity_alive(text):
                live.append((epoch, text.split()[0]))
            elif age < _PID_GRACE:
                live.append((epoch, None))  # may name its writer any moment: waited for briefly, silently
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        if not live or time.monotonic() > deadline:
            return
        for epoch, pid in live:
            if pid is not None and epoch not in announced:
                announced.add(epoch)
                print(f"pyckpt restart: waiting for checkpoint {epoch} being written by pid {pid}",
                      file=sys.stderr, flush=True)
        time.sleep(0.05)


def process_identity():
    """'PID START BOOT_ID' of this process: its start time (clock ticks after
    boot) and the boot id tell it from a later process given the same pid."""
    return " ".join([str(os.getpid()), *_start_and_boot(os.getpid())])


def _start_and_boot(pid):
    """[start time, boot id] of process `pid`; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]  # field 22, starttime; fields after `comm` start at 3
        with open("/proc/sys/kernel/random/boot_id") as f:
            return [start, f.read().strip()]
    except (OSError, IndexError):
        return None


def _identity_alive(text):
    """Whether the process a marker names (process_identity(); a bare pid in
    markers of older versions) is alive and is that process."""
    parts = text.split()
    if not parts or not parts[0].isdigit() or not process_alive(int(parts[0])):
        return False
    return len(parts) == 1 or _start_and_boot(int(parts[0])) == parts[1:]


def process_alive(pid):
    """Whether `pid` names a running process (a zombie is not)."""
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
