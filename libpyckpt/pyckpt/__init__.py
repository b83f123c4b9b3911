"""pyckpt: checkpoint/restart of Python HPC applications.

See the README and doc/ for the design; the public names are exported here.
"""
from .errors import CheckpointError, CheckpointFileError, ChecksumError, UnsupportedStateError

__all__ = ["CheckpointError", "CheckpointFileError", "ChecksumError", "UnsupportedStateError"]
__version__ = "0.1.0"
