"""One-sided communication (MPI.Win) across checkpoints and restarts (issue
14), with the harness of test_mpi_jobs.py.

programs/mpi/rma.py runs a halo exchange with Put under fence epochs (a
Win.Create window over a NumPy array, a Win.Allocate window read through a
NumPy view of its memory), or passive target: Put/Flush under a Lock_all
held for the whole loop, Accumulate/Fetch_and_op/Compare_and_swap under an
exclusive Lock, Get under a shared one, on a window over MPI.Alloc_mem memory
that only the window keeps (mpi4py's nxtval demo). It is killed with SIGKILL after
checkpoints and restarted; its outputs must be byte-identical to an
uninterrupted run's (a window not created again over the restored array, a
view of window memory not aliasing the new window, an operation in flight
at the cut, a lock not taken again, would each change them or hang).

A window a checkpoint cannot capture fails it with a message naming the
window and the program line that created it, while the job runs on.

Open MPI 4.1's default one-sided component (osc/rdma) needs single-copy
shared memory, which the harness turns off (OMPI_MCA_btl_vader_single_copy_
mechanism=none), and osc/pt2pt refuses MPI_THREAD_MULTIPLE (mpi4py's
default): these jobs use osc/ucx, plain and under pyckpt alike.
"""
import re
import subprocess

import pytest

from mpi_job_harness import (PROGRAMS, Job, check_same_as_reference, cli, latest_checkpoint, pyckpt_mpirun,
                             reference, run_with_kills, wait_for_lines)

PROGRAM = "rma.py"
NP = 3
STEPS = 300  # ~4-5 s uninterrupted on an idle 2-core machine
# Each run of a kill chain must commit a checkpoint and still be running
# when it is killed: a longer chain needs a longer program (on an idle
# machine, 300 steps ended within a 3-kill chain's second restart).
STEPS_PER_RUN = 200


@pytest.fixture(autouse=True)
def one_sided_component(monkeypatch):
    monkeypatch.setenv("OMPI_MCA_osc", "ucx")


@pytest.mark.parametrize("mode, restarts", [("fence", ["same", "restart", "same"]), ("lock", ["same", "restart"])])
def test_killed_and_restarted(tmp_path, mode, restarts):
    steps = STEPS_PER_RUN * len(restarts)
    ref = reference(tmp_path, PROGRAM, NP, [steps, mode])
    job, work, history = run_with_kills(tmp_path, PROGRAM, NP, [steps, mode], interval=0.3, restarts=restarts,
                                        seed_name=f"rma-{mode}")
    check_same_as_reference(ref, job, work, history, len(restarts))
    print("; ".join(history))


@pytest.mark.parametrize("refused, line, why", [
    ("dynamic", "MPI.Win.Create_dynamic", r"MPI_Win_create_dynamic at {program}:{line}\): a dynamic window"),
    ("pscw", "pscw = MPI.Win.Allocate", r"MPI_Win_allocate at {program}:{line}\): it was synchronized with "
                                   r"MPI_Win_post"),
])
def test_refused_checkpoint(tmp_path, refused, line, why):
    """The program holds a window a checkpoint cannot capture for its whole
    loop: a checkpoint requested in the loop fails, naming the window and
    the line that created it, and the job finishes."""
    source = (PROGRAMS / PROGRAM).read_text().splitlines()
    number = next(i for i, text in enumerate(source, 1) if line in text)
    directory = tmp_path / "ckpt.d"
    job = Job(pyckpt_mpirun(directory, PROGRAM, NP, [150, refused]), tmp_path, "run")
    wait_for_lines(job, tmp_path / "out.0", 5)
    request = subprocess.run(cli("request", str(directory)), capture_output=True, text=True, timeout=60)
    assert request.returncode == 0, request.stdout + request.stderr
    assert job.wait() == 0, f"the job did not finish:\n{job.describe()}"
    pattern = r"checkpoint failed on rank \d .*MPI window \d+ \(" + why.format(
        program=re.escape(str(PROGRAMS / PROGRAM)), line=number)
    assert re.search(pattern, job.stderr), f"no checkpoint failure naming the window ({pattern}):\n{job.describe()}"
    assert latest_checkpoint(directory) is None, "a checkpoint was committed"
