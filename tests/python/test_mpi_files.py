"""MPI-IO on a program's own files across checkpoints and restarts (issue 14),
with the harness of test_mpi_jobs.py.

programs/mpi/mpiio.py writes shared files each step with Write_at_all,
through a file view with a derived filetype and the individual file pointer,
and with Write_ordered (shared file pointer), on communicators the program
splits and frees, and opens and closes one file again and again. It is
killed with SIGKILL after checkpoints and restarted; its files, the MPI-IO
ones included, must be byte-identical to those of an uninterrupted run (data
the killed run wrote after the last checkpoint is written again).

What a checkpoint refuses must fail it with a message naming the file while
the job runs on, and a file gone before a restart must fail the restart with
a message naming it.
"""
import os
import random
import re
import subprocess

import pytest

from mpi_job_harness import (START_MARK, Job, cli, latest_checkpoint, wait_for_lines, check_same_as_reference,
                             kill_random_rank, pyckpt_mpirun, reference, run_with_kills, wait_for_checkpoint)

PROGRAM = "mpiio.py"
NP = 4
STEPS = 160  # ~4.5 s uninterrupted on an idle 2-core machine (see test_mpi_jobs.CASES)


def test_killed_and_restarted(tmp_path):
    ref = reference(tmp_path, PROGRAM, NP, [STEPS])
    assert {"out.at.bin", "out.view.bin", "out.ordered.0.bin", "out.ordered.1.bin", "out.summary.bin"} <= \
        set(ref[1]), f"the reference run wrote {sorted(ref[1])}"
    job, work, history = run_with_kills(tmp_path, PROGRAM, NP, [STEPS], interval=0.3,
                                        restarts=["same", "restart", "same"], seed_name="mpiio")
    check_same_as_reference(ref, job, work, history, 3)
    print("; ".join(history))


@pytest.mark.parametrize("refused, why", [
    ("delete-on-close", "it was opened with MPI_MODE_DELETE_ON_CLOSE"),
    ("held-request", "nonblocking I/O on it is in progress"),
    ("split", r"a split collective \(MPI_File_write_at_all_begin\) is open on it"),
])
def test_refused_checkpoint(tmp_path, refused, why):
    """The program holds what a checkpoint cannot capture for its whole loop:
    a checkpoint requested in the loop fails, naming the file and why, and
    the job finishes."""
    directory = tmp_path / "ckpt.d"
    job = Job(pyckpt_mpirun(directory, PROGRAM, NP, [100, refused]), tmp_path, "run")
    wait_for_lines(job, tmp_path / "out.0", 5)
    request = subprocess.run(cli("request", str(directory)), capture_output=True, text=True, timeout=60)
    assert request.returncode == 0, request.stdout + request.stderr
    assert job.wait() == 0, f"the job did not finish:\n{job.describe()}"
    path = re.escape(str(tmp_path / "out.extra.bin"))
    assert re.search(rf"checkpoint failed on rank \d .*MPI file {path}: {why}", job.stderr), \
        f"no checkpoint failure naming {tmp_path / 'out.extra.bin'} ({why}):\n{job.describe()}"
    assert latest_checkpoint(directory) is None, "a checkpoint was committed"


def test_file_gone_at_restart(tmp_path):
    """A file the checkpoint relies on, deleted before the restart: the
    restart fails naming it, the checkpoint stays as it was."""
    directory = tmp_path / "ckpt.d"
    command = pyckpt_mpirun(directory, PROGRAM, NP, [STEPS], interval=0.3)
    job = Job(command, tmp_path, "run0")
    latest = wait_for_checkpoint(job, directory, None)
    kill_random_rank(job, directory, NP, random.Random(0), [])
    os.remove(tmp_path / "out.view.bin")
    job = Job(command, tmp_path, "run1")
    assert job.wait() != 0, f"the restart without out.view.bin succeeded:\n{job.describe()}"
    assert re.search(rf"{re.escape(str(tmp_path / 'out.view.bin'))}, open at the checkpoint: cannot reopen it",
                     job.stderr), f"the error does not name the missing file:\n{job.describe()}"
    assert START_MARK not in job.stderr, f"the program ran from the start:\n{job.describe()}"
    assert latest_checkpoint(directory) == latest
