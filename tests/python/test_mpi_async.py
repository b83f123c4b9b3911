"""Asynchronous checkpoints of mpi4py jobs (`pyckpt mpirun --async`, issue 11):
the ranks go on once their data is copied, a thread of each rank writes it,
and the checkpoint is committed later (doc/mpi-jobs.md, "Asynchronous
checkpoints").

* Jobs of 2 and 4 ranks with --async and --interval, killed after a
  committed checkpoint and restarted (the same command, and `pyckpt restart
  --mpirun`, which must go on asynchronously): output identical to the
  uninterrupted run; the checkpoints verify, `pyckpt inspect` shows every
  rank's traceback, and they record write_mode "async"; the checkpoint
  pending when the job ends is committed (MPI_Finalize), none left in flight.
* A rank killed while a checkpoint drains: the test makes the drain last
  (PYCKPT_TEST_DRAIN_DELAY, a test-only variable: each rank's thread waits
  that long after the file was created, before it writes), sees the
  in-flight file, kills a rank, and finds the previous checkpoint still
  `latest`; the job restarts from it and ends as the uninterrupted run.
"""
import subprocess
import time

import pytest

from mpi_job_harness import (SEED, Job, check_same_as_reference, cli, inspect_shows_ranks, kill_random_rank,
                             latest_checkpoint, pyckpt_mpirun, reference, restart_mpirun, run_with_kills,
                             wait_for_checkpoint)

# program, ranks, arguments, interval, restarts after each kill
CASES = {
    "pending_2": ("pending.py", 2, [200], 0.3, ["restart", "same"]),
    "heat_4": ("heat.py", 4, [400], 0.3, ["same", "restart"]),
}


def _checked_async(directory, np_, program):
    """The directory's latest checkpoint was written asynchronously, verifies
    (authentication, every checksum) and shows every rank's traceback."""
    verify = subprocess.run(cli("verify", str(directory)), capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    stats = subprocess.run(cli("stats", "--json", str(directory)), capture_output=True, text=True, timeout=120)
    assert stats.returncode == 0, stats.stdout + stats.stderr
    assert '"write_mode": "async"' in stats.stdout, stats.stdout
    inspect_shows_ranks(directory, np_, program)


@pytest.mark.parametrize("name", list(CASES))
def test_async_killed_and_restarted(tmp_path, name):
    program, np_, args, interval, restarts = CASES[name]
    ref = reference(tmp_path, program, np_, args)

    def after_kill(work, directory, number):
        _checked_async(directory, np_, program)

    job, work, history = run_with_kills(tmp_path, program, np_, args, interval=interval, restarts=restarts,
                                        seed_name=f"async_{name}", after_kill=after_kill, extra=["--async"])
    check_same_as_reference(ref, job, work, history, len(restarts))
    # The checkpoint pending when the last run ended was committed at
    # MPI_Finalize, not left in flight.
    left = sorted(p.name for p in (work / "ckpt.d").glob("*.tmp"))
    assert not left, f"in-flight files left by the finished job: {left} ({'; '.join(history)})"
    _checked_async(work / "ckpt.d", np_, program)
    print("; ".join(history))


DRAIN_DELAY = 3.0  # seconds: the window in which the test kills a rank


@pytest.mark.parametrize("victim", ["rank 0", "another rank"])
def test_rank_killed_while_a_checkpoint_drains(tmp_path, victim):
    program, np_, args = "heat.py", 4, [400]
    ref = reference(tmp_path, program, np_, args)
    work = tmp_path / "run"
    work.mkdir()
    directory = work / "ckpt.d"
    command = pyckpt_mpirun(directory, program, np_, args, 0.3,
                            ["--async", "-x", f"PYCKPT_TEST_DRAIN_DELAY={DRAIN_DELAY}"])
    history = [f"seed {SEED}"]
    job = Job(command, work, "run0")
    first = wait_for_checkpoint(job, directory, None, timeout=60)
    # The next checkpoint's file appears once rank 0 created it; its data is
    # written DRAIN_DELAY s later: kill a rank in between.
    in_flight = None
    while in_flight is None:
        in_flight = next((p for p in directory.glob("ckpt.*.h5.tmp")), None)
        assert job.proc.poll() is None, f"the job ended before a second checkpoint began:\n{job.describe()}"
        time.sleep(0.01)
    assert latest_checkpoint(directory) == first
    history.append(f"{first} committed, {in_flight.name} in flight")

    class Rng:
        """kill_random_rank's choice: rank 0, or the last rank."""
        def randrange(self, n):
            return 0 if victim == "rank 0" else n - 1

    kill_random_rank(job, directory, np_, Rng(), history)
    assert latest_checkpoint(directory) == first, \
        f"a checkpoint committed although a rank died while it drained ({history}):\n{job.describe()}"
    _checked_async(directory, np_, program)
    restarted = Job(restart_mpirun(directory, np_), work, "run1")
    assert restarted.wait() == 0, f"the restart failed ({history}):\n{restarted.describe()}"
    check_same_as_reference(ref, restarted, work, history, 1)
    print("; ".join(history))
