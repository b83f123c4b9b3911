"""The other threads at a checkpoint, at the interp API (pyckpt._core,
doc/interp.md "Threads"): park_threads() captures a thread waiting in a
lock's acquire (also in `with lock:`) or time.sleep inside that call, a
running thread at a safe point of its own, refuses one in another C call
naming it, and parked threads run no Python code until release_threads();
pickled with the program's objects, a waiting thread's lock is the one in
its Condition's _waiters; resume_stack() runs on any thread and says when
its frames are rebuilt.
"""
import os
import sys
import threading
import time

import pytest

from pyckpt import _core, threads
from pyckpt.errors import UnsupportedStateError


@pytest.fixture
def stop():
    """An event the test's threads end on; set (and the threads released)
    whatever the test's outcome."""
    event = threading.Event()
    yield event
    _core.release_threads()
    event.set()


def start(target, name):
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def parked_by_name():
    # pyckpt.threads.park: _core.park_threads(), tried again for a while if
    # a thread did not come in time (a loaded machine).
    return {thread.name: state for _, thread, state in threads.park()}


def wait_until(predicate):
    for _ in range(10000):
        if predicate():
            return
        time.sleep(0.001)
    raise AssertionError("condition never met")


def test_waiting_and_running_threads_are_captured(stop):
    held, entered = threading.Lock(), threading.RLock()
    held.acquire()
    entered.acquire()
    started = threading.Barrier(5)

    def waiter():
        started.wait()
        held.acquire()

    def with_waiter():
        started.wait()
        with entered:
            pass

    def sleeper():
        started.wait()
        while not stop.is_set():
            time.sleep(0.05)

    def runner():
        started.wait()
        total = 0
        while not stop.is_set():
            total = (total * 31 + 1) % 1000003

    for target in (waiter, with_waiter, sleeper, runner):
        start(target, target.__name__)
    started.wait()
    wait_until(lambda: all(f.f_code.co_name != "wait" for i, f in sys._current_frames().items()
                           if i != threading.get_ident()))
    parked = parked_by_name()
    try:
        assert set(parked) == {"waiter", "with_waiter", "sleeper", "runner"}
        for name, state in parked.items():
            innermost = state.frames[-1]
            assert innermost.link == ("none",), (name, innermost)
            assert state.frames[0].code.co_name == "_bootstrap", name
        # Inside its acquire: the lock (the program's own object) and its
        # method are still on the value stack, to be called again.
        waiting = parked["waiter"].frames[-1]
        assert waiting.code.co_name == "waiter" and any(v is held for v in waiting.stack)
        assert parked["sleeper"].frames[-1].stack[-2:] == (time.sleep, 0.05)
        # In `with entered:`, the RLock is back on the stack in place of its
        # __exit__, for BEFORE_WITH to run again.
        assert parked["with_waiter"].frames[-1].stack[-1] is entered
        # At a safe point of its own: a line of its loop (or of Event.is_set).
        assert parked["runner"].frames[3].code.co_name == "runner"
        assert _core.park_threads() is _core.park_threads()  # parked: the same capture
    finally:
        _core.release_threads()
        held.release()
        entered.release()


def test_parked_threads_run_no_python_code(stop):
    counter = [0]

    def count():
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0.001)

    start(count, "counter")
    wait_until(lambda: counter[0] > 0)
    _core.park_threads()
    try:
        parked_at = counter[0]
        time.sleep(0.1)  # the GIL is free: only parking keeps the thread from counting
        assert counter[0] == parked_at
    finally:
        _core.release_threads()
    wait_until(lambda: counter[0] > parked_at)


def test_thread_in_other_c_call_is_refused(stop):
    r, w = os.pipe()
    reader = start(lambda: os.read(r, 1), "reader")
    wait_until(lambda: sys._current_frames()[reader.ident].f_code.co_name == "<lambda>")
    for _ in range(2):  # nothing stays parked after a refusal: the same again
        with pytest.raises(UnsupportedStateError) as refusal:
            _core.park_threads()
        assert "cannot capture thread 'reader': it is in C function <built-in function read>" in str(refusal.value)
        assert "cannot run again after a restart" in str(refusal.value)
    os.write(w, b"x")
    reader.join()
    os.close(r)
    os.close(w)


def test_resume_on_another_thread_says_when_rebuilt():
    log = []

    def inner(base):
        result = _core.capture_stack(base)
        if isinstance(result, _core.StackState):
            return result
        log.append((result, threading.current_thread().name))
        return "inner done"

    def outer():
        return inner(sys._getframe())

    state = outer()
    results = []

    def resume():
        results.append(_core.resume_stack(state, "resumed", lambda: log.append("rebuilt")))

    thread = threading.Thread(target=resume, name="resumer")
    thread.start()
    thread.join()
    assert log == ["rebuilt", ("resumed", "resumer")] and results == ["inner done"]


def test_condition_waiters_are_the_locks_the_threads_wait_on(stop):
    """One pickle (one memo) for the threads' stacks and the program's
    objects: after loading, the lock a thread waits on in Condition.wait is
    the very lock in the Condition's _waiters, which notify() releases."""
    from pyckpt import heap, state

    cond = threading.Condition(threading.Lock())

    def wait():
        with cond:
            cond.wait()

    waiting = threading.Thread(target=wait, name="waiting", daemon=True)
    waiting._stderr = None  # it would be pytest's capture of stderr, which cannot be pickled
    waiting.start()
    wait_until(lambda: len(cond._waiters) == 1)
    parked = threads.park()
    try:
        root = {"cond": cond, "threads": [(slot, thread, state._encode_state(stack))
                                          for slot, thread, stack in parked if thread is waiting]}
        data, arrays = heap.dumps(root, threads={slot.ident: slot for slot, _, _ in parked})
    finally:
        _core.release_threads()
    with cond:
        cond.notify()
    restored = heap.loads(data, dict(arrays).__getitem__)
    (_, thread, stack), = restored["threads"]
    frame = next(f for f in stack.frames if f.code.co_name == "wait" and f.code.co_filename == threading.__file__)
    waiter = frame.localsplus[frame.code.co_varnames.index("waiter")]
    assert waiter is restored["cond"]._waiters[0] and waiter.locked()
    assert restored["cond"]._lock is not cond._lock and thread.name == "waiting"
