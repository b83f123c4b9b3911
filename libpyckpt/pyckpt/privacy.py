"""Files pyckpt creates are the user's alone, whatever the umask: a
checkpoint holds the program's memory (environment, tokens, data), and the
names around it tell what runs where. Checkpoint files and directories are
created by the container (hdf5_io: 0600, 0700); the small files the Python
layer adds to a checkpoint directory (writing markers, requests) go through
here."""
import os


def create_directory(directory):
    """`directory` and its missing parents, mode 0700 (an existing one is left
    as it is)."""
    # Imported here: _core loads the HDF5 and MPI libraries, which `pyckpt
    # run` must not load before its re-exec (pyckpt.cli imports this module).
    from . import _core
    _core.CheckpointDir(directory).create()


def write_file(path, text=""):
    """Creates or replaces `path` with `text`, mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)  # the umask only removes bits, but a file that existed keeps its mode
        f.write(text)
