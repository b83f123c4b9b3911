"""mpi4py job steps launched by srun under a real Slurm (issue 10): `pyckpt
srun` in slurm/srun.sbatch, and the SPANK plugin spank_pyckpt.so
(slurm/spank/) loaded through the test cluster's plugstack.conf.

- pyckpt srun --slurm-requeue: SIGUSR1 to the batch shell (what
  `--signal=B:USR1@N` sends before the time limit; here sent at once with
  `scancel --batch --signal=USR1`, so that the test need not wait for
  Slurm's 30-second time-limit check, which test_slurm.py covers) ->
  checkpoint -> requeue -> the same script resumes; twice; stdout and the
  per-rank files byte-identical to an uninterrupted run;
- SPANK: `sbatch --pyckpt-dir=DIR --pyckpt-interval=S` of a script whose
  srun line has no pyckpt in it: the step checkpoints periodically, is
  killed and requeued (`scontrol requeue`, as Slurm does after a node
  failure), and resumes from its last checkpoint;
- SPANK, requeue: `sbatch --pyckpt-requeue --pyckpt-max-restarts=1`, the
  tasks signalled as `--signal=USR1@N` does: checkpoint -> the job requeues
  itself -> resumes; at the second signal the maximum is reached, the job
  goes on and ends; stdout as uninterrupted, the directory marked complete
  and a step into it refused;
- the refusals: bad plugin options, and srun arguments pyckpt srun cannot
  take.
"""
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD_DIR, PYTHON
from mpi_job_harness import PROGRAMS, cli, latest_checkpoint, read_outputs
from slurm_jobs import RANK_ENVIRONMENT, BatchJob, Reference, cluster_fixture

SCRIPT = Path(__file__).resolve().parents[2] / "slurm" / "srun.sbatch"
PROGRAM = PROGRAMS / "slurm_steps.py"
RANKS = 4
SPANK_PLUGIN = BUILD_DIR / "lib" / "spank_pyckpt.so"
needs_plugin = pytest.mark.skipif(not SPANK_PLUGIN.exists(),
                                  reason=f"{SPANK_PLUGIN} not built (Slurm's spank.h missing: libslurm-dev)")


def _plugstack():
    """The plugin, preloading the libraries of this build (`pyckpt preload-path`)."""
    if not SPANK_PLUGIN.exists():
        return []
    preload = subprocess.run(cli("preload-path"), capture_output=True, text=True, check=True).stdout.strip()
    return [f"required {SPANK_PLUGIN} preload={preload}"]


cluster = cluster_fixture(_plugstack())


def _pyckpt(*args, env=None):
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _lines(job):
    return job.stdout.count("\n")


def test_srun_requeue_resume(cluster, tmp_path):
    """slurm/srun.sbatch: the batch shell's SIGUSR1 -> checkpoint -> requeue
    -> resume, twice; the output is that of an uninterrupted run."""
    steps = 80
    work = tmp_path / "job"
    work.mkdir()
    env = {**RANK_ENVIRONMENT, "APP": f"{PROGRAM} {steps}", "PYTHON": PYTHON, "CKPT_DIR": str(work / "ckpt"),
           "CKPT_INTERVAL": "600"}
    job = BatchJob(cluster, work, SCRIPT, ["-n", RANKS, "-t", 10, "--signal=B:USR1@60"], env)
    ref = Reference(tmp_path, PROGRAM, RANKS, [steps])
    job.requeue_on_signal(2, _lines, 8)
    ref_stdout, ref_outputs = ref.outputs()
    print(f"\nsrun job {job.id}: {job.restarts} requeues, {time.monotonic() - job.started:.0f} s from sbatch to "
          f"completion")
    job.check_resumed_after_requeues(2, ref_stdout)
    assert read_outputs(work) == ref_outputs
    assert (work / "ckpt" / "complete").exists()
    listing = _pyckpt("ls", str(work / "ckpt"))
    assert f"job {job.id}, restart 1" in listing.stdout, listing.stdout + listing.stderr


SPANK_SCRIPT = """#!/bin/bash
echo "pyckpt-app: job $SLURM_JOB_ID, run $((${{SLURM_RESTART_COUNT:-0}} + 1)), batch LD_PRELOAD=[$LD_PRELOAD]" >&2
srun --mpi=pmix -n {ranks} {python} {program} {steps}
"""


def _spank_job(cluster, tmp_path, steps, pyckpt_options):
    """sbatch of SPANK_SCRIPT (PROGRAM for `steps` steps) with --requeue,
    --open-mode=append, --pyckpt-dir and `pyckpt_options`, and the
    uninterrupted run to compare with: (work, directory, job, reference)."""
    work = tmp_path / "job"
    work.mkdir()
    script = work / "job.sh"
    script.write_text(SPANK_SCRIPT.format(ranks=RANKS, python=PYTHON, program=PROGRAM, steps=steps))
    directory = work / "ckpt"
    job = BatchJob(cluster, work, script, ["-n", RANKS, "-t", 10, "--requeue", "--open-mode=append",
                                           f"--pyckpt-dir={directory}", *pyckpt_options], RANK_ENVIRONMENT)
    return work, directory, job, Reference(tmp_path, PROGRAM, RANKS, [steps])


@needs_plugin
def test_spank_options_checkpoint_and_resume(cluster, tmp_path):
    """sbatch --pyckpt-dir --pyckpt-interval and a plain srun line: periodic
    checkpoints; killed and requeued, the step resumes from the last one."""
    work, directory, job, ref = _spank_job(cluster, tmp_path, 40, ["--pyckpt-interval=4", "--pyckpt-keep=3"])
    job.wait(lambda j: latest_checkpoint(directory) is not None and _lines(j) >= 10)
    cluster.run("scontrol", "requeue", job.id)
    job.wait()
    ref_stdout, ref_outputs = ref.outputs()
    print(f"\nSPANK job {job.id}: {time.monotonic() - job.started:.0f} s from sbatch to completion")
    assert job.state == "COMPLETED", f"job {job.id} ended {job.state}\n{job.describe()}"
    assert job.restarts == 1 and job.started_runs() == 2, job.describe()
    # The batch shell is no rank: it has the PYCKPT_* variables, not the preload.
    assert job.stderr.count("batch LD_PRELOAD=[]") == 2, job.describe()
    assert job.stderr.count("program start: rank 0") == 1, f"the second run did not resume\n{job.describe()}"
    # Files written by the program are restored exactly; stdout repeats what
    # was printed between the last checkpoint and the kill (doc/slurm.md).
    assert read_outputs(work) == ref_outputs
    lines = job.stdout.splitlines()
    assert lines[-1] == ref_stdout.splitlines()[-1] and set(lines) == set(ref_stdout.splitlines()), job.describe()
    inspected = _pyckpt("inspect", "--no-verify", str(directory))
    assert f"slurm_job_id: {job.id}" in inspected.stdout, inspected.stdout + inspected.stderr
    assert f"hash_seed: {job.id}" in inspected.stdout, inspected.stdout  # the plugin's PYTHONHASHSEED


@needs_plugin
def test_spank_requeue_at_signal(cluster, tmp_path):
    """--pyckpt-requeue: no supervisor, the ranks get the checkpoint signal;
    after that checkpoint they hold and rank 0 requeues the job."""
    work, directory, job, ref = _spank_job(cluster, tmp_path, 80, ["--pyckpt-requeue", "--pyckpt-max-restarts=1"])
    job.requeue_on_signal(2, _lines, 8, to_batch_shell=False)
    ref_stdout, ref_outputs = ref.outputs()
    print(f"\nSPANK requeue job {job.id}: {job.restarts} requeue, {time.monotonic() - job.started:.0f} s from "
          f"sbatch to completion")
    job.check_resumed_after_requeues(1, ref_stdout, said="committed at the checkpoint signal; requeued (restart 1)")
    assert job.stderr.count("not requeued at the checkpoint signal: restarted 1 times, --pyckpt-max-restarts 1 "
                            "reached") == 1, job.describe()
    assert read_outputs(work) == ref_outputs
    assert (directory / "complete").exists(), job.describe()
    again = subprocess.run(["srun", "-n", "1", f"--pyckpt-dir={directory}", "--pyckpt-requeue", "true"],
                           capture_output=True, text=True, timeout=60, env=cluster.environment())
    assert again.returncode != 0 and "not resuming a finished run" in again.stderr, again.stderr


@needs_plugin
def test_spank_option_errors(cluster):
    """srun refuses bad values and options without --pyckpt-dir, saying why
    (before asking for an allocation)."""
    bad = subprocess.run(["srun", "-n", "1", "--pyckpt-dir=x", "--pyckpt-interval=soon", "true"],
                         capture_output=True, text=True, timeout=60, env=cluster.environment())
    assert bad.returncode != 0 and "--pyckpt-interval=soon: not a positive number of seconds" in bad.stderr, bad.stderr
    alone = subprocess.run(["sbatch", "--pyckpt-keep=2", "--wrap", "true"],
                           capture_output=True, text=True, timeout=60, env=cluster.environment())
    assert alone.returncode != 0 and "go with --pyckpt-dir=DIR" in alone.stderr, alone.stderr
    restarts = subprocess.run(["srun", "-n", "1", "--pyckpt-dir=x", "--pyckpt-max-restarts=3", "true"],
                              capture_output=True, text=True, timeout=60, env=cluster.environment())
    assert restarts.returncode != 0 and "--pyckpt-max-restarts goes with --pyckpt-requeue" in restarts.stderr, \
        restarts.stderr


def test_pyckpt_srun_refusals(tmp_path):
    """What pyckpt srun cannot take, refused before srun runs; no cluster needed."""
    export = _pyckpt("srun", "--dir", str(tmp_path / "ckpt"), "--", "--export=NONE", "-n", "2", "true")
    assert export.returncode == 2 and "srun --export=NONE: pyckpt srun sets srun's --export itself" in export.stderr, \
        export.stderr
    unseparated = _pyckpt("srun", "--dir", str(tmp_path / "ckpt"), "-n", "2", "true")
    assert unseparated.returncode == 2 and "give srun's arguments after `--`" in unseparated.stderr, \
        unseparated.stderr
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "complete").write_text('{"slurm_job_id": "7", "finished_unix": 0}')
    finished = _pyckpt("srun", "--dir", str(tmp_path / "done"), "--", "-n", "2", "true")
    assert finished.returncode == 2 and "not resuming a finished run" in finished.stderr, finished.stderr
