"""What the Slurm test files (test_slurm*.py) share: a module-scoped fixture
that starts a local cluster (slurm_cluster.LocalCluster) and stops it; a batch
job submitted with sbatch and followed until it ends; and the uninterrupted
reference run of a program under plain mpirun.

The example batch scripts (slurm/*.sbatch) print `pyckpt-app: job N, run M`
on stderr as each run starts (started_runs counts them)."""
import os
import re
import time

import pytest

from conftest import BUILD_DIR, MPIEXEC, PYTHON
from mpi_job_harness import MPIRUN_OPTIONS, Job, read_outputs
from slurm_cluster import LocalCluster, ensure_installed

# Seconds for a job and its requeues to finish: a loaded machine resumes
# slowly, and each allocation gets less done.
JOB_TIMEOUT = 600
FINISHED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"}
# What lets 4 ranks share this 2-core machine as root, and puts pyckpt on the PATH.
RANK_ENVIRONMENT = {"PATH": f"{BUILD_DIR / 'bin'}:{os.environ['PATH']}",
                    "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                    "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_hwloc_base_binding_policy": "none",
                    "OMPI_MCA_btl_vader_single_copy_mechanism": "none", "PYCKPT_VERBOSE": "1"}


def cluster_fixture(spank_plugins=()):
    """A module-scoped pytest fixture: a LocalCluster with these plugstack.conf
    lines, started for the module's tests and stopped after them (also on
    failure); the tests skip saying why if Slurm cannot be installed."""
    @pytest.fixture(scope="module")
    def cluster(tmp_path_factory):
        why = ensure_installed()
        if why is not None:
            pytest.skip(f"no local Slurm: {why}")
        local = LocalCluster(tmp_path_factory.mktemp("slurm"), spank_plugins)
        try:
            local.start()
            yield local
        finally:
            local.stop()
    return cluster


class BatchJob:
    """`script` submitted with sbatch (`options` before it, `env` added to the
    environment sbatch exports), running in `work`; its output in work/job.out
    (stdout) and work/job.err (stderr), appended to by each run."""

    def __init__(self, cluster, work, script, options, env):
        self.cluster = cluster
        self.work = work
        self.started = time.monotonic()
        self.id = cluster.run("sbatch", "--parsable", *options, f"--chdir={work}", "-o", work / "job.out",
                              "-e", work / "job.err", script, env=env).strip()
        self.restarts = 0
        self.state = "PENDING"

    def poll(self):
        info = self.cluster.job(self.id)
        if info:  # gone MinJobAge seconds after it finished: the last state seen stays
            self.state = info["JobState"]
            self.restarts = max(self.restarts, int(info.get("Restarts", 0)))
        return info

    def wait(self, condition=lambda job: job.state in FINISHED_STATES, timeout=JOB_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                self.cluster.run("scancel", self.id, check=False)
                raise AssertionError(f"job {self.id}: still {self.state} after {timeout} s\n{self.describe()}")
            time.sleep(0.5)
            self.poll()

    @property
    def stdout(self):
        return (self.work / "job.out").read_text() if (self.work / "job.out").exists() else ""

    @property
    def stderr(self):
        return (self.work / "job.err").read_text() if (self.work / "job.err").exists() else ""

    def requeue_on_signal(self, runs, progress, step, to_batch_shell=True):
        """For each of `runs` runs: once the run is RUNNING and progress(job)
        grew by `step` (a resumed run: past where the previous one stopped),
        sends what `--signal=B:USR1@N` sends the batch shell (or, not
        `to_batch_shell`, what `--signal=USR1@N` sends the tasks of the job's
        steps), without waiting for Slurm's 30-second time-limit check, and
        waits for the requeue or the end; then waits for the job to end."""
        for run in range(runs):
            before = progress(self)
            self.wait(lambda j: j.restarts == run and j.state == "RUNNING" and progress(j) >= before + step)
            self.cluster.run("scancel", *(["--batch"] if to_batch_shell else []), "--signal=USR1", self.id)
            self.wait(lambda j: j.restarts == run + 1 or j.state == "COMPLETED")
        self.wait()

    def check_resumed_after_requeues(self, requeues, ref_stdout, said="before the time limit: checkpointing"):
        """The job completed after `requeues` time-limit checkpoints and
        requeues (pyckpt `said` so at each), its program started once,
        stdout as uninterrupted."""
        assert self.state == "COMPLETED", f"job {self.id} ended {self.state}\n{self.describe()}"
        assert self.restarts == requeues and self.started_runs() == requeues + 1, self.describe()
        assert self.stderr.count(said) == requeues, self.describe()
        assert self.stderr.count("program start: rank 0") == 1, f"a run did not resume\n{self.describe()}"
        assert self.stdout == ref_stdout, f"stdout differs from the uninterrupted run\n{self.describe()}"

    def started_runs(self):
        """How many times the batch script ran (its first line on stderr)."""
        return len(re.findall(r"^pyckpt-app: job \d+, run \d+", self.stderr, re.M))

    def describe(self):
        return (f"--- job.out (tail):\n{self.stdout[-2000:]}\n--- job.err (tail):\n{self.stderr[-5000:]}\n"
                f"{self.cluster.logs(15)}")


class Reference:
    """The uninterrupted run of `program args` on `ranks` ranks under plain
    mpirun, started at once so that it runs while Slurm's job does."""

    def __init__(self, tmp_path, program, ranks, args):
        self.dir = tmp_path / "ref"
        self.dir.mkdir()
        self.job = Job([MPIEXEC, *MPIRUN_OPTIONS, "-np", str(ranks), PYTHON, str(program), *map(str, args)],
                       self.dir, "run")

    def outputs(self):
        """(stdout, {out.<rank>: bytes}) once it finished."""
        assert self.job.wait(timeout=JOB_TIMEOUT) == 0, f"reference run failed:\n{self.job.describe()}"
        return self.job.stdout, read_outputs(self.dir)
