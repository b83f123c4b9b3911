"""pyckpt: checkpoint/restart of Python HPC applications.

    import pyckpt
    if pyckpt.checkpoint():      # False after writing; True once restarted
        print("resumed")

`pyckpt run script.py` checkpoints an unmodified script preemptively and
`pyckpt restart DIR` resumes it; see the README and doc/.
"""
from .errors import (AuthenticationError, CheckpointError, CheckpointFileError, ChecksumError, KeyFileError,
                     UnsupportedStateError, UsageError)
__all__ = ["AuthenticationError", "CheckpointError", "CheckpointFileError", "ChecksumError", "KeyFileError",
           "UnsupportedStateError", "UsageError", "checkpoint", "register_reducer", "wait"]
__version__ = "0.1.0"


_LAZY = {"checkpoint": "session", "wait": "session", "register_reducer": "heap"}


def __getattr__(name):
    # The API's modules are imported on first use, not with the package:
    # `pyckpt run` (pyckpt.cli) re-executes itself before it needs them, and
    # starts the program without waiting for the heap pickler and NumPy.
    if name in _LAZY:
        import importlib
        value = globals()[name] = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        return value
    raise AttributeError(f"module 'pyckpt' has no attribute {name!r}")
