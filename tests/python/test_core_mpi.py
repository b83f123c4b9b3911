"""pyckpt._core's binding of libpyckpt_mpi.so (libpyckpt/_core/mpi.cpp) and the
Python-rank preload library (libpyckpt/preload/python_rank.cpp), against the
real interposer under real mpirun: jobs of 2 ranks, the libraries preloaded as
`pyckpt preload-path` prints them (the binding tests preload the interposer
alone, so that nothing attaches and the test program registers its own
callbacks). Every job runs under a timeout; a rank that fails an assertion
aborts its job."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD_DIR, PYCKPT_CLI, PYTHON, mpiexec_cmd, run

PROGRAMS = Path(__file__).resolve().parent / "programs" / "core_mpi"
SOURCE_DIR = Path(__file__).resolve().parents[2]
PACKAGE_DIR = str(BUILD_DIR / "python")
# Generous: a job of these tests takes 1-5 s, but under a heavy load (other
# MPI jobs on the 2 cores) a checkpoint's write alone was seen to take 100 s.
JOB_TIMEOUT = 180
LOAD_HINT = "libpyckpt_mpi.so is not loaded in this process"
TRACE = "pyckpt_mpi trace "  # PYCKPT_MPI_TRACE's lines

# mpi.cpp's method table: every function of pyckpt_mpi.h the binding exposes.
BINDING = {
    "mpi_world": (), "mpi_set_capture_callbacks": (None, None), "mpi_request_checkpoint": (),
    "mpi_install_signal_trigger": (10,), "mpi_checkpoint": (), "mpi_state_save": (), "mpi_state_restore": (b"",),
    "mpi_comm_id": (None,), "mpi_comm_from_id": (None, 1), "mpi_type_id": (None,),
    "mpi_type_from_id": (None, 1), "mpi_request_id": (None,), "mpi_request_from_id": (None, 1),
    "mpi_file_id": (None,), "mpi_file_from_id": (None, 1),
    "mpi_win_id": (None,), "mpi_win_from_id": (None, 1), "mpi_windows": (), "mpi_windows_recreate": ({},),
    "mpi_windows_reopen": (), "mpi_window_locate": (0, 8), "mpi_window_address": (1, 0, 0),
    "mpi_pending_requests": (), "mpi_request_repost": (1, 0), "mpi_request_expect_reissue": (1,),
    "mpi_channel_messages": (), "mpi_stats": (),
    "mpi_poll": (), "mpi_set_triggers": ("", 0.0), "mpi_enable_wake": (10,), "mpi_disable_wake": (),
    "mpi_write_comm": (None,), "mpi_alloc_mem_size": (0,),
    "mpi_wrap_compound_methods": ((0,),), "mpi_compound_active": (), "mpi_mpi4py_contexts": (),
}


def env_with(**changes):
    """The test's environment without PYCKPT_* variables, pyckpt importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCKPT_")}
    env["PYTHONPATH"] = PACKAGE_DIR
    env.update(changes)
    return env


def mpirun(np_, *args, exports=(), **kw):
    """`mpirun -np N -x NAME... args`: the named variables of env exported
    to the ranks."""
    cmd = mpiexec_cmd(np_) + [arg for name in exports for arg in ("-x", name)] + list(args)
    return job(cmd, **kw)


def job(cmd, check=True, env=None, cwd=None, timeout=JOB_TIMEOUT):
    """Runs an mpirun command. A job that does not end within `timeout` is
    ended by mpirun (SIGTERM: it ends its ranks too) and fails the test with
    what it printed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        raise AssertionError(f"{cmd} did not end within {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def lines_with(text, word):
    return [line for line in text.splitlines() if word in line]


@pytest.fixture(scope="module")
def preload_path():
    """What `pyckpt preload-path` prints: interposer, then the Python-rank library."""
    path = run([PYTHON, str(PYCKPT_CLI), "preload-path"], env=env_with()).stdout.strip()
    libs = path.split(":")
    assert [os.path.basename(p) for p in libs] == ["libpyckpt_mpi.so", "libpyckpt_python_rank.so"], path
    assert all(os.path.dirname(p) == str(BUILD_DIR / "lib") and os.path.exists(p) for p in libs), path
    return path


# ------------------------------------------------------------- the binding ---

def test_binding_table_is_the_tested_one_and_says_how_to_load_the_library():
    """Without the interposer (a serial process): mpi_loaded() is False and
    every other function raises CheckpointError saying how to load it."""
    code = ("import sys\n"
            "from pyckpt import _core\n"
            "from pyckpt.errors import CheckpointError\n"
            "print(sorted(n for n in dir(_core) if n.startswith('mpi_')))\n"
            "print(_core.mpi_loaded())\n"
            f"for name, args in {BINDING!r}.items():\n"
            "    try:\n"
            "        getattr(_core, name)(*args)\n"
            "        print(name, 'did not raise')\n"
            "    except CheckpointError as e:\n"
            "        print(name, e)\n")
    out = run([PYTHON, "-c", code], env=env_with(), timeout=JOB_TIMEOUT).stdout.splitlines()
    assert eval(out[0]) == sorted([*BINDING, "mpi_loaded"]), "mpi.cpp's table changed: test the new functions"
    assert out[1] == "False"
    assert len(out[2:]) == len(BINDING)
    for line in out[2:]:
        assert LOAD_HINT in line and "pyckpt preload-path" in line and "pyckpt mpirun" in line, line


def test_preload_libraries_lists_interposer_then_python_rank_library():
    out = run([PYTHON, "-c", "from pyckpt import _core; print(_core.preload_libraries(), _core.library_dir())"],
              env=env_with()).stdout
    libs = eval(out[:out.rindex("]") + 1])
    assert [os.path.basename(p) for p in libs] == ["libpyckpt_mpi.so", "libpyckpt_python_rank.so"]
    assert all(os.path.dirname(p) == str(BUILD_DIR / "lib") for p in libs)
    assert out.split()[-1] == str(BUILD_DIR / "lib")


def test_binding_against_the_interposer_and_in_a_restarted_job(preload_path, tmp_path):
    """programs/core_mpi/binding.py, 2 ranks: every function of the binding
    against the running interposer (handles, errors, checkpoints with
    retries and failures, GIL), then a second job restores the state the
    first one saved and re-posts its pending receive."""
    interposer = preload_path.split(":")[0]
    # The ranks trace the protocol: a job that hangs shows where (binding.py
    # also dumps its Python stacks after BINDING_TIMEOUT s and exits).
    env = env_with(LD_PRELOAD=interposer, PYCKPT_MPI_TRACE="1", BINDING_TIMEOUT=str(JOB_TIMEOUT - 30))
    exports = ("LD_PRELOAD", "PYTHONPATH", "PYCKPT_MPI_TRACE", "BINDING_TIMEOUT")
    saved = mpirun(2, PYTHON, str(PROGRAMS / "binding.py"), "save", exports=exports, env=env, cwd=tmp_path)
    assert sorted(lines_with(saved.stdout, " OK")) == ["rank 0 OK", "rank 1 OK"], saved.stdout
    err = "\n".join(line for line in saved.stderr.splitlines() if not line.startswith(TRACE))
    # capture raised on rank 1 only, write on rank 0 only: the trampoline
    # and the library say why on that rank only (the checkpoint failed on
    # every rank: mpi_checkpoint raises there, binding.py checks it).
    assert sorted(lines_with(err, "pyckpt: rank")) == [
        "pyckpt: rank 0: checkpoint failed: disk full on rank 0",
        "pyckpt: rank 1: checkpoint failed: no state for you on rank 1"], err
    assert lines_with(err, "the capture callback failed") == [
        "pyckpt_mpi: checkpoint failed on rank 1 (cut 10): the capture callback failed"], err
    assert lines_with(err, "the write callback failed") == [
        "pyckpt_mpi: checkpoint failed on rank 0 (cut 10): the write callback failed"], err
    assert "Traceback" not in err, err

    restored = mpirun(2, PYTHON, str(PROGRAMS / "binding.py"), "restore", exports=exports, env=env, cwd=tmp_path)
    assert sorted(lines_with(restored.stdout, " OK")) == ["rank 0 OK", "rank 1 OK"], restored.stdout
    assert "checkpoint failed" not in restored.stderr, restored.stderr


# ------------------------------------------------ the Python-rank library ---

def test_python_rank_attaches_at_mpi_init_and_arms_the_triggers(preload_path, tmp_path):
    """Plain mpirun with both libraries preloaded: pyckpt.mpi is imported and
    attached inside MPI_Init, its package first on PYTHONPATH (once), and
    the checkpoint signal it armed makes a committed checkpoint."""
    app = str(PROGRAMS / "app.py")
    env = env_with(LD_PRELOAD=preload_path, PYTHONPATH="/elsewhere")
    proc = mpirun(2, PYTHON, app, "signal", exports=("LD_PRELOAD", "PYTHONPATH"), env=env, cwd=tmp_path)
    out = proc.stdout
    assert out.count(f"PYTHONPATH={PACKAGE_DIR}:/elsewhere\n") == 2, out
    for rank in (0, 1):
        assert f"rank {rank} imported True attached True world {rank}/2 wake True loaded True" in out, out
        assert f"rank {rank} checkpoints 1" in out, (out, proc.stderr)
    assert (tmp_path / "pyckpt.d" / "latest").is_symlink()

    # Already first: left as it is.
    env["PYTHONPATH"] = f"{PACKAGE_DIR}:/elsewhere"
    (tmp_path / "again").mkdir()
    out = mpirun(2, PYTHON, app, exports=("LD_PRELOAD", "PYTHONPATH"), env=env, cwd=tmp_path / "again").stdout
    assert out.count(f"PYTHONPATH={PACKAGE_DIR}:/elsewhere\n") == 2, out
    assert sorted(lines_with(out, "done")) == ["rank 0 done", "rank 1 done"], out


def test_attached_compound_methods_look_like_mpi4py_s(preload_path, tmp_path):
    """attach wraps mpi4py's compound methods (sendrecv, reduce, allreduce,
    scan, exscan): the application sees them unchanged, docstring, name and
    signature (mpi4py's own test_doc failed on the missing docstrings)."""
    program = ("import sys; from mpi4py import MPI; print('attached', 'pyckpt.mpi' in sys.modules); "
               "[print(repr((m.__name__, m.__qualname__, m.__doc__, m.__text_signature__))) for m in "
               "(MPI.Comm.sendrecv, MPI.Comm.reduce, MPI.Comm.allreduce, MPI.Intracomm.scan, MPI.Intracomm.exscan)]")
    plain = mpirun(1, PYTHON, "-c", program, env=env_with(), cwd=tmp_path).stdout
    attached = mpirun(1, PYTHON, "-c", program, exports=("LD_PRELOAD",), env=env_with(LD_PRELOAD=preload_path),
                      cwd=tmp_path).stdout
    assert plain.startswith("attached False\n") and attached.startswith("attached True\n"), (plain, attached)
    assert "Send and Receive" in plain, plain
    assert attached.split("\n", 1)[1] == plain.split("\n", 1)[1], (plain, attached)


def test_pyckpt_mpirun_preloads_both_libraries(tmp_path):
    """The same through the CLI, as a user starts a job (PYTHONPATH unset:
    the library puts the package there)."""
    env = env_with()
    del env["PYTHONPATH"]
    proc = job([PYTHON, str(PYCKPT_CLI), "mpirun", "--oversubscribe", "--bind-to", "none", "-np", "2",
                str(PROGRAMS / "app.py")], env=env, cwd=tmp_path)
    assert proc.stdout.count(f"PYTHONPATH={PACKAGE_DIR}\n") == 2, proc.stdout
    assert len(lines_with(proc.stdout, "imported True attached True")) == 2, proc.stdout


def test_python_rank_disabled_neither_attaches_nor_resumes(preload_path, tmp_path):
    """PYCKPT_MPI_PYTHON=never: no attach at MPI_Init, and no resume either,
    even from a directory holding a committed checkpoint of the command."""
    app = str(PROGRAMS / "app.py")
    env = env_with(LD_PRELOAD=preload_path)
    mpirun(2, PYTHON, app, "checkpoint", exports=("LD_PRELOAD", "PYTHONPATH"), env=env, cwd=tmp_path)
    assert (tmp_path / "pyckpt.d" / "latest").is_symlink()
    env["PYCKPT_MPI_PYTHON"] = "never"
    proc = mpirun(2, PYTHON, app, exports=("LD_PRELOAD", "PYTHONPATH", "PYCKPT_MPI_PYTHON"), env=env, cwd=tmp_path)
    out = proc.stdout
    assert out.count("program start") == 2 and "pyckpt" not in proc.stderr, (out, proc.stderr)
    for rank in (0, 1):
        assert f"rank {rank} imported False attached False world 0/1 wake False loaded True" in out, out
    assert sorted(lines_with(out, "done")) == ["rank 0 done", "rank 1 done"], out


NON_PYTHON_PROGRAM = r"""
#include <pyckpt/mpi/pyckpt_mpi.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size, got = -1, sum = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Sendrecv(&rank, 1, MPI_INT, (rank + 1) % size, 0, &got, 1, MPI_INT, (rank + size - 1) % size, 0,
               MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  /* as pyckpt_mpi.h advises: looked up, so the program runs without it too */
  int (*get_stats)(pyckpt_mpi_stats*) = (int (*)(pyckpt_mpi_stats*))dlsym(RTLD_DEFAULT, "pyckpt_mpi_get_stats");
  pyckpt_mpi_stats stats = {0};
  if (get_stats) get_stats(&stats);
  const char* path = getenv("PYTHONPATH");
  printf("rank %d got %d sum %d interposed %d sent %llu collectives %llu PYTHONPATH %s\n", rank, got, sum,
         get_stats != NULL, (unsigned long long)stats.sent, (unsigned long long)stats.collectives,
         path ? path : "(unset)");
  MPI_Finalize();
  return 0;
}
"""


def test_non_python_program_runs_normally_with_both_libraries(preload_path, tmp_path):
    """A C MPI program (compiled here) with both libraries preloaded, in a
    directory holding a committed checkpoint: the interposer counts its
    calls, the Python-rank library does nothing (no PYTHONPATH, no exec)."""
    if shutil.which("mpicc") is None:
        pytest.skip("mpicc not found")
    (tmp_path / "ring.c").write_text(NON_PYTHON_PROGRAM)
    run(["mpicc", "-O1", f"-I{SOURCE_DIR / 'mpi_wrap' / 'include'}", str(tmp_path / "ring.c"), "-o",
         str(tmp_path / "ring"), "-ldl"], timeout=JOB_TIMEOUT)
    run([PYTHON, "-c", "from pyckpt import _core; import numpy as np\n"
                       "w = _core.Writer(_core.DEFAULT_DIRECTORY); w.add_array('a', np.arange(2)); w.commit()"],
        env=env_with(), cwd=tmp_path, timeout=JOB_TIMEOUT)
    env = env_with(LD_PRELOAD=preload_path)
    del env["PYTHONPATH"]
    proc = mpirun(2, str(tmp_path / "ring"), exports=("LD_PRELOAD",), env=env, cwd=tmp_path)
    assert sorted(proc.stdout.splitlines()) == [
        "rank 0 got 1 sum 1 interposed 1 sent 1 collectives 1 PYTHONPATH (unset)",
        "rank 1 got 0 sum 1 interposed 1 sent 1 collectives 1 PYTHONPATH (unset)"], proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_programs_that_never_initialise_mpi_run_normally_with_both_libraries(preload_path, tmp_path):
    """Without mpirun, no MPI_Init: a C program, and a Python one (which
    gets the package on PYTHONPATH, nothing else)."""
    env = env_with(LD_PRELOAD=preload_path)
    del env["PYTHONPATH"]
    assert run(["/bin/echo", "plain"], env=env, cwd=tmp_path, timeout=JOB_TIMEOUT).stdout == "plain\n"
    code = "import os, sys; print(os.environ['PYTHONPATH'], 'pyckpt.mpi' in sys.modules)"
    proc = run([PYTHON, "-c", code], env=env, cwd=tmp_path, timeout=JOB_TIMEOUT)
    assert (proc.stdout, proc.stderr) == (f"{PACKAGE_DIR} False\n", "")


def test_python_rank_whose_attach_fails_ends_the_whole_job(preload_path, tmp_path):
    """attach() raises on rank 1 only (its PYCKPT_KEEP, which attach reads,
    is not a number; a sitecustomize sets it there): the traceback is
    printed and the job ends by itself (in 1-2 s; a minute under a heavy
    load) with a nonzero status, rank 0 not left waiting in its Barrier."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('OMPI_COMM_WORLD_RANK') == '1':\n"
        "    os.environ['PYCKPT_KEEP'] = 'bogus'\n")
    env = env_with(LD_PRELOAD=preload_path, PYTHONPATH=str(site))
    proc = mpirun(2, PYTHON, str(PROGRAMS / "app.py"), exports=("LD_PRELOAD", "PYTHONPATH"), check=False, env=env,
                  cwd=tmp_path, timeout=90)
    assert proc.returncode != 0, proc
    assert "Traceback" in proc.stderr and "invalid literal for int() with base 10: 'bogus'" in proc.stderr, \
        proc.stderr
    assert "in attach" in proc.stderr and "pyckpt_mpi: rank 1: the init callback failed" in proc.stderr, proc.stderr
    # Rank 1 never got out of MPI_Init, rank 0 never out of its Barrier.
    assert "rank 1 imported" not in proc.stdout and "done" not in proc.stdout, proc.stdout


def test_python_rank_resumes_from_a_committed_checkpoint(preload_path, tmp_path):
    """A committed checkpoint of the job's command in its directory: each
    rank re-executes itself as `python3 -m pyckpt resume-rank -- <args>`
    before its script starts (a sitecustomize shows every interpreter start)
    and resumes; PYCKPT_RESTART=never starts afresh."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\n"
        "args = open('/proc/self/cmdline', 'rb').read().split(b'\\0')[1:-1]\n"
        "os.write(1, b'START %s %s %s\\n' % (b' '.join(args), os.environb.get(b'PYCKPT_RESUME_DIR', b'None'),\n"
        "                                    os.environb.get(b'PYTHONPATH')))\n")
    app = str(PROGRAMS / "app.py")
    env = env_with(LD_PRELOAD=preload_path, PYTHONPATH=str(site))
    exports = ("LD_PRELOAD", "PYTHONPATH")
    first = mpirun(2, PYTHON, app, "checkpoint", exports=exports, env=env, cwd=tmp_path).stdout
    assert lines_with(first, "START") == [f"START {app} checkpoint None {PACKAGE_DIR}:{site}"] * 2, first
    assert sorted(lines_with(first, "checkpointed")) == ["rank 0 checkpointed", "rank 1 checkpointed"], first

    resumed = mpirun(2, PYTHON, app, "checkpoint", exports=exports, env=env, cwd=tmp_path).stdout
    # Each rank runs resume-rank, then once more to get the random hash
    # secret its checkpointed interpreter had (a plain mpirun sets no
    # PYTHONHASHSEED); the package once on PYTHONPATH, though the library
    # and resume-rank both put it there.
    assert lines_with(resumed, "START") == \
        [f"START -m pyckpt resume-rank -- {app} checkpoint pyckpt.d {PACKAGE_DIR}:{site}"] * 4, resumed
    assert sorted(lines_with(resumed, "resumed")) == ["rank 0 resumed", "rank 1 resumed"], resumed
    assert "program start" not in resumed, resumed

    env["PYCKPT_RESTART"] = "never"
    fresh = mpirun(2, PYTHON, app, "checkpoint", exports=(*exports, "PYCKPT_RESTART"), env=env, cwd=tmp_path).stdout
    assert lines_with(fresh, "START") == [f"START {app} checkpoint None {PACKAGE_DIR}:{site}"] * 2, fresh
    assert fresh.count("program start") == 2 and len(lines_with(fresh, "checkpointed")) == 2, fresh
