"""The exceptions pyckpt raises. Every one is a CheckpointError."""


class CheckpointError(Exception):
    """Base of every pyckpt error."""


class UnsupportedStateError(CheckpointError):
    """The process holds state pyckpt cannot capture (a socket, a thread, a C
    function between two Python frames, ...). The message names the object or
    frame at fault; no checkpoint is written and the previous one is kept."""


class UsageError(CheckpointError, ValueError):
    """A pyckpt API was called wrongly (an argument out of range, an object
    used after it was closed or committed, ...). Also a ValueError, which is
    what such calls raised before."""


class CheckpointFileError(CheckpointError):
    """A checkpoint file or directory cannot be used: missing, unwritable,
    truncated, corrupt, foreign, of an unknown format version, or failing its
    checksums. The message names the file and, where known, the dataset."""


class ChecksumError(CheckpointFileError):
    """A dataset's data does not match the checksum recorded when it was written."""


class AuthenticationError(CheckpointFileError):
    """A checkpoint fails authentication: written with another key, altered or
    damaged since it was written, or there is no key to check it with. Nothing
    of it is unpickled (doc/security.md)."""


class KeyFileError(CheckpointError):
    """The checkpoint key file is missing, unsafe (readable by other users) or
    malformed; the message names it (doc/security.md)."""
