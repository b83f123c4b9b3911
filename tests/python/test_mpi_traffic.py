"""A randomized traffic campaign (issue 14, "Tests").

programs/mpi/traffic.py runs seeded random mixes of point-to-point traffic
(blocking, nonblocking and synchronous sends, wildcard receives, probes,
Sendrecv, NumPy buffers and pickled objects), collectives and
sub-communicators (Split, Dup, Free); every message carries its sender,
per-channel sequence number and checksum, and every rank aborts the job with
"TRAFFIC VIOLATION" (step, seed, details) on a lost, duplicated or reordered
message, a bad checksum or a wrong collective result. Each job here runs it
under `pyckpt mpirun` with checkpoints every 0.15-0.5 s, kills a random rank
at a random moment after a committed checkpoint, restarts (the same command
or `pyckpt restart --mpirun`), kills again, ... and compares every rank's
log of what it received, and the final line, byte for byte with an
uninterrupted run under plain mpirun (mpi_job_harness.py).

A *cycle* is one checkpoint, kill and restart. Modes:

* short (the default suite): one job per rank count 2, 3, 4, with two
  cycles each;
* long: PYCKPT_TRAFFIC_CYCLES=100 runs jobs of seeds 1, 2, ... (five cycles
  each) until at least that many cycles have run at every rank count of
  PYCKPT_TRAFFIC_RANKS (default 2,3,4). It goes on after a failing job and
  lists every failure at the end. PYCKPT_TRAFFIC_PAUSE=0 (or 0.01, 0.05)
  gives every job that pause between steps instead of drawing it: 0, no
  pause, puts most cuts inside the traffic.

Every failure names its cycle, rank count and seed. To replay one job (the
same program seed, interval, pause, kill moments and victims):

    PYCKPT_TRAFFIC_REPLAY=RANKS:SEED:CYCLES:PAUSE ctest -R python.test_mpi_traffic \
        --output-on-failure

(the failure message gives the value) or `PYCKPT_TRAFFIC_REPLAY=3:17:5:0.01 python3 -m pytest
tests/python/test_mpi_traffic.py -k replay` with the environment of tests/python/CMakeLists.txt.
The value names the pause because the pauses a seed draws have changed
since the first campaigns: without PAUSE the job draws it as now (0.01 or
0.05 s); PAUSE 0 runs an unpaced job as those campaigns drew them (35
steps per cycle; doc/mpi-jobs.md lists the ones that failed). Kill moments
also depend on PYCKPT_TEST_SEED (default 1), as in the other job tests; a
failure message shows it in its history ("seed 1:traffic-3-17"). Add
PYCKPT_MPI_TRACE=1 to the environment of a manual run for the protocol trace
(the harness always collects it and shows each rank's last steps when a job
hangs).
"""
import os
import random

import pytest

from mpi_job_harness import check_same_as_reference, reference, run_with_kills

PROGRAM = "traffic.py"
CYCLES_PER_JOB_LONG = 5
CYCLES_PER_JOB_SHORT = 2
LONG_CYCLES = int(os.environ.get("PYCKPT_TRAFFIC_CYCLES", "0"))
LONG_RANKS = [int(n) for n in os.environ.get("PYCKPT_TRAFFIC_RANKS", "2,3,4").split(",")]
LONG_PAUSE = os.environ.get("PYCKPT_TRAFFIC_PAUSE")
REPLAY = os.environ.get("PYCKPT_TRAFFIC_REPLAY")


# Steps per checkpoint/kill/restart cycle for each pause between steps (s).
# 0 only when asked for (a replay, PYCKPT_TRAFFIC_PAUSE): an unpaced job's
# length varies too much with the load for the drawn jobs.
STEPS_PER_CYCLE = {0.0: 35, 0.01: 32, 0.05: 25}


def job_parameters(np_, seed, cycles, pause=None):
    """What a job of `seed` runs: program arguments, checkpoint interval and
    restarts, all drawn from the seed, and the pause between steps unless
    given (a replay's). The pause varies: with none, most cuts fall inside
    the traffic; with some, ranks are often between steps. A restarted run
    must commit a checkpoint of its own before it is killed (start-up,
    interval, up to 0.6 s more): the program runs for about 3 s per cycle,
    more than that needs on a loaded 2-core machine. Always some pause in
    the drawn jobs: without one a job's length varied too much with the load
    (it ended before its first checkpoint, or before a kill)."""
    rng = random.Random(f"traffic-job:{np_}:{seed}")
    interval = round(rng.uniform(0.15, 0.5), 2)
    restarts = [rng.choice(["same", "restart"]) for _ in range(cycles)]
    if pause is None:
        pause = rng.choice([0.01, 0.05])
    return [seed, STEPS_PER_CYCLE[pause] * (cycles + 1), pause], interval, restarts


def run_job(tmp_path, np_, seed, cycles, first_cycle=1, pause=None):
    """One job: reference, the run with `cycles` kills and restarts,
    comparison. Returns its history; failures name cycles and the seed."""
    args, interval, restarts = job_parameters(np_, seed, cycles, pause)
    where = (f"{np_} ranks, program seed {seed}, cycles {first_cycle}-{first_cycle + cycles - 1}, interval "
             f"{interval} s; replay: PYCKPT_TRAFFIC_REPLAY={np_}:{seed}:{cycles}:{args[2]}")
    try:
        ref = reference(tmp_path, PROGRAM, np_, args)
        job, work, history = run_with_kills(tmp_path, PROGRAM, np_, args, interval=interval, restarts=restarts,
                                            seed_name=f"traffic-{np_}-{seed}")
        check_same_as_reference(ref, job, work, history, len(restarts))
    except AssertionError as failure:
        raise AssertionError(f"traffic job failed ({where}):\n{failure}") from None
    return history


@pytest.mark.parametrize("np_", [2, 3, 4])
def test_traffic_short(tmp_path, np_):
    history = run_job(tmp_path, np_, seed=np_, cycles=CYCLES_PER_JOB_SHORT)
    print("; ".join(history))


def parse_pause(text, variable):
    """A pause between steps given in the environment variable `variable`."""
    try:
        pause = float(text)
    except ValueError:
        pause = None
    assert pause in STEPS_PER_CYCLE, f"{variable}: the pause {text!r} is not one of {sorted(STEPS_PER_CYCLE)}"
    return pause


def parse_replay(value):
    """(ranks, seed, cycles, pause or None) of a PYCKPT_TRAFFIC_REPLAY value."""
    fields = value.split(":")
    try:
        if len(fields) not in (3, 4):
            raise ValueError
        np_, seed, cycles = (int(x) for x in fields[:3])
    except ValueError:
        raise AssertionError(f"PYCKPT_TRAFFIC_REPLAY={value!r}: expected RANKS:SEED:CYCLES[:PAUSE], "
                             f"e.g. 4:17:5:0.01") from None
    pause = parse_pause(fields[3], "PYCKPT_TRAFFIC_REPLAY") if len(fields) == 4 else None
    return np_, seed, cycles, pause


@pytest.mark.skipif(not REPLAY, reason="PYCKPT_TRAFFIC_REPLAY=RANKS:SEED:CYCLES[:PAUSE] replays one job")
def test_traffic_replay(tmp_path):
    np_, seed, cycles, pause = parse_replay(REPLAY)
    print("; ".join(run_job(tmp_path, np_, seed, cycles, pause=pause)))


@pytest.mark.skipif(not LONG_CYCLES, reason="the long campaign runs with PYCKPT_TRAFFIC_CYCLES=N")
@pytest.mark.parametrize("np_", LONG_RANKS)
def test_traffic_long(tmp_path, np_):
    pause = parse_pause(LONG_PAUSE, "PYCKPT_TRAFFIC_PAUSE") if LONG_PAUSE is not None else None
    failures = []
    cycles = 0
    seed = 0
    while cycles < LONG_CYCLES:
        seed += 1
        job_dir = tmp_path / f"seed{seed}"
        job_dir.mkdir()
        try:
            history = run_job(job_dir, np_, seed, CYCLES_PER_JOB_LONG, first_cycle=cycles + 1, pause=pause)
            print(f"cycles {cycles + 1}-{cycles + CYCLES_PER_JOB_LONG} ok: {'; '.join(history)}", flush=True)
        except AssertionError as failure:
            failures.append(str(failure))
            print(f"FAILED: {failure}", flush=True)
        cycles += CYCLES_PER_JOB_LONG
    assert not failures, (f"{len(failures)} of {seed} jobs ({cycles} cycles at {np_} ranks) failed:\n"
                          + "\n\n".join(failures))


# Bugs the campaign found, each with a small job of its own.

def test_spent_message_handles_in_variables(tmp_path):
    """`msg = comm.mprobe(); msg.recv()` leaves MESSAGE_NULL in `msg`, and a
    probe of PROC_NULL gives MESSAGE_NO_PROC: checkpoints with either held in
    a variable failed ("cannot capture a mpi4py.MPI.Message object"), every
    one of them. They are captured and restored as what they are."""
    program, np_, args = "spent_messages.py", 2, [120]
    ref = reference(tmp_path, program, np_, args)
    job, work, history = run_with_kills(tmp_path, program, np_, args, interval=0.3, restarts=["same", "restart"],
                                        seed_name="spent-messages")
    check_same_as_reference(ref, job, work, history, 2)
    assert b"spent True no-proc True" in (work / "out.1").read_bytes().splitlines()[-1]


def test_held_message_while_computing(tmp_path):
    """A checkpoint requested while a rank computes between MPI_Mprobe and
    its Mrecv (held_message.py) reached it at a Python line, where the rank
    waited for the cut, which could never run while it held the message:
    the job hung (campaign 2 ranks, seed 20). It must run on to its Mrecv
    and be cut after."""
    program, np_, args = "held_message.py", 2, [300]
    ref = reference(tmp_path, program, np_, args)
    job, work, history = run_with_kills(tmp_path, program, np_, args, interval=0.2, restarts=["same", "restart"],
                                        seed_name="held-message")
    check_same_as_reference(ref, job, work, history, 2)
