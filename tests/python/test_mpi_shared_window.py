"""Shared-memory windows (Win.Allocate_shared on a node-local communicator)
across kills and restarts on the same placement (issue 14).

programs/mpi/shared_window.py: every rank of the node holds NumPy views of
its neighbours' segments and of the node's first segment, made from
Shared_query(peer) memory, and reads them without MPI calls. It is killed
with SIGKILL after checkpoints and restarted; its outputs must be
byte-identical to an uninterrupted run's: a view left pointing into the
killed job's window would crash the restarted rank or read memory no rank
writes any more.
"""
from mpi_job_harness import check_same_as_reference, reference, run_with_kills

PROGRAM = "shared_window.py"
NP = 4
STEPS_PER_RUN = 200  # each run of the chain commits a checkpoint and is still running when killed


def test_killed_and_restarted(tmp_path):
    restarts = ["same", "restart", "same"]
    steps = STEPS_PER_RUN * len(restarts)
    ref = reference(tmp_path, PROGRAM, NP, [steps])
    job, work, history = run_with_kills(tmp_path, PROGRAM, NP, [steps], interval=0.3, restarts=restarts,
                                        seed_name="shared-window")
    check_same_as_reference(ref, job, work, history, len(restarts))
    print("; ".join(history))
