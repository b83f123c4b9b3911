"""The heap survives a checkpoint/restart (issue 3, "What must survive",
heap items): each programs/process/heap_*.py runs uninterrupted and crashing
right after every checkpoint + `pyckpt restart` (process_harness.py);
stdout and exit status must be identical.
"""
import pytest

from process_harness import HASH_SEED, References, check_survives, programs

ARGS = {"heap_argv": ("--alpha", "two words", "")}
KILLED = {"heap_files", "heap_rng"}

CASES = [pytest.param(name, "exit", id=name) for name in programs("heap")]
CASES += [pytest.param(name, "kill", id=f"{name}-sigkill") for name in sorted(KILLED)]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return References(tmp_path_factory)


@pytest.mark.parametrize("name,crash", CASES)
def test_survives(tmp_path, references, name, crash):
    # heap_order: the restart runs without PYTHONHASHSEED and must re-execute
    # itself with the recorded seed for the set of strings to keep its order.
    check_survives(tmp_path, references, name, *ARGS.get(name, ()), crash=crash,
                   hash_seed=None if name == "heap_order" else HASH_SEED)
