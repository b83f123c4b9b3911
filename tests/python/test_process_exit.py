"""How a program under pyckpt ends (issue 12): "Ctrl-C on a restarted program
while a checkpoint request was pending committed a `latest` whose only frame
is Python's traceback printer; the next restart exits 0 and prints nothing."

- A checkpoint request pending as the program ends (return, exception,
  sys.exit, SIGINT), under `pyckpt run` and in every restart of a chain:
  no checkpoint after the program's last real one, nothing on stderr about
  one, and restarting that last one again replays the same ending.
- `pyckpt restart` does not wait for a writer that died before naming
  itself in its marker.
- `pyckpt inspect` tells how much stdout/stderr the checkpoint had written,
  which splices per-run output files into the uninterrupted output.
"""
import os
import re
import subprocess
import time

import pytest

from process_harness import CRASH_STATUS, HASH_SEED, PYCKPT_CLI, Workspace

from pyckpt import _core, commit

ENDINGS = {"return": 0, "exception": 1, "exit": 3, "sigint": -2}
REAL_CHECKPOINTS = 3  # exit_pending.py's own


def _run(ws, how, sync, crash=None):
    cmd = [PYCKPT_CLI, "run", "--dir", ws.ckpt_dir, *(["--sync"] if sync else []), ws.script("exit_pending"), how]
    return ws.run(cmd, PYCKPT_TEST_CRASH=crash, PYTHONHASHSEED=HASH_SEED)


def _no_word_of_checkpoints(runs):
    for run in runs:
        assert "checkpoint skipped" not in run.stderr and "checkpoint failed" not in run.stderr, run.describe()


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
@pytest.mark.parametrize("how", sorted(ENDINGS))
def test_no_checkpoint_after_the_program_ends(tmp_path, how, sync):
    reference_ws = Workspace(tmp_path / "ref")
    reference = _run(reference_ws, how, sync)
    assert reference.returncode == ENDINGS[how], reference.describe()
    assert reference.stdout.endswith(f"ending: {how}\n"), reference.describe()
    assert reference_ws.latest_epoch() == REAL_CHECKPOINTS, reference.describe()
    _no_word_of_checkpoints([reference])

    # The chain: killed after each checkpoint, restarted from it; the last
    # restart ends the program with the request pending.
    ws = Workspace(tmp_path / "chain")
    runs = [_run(ws, how, sync, crash="exit")]
    while runs[-1].returncode == CRASH_STATUS:
        assert len(runs) <= REAL_CHECKPOINTS, runs[-1].describe()
        runs.append(ws.restart(crash="exit"))
    described = "\n\n".join(r.describe() for r in runs)
    assert len(runs) == REAL_CHECKPOINTS + 1, described
    assert "".join(r.stdout for r in runs) == reference.stdout, described
    assert runs[-1].returncode == reference.returncode, described
    assert ws.latest_epoch() == REAL_CHECKPOINTS, described
    _no_word_of_checkpoints(runs)

    # The latest checkpoint is still the program's: it replays the ending.
    again = ws.restart()
    assert again.stdout == f"ending: {how}\n" and again.returncode == reference.returncode, again.describe()
    assert ws.latest_epoch() == REAL_CHECKPOINTS, again.describe()
    _no_word_of_checkpoints([again])


def _marker(directory, epoch, text, age=0.0):
    path = _core.CheckpointDir(str(directory)).writing_marker(epoch)
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def _dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("text", ["dead pid", "empty"])
def test_restart_does_not_wait_for_a_dead_writer(tmp_path, capsys, text):
    # A fresh marker of a writer that died: naming a dead process (the
    # program that forks it writes its own pid first), or empty (as a
    # pyckpt before this change left it when its writer died before writing
    # its pid: then restart waited 10 s "for pid ?").
    path = _marker(tmp_path, 5, str(_dead_pid()) if text == "dead pid" else "")
    started = time.monotonic()
    commit.wait_for_writers(str(tmp_path))
    waited = time.monotonic() - started
    assert waited < 2 and not os.path.exists(path), waited
    assert "waiting" not in capsys.readouterr().err


def test_restart_waits_for_a_live_writer(tmp_path, capsys):
    writer = subprocess.Popen(["sleep", "1.5"])
    try:
        path = _marker(tmp_path, 7, str(writer.pid), age=30)
        started = time.monotonic()
        commit.wait_for_writers(str(tmp_path))
        waited = time.monotonic() - started
    finally:
        writer.kill()
        writer.wait()
    # `sleep` exits (a zombie until reaped here, which counts as dead).
    assert waited > 1 and not os.path.exists(path), waited
    assert f"waiting for checkpoint 7 being written by pid {writer.pid}" in capsys.readouterr().err


def _stdout_count(ws, out_path):
    """The stdout bytes `pyckpt inspect` reports for the latest checkpoint,
    checking it names the file they went to."""
    report = ws.cli("inspect", "--no-verify", ws.ckpt_dir)
    assert report.returncode == 0, report.describe()
    found = re.search(r"^    stdout at the checkpoint: (\d+) bytes written to (.*)$", report.stdout, re.M)
    assert found and found.group(2) == str(out_path), report.describe()
    return int(found.group(1))


def test_inspect_output_counts_splice_per_run_files(tmp_path):
    ref = Workspace(tmp_path / "ref")
    with open(ref.root / "out", "w") as out:
        reference = ref.run([PYCKPT_CLI, "run", "--sync", "--dir", ref.ckpt_dir, ref.script("output_lines")],
                            stdout=out, PYTHONHASHSEED=HASH_SEED)
    assert reference.returncode == 0, reference.describe()
    expected = (ref.root / "out").read_bytes()

    # Each run writes its own files, as a batch job's output files would.
    ws = Workspace(tmp_path / "chain")
    cmd = [PYCKPT_CLI, "run", "--sync", "--dir", ws.ckpt_dir, ws.script("output_lines")]
    pieces = []
    for run_number in range(3):
        out_path = ws.root / f"run{run_number}.out"
        with open(out_path, "w") as out:
            run = ws.run(cmd if run_number == 0 else [PYCKPT_CLI, "restart", ws.ckpt_dir], stdout=out,
                         PYTHONHASHSEED=HASH_SEED, PYCKPT_TEST_CRASH="exit" if run_number < 2 else None)
        if run_number < 2:
            assert run.returncode == CRASH_STATUS, run.describe()
            count = _stdout_count(ws, out_path)
            pieces.append(out_path.read_bytes()[:count])
            assert count == out_path.stat().st_size, run.describe()  # it died right after the checkpoint
        else:
            assert run.returncode == 0, run.describe()
            pieces.append(out_path.read_bytes())
    assert b"".join(pieces) == expected
    # stderr went to a pipe: reported, not counted.
    report = ws.cli("inspect", "--no-verify", ws.ckpt_dir).stdout
    assert "stderr at the checkpoint: not a regular file (not counted)" in report, report
