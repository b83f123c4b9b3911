"""Checkpoints taken while ranks wait inside compound lowercase mpi4py calls
(issue 14, "Bounded latency"; doc/mpi.md, "Compound calls"): mpi4py's
pickled reductions (comm.allreduce/reduce/scan/exscan: point-to-point
messages on mpi4py's private duplicate of the communicator) and lowercase
comm.sendrecv. The interposer rolls a rank cut inside one back to the
call's start: what it received goes back to channel state, and the call
re-issued after a restart does not send again what it had sent.

programs/mpi/waits.py (3 ranks): in every step one rank computes ~50x longer
than the others, which wait in the call meanwhile; in step 1 it computes
until the file "hold" exists. The checkpoint must be committed while it
still computes (`pyckpt inspect` shows it inside compute()), then a rank is
SIGKILLed, the job restarted, and the outputs must be byte-identical to an
uninterrupted run's. Step 0 makes mpi4py's private duplicate (a
communicator creation, which a cut waits for), so the held step 1 runs on
an existing one.
"""
import pytest

from mpi_job_harness import checkpoint_while_one_rank_computes

COMPOUND = ["allreduce_obj", "reduce_obj", "scan_obj", "exscan_obj", "sendrecv"]


@pytest.mark.parametrize("kind", COMPOUND)
def test_compound_call_rolled_back_at_checkpoint(tmp_path, kind):
    checkpoint_while_one_rank_computes(tmp_path, "waits.py", 3, [5, 1_500_000, kind, "hold"], f"compound-{kind}")
