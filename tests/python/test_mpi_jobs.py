"""mpi4py jobs killed and restarted (issue 4, "Tests").

Every program in programs/mpi/ is run twice:

1. the reference: plain mpirun, no pyckpt at all;
2. under `pyckpt mpirun --interval S`: once a checkpoint is committed (a new
   `latest` in the checkpoint directory), after a seeded random delay one
   random rank is killed with SIGKILL (which ends the job), and the job is
   started again - with the same command, or with
   `pyckpt restart --mpirun -np N DIR` - possibly killed again the same way,
   until a run finishes.

The programs write their per-step output to per-rank files out.<rank>
(reopened at their checkpointed position on restart), possibly also shared
files out.<name> (MPI-IO), and rank 0 prints one final line on stdout. The
files and the final stdout of the last run must be byte-identical to the
reference's. A resumed run must really resume: the
programs print "program start" on stderr when they start from the top, which a
restarted run must not show.

Seeds: PYCKPT_TEST_SEED (default 1) picks the kill moments and victims; a
failure message names the seed, the victims and the delays.
"""
import os
import re
import signal
import subprocess

import pytest

from mpi_job_harness import (TRACE, Job, check_same_as_reference, checkpoint_while_one_rank_computes, cli,
                             inspect_shows_ranks, latest_checkpoint, pyckpt_mpirun, read_outputs, reference,
                             run_with_kills, wait_for_checkpoint, wait_for_lines, wrong_rank_count)


# program, ranks, arguments, checkpoint interval, restarts after each kill.
# Each program runs 4-6 s uninterrupted on an idle 2-core machine: a
# restarted run resumes from the latest checkpoint and must still commit one
# of its own (interval + start-up) before the next kill (up to 0.6 s later),
# so a short program fails the test on a fast machine, not the product.
CASES = {
    "ring": ("ring.py", 3, [240], 0.3, ["same", "restart", "same"]),
    "heat": ("heat.py", 4, [400], 0.3, ["same", "same"]),
    "master_worker": ("master_worker.py", 3, [200], 0.3, ["restart", "same"]),
    "flood": ("flood.py", 3, [100, 0.03], 0.3, ["same", "same"]),
    "pending_isend_irecv": ("pending.py", 2, [200], 0.3, ["same", "restart"]),
    "collectives_buffer": ("collectives.py", 4, [160, "buffer"], 0.3, ["same", "same"]),
    "collectives_pickle": ("collectives.py", 4, [160, "pickle"], 0.3, ["restart", "same"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_killed_and_restarted(tmp_path, name):
    program, np_, args, interval, restarts = CASES[name]
    ref = reference(tmp_path, program, np_, args)

    def after_kill(work, directory, number):
        if number > 1:
            return
        shown = inspect_shows_ranks(directory, np_, program)
        if name == "flood":
            # The senders run ahead of the slow rank 0 (at least the message
            # of a rendezvous send is on its way at any cut before the end):
            # the checkpoint holds channel messages for rank 0.
            assert re.search(r"channel: [1-9]\d* message\(s\) in flight", shown[0]), \
                f"no channel messages recorded for rank 0 of flood.py:\n{shown[0]}"
        if name == "ring":
            wrong_rank_count(work, directory, np_, program, args)

    job, work, history = run_with_kills(tmp_path, program, np_, args, interval=interval, restarts=restarts,
                                        seed_name=name, after_kill=after_kill)
    check_same_as_reference(ref, job, work, history, len(restarts))
    print("; ".join(history))




def test_request_and_sigusr1_trigger(tmp_path):
    """Without an interval nothing is checkpointed until `pyckpt request DIR`
    (another process) asks, then SIGUSR1 sent to the process started as
    `pyckpt mpirun` (what `kill -USR1 $!` would do) triggers the next; the
    job is killed after that one and resumed."""
    program, np_, args = "ring.py", 3, [150]
    ref = reference(tmp_path, program, np_, args)

    def triggers(job, directory, history):
        wait_for_lines(job, directory.parent / "out.0", 5)
        assert latest_checkpoint(directory) is None, "a checkpoint was written without a trigger"
        request = subprocess.run(cli("request", str(directory)), capture_output=True, text=True, timeout=60)
        assert request.returncode == 0, request.stdout + request.stderr
        first = wait_for_checkpoint(job, directory, None, timeout=15)
        history.append(f"`pyckpt request` -> {first}")
        os.kill(job.proc.pid, signal.SIGUSR1)
        second = wait_for_checkpoint(job, directory, first, timeout=15)
        history.append(f"SIGUSR1 -> {second}")
        names = sorted(p.name for p in directory.glob("ckpt.*.h5"))
        assert names == ["ckpt.00000001.h5", "ckpt.00000002.h5"], \
            f"expected exactly the two triggered checkpoints, found {names}"
        return second

    job, work, history = run_with_kills(tmp_path, program, np_, args, interval=None, restarts=["same"],
                                        seed_name="triggers", max_delay=0.3, triggers=triggers)
    check_same_as_reference(ref, job, work, history, 1)


def test_explicit_collective_checkpoint(tmp_path):
    """pyckpt.checkpoint() called by all ranks at one step returns False in
    the job that wrote it and True in the job restarted from it; everything
    else the restarted job writes is what the uninterrupted job wrote."""
    program, np_, args = "explicit.py", 2, [70, 15]
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    ref_job = Job(pyckpt_mpirun(ref_dir / "ckpt.d", program, np_, args), ref_dir, "run")
    assert ref_job.wait() == 0, ref_job.describe()
    assert ref_job.stdout.strip().endswith("checkpoint returned False"), ref_job.describe()
    expected = {name: data.replace(b"checkpoint returned False", b"checkpoint returned True")
                for name, data in read_outputs(ref_dir).items()}
    assert len(expected) == np_ and all(b"checkpoint returned True" in d for d in expected.values())
    ref = (ref_job.stdout.replace("checkpoint returned False", "checkpoint returned True"), expected)
    job, work, history = run_with_kills(tmp_path, program, np_, args, interval=None, restarts=["same"],
                                        seed_name="explicit", max_delay=0.4)
    check_same_as_reference(ref, job, work, history, 1)


# Load imbalance (issue 14, "Bounded latency"): in every step of
# imbalance.py one rank computes in pure Python ~50x longer than the others,
# which wait in a collective of KIND meanwhile. `pyckpt request` must be
# served while that rank computes: the checkpoint shows it inside compute()
# (the waker brought the checkpoint to it at a Python line) and the others
# before their collective, which they enter again after the restart.
IMBALANCE_KINDS = ["allreduce", "barrier", "bcast", "gather", "pickle"]


@pytest.mark.parametrize("kind", IMBALANCE_KINDS)
def test_checkpoint_while_ranks_wait(tmp_path, kind):
    checkpoint_while_one_rank_computes(tmp_path, "imbalance.py", 3, [6, 2_000_000, kind, "hold"],
                                       f"imbalance-{kind}")


def test_second_thread_calling_mpi_fails_checkpoints_clearly(tmp_path):
    """One application thread calls MPI is the supported model: MPI calls of
    a second thread while checkpoints are requested (every 0.3 s) fail them,
    the failing ranks say why once, and the job finishes normally."""
    work = tmp_path / "run"
    work.mkdir()
    directory = work / "ckpt.d"
    job = Job(pyckpt_mpirun(directory, "threads.py", 2, [4], interval=0.3), work, "run")
    assert job.wait() == 0, job.describe()
    assert job.stdout.strip().endswith(f"threads done: {2 * sum(range(200))}"), job.describe()
    said = [line for line in job.stderr.splitlines() if not line.startswith(TRACE) and "checkpoint failed" in line]
    assert 1 <= len(said) <= 2 and all("a thread other than the one that called MPI_Init" in line for line in said), \
        f"expected the reason once per failing rank, not once per attempt:\n{job.describe()}"
    assert latest_checkpoint(directory) is None, "a checkpoint was committed"
