"""Regressions found by running third-party programs under pyckpt (the
Benchmarks Game's Python programs and the mpi4py demos; the campaign's
results are in doc/testing.md). Third-party code does not enter the
project: each test runs a program of our own with the shape that failed.

- pidigits (gmpy2): a C extension type whose name carries no module
  (`xmpz`, reported as builtins.xmpz) was refused at every checkpoint;
  it is now found in the module that holds it.
- threadring, chameneos-redux: threads started with _thread have no
  threading.Thread object, so checkpoints were taken without them and the
  restarted program waited forever for its workers; such checkpoints were
  then refused while the threads ran. The threads are now captured with
  the main thread (test_process_threads.py), the running one at a safe
  point of its own, and resumed after a restart.
"""
import json
import os

import h5py
import pytest

from conftest import BUILD_DIR
from process_harness import PYCKPT_CLI, PYTHON, Workspace, preempted_run

EXTENSION_DIR = BUILD_DIR / "tests" / "python" / "extension"


@pytest.fixture
def undotted_types_importable(monkeypatch):
    """The test extension (programs/extension/undotted_types.c) on the path
    of every process the test starts, restarts included."""
    assert any(EXTENSION_DIR.glob("undotted_types.*.so")), f"test extension not built in {EXTENSION_DIR}"
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{EXTENSION_DIR}:{path}" if path else str(EXTENSION_DIR))


def test_c_type_without_module_name_is_captured(tmp_path, undotted_types_importable):
    """The type (in the module's globals) and its instances (live in the
    loop) survive SIGKILLs and restarts; before, every checkpoint failed
    with "the built-in type builtins.Counter cannot be found by name"."""
    reference = Workspace(tmp_path / "ref").run([PYTHON, "shapes_undotted_ctype.py", "60"])
    assert reference.returncode == 0 and "done Counter" in reference.stdout, reference.describe()
    outcome = preempted_run(tmp_path / "run", "shapes_undotted_ctype", "60", seed=21, interval="0.1",
                            kill_times=(0.2, 0.6))
    assert "cannot be found by name" not in outcome.stderr, outcome.describe()
    assert outcome.checkpoints >= 1, "no restart resumed a checkpoint:\n" + outcome.describe()
    assert outcome.returncode == 0 and outcome.stdout == reference.stdout, outcome.describe()


def test_raw_threads_passing_a_token_are_captured(tmp_path):
    """While the _thread workers pass the token (one of them always runs),
    checkpoints are taken: each worker is parked in its acquire or at a
    safe point of its own. The first one kept was taken before the program
    printed anything, in the middle of the token's rounds; a restart from
    it prints exactly the uninterrupted output."""
    ws = Workspace(tmp_path)
    args = ["100000", "60"]
    reference = ws.run([PYTHON, ws.script("shapes_raw_threads"), *args])
    assert reference.returncode == 0 and reference.stdout.endswith("done\n"), reference.describe()
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        run = ws.run([PYCKPT_CLI, "run", "--sync", "--interval", "0.05", "--keep", "1000", "--dir", ws.ckpt_dir,
                      ws.script("shapes_raw_threads"), *args], stdout=f)
    assert run.returncode == 0 and out.read_text() == reference.stdout, run.describe()
    files = ws.checkpoint_files()
    assert files, run.describe()
    with h5py.File(files[0], "r") as f:
        summary = json.loads(f["ranks/0/blobs/frames.json"][()].tobytes())
    assert summary["output"]["stdout"]["bytes"] == 0, f"{files[0]} was taken after the workers' rounds\n{run.describe()}"
    with open(out, "a") as f:
        restarted = ws.restart(files[0], stdout=f)
    assert restarted.returncode == 0 and out.read_text() == reference.stdout, restarted.describe()
