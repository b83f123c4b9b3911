"""pyckpt._core's binding of libpyckpt_mpi.so (mpi.cpp) and the Python-rank
preload library, each against stub_interposer.c: a stand-in for the
interposer that implements pyckpt_mpi.h and runs the init callback at
MPI_Init, so these parts are tested on their own."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD_DIR, PYTHON, mpiexec_cmd, run

PROGRAMS = Path(__file__).parent / "programs" / "core_mpi"
SOURCE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    """The stub interposer, with the real library's soname so that it also
    satisfies the preload library's dependency on libpyckpt_mpi."""
    if shutil.which("mpicc") is None:
        pytest.skip("mpicc not found")
    lib = tmp_path_factory.mktemp("stub") / "libpyckpt_mpi.so"
    run(["mpicc", "-shared", "-fPIC", "-O1", f"-I{SOURCE_DIR / 'mpi_wrap' / 'include'}",
         "-Wl,-soname,libpyckpt_mpi.so.0", str(PROGRAMS / "stub_interposer.c"), "-o", str(lib)])
    return lib


def env_with(**changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCKPT_")}
    env["PYTHONPATH"] = str(BUILD_DIR / "python")
    env.update(changes)
    return env


def test_without_the_library_every_function_says_how_to_load_it():
    code = ("from pyckpt import _core\n"
            "assert not _core.mpi_loaded()\n"
            "for f in (_core.mpi_world, _core.mpi_checkpoint, _core.mpi_state_save, _core.mpi_pending_requests):\n"
            "    try: f()\n"
            "    except _core.__class__ and __import__('pyckpt.errors').errors.CheckpointError as e: print(e)\n")
    out = run([PYTHON, "-c", code], env=env_with()).stdout.splitlines()
    assert len(out) == 4 and all("libpyckpt_mpi.so is not loaded in this process" in line
                                 and "pyckpt preload-path" in line for line in out)


def test_binding_maps_every_function_of_the_header(stub, tmp_path):
    proc = run([PYTHON, str(PROGRAMS / "binding.py")], env=env_with(LD_PRELOAD=str(stub)), cwd=tmp_path)
    assert proc.stdout.strip() == "OK"
    assert proc.stderr.count("pyckpt: rank 0: checkpoint failed: no state for you") == 2, proc.stderr


def test_preload_libraries_lists_interposer_then_python_rank_library():
    out = run([PYTHON, "-c", "from pyckpt import _core; print(_core.preload_libraries())"], env=env_with()).stdout
    libs = eval(out)
    assert [os.path.basename(p) for p in libs] == ["libpyckpt_mpi.so", "libpyckpt_python_rank.so"]
    assert all(os.path.isabs(p) and os.path.dirname(p) == str(BUILD_DIR / "lib") for p in libs)


@pytest.fixture
def rank_preload(stub):
    rank_lib = BUILD_DIR / "lib" / "libpyckpt_python_rank.so"
    if not rank_lib.exists():
        pytest.skip("libpyckpt_python_rank.so not built")
    return f"{stub}:{rank_lib}"


def test_python_rank_attaches_at_mpi_init(rank_preload, tmp_path):
    cmd = mpiexec_cmd(2) + ["-x", "LD_PRELOAD", "-x", "PYTHONPATH", PYTHON, str(PROGRAMS / "app.py"), "one"]
    out = run(cmd, env=env_with(LD_PRELOAD=rank_preload, PYTHONPATH="/elsewhere"), cwd=tmp_path).stdout
    assert out.count("attached True") == 2, out
    assert f"PYTHONPATH {BUILD_DIR / 'python'}:/elsewhere" in out  # the package first, once


def test_python_rank_does_nothing_when_disabled_or_not_python(rank_preload, tmp_path):
    out = run([PYTHON, str(PROGRAMS / "app.py")], env=env_with(LD_PRELOAD=rank_preload, PYCKPT_MPI_PYTHON="off"),
              cwd=tmp_path).stdout
    assert "attached False" in out
    assert run(["/bin/echo", "plain"], env=env_with(LD_PRELOAD=rank_preload)).stdout == "plain\n"


def test_python_rank_whose_attach_fails_ends_the_job(rank_preload, tmp_path):
    cmd = mpiexec_cmd(2) + ["-x", "LD_PRELOAD", "-x", "PYCKPT_KEEP", PYTHON, str(PROGRAMS / "app.py")]
    proc = run(cmd, check=False, env=env_with(LD_PRELOAD=rank_preload, PYCKPT_KEEP="zz"), cwd=tmp_path, timeout=120)
    assert proc.returncode != 0 and "Traceback" in proc.stderr, proc.stderr


def test_python_rank_resumes_from_a_committed_checkpoint(rank_preload, tmp_path):
    # Any committed checkpoint in the job's directory makes the rank
    # re-execute as `python3 -m pyckpt resume-rank -- <args>` before its
    # script starts; sitecustomize shows each interpreter start.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\n"
        "args = open('/proc/self/cmdline', 'rb').read().split(b'\\0')[1:-1]\n"
        "print('START', b' '.join(args).decode(), os.environ.get('PYCKPT_RESUME_DIR'), flush=True)\n")
    run([PYTHON, "-c", "from pyckpt import _core; import numpy as np\n"
                       "w = _core.Writer(_core.DEFAULT_DIRECTORY); w.add_array('a', np.arange(2)); w.commit()"],
        env=env_with(), cwd=tmp_path)
    app = str(PROGRAMS / "app.py")
    resumed = run([PYTHON, app, "one"], check=False, env=env_with(LD_PRELOAD=rank_preload, PYTHONPATH=str(site)),
                  cwd=tmp_path)
    starts = [line for line in resumed.stdout.splitlines() if line.startswith("START")]
    assert starts and starts[0] == f"START -m pyckpt resume-rank -- {app} one pyckpt.d", resumed
    fresh = run([PYTHON, app, "one"], env=env_with(LD_PRELOAD=rank_preload, PYTHONPATH=str(site),
                                                   PYCKPT_RESTART="never"), cwd=tmp_path)
    assert fresh.stdout.splitlines()[0] == f"START {app} one None", fresh.stdout
    assert "attached True" in fresh.stdout
