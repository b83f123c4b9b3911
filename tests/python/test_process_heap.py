"""The heap survives a checkpoint/restart (issue 3, "What must survive",
heap items): each programs/process/heap_*.py runs uninterrupted and crashing
right after every checkpoint + `pyckpt restart` (process_harness.py);
stdout and exit status must be identical.
"""
import pytest

from process_harness import CRASH_STATUS, HASH_SEED, PYTHON, References, Workspace, check_survives, programs

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


def test_set_layout_random_seed(tmp_path):
    """Issue 13 (a): `python3 app.py` without PYTHONHASHSEED (a random hash
    secret), crashed after each checkpoint and restarted (the restart
    re-executes itself with the recorded secret): every set iterates after
    each restart as it did before the first checkpoint. No separate
    uninterrupted run to compare with: its secret would be another one."""
    ws = Workspace(tmp_path)
    runs = [ws.run([PYTHON, ws.script("heap_set_layout")], PYCKPT_DIR=str(ws.ckpt_dir), PYCKPT_TEST_CRASH="exit")]
    while runs[-1].returncode == CRASH_STATUS:
        assert len(runs) < 5, "".join(r.describe() for r in runs)
        runs.append(ws.restart(crash="exit", hash_seed=None))
    context = "\n\n".join(r.describe() for r in runs)
    assert runs[-1].returncode == 0 and len(runs) == 3, context
    lines = "".join(r.stdout for r in runs).splitlines()
    before = [line.split(" ", 1)[1] for line in lines if line.startswith("before ")]
    for round_ in ("after 0 ", "after 1 "):
        after = [line[len(round_):] for line in lines if line.startswith(round_)]
        assert after == before, context


def test_set_order_lost_is_told(tmp_path):
    """A set whose elements hash by identity cannot get its order back (the
    restarted process has other addresses): the restart says so once, naming
    the variable and frame that hold it, and the program goes on."""
    ws = Workspace(tmp_path)
    first = ws.python("errors_set_identity", crash="exit")
    assert first.returncode == CRASH_STATUS, first.describe()
    restart = ws.restart()
    assert restart.returncode == 0 and restart.stdout == "26 nodes\n", restart.describe()
    warnings = [line for line in restart.stderr.splitlines() if "in another order" in line]
    assert warnings == [
        f"pyckpt restart: warning: the set nodes in work at {ws.script('errors_set_identity')}:15 iterates in another "
        f"order than in the original run: its elements (__main__.Node) hash differently in this process (by "
        f"identity), so the order could not be restored; results that depend on it may differ"], restart.describe()
