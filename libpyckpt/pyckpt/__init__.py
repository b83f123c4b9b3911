"""pyckpt: checkpoint/restart of Python HPC applications.

    import pyckpt
    if pyckpt.checkpoint():      # False after writing; True once restarted
        print("resumed")

`pyckpt run script.py` checkpoints an unmodified script preemptively and
`pyckpt restart DIR` resumes it; see the README and doc/.
"""
from .errors import (AuthenticationError, CheckpointError, CheckpointFileError, ChecksumError, KeyFileError,
                     UnsupportedStateError, UsageError)
from .session import checkpoint, wait

__all__ = ["AuthenticationError", "CheckpointError", "CheckpointFileError", "ChecksumError", "KeyFileError",
           "UnsupportedStateError", "UsageError", "checkpoint", "register_reducer", "wait"]
__version__ = "0.1.0"


def __getattr__(name):
    # pyckpt.heap (pickling machinery, NumPy) is imported on first use of
    # register_reducer, not with the package: `pyckpt run` starts the program
    # without waiting for it.
    if name == "register_reducer":
        from .heap import register_reducer
        return register_reducer
    raise AttributeError(f"module 'pyckpt' has no attribute {name!r}")
