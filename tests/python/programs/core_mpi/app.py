"""A Python rank of an mpi4py job run with pyckpt's two preload libraries
(libpyckpt_mpi.so:libpyckpt_python_rank.so). Prints what it saw at its start
and what the Python-rank library did at MPI_Init, then, by its argument:

    (none)      a Barrier, then `rank R done`
    signal      rank 1 sends itself the checkpoint signal (PYCKPT_SIGNAL,
                default SIGUSR1): the handler attach() installed requests a
                checkpoint, taken at the following Allreduces
    checkpoint  pyckpt.checkpoint(): `rank R checkpointed`, or in the job
                resumed from that checkpoint `rank R resumed`
"""
import os
import signal
import sys
import time

import numpy as np

MODE = sys.argv[1] if len(sys.argv) > 1 else ""


def say(line):
    """One line, one write: mpirun does not mix it with the other rank's."""
    os.write(1, (line + "\n").encode())


say(f"program start {sys.argv[1:]} PYTHONPATH={os.environ.get('PYTHONPATH')}")

from mpi4py import MPI  # noqa: E402  MPI_Init: the Python-rank library attaches pyckpt here

imported_at_init = "pyckpt.mpi" in sys.modules

import pyckpt  # noqa: E402
import pyckpt.mpi  # noqa: E402
from pyckpt import _core  # noqa: E402


def report():  # a function: the checkpoints below capture the module's globals
    job = pyckpt.mpi._job
    woken = callable(signal.getsignal(pyckpt.mpi.WAKE_SIGNAL))  # attach() armed the waker's handler
    say(f"rank {rank} imported {imported_at_init} attached {job.attached} world {job.rank}/{job.size} "
        f"wake {woken} loaded {_core.mpi_loaded()}")


world = MPI.COMM_WORLD
rank = world.Get_rank()
report()

if MODE == "signal":
    if rank == 1:
        os.kill(os.getpid(), signal.SIGUSR1)  # fatal unless attach() installed the library's handler
    deadline = time.monotonic() + 60
    # MIN over the ranks: fewest checkpoints, -(any rank past the deadline)
    mine, fewest = np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64)
    while fewest[0] == 0 and fewest[1] == 0:
        mine[:] = _core.mpi_stats()["checkpoints"], -(time.monotonic() > deadline)
        world.Allreduce(mine, fewest, op=MPI.MIN)
    say(f"rank {rank} checkpoints {fewest[0]}")
elif MODE == "checkpoint":
    world.Barrier()
    resumed = pyckpt.checkpoint()
    say(f"rank {rank} {'resumed' if resumed else 'checkpointed'}")
else:
    world.Barrier()
    say(f"rank {rank} done")
