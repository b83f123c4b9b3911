"""Benchmarks of frame capture and resume (figures printed with -s; the
asserted bounds are 10x the targets so that a loaded machine does not fail).

Capture: a stack of 50 Python frames with small locals, minus the same calls
without the capture. Resume: the same 50 frames resumed (in this process, from
the in-memory state) and run to completion.
"""
import sys
import time

from pyckpt import _core

DEPTH = 50
BASE = None


def bottom(n, capture):
    a, b = n, str(n)
    if n == 1:
        return _core.capture_stack(BASE) if capture else None
    return bottom(n - 1, capture) or a and b and None


def root(capture):
    global BASE
    BASE = sys._getframe()
    return bottom(DEPTH - 1, capture)


def best_of(fn, repeat=5, number=200):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def test_capture_and_resume_50_frames():
    state = root(True)
    assert len(state[1]) == DEPTH
    baseline = best_of(lambda: root(False))
    capture = best_of(lambda: root(True)) - baseline
    assert _core.resume_stack(state, None) is None
    resume = best_of(lambda: _core.resume_stack(state, None)) - baseline
    print(f"\n50-frame capture: {capture * 1e6:.1f} us (target 100 us); "
          f"resume: {resume * 1e6:.1f} us (target 1000 us); plain calls: {baseline * 1e6:.1f} us")
    assert capture < 1e-3
    assert resume < 1e-2
