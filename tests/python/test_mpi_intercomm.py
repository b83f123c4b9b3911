"""Communicators made by some ranks (Comm.Create_group), intercommunicators
(Create_intercomm, Merge) and communicator attributes (Set_attr with
Create_keyval keyvals) across checkpoints and restarts (issue 14), with the
harness of test_mpi_jobs.py.

programs/mpi/coupled.py couples two models, the halves of COMM_WORLD, over
an intercommunicator: boundary values by Sendrecv (remote ranks), an
intercommunicator Allreduce and a Bcast rooted with MPI.ROOT, a pickled
bcast on it; a Create_group communicator of the even ranks and the merged
communicator Allreduce now and then; Python dicts cached as attributes on
those communicators are updated every step. It is killed with SIGKILL after
checkpoints and restarted; its outputs must be byte-identical to an
uninterrupted run's (a communicator not re-created, traffic on the
intercommunicator lost or doubled at the cut, an attribute or a keyval
number not restored, would each change them or hang).
"""
import pytest

from mpi_job_harness import check_same_as_reference, reference, run_with_kills

PROGRAM = "coupled.py"
STEPS_PER_RUN = 250


@pytest.mark.parametrize("np_, restarts", [(4, ["same", "restart", "same"]), (6, ["restart", "same"])])
def test_killed_and_restarted(tmp_path, np_, restarts):
    steps = STEPS_PER_RUN * len(restarts)
    ref = reference(tmp_path, PROGRAM, np_, [steps])
    job, work, history = run_with_kills(tmp_path, PROGRAM, np_, [steps], interval=0.3, restarts=restarts,
                                        seed_name=f"coupled-{np_}")
    check_same_as_reference(ref, job, work, history, len(restarts))
    print("; ".join(history))
