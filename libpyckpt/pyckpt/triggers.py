"""When a serial program checkpoints: the trigger engine of `pyckpt run`.

Three triggers ask for a checkpoint at the next safe point: a signal
(SIGUSR1 by default, a batch system's warning signal), an interval, and a
request file that `pyckpt request DIR` drops into the checkpoint directory.
The interval counts from the end of the previous checkpoint, not on a fixed
clock, so that a slow commit leaves the program time to run. An MPI job has
the same three triggers in libpyckpt_mpi.so (a thread of its own, no GIL:
pyckpt.mpi), whose coordinator carries a request to every rank.
"""
import os
import signal
import threading
import time

from . import _core, privacy

_TICK = 0.02  # seconds between two looks at the clock and the request file
THREAD_NAME = "pyckpt-triggers"  # pyckpt's only Python thread: not the program's


def request(directory):
    """`pyckpt request DIR`: asks the program checkpointing into DIR for a
    checkpoint now."""
    privacy.create_directory(directory)
    privacy.write_file(_core.CheckpointDir(directory).request_path, f"{time.time()}\n")


class Triggers:
    """request(): asks for a checkpoint (idempotent while one is pending).
    busy(): True while no request may be made yet (one is pending, or the
    previous checkpoint is still being written); the request is then made
    as soon as it is False."""

    def __init__(self, request_checkpoint, busy=lambda: False):
        self._request = request_checkpoint
        self._busy = busy
        self._interval = None
        self._request_path = None
        self._thread = None
        self._last_done = time.monotonic()
        self._retry = False
        self._stopped = False

    def install_signal(self, signal_name):
        """A Python-level handler: the request is made by the main thread
        between two bytecodes (serial programs; an MPI job installs its
        handler in libpyckpt_mpi.so, which works while a rank waits in MPI)."""
        signal.signal(signal.Signals[signal_name], lambda _signum, _frame: self._stopped or self._request())

    def stop(self):
        """The program ended: no more requests (the signal is then ignored)."""
        self._stopped = True

    def watch(self, directory, interval):
        """Watches the interval (seconds, None for none) and the request file
        of `directory` in a daemon thread."""
        self._interval = interval
        self._request_path = _core.CheckpointDir(directory).request_path
        self._last_done = time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def done(self):
        """A checkpoint was handed off: the interval counts from now."""
        self._last_done = time.monotonic()

    def postpone(self):
        """A checkpoint could not be taken now: request it again once not busy."""
        self._retry = True

    def _take_request_file(self):
        try:
            os.unlink(self._request_path)
        except OSError:
            return False  # none, or another watcher or a restart took it
        return True

    def _loop(self):
        while not self._stopped:
            time.sleep(_TICK)
            if self._take_request_file():
                self._retry = True
            due = self._retry or (self._interval and time.monotonic() - self._last_done >= self._interval)
            if due and not self._busy():
                self._retry = False
                self._request()
