"""A Python rank under the preload library: shows what it saw at start and
whether pyckpt attached at MPI_Init."""
import os
import sys

print("argv", sys.argv, "PYTHONPATH", os.environ.get("PYTHONPATH"), "RESUME", os.environ.get("PYCKPT_RESUME_DIR"),
      flush=True)
from mpi4py import MPI  # noqa: E402

import pyckpt.mpi  # noqa: E402

print("rank", MPI.COMM_WORLD.Get_rank(), "attached", getattr(pyckpt.mpi, "_job", None) is not None
      and pyckpt.mpi._job.attached, flush=True)
