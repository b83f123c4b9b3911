"""Safe points and refusals of the interp API (pyckpt._core).

Preemptive programs are run uninterrupted and with a checkpoint requested
from a signal handler / a timer thread; the state captured at the safe point
is saved with the stand-in pickler of test_interp_resume and resumed in a
fresh process; outputs must match.
"""
import asyncio
import sys
import threading

import pytest

from pyckpt import _core
from pyckpt.errors import UnsupportedStateError
from test_interp_resume import check_program

SAFEPOINT_PRELUDE = """
import os, signal, threading
from pyckpt import _core
from test_interp_resume import save
def _at_safe_point(state):
    path = os.environ.get("INTERP_STATE")
    if path and not isinstance(state, BaseException):
        save(state, path)
        sys.stdout.flush()
        os._exit(0)
    raise state
_core.set_safe_point_callback(_at_safe_point)
def request_via_signal():
    if os.environ.get("INTERP_STATE"):
        os.kill(os.getpid(), signal.SIGUSR1)
signal.signal(signal.SIGUSR1, lambda *a: _core.request_safe_point())
"""


def test_signal_request_waits_for_safe_point(tmp_path):
    # The request arrives inside a key function called by sorted() (C between
    # frames): the capture waits until the loop body is back in Python.
    check_program(tmp_path, SAFEPOINT_PRELUDE + """
requested = False
def key(x):
    global requested
    if x == 3 and not requested:  # restored as True in the resumed process
        requested = True
        request_via_signal()
    return -x
total = 0
for i in range(4):
    data = sorted([1, 3, 2], key=key)
    total += sum(d * i for d in data)
    print(i, data, total)
""")


def test_timer_thread_request(tmp_path):
    check_program(tmp_path, SAFEPOINT_PRELUDE + """
import time
def work(n):
    s = 0
    for i in range(n):
        s += i * i
    return s
if os.environ.get("INTERP_STATE"):
    threading.Timer(0.05, _core.request_safe_point).start()
results = []
deadline = time.monotonic() + 0.3
while time.monotonic() < deadline:
    pass
for j in range(5):
    results.append(work(1000 + j))
print(results)
""")


def test_no_overhead_when_idle():
    assert not _core.safe_point_pending()
    assert sys.gettrace() is None


def test_cancel():
    _core.request_safe_point()
    assert _core.safe_point_pending()
    _core.cancel_safe_point()
    assert not _core.safe_point_pending()


def test_explicit_capture_under_c_function_names_it():
    def key(x):
        _core.capture_stack()
        return x
    with pytest.raises(UnsupportedStateError, match=r"C function <built-in function sorted> sits between .* and frame .*:\d+ in .*key"):
        sorted([2, 1], key=key)


def test_capture_under_init_from_c():
    class A:
        def __init__(self):
            _core.capture_stack()
    with pytest.raises(UnsupportedStateError, match=r"C function <class .*A'>"):
        A()


def test_non_main_thread():
    errors = []
    def body():
        try:
            _core.capture_stack()
        except UnsupportedStateError as e:
            errors.append(str(e))
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert errors and "main thread" in errors[0]


def test_running_coroutine_refused_suspended_one_captured():
    """A stack with a running coroutine frame cannot be captured (a safe
    point waits until it suspends); a suspended coroutine object can, and
    its rebuilt copy runs on from its `await`."""
    async def coro():
        _core.capture_stack()
    c = coro()
    with pytest.raises(UnsupportedStateError, match="coroutine"):
        c.send(None)

    class Tick:
        def __await__(self):
            return (yield "tick")

    async def adder(start):
        total = start
        for _ in range(3):
            total += await Tick()
        return total

    original = adder(100)
    assert original.send(None) == "tick" and original.send(1) == "tick"
    # The capture is shallow: the copy's stack holds the original's Tick
    # iterator, which only one of them may run on.
    copy = _core.rebuild_generator(_core.capture_generator(original))
    assert type(copy) is type(original) and copy.__qualname__ == original.__qualname__
    assert copy.send(10) == "tick"
    with pytest.raises(StopIteration) as done:
        copy.send(1000)
    assert done.value.value == 1111
    original.close()


def test_async_generator_and_its_awaitables_captured_in_process():
    """An async generator suspended in an `await` inside it, and the asend()
    being iterated that drives it, are rebuilt and run on; one an event loop
    iterates (it has the loop's finalizer) is refused, naming the loop."""
    class Tick:
        def __await__(self):
            return (yield "tick")

    async def numbers(start):
        got = yield start
        got += await Tick()
        yield got

    original = numbers(5)
    with pytest.raises(StopIteration) as first:
        original.__anext__().send(None)
    assert first.value.value == 5
    step = original.asend(10)
    assert step.send(None) == "tick"
    gstate = _core.capture_generator(original)
    assert gstate.status == "suspended" and tuple(gstate.async_state) == (True, False, True)
    copy = _core.rebuild_generator(gstate)
    _format, kind, agen, argument, status = _core.capture_async_awaitable(step)
    assert (kind, agen, argument, status) == ("asend", original, 10, "iter")
    step_copy = _core.rebuild_async_awaitable((_format, kind, copy, argument, status))
    assert type(copy) is type(original) and copy.ag_running
    with pytest.raises(StopIteration) as second:
        step_copy.send(100)
    assert second.value.value == 110
    with pytest.raises(RuntimeError, match="cannot reuse"):
        step_copy.send(None)

    async def looped():
        yield 1

    async def first():  # iterated inside the running loop, which installs its hooks
        return await looped_gen.__anext__()

    looped_gen = looped()
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(first()) == 1
        with pytest.raises(UnsupportedStateError, match="iterated by an event loop"):
            _core.capture_generator(looped_gen)
    finally:
        loop.run_until_complete(looped_gen.aclose())
        loop.close()


def test_generator_capture_and_rebuild_in_process():
    def gen(a, *, k):
        x = [a]
        for i in range(3):
            try:
                raise ValueError(i)
            except ValueError:
                got = yield i + k
                x.append(got)
        return x
    g = gen(1, k=10)
    fresh = gen(2, k=20)
    assert next(g) == 10
    # In one process the clone shares g's objects (the range iterator, x).
    clone = _core.rebuild_generator(_core.capture_generator(g))
    assert clone is not g and clone.gi_code is g.gi_code and clone.gi_suspended
    assert clone.send("a") == 11
    assert sys.exc_info() == (None, None, None)
    with pytest.raises(StopIteration) as stop:
        clone.send("b")
        clone.send("c")
    assert stop.value.value == [1, "a", "b", "c"]
    fresh_clone = _core.rebuild_generator(_core.capture_generator(fresh))
    assert list(fresh_clone) == list(fresh) == [20, 21, 22]
    done = _core.rebuild_generator(_core.capture_generator(fresh))
    assert list(done) == []


def test_state_format_is_checked():
    def f():
        return _core.capture_stack(sys._getframe())
    state = f()
    assert state[0] == _core.INTERP_FORMAT == "cpython-3.11"
    with pytest.raises(ValueError, match="captured by"):
        _core.resume_stack(("cpython-3.12", state[1]), None)
    with pytest.raises(ValueError, match="generator state"):
        _core.rebuild_generator(("cpython-3.11",))
