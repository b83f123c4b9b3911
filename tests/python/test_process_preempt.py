"""Safe points and preemption (issue 3): unmodified programs (no pyckpt
import) under `pyckpt run --interval` or `--signal`, killed with SIGKILL at
random (seeded) moments and restarted until they finish, print exactly what
an uninterrupted `python3 prog.py` prints; a checkpoint requested while a C
function sits between frames is taken at the next safe point.
"""
import json

import h5py
import pytest

from process_harness import PYCKPT_CLI, PYTHON, Workspace, preempted_run

# (program, args, seed, how checkpoints are triggered)
CASES = [
    pytest.param("preempt_compute", ("200",), 11, {}, id="compute-interval"),
    pytest.param("preempt_sorted", ("250",), 12, {}, id="sorted_key-interval"),
    pytest.param("preempt_compute", ("200",), 13, {"interval": None, "signal_name": "SIGUSR2", "signal_period": 0.1},
                 id="compute-signal"),
    pytest.param("preempt_compute", ("60",), 14, {"sync": False}, id="compute-interval-async"),
    pytest.param("preempt_coroutines", ("300",), 15, {}, id="coroutines-interval"),
    pytest.param("preempt_imports", ("150",), 16, {}, id="imports-interval"),
    pytest.param("preempt_async_generators", ("100",), 17, {}, id="async_generators-interval"),
]


@pytest.mark.parametrize("name,args,seed,trigger", CASES)
def test_killed_at_random_and_restarted(tmp_path, name, args, seed, trigger):
    reference = Workspace(tmp_path / "ref").run([PYTHON, f"{name}.py", *args])
    assert reference.returncode == 0 and "done" in reference.stdout, reference.describe()
    outcome = preempted_run(tmp_path / "run", name, *args, seed=seed, **trigger)
    assert outcome.checkpoints >= 1, "no restart resumed a checkpoint:\n" + outcome.describe()
    assert outcome.returncode == 0, outcome.describe()
    assert outcome.stdout == reference.stdout, "output differs\n" + outcome.describe()


def test_trigger_inside_c_call_waits_for_safe_point(tmp_path):
    """SIGUSR1 arrives inside a key function called by sorted(): the
    checkpoint shows no frame of the key function and the module frame past
    the sorted() call; a restart from it completes the output file exactly."""
    ws = Workspace(tmp_path)
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        run = ws.run([PYCKPT_CLI, "run", "--sync", "--dir", ws.ckpt_dir, ws.script("preempt_signal_in_key")],
                     stdout=f)
    assert run.returncode == 0, run.describe()
    expected = "before\nafter sorted [999, 998, 997] [500]\nend 499500\n"
    assert out.read_text() == expected
    files = ws.checkpoint_files()
    assert len(files) == 1, run.describe()
    with h5py.File(files[0], "r") as f:
        assert f.attrs["trigger"] == "preemptive"
        frames = json.loads(f["ranks/0/blobs/frames.json"][()].tobytes())["frames"]
    assert [fr["function"] for fr in frames] == ["<module>"], frames
    source = ws.script("preempt_signal_in_key").read_text().splitlines()
    assert frames[0]["line"] > source.index("result = sorted(range(1000), key=key)") + 1, frames
    with open(out, "a") as f:
        restarted = ws.restart(stdout=f)
    assert restarted.returncode == 0, restarted.describe()
    assert out.read_text() == expected
