"""Shared fixtures of the Python tests: where the build put things, and how to
start the tools a user would start (the pyckpt CLI, python, mpirun)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

BUILD_DIR = Path(os.environ.get("PYCKPT_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
PYTHON = os.environ.get("PYCKPT_PYTHON", sys.executable)
MPIEXEC = os.environ.get("PYCKPT_MPIEXEC", "mpiexec")
PYCKPT_CLI = BUILD_DIR / "bin" / "pyckpt"


def mpiexec_cmd(np_):
    """The mpirun prefix for np_ ranks on this machine (root, 2 cores)."""
    return [MPIEXEC, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(np_)]


def run(cmd, check=True, timeout=300, **kw):
    """Runs a command, capturing text output; on failure shows it."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture
def pyckpt_cli():
    return str(PYCKPT_CLI)
