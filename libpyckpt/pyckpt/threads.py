"""The program's other Python threads in a checkpoint (doc/process.md,
"Threads").

At the checkpoint, pyckpt._core.park_threads() stops every other thread
where it waits (a lock's acquire under Queue.get, Event.wait,
Condition.wait, or time.sleep), or at a safe point of its own if it runs,
and captures its stack there; the stacks go
into the same pickle as the main thread's, so the locks, queues and events
the threads wait on are the very objects the program holds. At restart,
resume() starts one new thread per captured one, gives it the RLocks its
predecessor held and its threading.Thread object (ident, threading's table
of running threads, join()), and resumes its stack, one thread after
another; each goes on by running its wait again (or from its safe point).
Then the main thread resumes.
"""
import _thread
import threading
import time

from . import _core
from .errors import CheckpointError, UnsupportedStateError


class Slot:
    """Stands for one captured thread in the pickle: the RLocks it held are
    recorded here while unpickling and given to its new thread by resume()."""

    def __init__(self, ident):
        self.ident = ident  # in the checkpointed process
        self.rlocks = []

    def __reduce__(self):
        return Slot, (self.ident,)

    def owns(self, rlock, count):
        self.rlocks.append((rlock, count))


def park(patience=1.0):
    """Parks the other threads (pyckpt._core.park_threads) and returns
    [(Slot, threading.Thread or None, StackState)], None for a thread
    started with _thread. They stay parked until _core.release_threads().
    A thread that is not waiting (it was just woken, it computes) is given
    up to `patience` seconds to come to a wait (the main thread sleeps
    meanwhile, letting it run); then its refusal is raised. A safe point
    (pyckpt.session) has parked them already."""
    deadline = time.monotonic() + patience
    while True:
        try:
            parked = _core.park_threads()
            break
        except UnsupportedStateError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.001)
    return [(Slot(ident), threading._active.get(ident), stack) for ident, stack in parked]


def remap_owner(stack, old, new):
    """The stack with an RLock's saved state (count, owner), as
    Condition.wait keeps it in a local while it waits, naming thread `new`
    instead of `old`: the state is given back to the RLock when the wait
    ends, and the owner must be the thread that resumes."""
    if old is None or old == new:  # old: None in checkpoints without threads
        return stack

    def remapped(values):
        return tuple((v[0], new) if type(v) is tuple and len(v) == 2 and v[1] == old and type(v[0]) is int else v
                     for v in values)

    frames = tuple(f if f.code.co_filename != threading.__file__ else
                   type(f)(tuple(f[:4]) + (remapped(f.localsplus), remapped(f.stack)) + tuple(f[6:]))
                   for f in stack.frames)
    return type(stack)((stack.format, frames))


def _bind(thread, ident):
    """Makes `thread` (a threading.Thread restored from the checkpoint) the
    object of the calling thread, as Thread._bootstrap_inner did for its
    predecessor: its ident, threading's table of running threads, and its
    thread-state lock (restored locked: released when this thread's stack
    has finished, which is when join() returns) among the locks the
    interpreter's exit waits for."""
    thread._ident = ident
    if hasattr(thread, "_set_native_id"):
        thread._set_native_id()
    with threading._active_limbo_lock:
        threading._active[ident] = thread
        if not thread._started.is_set():  # captured before _bootstrap_inner took it out of _limbo
            threading._limbo[thread] = thread
    if thread._tstate_lock is not None and not thread.daemon:
        with threading._shutdown_locks_lock:
            threading._shutdown_locks.add(thread._tstate_lock)


def _run(slot, thread, stack, gate, rebuilt, outcome):
    """The new thread's function: waits for its turn (gate), resumes the
    captured stack; `rebuilt` is released once the frames are rebuilt (or
    the resume failed before: outcome holds the exception)."""
    gate.acquire()
    ident = _thread.get_ident()
    if thread is not None:
        _bind(thread, ident)

    def on_rebuilt():
        outcome.append(None)
        rebuilt.release()

    try:
        _core.resume_stack(remap_owner(stack, slot.ident, ident), None, on_rebuilt)
    except BaseException as exc:
        if outcome:
            raise  # the thread's own: _thread reports it
        outcome.append(exc)
        rebuilt.release()
    finally:
        lock = thread._tstate_lock if thread is not None else None
        if lock is not None and lock.locked():
            lock.release()


def resume(captured):
    """Starts a thread per (Slot, Thread or None, StackState) of `captured`
    and resumes its stack there. Every thread gets its RLocks before any
    resumes (one may wait for a lock another one holds); the stacks are
    rebuilt one after another (the interpreter's eval-frame hook serves one
    at a time). Returns once every thread runs its re-issued wait."""
    started = []
    for slot, thread, stack in captured:
        gate, rebuilt = _thread.allocate_lock(), _thread.allocate_lock()
        gate.acquire()
        rebuilt.acquire()
        outcome = []
        ident = _thread.start_new_thread(_run, (slot, thread, stack, gate, rebuilt, outcome))
        for rlock, count in slot.rlocks:
            rlock._acquire_restore((count, ident))
        started.append((thread, gate, rebuilt, outcome))
    for thread, gate, rebuilt, outcome in started:
        gate.release()
        rebuilt.acquire()
        if outcome[0] is not None:
            name = f"thread {thread.name!r}" if thread is not None else "a thread started with _thread"
            raise CheckpointError(f"cannot resume {name}: {outcome[0]}") from outcome[0]
