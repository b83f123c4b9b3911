"""Kill campaign (issue 13, "Fault campaigns"): SIGKILLs at random moments,
including while a checkpoint is being written, over serial programs with a
small state (programs/process/preempt_compute.py) and a large one
(large_state.py, 64 MiB of arrays: its synchronous write, or its forked
writer's, takes long enough for kills to fall inside it), and over 4-rank
MPI jobs (programs/mpi/heat.py). After every kill:

- `latest`, if there is one, passes `pyckpt verify` (a kill never leaves a
  torn checkpoint as `latest`);
- at most one in-flight file (the killed write's) is left in the directory;

and every program finishes, after its restarts, with the output of an
uninterrupted run, leaving no in-flight file and no writing marker.

Modes:

* default suite: the two serial programs, up to 4 kills each (the MPI job tests,
  test_mpi_*.py, kill and restart 4-rank jobs already);
* long: PYCKPT_KILL_CAMPAIGN=200 runs seeded serial and MPI jobs, in turn,
  until that many kills were made, goes on after a failing job, lists every
  failure (with its seed) at the end and prints the figures.
"""
import os
import subprocess
import time

import pytest

from mpi_job_harness import check_same_as_reference, reference, run_with_kills
from process_harness import PYCKPT_CLI, PYTHON, Workspace, preempted_run

LONG_KILLS = int(os.environ.get("PYCKPT_KILL_CAMPAIGN", "0"))
# Long enough for their kills on an idle machine (2-4 s uninterrupted).
SERIAL = [("preempt_compute", ("1000",), {"kill_times": (0.05, 1.0)}),
          ("large_state", ("64", "80"), {"kill_times": (0.1, 1.5), "interval": "0.3"})]


def _check_directory(directory, where):
    """`latest` verifies; at most the killed write's in-flight file is left."""
    from pyckpt import _core
    ckpt_dir = _core.CheckpointDir(str(directory))
    in_flight = ckpt_dir.in_flight_files()
    assert len(in_flight) <= 1, f"{where}: in-flight files accumulate: {in_flight}"
    if ckpt_dir.latest() is not None:
        verify = subprocess.run([PYTHON, str(PYCKPT_CLI), "verify", str(directory)], capture_output=True, text=True,
                                timeout=120)
        assert verify.returncode == 0, f"{where}: latest does not verify:\n{verify.stdout}{verify.stderr}"


def _check_finished(directory, where):
    from pyckpt import _core
    ckpt_dir = _core.CheckpointDir(str(directory))
    left = [*ckpt_dir.in_flight_files(), *ckpt_dir.writing_markers()]
    assert not left, f"{where}: left behind after the run finished: {left}"


def _serial_job(root, name, args, options, seed, rounds, sync):
    """One program under `pyckpt run`, `rounds` kills; returns the kills made."""
    expected = Workspace(root / "ref").run([PYTHON, f"{name}.py", *args])
    assert expected.returncode == 0, expected.describe()
    where = f"{name} seed {seed} ({'sync' if sync else 'forked writer'})"
    kills = []
    outcome = preempted_run(root / "run", name, *args, seed=seed, rounds=rounds, sync=sync,
                            after_kill=lambda ws: (kills.append(1), _check_directory(ws.ckpt_dir, where)),
                            **{"interval": "0.1", **options})
    assert kills, f"{where}: the program ended before its first kill"
    assert outcome.returncode == 0, f"{where}:\n{outcome.describe()}"
    assert outcome.stdout == expected.stdout, f"{where}: output differs\n{outcome.describe()}"
    _check_finished(outcome.workspace.ckpt_dir, where)
    return len(kills)


def _mpi_job(root, seed, restarts):
    """heat.py on 4 ranks, killed len(restarts) times; returns the kills."""
    program, np_, args = "heat.py", 4, [300]
    root.mkdir(parents=True)
    ref = reference(root, program, np_, args)
    where = f"{program} seed {seed}"
    job, work, history = run_with_kills(
        root, program, np_, args, interval=0.3, restarts=restarts, seed_name=f"campaign-{seed}", max_delay=0.8,
        after_kill=lambda _work, directory, number: _check_directory(directory, f"{where}, kill {number}"))
    check_same_as_reference(ref, job, work, history, len(restarts))
    _check_finished(work / "ckpt.d", where)
    return len(restarts)


@pytest.mark.parametrize("name, args, options", SERIAL, ids=[s[0] for s in SERIAL])
def test_serial_kill_campaign(tmp_path, name, args, options):
    kills = _serial_job(tmp_path, name, args, options, seed=1, rounds=2, sync=True)
    kills += _serial_job(tmp_path / "forked", name, args, options, seed=2, rounds=2, sync=False)
    print(f"\n{name}: {kills} kills")


@pytest.mark.skipif(not LONG_KILLS, reason="long mode only: PYCKPT_KILL_CAMPAIGN=<kills>")
def test_long_kill_campaign(tmp_path):
    kills, jobs, failures, started = {"serial": 0, "mpi": 0}, 0, [], time.monotonic()
    seed = 0
    while sum(kills.values()) < LONG_KILLS:
        seed += 1
        root = tmp_path / f"job{seed}"
        try:
            if seed % 3 == 0:
                kills["mpi"] += _mpi_job(root, seed, ["same", "restart", "same", "same"])
            else:
                name, args, options = SERIAL[seed % 2]
                kills["serial"] += _serial_job(root, name, args, options, seed=seed, rounds=8, sync=seed % 4 != 1)
        except AssertionError as failure:
            failures.append(f"seed {seed}: {str(failure)[:3000]}")
            assert len(failures) < 10, "\n\n".join(failures)
        jobs += 1
    print(f"\nkill campaign: {sum(kills.values())} kills ({kills['serial']} serial, {kills['mpi']} of 4-rank jobs) "
          f"in {jobs} jobs, {time.monotonic() - started:.0f} s, {len(failures)} failed job(s)")
    assert not failures, "\n\n".join(failures)
