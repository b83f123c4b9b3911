"""Checkpoints taken while ranks wait inside compound lowercase mpi4py calls
(issue 14, "Bounded latency"; doc/mpi.md, "Compound calls"): mpi4py's
pickled reductions (comm.allreduce/reduce/scan/exscan: point-to-point
messages on mpi4py's private duplicate of the communicator) and lowercase
comm.sendrecv. The interposer rolls a rank cut inside one back to the
call's start: what it received goes back to channel state, and the call
re-issued after a restart does not send again what it had sent.

programs/mpi/waits.py: in every step one rank computes ~50x longer than the
others, which wait in the call meanwhile; in step 1 it computes until the
file "hold" exists. The checkpoint must be committed while it still
computes (`pyckpt inspect` shows it inside compute()), then a rank is
SIGKILLed, the job restarted, and the outputs must be byte-identical to an
uninterrupted run's. Step 0 makes mpi4py's private duplicate (a
communicator creation, which a cut waits for), so the held step 1 runs on
an existing one.
"""
import re

import pytest

from mpi_job_harness import check_same_as_reference, checkpoint_while_one_rank_computes, reference, run_with_kills

COMPOUND = ["allreduce_obj", "reduce_obj", "scan_obj", "exscan_obj", "sendrecv"]
ROLLED_BACK = re.compile(r"rank (\d+) cut \d+: inside an mpi4py compound call: rolled back to its start, "
                         r"(\d+) received message\(s\) logged, (\d+) send\(s\) recorded")


def rollbacks(tmp_path):
    """{rank: (received messages logged, sends recorded)} of the ranks the
    first run's checkpoint rolled back (their protocol trace)."""
    trace = (tmp_path / "run" / "run0.stderr").read_text()
    return {int(rank): (int(received), int(sent)) for rank, received, sent in ROLLED_BACK.findall(trace)}


@pytest.mark.parametrize("kind", COMPOUND)
def test_compound_call_rolled_back_at_checkpoint(tmp_path, kind):
    checkpoint_while_one_rank_computes(tmp_path, "waits.py", 3, [5, 1_500_000, kind, "hold"], f"compound-{kind}")
    assert rollbacks(tmp_path), f"no rank was cut inside comm.{kind.removesuffix('_obj')}"


def test_allreduce_rolled_back_after_receiving(tmp_path):
    """4 ranks, step 1, rank 1 computes: in allreduce's reduction tree rank 2
    receives rank 3's object, sends its partial result to rank 0 and waits
    in the final bcast. Rolled back, it must get rank 3's object again from
    its log (rank 3 does not send it twice) and not send to rank 0 again."""
    checkpoint_while_one_rank_computes(tmp_path, "waits.py", 4, [5, 1_500_000, "allreduce_obj", "hold"],
                                       "compound-allreduce-4")
    rolled_back = rollbacks(tmp_path)
    assert rolled_back.get(2, (0, 0))[0] >= 1 and rolled_back[2][1] >= 1, \
        f"rank 2 was not rolled back after a receive and a send of the call: {rolled_back}"


@pytest.mark.parametrize("kind", ["allreduce_obj", "scan_obj", "sendrecv"])
def test_compound_calls_in_a_restart_chain(tmp_path, kind):
    """Checkpoints every 0.3 s wherever they fall (most inside a compound
    call: the fast ranks spend their time waiting in it), a kill after each,
    two restarts: a restarted rank that is rolled back again, possibly
    inside its re-issued call, must still resume exactly."""
    args = [80, 300_000, kind]
    ref = reference(tmp_path, "waits.py", 3, args)
    job, work, history = run_with_kills(tmp_path, "waits.py", 3, args, interval=0.3, restarts=["same", "same"],
                                        seed_name=f"compound-chain-{kind}")
    check_same_as_reference(ref, job, work, history, 2)
    traces = "".join((work / f"run{number}.stderr").read_text() for number in range(3))
    assert ROLLED_BACK.search(traces), f"no checkpoint of the chain fell inside comm.{kind} ({'; '.join(history)})"
