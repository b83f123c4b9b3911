"""Slurm batch jobs that continue past their time limit: `pyckpt mpirun
--slurm-requeue` and `pyckpt srun --slurm-requeue` (doc/slurm.md), and the
srun command line of `pyckpt srun` (srun_command).

A batch script submitted with `--requeue --signal=B:USR1@<seconds>` gets
SIGUSR1 in its shell that many seconds before the time limit. The script
ends with `exec pyckpt mpirun --slurm-requeue ...` (or `pyckpt srun`), so
that pyckpt is that shell's process. With --slurm-requeue it does not become
the launcher, mpirun or srun (as it does without), but runs it as its child
and supervises the job (below, "mpirun" stands for either):

- On the signal: asks the job for a checkpoint after which the ranks hold
  (mpi.py, `_hold_if_stopping`: they print nothing more that the resumed job
  would print again), waits until rank 0 says that checkpoint is committed,
  ends mpirun, and requeues the job (`scontrol requeue $SLURM_JOB_ID`). Slurm
  starts the same script again with SLURM_RESTART_COUNT one higher, and its
  ranks resume from the directory's `latest`, as after any restart.
- mpirun ending with status 0 after the program ended on rank 0 (which
  says so at its interpreter's exit, PROGRAM_END_FILE: mpirun that Slurm
  ends exits 0 too): the run is finished; the directory is marked complete
  (COMPLETE_FILE), and `pyckpt mpirun` refuses to run into
  it again rather than resume a finished run from its last checkpoint (a
  Slurm restart of the job that finished it, after a node failure that
  struck after the end, exits 0 instead).
- mpirun failing: its status is the job's; no requeue (an error of the
  program would fail the same way again). Node failures are requeued by
  Slurm itself (--requeue) and resume from the last checkpoint.
- --max-restarts N: a job whose SLURM_RESTART_COUNT exceeds N is not run,
  and one that has reached N is not requeued at the signal: a job that never
  gets further cannot loop for ever.

Without a supervisor, under the SPANK plugin's --pyckpt-requeue (srun
steps of a job submitted with `--signal=USR1@<seconds>`, which Slurm sends
to the tasks): the checkpoint signal reaches every rank; after the
checkpoint it asked for, the ranks hold and rank 0 requeues the job
(requeue_self; Slurm ends the ranks), unless --pyckpt-max-restarts is
reached (may_requeue). Rank 0 marks the directory complete when its program
ends by itself (mark_complete_at_exit), and the plugin refuses a step into a
finished run's directory, or of a job restarted more than
--pyckpt-max-restarts times.
"""
import atexit
import datetime
import json
import os
import signal
import subprocess
import sys
import time

from . import _core
from .errors import CheckpointError

DEFAULT_MAX_RESTARTS = 10
COMPLETE_FILE = "complete"                 # written in the checkpoint directory when the run finished
STOP_REQUEST_FILE = ".stop-after-checkpoint"  # supervisor -> ranks: hold after the next checkpoint
STOPPED_FILE = ".stopped"                  # rank 0 -> supervisor: the epoch the ranks hold after
PROGRAM_END_FILE = ".program-ended"        # rank 0 -> supervisor: the program ended by itself
END_MARGIN = 5     # seconds before the time limit by which the job is requeued, checkpoint or not
POLL = 0.05        # seconds between two looks at the job
STOP_TIMEOUT = 30  # seconds mpirun gets to end after SIGTERM before SIGKILL


class SlurmJob:
    """This process's Slurm batch job, from the environment Slurm gives it."""

    def __init__(self, environ=os.environ):
        self.id = environ.get("SLURM_JOB_ID")
        if not self.id:
            raise CheckpointError("--slurm-requeue works inside a Slurm batch job (SLURM_JOB_ID is not set)")
        self.restart_count = int(environ.get("SLURM_RESTART_COUNT") or 0)

    def end_time(self):
        """The job's end (Unix time) as slurmctld has it, or None."""
        proc = subprocess.run(["scontrol", "-o", "show", "job", self.id], capture_output=True, text=True)
        fields = dict(item.split("=", 1) for item in proc.stdout.split() if "=" in item)
        try:
            return datetime.datetime.strptime(fields["EndTime"], "%Y-%m-%dT%H:%M:%S").timestamp()  # local time
        except (KeyError, ValueError):
            return None  # no limit (EndTime=Unknown) or no answer: no deadline

    def requeue(self):
        proc = subprocess.run(["scontrol", "requeue", self.id], capture_output=True, text=True)
        if proc.returncode != 0:
            raise CheckpointError(f"scontrol requeue {self.id} failed: {proc.stderr.strip()}")


def rank_attributes(environ=os.environ):
    """Per rank: the Slurm node it ran on ({} outside Slurm)."""
    return {"slurm_node": environ["SLURMD_NODENAME"]} if environ.get("SLURMD_NODENAME") else {}


def environment_attributes(environ=os.environ):
    """The Slurm facts recorded in each checkpoint of a job run under Slurm
    (shown by `pyckpt ls`/`inspect`): {} outside Slurm."""
    if not environ.get("SLURM_JOB_ID"):
        return {}
    return {"slurm_job_id": environ["SLURM_JOB_ID"],
            "slurm_restart_count": int(environ.get("SLURM_RESTART_COUNT") or 0),
            "slurm_nodelist": environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST", "")}


# --- the checkpoint directory's marks -------------------------------------------------

def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json(path, value):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def completed_run(directory):
    """What COMPLETE_FILE says about a finished run in `directory`, or None."""
    return _read_json(os.path.join(directory, COMPLETE_FILE))


def refuse_completed(directory):
    """`pyckpt mpirun` (or srun) into a directory whose run finished: an error saying so."""
    done = completed_run(directory)
    if done is None:
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(done.get("finished_unix", 0)))
    job = f" (Slurm job {done['slurm_job_id']})" if done.get("slurm_job_id") else ""
    raise CheckpointError(f"{directory} holds a run that finished at {when}{job}: not resuming a finished run; "
                          f"remove {os.path.join(directory, COMPLETE_FILE)} (or the directory) to run it again "
                          f"from the start, or use another --dir")


def _mark_complete(directory, job):
    _write_json(os.path.join(directory, COMPLETE_FILE),
                {"slurm_job_id": job.id, "slurm_restart_count": job.restart_count, "finished_unix": time.time(),
                 "last_epoch": _latest_epoch(directory)})


def mark_complete_at_exit(directory):
    """Rank 0 of a job that requeues itself: marks `directory` complete when
    the interpreter exits after the program ended without an uncaught
    exception (CPython leaves it in sys.last_value then). A rank killed by a
    signal never gets there; sys.exit(N) of the program passes for an end."""
    job = SlurmJob()

    def at_exit():
        if hasattr(sys, "last_value"):
            return  # the program failed: a restart resumes its last checkpoint
        try:
            _mark_complete(directory, job)
        except OSError as exc:
            _say(f"job {job.id}: cannot mark {directory} complete: {exc}")
    atexit.register(at_exit)


def may_requeue(max_restarts):
    """Rank 0 at the checkpoint signal of a job that requeues itself:
    whether the job may be requeued once more (says why not)."""
    job = SlurmJob()
    if job.restart_count < max_restarts:
        return True
    _say(f"job {job.id}: not requeued at the checkpoint signal: restarted {job.restart_count} times, "
         f"--pyckpt-max-restarts {max_restarts} reached; it goes on until it ends or Slurm ends it")
    return False


def requeue_self(epoch):
    """Rank 0, every rank holding after checkpoint `epoch`: requeues the
    job (Slurm then ends its ranks). False, said, if scontrol failed."""
    job = SlurmJob()
    # Said first: Slurm may end this rank before scontrol returns.
    _say(f"job {job.id}: checkpoint {epoch} committed at the checkpoint signal; requeued (restart "
         f"{job.restart_count + 1}): it resumes from that checkpoint when Slurm starts it again")
    try:
        job.requeue()
    except CheckpointError as exc:
        _say(f"job {job.id}: not requeued after all: {exc}; the job goes on")
        return False
    return True


def stop_requested(directory):
    """Whether the ranks are to hold after the checkpoint being written (mpi.py)."""
    return os.path.exists(os.path.join(directory, STOP_REQUEST_FILE))


def report_stopped(directory, epoch):
    """Rank 0, holding after checkpoint `epoch`: tells the supervisor."""
    _write_json(os.path.join(directory, STOPPED_FILE), {"epoch": epoch})


def end_file(directory):
    """The file rank 0 creates when the program ends (PYCKPT_END_FILE)."""
    return os.path.join(directory, PROGRAM_END_FILE)


def report_program_end(path):
    """Rank 0's interpreter exits (the program ended, normally or with an
    exception; a rank killed by a signal never gets here)."""
    try:
        _write_json(path, {"finished_unix": time.time()})
    except OSError as exc:
        print(f"pyckpt: cannot record the end of the program in {path}: {exc}", file=sys.stderr, flush=True)


def _latest_epoch(directory):
    entries = [e for e in _core.CheckpointDir(directory).list() if e["latest"]]
    return entries[0]["epoch"] if entries else None


# --- the supervisor -------------------------------------------------------------------

def _say(message):
    print(f"pyckpt: {message}", file=sys.stderr, flush=True)


class _Supervisor:
    """Runs the launcher (mpirun or srun: `command`) as its child."""

    def __init__(self, command, environment, directory, signal_name, max_restarts):
        self.command = command
        self.environment = environment
        self.directory = directory
        self.signal_name = signal_name or "SIGUSR1"
        self.max_restarts = max_restarts
        self.job = SlurmJob()
        self.signalled = False
        self.terminated = False  # Slurm is ending the job: whatever mpirun returns, the run is not finished
        self.launcher = None

    def run(self):
        done = completed_run(self.directory)
        if done is not None and done.get("slurm_job_id") == self.job.id:
            # This job finished its run; Slurm restarted it anyway (a node
            # failure after the end): nothing is left to do.
            _say(f"job {self.job.id}: its run in {self.directory} finished already; nothing to resume")
            return 0
        refuse_completed(self.directory)
        if self.job.restart_count > self.max_restarts:
            raise CheckpointError(
                f"job {self.job.id} was restarted {self.job.restart_count} times, more than --max-restarts "
                f"{self.max_restarts}: not running it again (its checkpoints stay in {self.directory}; raise "
                f"--max-restarts and requeue it to go on)")
        os.makedirs(self.directory, exist_ok=True)
        for stale in (STOP_REQUEST_FILE, STOPPED_FILE, PROGRAM_END_FILE):  # of an earlier allocation of this job
            _remove(os.path.join(self.directory, stale))
        signal.signal(signal.Signals[self.signal_name], self._on_checkpoint_signal)
        signal.signal(signal.SIGTERM, self._on_terminate)
        sys.stdout.flush()
        sys.stderr.flush()
        self.launcher = subprocess.Popen(self.command, env=self.environment)
        while self.launcher.poll() is None and not self.signalled:
            time.sleep(POLL)
        if self.launcher.poll() is None:
            return self._checkpoint_and_requeue()
        return self._finished(self.launcher.returncode)

    def _on_checkpoint_signal(self, _signum, _frame):
        self.signalled = True

    def _on_terminate(self, signum, _frame):
        """Slurm ends the job (scancel, the time limit, a node taken down):
        mpirun ends its ranks; this process ends with it. (mpirun told to
        end exits 0: that must not pass for the end of the run.)"""
        self.terminated = True
        if self.launcher is not None and self.launcher.poll() is None:
            self.launcher.send_signal(signum)
        signal.signal(signum, signal.SIG_DFL)

    def _finished(self, status):
        """mpirun ended by itself: the run is finished if the program ended
        on rank 0 and mpirun reports success."""
        ended = os.path.exists(end_file(self.directory))
        if self.terminated or (status == 0 and not ended):
            _say(f"job {self.job.id}: ended before the program did (by Slurm?); a restart resumes from "
                 f"{self.directory}")
            return status or 1
        if status == 0:
            _mark_complete(self.directory, self.job)
        return status

    def _checkpoint_and_requeue(self):
        before = _latest_epoch(self.directory)
        _say(f"job {self.job.id}: {self.signal_name} before the time limit: checkpointing")
        _write_json(os.path.join(self.directory, STOP_REQUEST_FILE), {"slurm_job_id": self.job.id})
        from .triggers import request
        request(self.directory)
        end = self.job.end_time()
        deadline = end - END_MARGIN if end is not None else None
        stopped = None
        while self.launcher.poll() is None and (deadline is None or time.time() < deadline):
            stopped = _read_json(os.path.join(self.directory, STOPPED_FILE))
            if stopped is not None:
                break
            time.sleep(POLL)
        if self.launcher.poll() is not None:  # the run ended while the checkpoint was asked for
            return self._finished(self.launcher.returncode)
        self._stop_launcher()
        if stopped is not None:
            _say(f"job {self.job.id}: checkpoint {stopped['epoch']} committed")
        else:
            _say(f"job {self.job.id}: no checkpoint committed before the time limit; the next run resumes from "
                 + (f"checkpoint {before}" if before is not None else "the start"))
        if self.job.restart_count >= self.max_restarts:
            _say(f"job {self.job.id}: not requeued: restarted {self.job.restart_count} times, --max-restarts "
                 f"{self.max_restarts} reached (its checkpoints stay in {self.directory})")
            return 1
        self.job.requeue()
        _say(f"job {self.job.id}: requeued (restart {self.job.restart_count + 1}); it resumes from "
             f"{self.directory} when Slurm starts it again")
        return 0

    def _stop_launcher(self):
        """Ends the held job: SIGTERM to mpirun (srun), which ends its ranks."""
        self.launcher.terminate()
        try:
            self.launcher.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.launcher.kill()
            self.launcher.wait()
        for mark in (STOP_REQUEST_FILE, STOPPED_FILE):
            _remove(os.path.join(self.directory, mark))


def supervise(command, environment, directory, signal_name, max_restarts):
    """Runs `command` (mpirun or srun with its arguments) under the supervision
    described at the top; returns this process's exit status."""
    return _Supervisor(command, environment, os.path.abspath(directory), signal_name, max_restarts).run()


# --- pyckpt srun ----------------------------------------------------------------------

def srun_command(srun_args, job_environment, preload, environ=os.environ):
    """`pyckpt srun`'s launcher: (srun command line, the environment srun
    runs in), for `srun_args` (what followed `--`), the ranks' variables
    `job_environment` and the libraries they preload (`preload`, as
    LD_PRELOAD).

    srun gives its tasks its own environment (--export=ALL, its default), so
    the PYCKPT_* variables go into srun's environment. LD_PRELOAD must reach
    the tasks but not srun itself (it would load the MPI interposer into
    srun): it goes through `--export=ALL,LD_PRELOAD=...`, and out of srun's
    environment, whose variables would take precedence there (a
    LD_PRELOAD of the caller follows pyckpt's libraries in the tasks')."""
    args = list(srun_args[1:] if srun_args[:1] == ["--"] else srun_args)
    if not args:
        raise CheckpointError("no srun arguments: pyckpt srun [PYCKPT OPTIONS] -- [SRUN OPTIONS] PROGRAM ARGS")
    given = [a for a in args if a == "--export" or a.startswith("--export=")]
    if given:
        raise CheckpointError(f"srun {given[0]}: pyckpt srun sets srun's --export itself (to preload the ranks); "
                              f"set the variables the tasks need in the environment instead (srun passes it on)")
    environment = {**environ, **job_environment}
    caller_preload = environment.pop("LD_PRELOAD", "")
    tasks_preload = ":".join(p for p in (preload, caller_preload) if p)
    if "," in tasks_preload:
        raise CheckpointError(f"LD_PRELOAD {tasks_preload!r} holds a comma, which srun's --export cannot pass on")
    return ["srun", f"--export=ALL,LD_PRELOAD={tasks_preload}", *args], environment
