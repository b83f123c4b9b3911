"""Frames survive a checkpoint/restart (issue 3, "What must survive", frames).

Each program of programs/process/frames_*.py runs uninterrupted and as a
restart chain crashing right after every checkpoint (process_harness.py);
stdout and exit status must be identical.
"""
import pytest

from process_harness import References, check_survives, programs

LOOP_KINDS = ["range", "list", "enumerate", "zip", "dict_keys", "dict_values", "dict_items", "while", "nested"]
# Programs that also run killed by SIGKILL right after their checkpoints.
KILLED = {"frames_stack", "frames_generators", "frames_chain", "frames_async_generators"}
STATUS = {"frames_exit_status": 3, "frames_uncaught": 1}

CASES = [pytest.param(name, (), "exit", id=name) for name in programs("frames") if name != "frames_loops"]
CASES += [pytest.param("frames_loops", (kind,), "exit", id=f"frames_loops-{kind}") for kind in LOOP_KINDS]
CASES += [pytest.param(name, (), "kill", id=f"{name}-sigkill") for name in sorted(KILLED)]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return References(tmp_path_factory)


@pytest.mark.parametrize("name,args,crash", CASES)
def test_survives(tmp_path, references, name, args, crash):
    check_survives(tmp_path, references, name, *args, crash=crash, status=STATUS.get(name, 0))


def test_restart_chain_takes_three_checkpoints(tmp_path, references):
    # A second and a third checkpoint after restarts: the chain crashes three
    # times, and each restart resumes the newest checkpoint.
    check_survives(tmp_path, references, "frames_chain", checkpoints=3)
