"""mpi4py's lowercase comm.irecv() across checkpoints (issue 14), with the
harness of test_mpi_jobs.py.

programs/mpi/lowercase_irecv.py is a master/worker job in lowercase
nonblocking calls: the master keeps one irecv pending per worker (taken with
MPI.Request.waitany, a testany loop, or waitall of a round), the workers
poll their task's irecv with req.test() while they compute; in mode
"buffer" the irecvs receive into the program's bytearrays. Checkpoints are
cut while those irecvs are pending, or after their message arrived but
before the program took it (the cut's drain completes the receive): the
heap makes each request again by its irecv call, which the interposer takes
as the request of the checkpoint (re-posted, or complete with the message
kept in the buffer pickled with it). Every run is killed and restarted and
must end byte-identical to an uninterrupted run; the program checks that no
result is taken twice.
"""
import json

import h5py
import pytest

from mpi_job_harness import Job, check_same_as_reference, pyckpt_mpirun, reference, restart_after, run_with_kills

PROGRAM = "lowercase_irecv.py"

# ranks, arguments, restarts after each kill (about 5 s uninterrupted on an
# idle 2-core machine, see test_mpi_jobs.CASES).
CASES = {
    "waitany-np2": (2, [100, "waitany"], ["same", "restart"]),
    "waitany-np4": (4, [150, "waitany"], ["restart", "same"]),
    "testany-np4": (4, [150, "testany"], ["same", "same"]),
    "buffer-np2": (2, [100, "buffer"], ["same", "restart"]),
    "waitall-np4": (4, [150, "waitall"], ["same", "restart"]),
}


def reissued_irecvs(path):
    """{rank: [states]} of the lowercase irecvs checkpoint `path` made
    again by their call ("pending", or "complete": the message had arrived)."""
    with h5py.File(path, "r") as f:
        found = {}
        for rank in f["ranks"]:
            located = json.loads(bytes(f[f"ranks/{rank}/blobs/mpi_requests"][()]))
            states = [where["reissued"] for where in located.values() if isinstance(where, dict)]
            if states:
                found[int(rank)] = states
        return found


@pytest.mark.parametrize("name", list(CASES))
def test_killed_and_restarted(tmp_path, name):
    np_, args, restarts = CASES[name]
    ref = reference(tmp_path, PROGRAM, np_, args)
    cut_with_irecvs = []

    def after_kill(work, directory, number):
        cut_with_irecvs.append(bool(reissued_irecvs(directory / "latest")))

    job, work, history = run_with_kills(tmp_path, PROGRAM, np_, args, interval=0.3, restarts=restarts,
                                        seed_name=f"lowercase-{name}", after_kill=after_kill)
    check_same_as_reference(ref, job, work, history, len(restarts))
    # The master always holds an irecv per worker, except between the last
    # result and the stop.
    assert any(cut_with_irecvs), f"no restart was from a checkpoint with lowercase irecvs ({history})"
    print("; ".join(history))


@pytest.mark.parametrize("state", ["complete", "pending"])
def test_restart_from_a_cut_with_irecvs(tmp_path, state):
    """Not left to chance: a run keeps every checkpoint; the job is restarted
    from the first one with a lowercase irecv in `state` on some rank
    ("complete": its message arrived before the cut, the program had not
    taken it yet, and must take it exactly once after the restart)."""
    np_, args = 4, [150, "waitany"]
    ref = reference(tmp_path, PROGRAM, np_, args)
    work = tmp_path / "run"
    work.mkdir()
    directory = work / "ckpt.d"
    job = Job(pyckpt_mpirun(directory, PROGRAM, np_, args, interval=0.2, extra=["--keep", "1000"]), work, "run0")
    assert job.wait() == 0, job.describe()
    checkpoints = sorted(directory.glob("ckpt.*.h5"))
    chosen = next((path for path in checkpoints
                   if any(state in states for states in reissued_irecvs(path).values())), None)
    assert chosen is not None, f"none of {len(checkpoints)} checkpoints was cut with an irecv {state}"
    history = [f"restart from {chosen.name}, lowercase irecvs {reissued_irecvs(chosen)}"]
    job = restart_after(work, directory, chosen, np_)
    check_same_as_reference(ref, job, work, history, 1)
    print("; ".join(history))
