"""Checkpoints taken while ranks wait where a checkpoint used to wait for
them (issue 14, "Bounded latency"): nonblocking collectives of the
application, compound lowercase mpi4py calls, Probe/Iprobe and
Waitany/Testany/Waitsome loops.

programs/mpi/waits.py: in every step one rank computes ~50x longer than the
others, which wait in an operation of KIND meanwhile; in step 1 that rank
computes until the file "hold" exists. The test asks for a checkpoint with
`pyckpt request` while it computes; the checkpoint must be committed while
it still computes (bounded latency: not after the operation the others wait
in, which needs the computing rank), i.e. `pyckpt inspect` shows it inside
compute(). Then a random rank is SIGKILLed, the job is restarted, and its
outputs must be byte-identical to an uninterrupted run's under plain mpirun.
"""
import pytest

from mpi_job_harness import checkpoint_while_one_rank_computes

# Nonblocking collectives: "late", the slow rank issues it after computing
# (the cut falls before it on the ranks that issued it: they post it again
# after the restart); "early", every rank issued it before computing (all
# members posted it; none may complete it before the slow rank's barrier).
# Rooted ones are rooted at a fast rank, where they would complete early.
NONBLOCKING = ["ibarrier-late", "iallreduce-late", "ibcast-late", "ireduce-early", "igather-late",
               "iscatter-early", "ialltoall-late", "iallgather-early", "ibarrier-early", "ibcast-early"]
# Pickled-object collectives made of two collectives (sizes, then data):
# every member is cut at the same one of the pair and a restarted rank
# re-issues the whole call. Not here: sendrecv, allreduce_obj, reduce_obj,
# scan_obj, exscan_obj (rolled back at the cut: test_mpi_compound.py).
COMPOUND = ["bcast_obj", "gather_obj", "scatter_obj", "alltoall_obj"]
# irecv_obj: a lowercase comm.irecv(...).wait(), made again by its call at the
# restart (test_mpi_lowercase_irecv.py has the master/worker shapes).
LOOPS = ["probe", "iprobe", "waitany", "testany", "waitsome", "irecv_obj"]


def _checkpoint_while_waiting_in(tmp_path, kind):
    checkpoint_while_one_rank_computes(tmp_path, "waits.py", 3, [5, 1_500_000, kind, "hold"], f"waits-{kind}")


@pytest.mark.parametrize("kind", NONBLOCKING)
def test_nonblocking_collective_pending_at_checkpoint(tmp_path, kind):
    _checkpoint_while_waiting_in(tmp_path, kind)


@pytest.mark.parametrize("kind", COMPOUND)
def test_compound_lowercase_call_at_checkpoint(tmp_path, kind):
    _checkpoint_while_waiting_in(tmp_path, kind)


@pytest.mark.parametrize("kind", LOOPS)
def test_waiting_loop_at_checkpoint(tmp_path, kind):
    _checkpoint_while_waiting_in(tmp_path, kind)
