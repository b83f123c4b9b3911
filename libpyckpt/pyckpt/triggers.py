"""When a serial program checkpoints: the trigger engine of `pyckpt run`.

Three triggers ask for a checkpoint at the next safe point: a signal
(SIGUSR1 by default, a batch system's warning signal), an interval, and a
request file that `pyckpt request DIR` drops into the checkpoint directory.
They are watched by a thread of pyckpt._core that never takes the GIL
(triggers.cpp): the program pays nothing for them between checkpoints. The
interval counts from the end of the previous checkpoint (the end of the
program's pause, or of a forked writer's commit) and stretches to 4x the
program's last pause when shorter, so that checkpoints cannot starve the
program; the user is told once when that happens. An MPI job has the same
three triggers in libpyckpt_mpi.so (pyckpt.mpi), whose coordinator carries a
request to every rank.
"""
import signal
import sys
import time

from . import _core, privacy

# The signal number whose Python handler a C thread of pyckpt makes the main
# thread run to ask for a safe point: the serial trigger thread here, the MPI
# interposer's waker in a job. No OS signal is involved (the C thread calls
# PyErr_SetInterruptEx): the number only names the handler, and the
# application must not install a handler of its own for it.
WAKE_SIGNAL = signal.SIGRTMAX - 1


def request(directory):
    """`pyckpt request DIR`: asks the program checkpointing into DIR for a
    checkpoint now."""
    privacy.create_directory(directory)
    privacy.write_file(_core.CheckpointDir(directory).request_path, f"{time.time()}\n")


class Triggers:
    """Arms the triggers of this process (start) and paces them: begin() and
    done() bracket every preemptive checkpoint, the trigger thread asks for
    the next one."""

    def __init__(self, request_checkpoint):
        self._request = request_checkpoint
        self._stopped = False

    def start(self, directory, interval, signal_name):
        """Watches the request file of `directory`, the interval (seconds,
        None for none) and the signal (a name, None for none)."""
        self._stopped = False
        signal.signal(WAKE_SIGNAL, lambda _signum, _frame: self._stopped or not _core.triggers_claim()
                      or self._request())
        signum = int(signal.Signals[signal_name]) if signal_name else 0
        _core.triggers_start(_core.CheckpointDir(directory).request_path, interval, signum, int(WAKE_SIGNAL))

    def stop(self):
        """The program ended: no more requests (the signal is then ignored)."""
        self._stopped = True
        _core.triggers_stop()

    @staticmethod
    def begin():
        """A preemptive checkpoint starts: the program's pause is timed from here."""
        _core.triggers_begin()

    @staticmethod
    def done(writer_pid=None, postponed=False):
        """The program goes on. writer_pid: the forked writer committing the
        checkpoint (the next one is not asked for before it exited);
        postponed: none could be taken while that writer runs, take one once
        it exited."""
        notice = _core.triggers_done(writer_pid or 0, postponed=postponed)
        if notice:
            print(notice, file=sys.stderr, flush=True)
