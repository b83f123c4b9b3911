"""One job at a time per checkpoint directory.

Two jobs checkpointing into one directory number their epochs from the same
files, rotate away each other's checkpoints and leave `latest` naming the
other job's state. So the process that owns a job's checkpoints holds an
exclusive flock(2) on DIR/.lock for as long as the job runs: `pyckpt run`
and a restarted process (from start to exit), a plain program calling
pyckpt.checkpoint() (from its first checkpoint), `pyckpt mpirun` and
`pyckpt restart --mpirun` (taken before mpirun starts, held by mpirun, to
which the descriptor is passed across the exec). A forked writer inherits
it, so the lock stays taken until its commit is done. The file records who
holds it (pid, host, command, start), for the refusal of a second job.

The kernel drops the lock when its holders die: the lock of a killed job is
taken over without anyone removing anything. Where flock works across
nodes: local file systems, NFSv4 (the Linux client maps flock to the
server's byte-range locks; a dead client's lock is released when its lease
expires, 90 s by default), Lustre mounted with `-o flock`. Lustre mounted
with `-o localflock` locks only on one node, and a file system without
locks makes flock fail: pyckpt then says so once and runs without the
guard (doc/process.md, "One job per directory").

Holding the lock also means no other job's writer is alive: what in-flight
files and writing markers remain are leftovers of interrupted jobs, removed
when the lock is taken (remove_leftovers).
"""
import errno
import fcntl
import json
import os
import socket
import sys
import time

from . import privacy
from .errors import CheckpointFileError

LOCK_FILE = ".lock"
# How long a lock whose recorded holder is dead may still be held: by the
# forked writer of that holder, committing its last checkpoint (pyckpt.commit).
_FINISHING_WRITER_WAIT = 30.0
# flock errors that mean "this file system has no locks", not "taken".
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)

_held = {}  # real path of a directory -> descriptor of its lock file (None: cannot be locked)


def hold(directory, pass_to_exec=False):
    """Takes the lock of `directory` (created if missing) for the rest of
    this process's life; does nothing if this process holds it already.
    pass_to_exec: the descriptor survives exec (`pyckpt mpirun` hands it to
    mpirun). Raises CheckpointFileError naming the holder if another live
    process holds it."""
    key = os.path.realpath(directory)
    if key in _held:
        return
    try:
        privacy.create_directory(directory)
        fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise CheckpointFileError(f"{directory}: cannot create its lock file: {exc.strerror}") from None
    try:
        locked = _lock(fd, directory)
    except BaseException:
        os.close(fd)
        raise
    if not locked:
        os.close(fd)
        _held[key] = None
        return
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.orig_argv),
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    os.set_inheritable(fd, pass_to_exec)
    _held[key] = fd
    remove_leftovers(directory)


def _lock(fd, directory):
    """Locks fd; False if the file system cannot lock (said on stderr)."""
    deadline = time.monotonic() + _FINISHING_WRITER_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            holder = _holder(fd)
            if _holder_alive(holder) or time.monotonic() > deadline:
                raise CheckpointFileError(
                    f"{directory} is in use by {_describe(holder)}: two jobs must not checkpoint into one "
                    f"directory (each would remove the other's checkpoints); use another --dir, or end that "
                    f"job first") from None
            time.sleep(0.05)  # its forked writer is finishing the commit
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise CheckpointFileError(f"{directory}: cannot lock {LOCK_FILE}: {exc.strerror}") from None
            print(f"pyckpt: cannot lock {directory} ({exc.strerror}: its file system has no flock, e.g. Lustre "
                  f"without -o flock): a second job checkpointing into it would not be refused",
                  file=sys.stderr, flush=True)
            return False


def _holder(fd):
    try:
        return json.loads(os.pread(fd, 4096, 0).decode())
    except (OSError, ValueError):
        return {}  # being written by its holder right now


def _holder_alive(holder):
    """Whether the recorded holder runs (on another host: assumed so)."""
    if holder.get("host") != socket.gethostname():
        return True
    from .commit import process_alive
    return process_alive(holder.get("pid", 0))


def _describe(holder):
    if not holder:
        return "another process"
    return (f"pid {holder.get('pid')} on {holder.get('host')} (`{holder.get('command')}`, "
            f"since {holder.get('since')})")


def remove_leftovers(directory):
    """Removes the in-flight files and writing markers in `directory`: with
    its lock held, no writer of them is alive (a killed job's)."""
    from . import _core  # here: `pyckpt run` imports this module before its re-exec (pyckpt.cli)
    ckpt_dir = _core.CheckpointDir(directory)
    for _epoch, path in [*ckpt_dir.in_flight_files(), *ckpt_dir.writing_markers()]:
        try:
            os.unlink(path)
        except OSError:
            pass
