"""mpi4py jobs under a real Slurm (issue 10): the example batch script
slurm/mpirun.sbatch, submitted with sbatch to a one-node cluster that this
file starts itself (slurm_cluster.LocalCluster: munged, slurmctld, slurmd,
installed with apt-get if missing, stopped by the fixture's finalizer).

- time limit: a 4-rank job with a one-minute limit and SIGUSR1 55 s before
  it is checkpointed, requeued by pyckpt and resumed by Slurm's next start of
  the same script, at least twice, and finishes with stdout and per-rank files
  identical to an uninterrupted run;
- node failure: the node is taken down under a running job (Slurm kills it
  and requeues it), brought back, and the job resumes from its last periodic
  checkpoint;
- the refusals that need no cluster: a finished run is not resumed, and
  --max-restarts stops a job restarted too often.

Slurm signals time limits from a check it makes every 30 s, so the time-limit
test takes about two minutes of wall time (printed with -s).
"""
import os
import subprocess
import time
from pathlib import Path

from mpi_job_harness import PROGRAMS, cli, latest_checkpoint, read_outputs
from slurm_jobs import RANK_ENVIRONMENT, BatchJob, Reference, cluster_fixture

SCRIPT = Path(__file__).resolve().parents[2] / "slurm" / "mpirun.sbatch"
PROGRAM = PROGRAMS / "slurm_steps.py"
RANKS = 4

cluster = cluster_fixture()


def _submit(cluster, work, steps, interval, time_limit, signal_at):
    """slurm/mpirun.sbatch with the settings it reads from the environment."""
    env = {**RANK_ENVIRONMENT, "APP": f"{PROGRAM} {steps}", "CKPT_DIR": str(work / "ckpt"),
           "CKPT_INTERVAL": str(interval), "MAX_RESTARTS": "40"}  # a loaded machine needs more allocations
    return BatchJob(cluster, work, SCRIPT, ["-n", RANKS, "-t", time_limit, f"--signal=B:USR1@{signal_at}"], env)


def _pyckpt(*args, env=None):
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_time_limit_requeue_resume(cluster, tmp_path):
    """SIGUSR1 before the limit -> checkpoint -> scontrol requeue -> the same
    script resumes; twice at least; the output is that of an uninterrupted run."""
    steps = 240  # ~60 s of steps: more than two allocations' worth before the signal
    work = tmp_path / "job"
    work.mkdir()
    job = _submit(cluster, work, steps, interval=600, time_limit=1, signal_at=55)
    ref = Reference(tmp_path, PROGRAM, RANKS, [steps])
    job.wait()
    ref_stdout, ref_outputs = ref.outputs()
    wall = time.monotonic() - job.started
    print(f"\ntime-limit job {job.id}: {job.restarts} requeues, {wall:.0f} s from sbatch to completion")
    assert job.state == "COMPLETED", f"job {job.id} ended {job.state}\n{job.describe()}"
    assert job.restarts >= 2, f"job {job.id} was requeued {job.restarts} times, not at least twice\n{job.describe()}"
    assert job.started_runs() == job.restarts + 1, job.describe()
    # Each run after the first resumed (the program never started again) ...
    assert job.stderr.count(f"program start: rank 0") == 1, job.describe()
    assert job.stderr.count("before the time limit: checkpointing") == job.restarts, job.describe()
    # ... exactly where it stopped: not a line lost or printed twice.
    assert job.stdout == ref_stdout, f"stdout differs from the uninterrupted run\n{job.describe()}"
    assert read_outputs(work) == ref_outputs
    # The run is marked complete, and its checkpoints say under which job they were taken.
    assert (work / "ckpt" / "complete").exists()
    listing = _pyckpt("ls", str(work / "ckpt"))
    assert listing.returncode == 0, listing.stderr
    assert f"job {job.id}" in listing.stdout and f"restart {job.restarts - 1}" in listing.stdout, listing.stdout
    inspected = _pyckpt("inspect", "--no-verify", str(work / "ckpt"))
    assert f"slurm_job_id: {job.id}" in inspected.stdout, inspected.stdout
    # Submitting the finished run's script again is refused, saying why.
    again = _pyckpt("mpirun", "--dir", str(work / "ckpt"), "-np", str(RANKS), str(PROGRAM), str(steps))
    assert again.returncode == 2 and "not resuming a finished run" in again.stderr, again.stderr


def test_node_failure_resumes_from_periodic_checkpoint(cluster, tmp_path):
    """The node goes down under the job: Slurm kills it and requeues it; back
    up, the node runs it again and it resumes from its last periodic checkpoint."""
    steps = 60
    work = tmp_path / "job"
    work.mkdir()
    job = _submit(cluster, work, steps, interval=3, time_limit=10, signal_at=55)
    ref = Reference(tmp_path, PROGRAM, RANKS, [steps])
    job.wait(lambda j: latest_checkpoint(work / "ckpt") is not None and j.stdout.count("\n") >= 20)
    node = "pyckpt-node"
    cluster.run("scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=pyckpt-test-node-failure")
    job.wait(lambda j: j.restarts >= 1, timeout=60)
    if cluster.node_state().startswith("DOWN"):  # else back already (ReturnToService=2: it answers)
        cluster.run("scontrol", "update", f"NodeName={node}", "State=RESUME")
    job.wait()
    ref_stdout, ref_outputs = ref.outputs()
    print(f"\nnode-failure job {job.id}: {time.monotonic() - job.started:.0f} s from sbatch to completion")
    assert job.state == "COMPLETED", f"job {job.id} ended {job.state}\n{job.describe()}"
    assert job.restarts == 1 and job.started_runs() == 2, job.describe()
    assert job.stderr.count("program start: rank 0") == 1, f"the second run did not resume\n{job.describe()}"
    # Files written by the program are restored exactly; stdout repeats what
    # was printed between the last checkpoint and the failure (doc/slurm.md).
    assert read_outputs(work) == ref_outputs
    lines = job.stdout.splitlines()
    assert lines[-1] == ref_stdout.splitlines()[-1] and set(lines) == set(ref_stdout.splitlines()), job.describe()


def test_finished_run_is_not_resumed(tmp_path):
    """A directory marked complete: `pyckpt mpirun` refuses it, naming the
    file to remove; no cluster needed."""
    directory = tmp_path / "ckpt"
    directory.mkdir()
    (directory / "complete").write_text('{"slurm_job_id": "7", "finished_unix": 0}')
    proc = _pyckpt("mpirun", "--dir", str(directory), "-np", "2", str(PROGRAM), "3")
    assert proc.returncode == 2
    assert "not resuming a finished run" in proc.stderr and "(Slurm job 7)" in proc.stderr, proc.stderr
    assert str(directory / "complete") in proc.stderr, proc.stderr


def test_max_restarts_refuses_a_looping_job(tmp_path):
    """SLURM_RESTART_COUNT above --max-restarts: the job is not run again."""
    proc = _pyckpt("mpirun", "--slurm-requeue", "--max-restarts", "2", "--dir", str(tmp_path / "ckpt"),
                   "-np", "2", str(PROGRAM), "3", env={"SLURM_JOB_ID": "42", "SLURM_RESTART_COUNT": "3"})
    assert proc.returncode == 2, proc.stderr
    assert "job 42 was restarted 3 times, more than --max-restarts 2" in proc.stderr, proc.stderr
    outside = _pyckpt("mpirun", "--slurm-requeue", "--dir", str(tmp_path / "ckpt"), "-np", "2", str(PROGRAM), "3",
                      env={"SLURM_JOB_ID": ""})
    assert outside.returncode == 2 and "inside a Slurm batch job" in outside.stderr, outside.stderr
