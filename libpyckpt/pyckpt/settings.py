"""How pyckpt is configured from outside: every PYCKPT_* environment variable,
the defaults, and signal names.

`pyckpt mpirun` and `pyckpt srun` pass their options to the ranks as these
variables, and so does the Slurm SPANK plugin (slurm/spank/) for srun's
`--pyckpt-*` options (a user may also set them by hand with `mpirun -x`);
`pyckpt run` takes options and
records them in each checkpoint, so a restarted process goes on the same way.

PYCKPT_DIR        checkpoint directory (default: the container's, ./pyckpt.d)
PYCKPT_KEEP       committed checkpoints kept (default 2)
PYCKPT_INTERVAL   seconds between preemptive checkpoints (default: none)
PYCKPT_SIGNAL     signal that requests a checkpoint (default SIGUSR1; "none")
PYCKPT_ASYNC      1: an MPI job's ranks go on once their data is copied, and a
                  thread of each rank writes it (`pyckpt mpirun --async`)
PYCKPT_TEST_DRAIN_DELAY for tests only: seconds the writing thread of an
                  asynchronous MPI checkpoint waits before it writes, so that
                  a test can kill a rank while a checkpoint drains
PYCKPT_RESTART    auto | never: whether a preloaded rank resumes from the
                  directory's latest checkpoint (read by the preload library)
PYCKPT_RESUME_DIR set by the preload library for `pyckpt resume-rank`
PYCKPT_RESUME_FILE set by `pyckpt mpirun` and `restart --mpirun`: the
                  checkpoint of the directory every rank resumes, the newest
                  that verifies (pyckpt.session.newest_verified)
PYCKPT_REFUSED    set by `pyckpt restart DIR` when it runs itself again
                  without a checkpoint whose data failed its checksum as it
                  was read: JSON [[path, why], ...] (pyckpt.session)
PYCKPT_STDIN_OFFSET set by `pyckpt mpirun` when it resumes a job: the job's
                  input (its stdin, which mpirun feeds to rank 0) starts at
                  this byte of the input file
PYCKPT_END_FILE   set by `pyckpt mpirun/srun --slurm-requeue`: rank 0 creates this
                  file when the program ends by itself (pyckpt.slurm)
PYCKPT_SLURM_REQUEUE set by the SPANK plugin's --pyckpt-requeue to the
                  job's --pyckpt-max-restarts: after the checkpoint a
                  checkpoint signal asked for (Slurm's time-limit signal),
                  the ranks hold and rank 0 requeues the Slurm job, unless it
                  was restarted that many times (pyckpt.mpi, pyckpt.slurm)
PYCKPT_KEY_FILE   the key that authenticates checkpoints (default
                  $XDG_CONFIG_HOME/pyckpt/key, else ~/.config/pyckpt/key;
                  read by the container, hdf5_io's Key; doc/security.md)
PYCKPT_VERBOSE    report each committed checkpoint on stderr
PYCKPT_MPI_TRACE  libpyckpt_mpi.so traces its protocol (read there)
"""
import json
import os
import signal

DEFAULT_KEEP = 2
DEFAULT_SIGNAL = "SIGUSR1"
# Diagnostics that `pyckpt mpirun` forwards to the ranks on every node.
DIAGNOSTICS = ("PYCKPT_VERBOSE", "PYCKPT_MPI_TRACE")
KEY_FILE_VARIABLE = "PYCKPT_KEY_FILE"


def directory(explicit=None):
    """The checkpoint directory: `explicit`, else $PYCKPT_DIR, else the default."""
    if explicit or os.environ.get("PYCKPT_DIR"):
        return explicit or os.environ["PYCKPT_DIR"]
    # Imported here: the command line reads these settings before `pyckpt
    # run` re-executes itself, and _core loads the HDF5 and MPI libraries.
    from . import _core
    return _core.DEFAULT_DIRECTORY


def keep():
    return int(os.environ.get("PYCKPT_KEEP") or DEFAULT_KEEP)


def interval():
    """Seconds between preemptive checkpoints of an MPI job; None for none."""
    return float(os.environ.get("PYCKPT_INTERVAL") or 0) or None


def signal_name():
    """The signal that requests a checkpoint of an MPI job; None for none."""
    name = os.environ.get("PYCKPT_SIGNAL", DEFAULT_SIGNAL)
    return None if name.lower() == "none" else canonical_signal(name)


def asynchronous():
    return os.environ.get("PYCKPT_ASYNC", "").lower() in ("1", "yes", "on", "true")


def test_drain_delay():
    return float(os.environ.get("PYCKPT_TEST_DRAIN_DELAY") or 0)


def resume_directory():
    return os.environ.get("PYCKPT_RESUME_DIR")


def refused_checkpoints():
    """[(path, why)] of checkpoints an earlier attempt of this restart refused."""
    return [tuple(entry) for entry in json.loads(os.environ.get("PYCKPT_REFUSED") or "[]")]


def resume_file():
    """The checkpoint file the ranks of a resumed job open; None: the
    resume directory's `latest`."""
    return os.environ.get("PYCKPT_RESUME_FILE") or None


def restart_enabled():
    """Whether preloaded ranks resume from the checkpoint directory's latest
    checkpoint (PYCKPT_RESTART, read by the preload library)."""
    return os.environ.get("PYCKPT_RESTART", "auto").lower() not in ("never", "0", "no", "off")


def stdin_offset():
    """The byte of the job's input at which this rank's stdin begins."""
    return int(os.environ.get("PYCKPT_STDIN_OFFSET") or 0)


def end_file():
    """The file rank 0 creates when the program ends by itself; None: none."""
    return os.environ.get("PYCKPT_END_FILE") or None


def slurm_requeue_max_restarts():
    """The job requeues itself at the checkpoint signal (the SPANK plugin's
    --pyckpt-requeue) unless restarted this many times; None: it does not."""
    value = os.environ.get("PYCKPT_SLURM_REQUEUE")
    return int(value) if value else None


def verbose():
    return bool(os.environ.get("PYCKPT_VERBOSE"))


def job_environment(directory, keep, interval=None, signal_name=None, asynchronous=False):
    """The variables `pyckpt mpirun` and `pyckpt srun` export to the ranks
    (read back by the functions above in each rank)."""
    env = {"PYCKPT_DIR": os.path.abspath(directory), "PYCKPT_KEEP": str(keep),
           # Restart resumes with the original seed (the checkpoint records it).
           "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED") or str(int.from_bytes(os.urandom(4), "little"))}
    if interval:
        env["PYCKPT_INTERVAL"] = str(interval)
    if signal_name:
        env["PYCKPT_SIGNAL"] = signal_name
    if asynchronous:
        env["PYCKPT_ASYNC"] = "1"
    env.update({name: os.environ[name] for name in (*DIAGNOSTICS, KEY_FILE_VARIABLE) if name in os.environ})
    return env


def job_triggers():
    """The trigger settings of this MPI job as given (recorded in its
    checkpoints, so that `pyckpt restart --mpirun` goes on the same way)."""
    return {"interval": os.environ.get("PYCKPT_INTERVAL", ""), "signal": os.environ.get("PYCKPT_SIGNAL", ""),
            "asynchronous": int(asynchronous())}


def canonical_signal(text):
    """'usr1', 'SIGUSR1' -> 'SIGUSR1'; ValueError for an unknown signal."""
    name = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
    if name not in signal.Signals.__members__:
        raise ValueError(f"unknown signal {text!r}")
    return name
