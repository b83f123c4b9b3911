"""A serial program's input across a restart: `pyckpt run prog < input`
(and a file the program iterates over) killed and restarted with the same
input, or with a pipe that cannot be positioned. The programs are in
programs/process/."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mpi_job_harness import cli, latest_checkpoint
from stdin_inputs import expected_lines, input_file

PROGRAMS_PROCESS = Path(__file__).resolve().parent / "programs" / "process"


def _serial_run_killed_and_restarted(tmp_path, mode, input_path, stdin):
    """`pyckpt run --interval 0.3 input_lines.py MODE` killed once a checkpoint
    is committed and a few lines later, then `pyckpt restart`; `stdin`: the
    input file or None (a pipe of it). Returns (out.txt, stdout, stderr of
    the restart)."""
    program = PROGRAMS_PROCESS / "input_lines.py"
    args = [mode, "0.005"] + ([str(input_path)] if mode == "file" else [])
    directory = tmp_path / "ckpt.d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCKPT_") or k == "PYCKPT_BUILD_DIR"}

    def start(cmd):
        if stdin is None:
            return subprocess.Popen(["sh", "-c", 'cat "$0" | "$@"', str(input_path), *cmd], cwd=tmp_path, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        with open(stdin) as f:
            return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdin=f, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)

    first = start(cli("run", "--dir", str(directory), "--interval", "0.3", str(program), *args))
    # Killed after a checkpoint taken once the program has read some input
    # (on a loaded machine the first one can come before its first read).
    deadline = time.monotonic() + 60
    out_txt = tmp_path / "out.txt"
    while (not out_txt.exists() or not out_txt.read_text()) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    before = latest_checkpoint(directory)
    while latest_checkpoint(directory) in (None, before) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    time.sleep(0.2)
    assert first.poll() is None, f"the run ended before it was killed: {first.communicate()}"
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    written = (tmp_path / "out.txt").read_text().count("\n")
    second = start(cli("restart", str(directory)))
    stdout, stderr = second.communicate(timeout=180)
    assert second.returncode == 0, stdout + stderr
    assert "program start" not in stderr, stderr
    assert 0 < written, "killed before any line was written"
    return (tmp_path / "out.txt").read_text(), stdout, stderr


@pytest.mark.parametrize("mode", ["stdin", "stdin-readline", "file"])
def test_serial_input_restarted(tmp_path, mode):
    """`pyckpt run prog < input` (and a file the program iterates over)
    killed and restarted with the same input: the output is the
    uninterrupted run's."""
    input_path = input_file(tmp_path / "input.txt", 1500)
    out, stdout, _ = _serial_run_killed_and_restarted(tmp_path, mode, input_path, input_path)
    assert out == expected_lines(input_path)
    assert stdout.strip().splitlines()[-1] == "lines read 1500"


def test_serial_stdin_pipe_says_so(tmp_path):
    """`cat input | pyckpt restart DIR`: stdin cannot be positioned; the
    restart says so once and the program reads the pipe from its start."""
    input_path = input_file(tmp_path / "input.txt", 1500)
    out, stdout, stderr = _serial_run_killed_and_restarted(tmp_path, "stdin", input_path, None)
    warnings = [line for line in stderr.splitlines() if "stdin is not a regular file" in line]
    assert len(warnings) == 1 and "reads it from its beginning again, not from byte " in warnings[0], stderr
    assert int(stdout.strip().splitlines()[-1].split()[-1]) > 1500  # counted on from the checkpoint
