"""What a fault campaign found (issue 13), each made a regression test:

- fallback: when the newest checkpoint is refused (corrupt, torn, forged),
  restart says why and resumes the newest older one that verifies; serial,
  `pyckpt restart --mpirun`, and a job's own `pyckpt mpirun` command run
  again (every rank resumes the same file; nothing hangs);
- one job per directory: a second job is refused naming the first; the lock
  of a killed job is taken over;
- leftovers and waits: no in-flight file survives a finished run; a writing
  marker naming an unrelated live process does not make restart wait;
- the command line: wrong values, wrong files and a full disk give one line
  saying what is wrong, with the documented exit status;
- the hash secret: a plain `python3 app.py` (random hash seed) resumes with
  the set iteration order of the uninterrupted run.

Real processes, real files, real mpirun; the full disk is a 2 MB tmpfs.
"""
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import h5py
import pytest

from conftest import BUILD_DIR, PYCKPT_CLI, PYTHON
from mpi_job_harness import (check_same_as_reference, kill_random_rank, latest_checkpoint, reference,
                             run_with_kills, wait_for_checkpoint)

SEED = int(os.environ.get("PYCKPT_TEST_SEED", "1"))

# Checkpoints at steps 2 and 4; every step printed. keep=2 holds both.
STEPS = textwrap.dedent("""\
    import pyckpt
    for step in range(6):
        if step in (2, 4):
            print("checkpoint at", step, "resumed" if pyckpt.checkpoint() else "written", flush=True)
        print("step", step, flush=True)
    """)


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCKPT_") and k != "PYTHONHASHSEED"}
    env.update(PYTHONPATH=str(BUILD_DIR / "python"), PYCKPT_KEY_FILE=str(tmp_path / "key"), **extra)
    return env


def _pyckpt(tmp_path, *args, timeout=120, **env):
    return subprocess.run([PYTHON, str(PYCKPT_CLI), *map(str, args)], cwd=tmp_path, env=_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=timeout)


def _python(tmp_path, script, *args, timeout=120, **env):
    return subprocess.run([PYTHON, str(script), *map(str, args)], cwd=tmp_path, env=_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc, *words):
    """The refusal is one line on stderr that says `words`; exit status 2."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, f"status {proc.returncode}, stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "map::at" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


# --- fallback to an older checkpoint ------------------------------------------------

def _flip_blob_byte(path, dataset, rng):
    """Flips one byte of `dataset`'s data (not of HDF5's metadata): only a
    checksum of the data can tell."""
    with h5py.File(path, "r") as f:
        offset, size = f[dataset].id.get_offset(), f[dataset].id.get_storage_size()
    at = offset + rng.randrange(size)
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0x40]))


def _damage(path, how, rng):
    if how == "corrupt":  # one byte of the pickled process state
        _flip_blob_byte(path, "ranks/0/blobs/process", rng)
    elif how == "torn":   # cut short, as by a full disk under a copy
        os.truncate(path, os.path.getsize(path) // 2)
    else:                 # forged: another MAC in the header (doc/format.md, "User block")
        with open(path, "r+b") as f:
            f.seek(8)
            manifest = int.from_bytes(f.read(8), "little")
            f.seek(16 + manifest)
            f.write(bytes(32))


@pytest.mark.parametrize("how", ["corrupt", "torn", "forged"])
def test_restart_resumes_the_older_checkpoint_when_the_newest_is_refused(tmp_path, how):
    app = tmp_path / "steps.py"
    app.write_text(STEPS)
    directory = tmp_path / "ckpt.d"
    first = _python(tmp_path, app, PYCKPT_DIR=directory)
    assert first.returncode == 0, first.stderr
    newest = directory / latest_checkpoint(directory)
    older = sorted(directory.glob("ckpt.*.h5"))[0]
    assert newest != older
    _damage(newest, how, random.Random(f"{SEED}:{how}"))

    # Named as a file: that file, refused, nothing resumed.
    named = _pyckpt(tmp_path, "restart", newest)
    assert named.returncode == 2 and "step" not in named.stdout, named.stdout + named.stderr
    assert newest.name in named.stderr

    resumed = _pyckpt(tmp_path, "restart", directory)
    assert resumed.returncode == 0, resumed.stderr
    # As the uninterrupted run went on from its first checkpoint.
    assert resumed.stdout.splitlines() == ["checkpoint at 2 resumed", "step 2", "step 3", "checkpoint at 4 written",
                                           "step 4", "step 5"], resumed.stdout
    assert f"refused {newest}" in resumed.stderr, resumed.stderr
    # Read once: the newest's data is verified as the restore reads it (a
    # corrupt array fails there, and the restart runs again without it).
    assert f"resuming the older checkpoint {older}, its data checked as it is read" in resumed.stderr, \
        resumed.stderr
    # The resumed run's own checkpoint is the new `latest`, and verifies.
    assert latest_checkpoint(directory) not in (newest.name, older.name)
    assert _pyckpt(tmp_path, "verify", directory).returncode == 0


def test_restart_refuses_when_no_checkpoint_verifies(tmp_path):
    app = tmp_path / "steps.py"
    app.write_text(STEPS)
    directory = tmp_path / "ckpt.d"
    assert _python(tmp_path, app, PYCKPT_DIR=directory).returncode == 0
    for path in directory.glob("ckpt.*.h5"):
        os.truncate(path, 4096)
    resumed = _pyckpt(tmp_path, "restart", directory)
    assert resumed.returncode == 2 and not resumed.stdout, resumed.stdout + resumed.stderr
    assert "none of its 2 checkpoint(s) verifies" in resumed.stderr.splitlines()[-1], resumed.stderr


def _two_checkpoints_then(job, directory, history):
    """Waits for two committed checkpoints (an older one to fall back to)."""
    first = wait_for_checkpoint(job, directory, None)
    second = wait_for_checkpoint(job, directory, first)
    history.append(f"committed {first}, {second}")
    return second


@pytest.mark.parametrize("how", ["same", "restart"])
def test_mpi_job_resumes_the_older_checkpoint_when_one_rank_state_of_the_newest_is_corrupt(tmp_path, how):
    """One flipped byte in rank 1's state of the newest checkpoint: the job's
    own command run again, and `restart --mpirun`, choose the older file for
    every rank before mpirun starts, and the job finishes as the
    uninterrupted one (before: rank 1 could not resume and the job hung or
    was aborted)."""
    program, np_, args = "ring.py", 3, [300]
    ref = reference(tmp_path, program, np_, args)
    corrupted = []

    def corrupt_newest(_work, directory, _number):  # one kill: restarts=[how]
        newest = directory / latest_checkpoint(directory)
        _flip_blob_byte(newest, "ranks/1/blobs/process", random.Random(f"{SEED}:mpi:{how}"))
        corrupted.append(newest)

    job, work, history = run_with_kills(tmp_path, program, np_, args, interval=0.4, restarts=[how],
                                        seed_name=f"fallback-{how}", triggers=_two_checkpoints_then,
                                        after_kill=corrupt_newest)
    check_same_as_reference(ref, job, work, history, 1)
    assert f"refused {corrupted[0]}" in job.stderr and "resuming the older checkpoint" in job.stderr, \
        job.describe()


# --- one job per directory -----------------------------------------------------------

LONG = textwrap.dedent("""\
    import sys, time
    print("started", flush=True)
    for _ in range(600):
        time.sleep(0.1)
    """)


def _wait_for_lock(directory, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lock = directory / ".lock"
        if lock.exists() and lock.read_text().endswith("\n"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{directory}/.lock not written within {timeout} s")


def test_a_second_job_in_one_directory_is_refused_naming_the_first_and_a_dead_ones_lock_is_taken_over(tmp_path):
    long_app = tmp_path / "long.py"
    long_app.write_text(LONG)
    app = tmp_path / "steps.py"
    app.write_text(STEPS)
    directory = tmp_path / "ckpt.d"
    first = subprocess.Popen([PYTHON, str(PYCKPT_CLI), "run", "--dir", str(directory), str(long_app)], cwd=tmp_path,
                             env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lock(directory)
        second = _pyckpt(tmp_path, "run", "--dir", directory, app)
        _one_line_error(second, f"{directory} is in use by pid {first.pid} on {socket.gethostname()}", "long.py",
                        "use another --dir")
        assert "step" not in second.stdout
        # An MPI job is refused before mpirun starts.
        job = _pyckpt(tmp_path, "mpirun", "--dir", directory, "-np", "2", app)
        _one_line_error(job, f"in use by pid {first.pid}")
        # So is a restart into it (the directory holds no checkpoint of it
        # yet: a plain program's first checkpoint is refused the same way).
        plain = _python(tmp_path, app, PYCKPT_DIR=directory)
        assert plain.returncode == 1 and f"is in use by pid {first.pid}" in plain.stderr, plain.stderr
        assert not list(directory.glob("ckpt.*"))
    finally:
        first.kill()
        first.wait()
    # The killed job's lock (its file left as it was) is taken over.
    again = _pyckpt(tmp_path, "run", "--dir", directory, app)
    assert again.returncode == 0 and again.stdout.count("step") == 6, again.stderr
    assert str(os.getpid()) not in (directory / ".lock").read_text()


# --- leftovers and waits ---------------------------------------------------------------

BIG = textwrap.dedent("""\
    import sys
    import numpy as np
    import pyckpt
    field = np.ones(40_000_000)   # 320 MB: a write long enough to be killed in
    for step in range(3):
        field += 1
        print("checkpoint", step, "resumed" if pyckpt.checkpoint(asynchronous=True) else "written", flush=True)
    pyckpt.wait()
    print("done", field[0], flush=True)
    """)


def test_a_run_killed_while_writing_leaves_no_in_flight_file_once_its_restart_finishes(tmp_path):
    app = tmp_path / "big.py"
    app.write_text(BIG)
    directory = tmp_path / "ckpt.d"
    proc = subprocess.Popen([PYTHON, str(PYCKPT_CLI), "run", "--dir", str(directory), str(app)], cwd=tmp_path,
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        # Killed (program and forked writer) while the second checkpoint is in flight.
        while not (list(directory.glob("ckpt.*.h5.tmp")) and latest_checkpoint(directory)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert list(directory.glob("ckpt.*.h5.tmp"))
    resumed = _pyckpt(tmp_path, "restart", directory, timeout=300)
    assert resumed.returncode == 0 and resumed.stdout.endswith("done 4.0\n"), resumed.stdout + resumed.stderr
    leftovers = [p.name for p in directory.iterdir() if p.name.endswith(".tmp") or ".writing." in p.name]
    assert not leftovers, leftovers


def test_restart_does_not_wait_for_a_marker_naming_an_unrelated_live_process(tmp_path):
    app = tmp_path / "steps.py"
    app.write_text(STEPS)
    directory = tmp_path / "ckpt.d"
    assert _python(tmp_path, app, PYCKPT_DIR=directory).returncode == 0
    unrelated = subprocess.Popen(["sleep", "300"])
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        # The pid of a writer that died, since given to `sleep`: the start
        # time recorded is the writer's, not sleep's.
        marker = directory / ".writing.9"
        marker.write_text(f"{unrelated.pid} 1 {boot}")
        started = time.monotonic()
        resumed = _pyckpt(tmp_path, "restart", directory)
        waited = time.monotonic() - started
    finally:
        unrelated.kill()
        unrelated.wait()
    assert resumed.returncode == 0 and "waiting for checkpoint" not in resumed.stderr, resumed.stderr
    assert waited < 60 and not marker.exists(), waited


# --- the command line --------------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["run", "--keep", "0", "steps.py"], ["--keep", "0 checkpoints kept: give at least 1"]),
    (["run", "--keep", "-3", "--sync", "steps.py"], ["--keep", "-3 checkpoints kept: give at least 1"]),
    (["run", "--interval", "-1", "steps.py"], ["--interval", "greater than 0"]),
    (["run", "--interval", "0", "steps.py"], ["--interval", "greater than 0"]),
    (["run", "--interval", "nan", "steps.py"], ["--interval", "nan seconds"]),
    (["mpirun", "--keep", "0", "-np", "2", "steps.py"], ["--keep"]),
    (["request", "/etc/passwd"], ["/etc/passwd: not a directory", "--dir"]),
    (["run", "missing.py"], ["missing.py: no such script"]),
])
def test_wrong_command_lines_get_one_line_and_status_2(tmp_path, args, words):
    (tmp_path / "steps.py").write_text(STEPS)
    proc = _pyckpt(tmp_path, *args)
    _one_line_error(proc, *words)
    assert "step" not in proc.stdout and not (tmp_path / "pyckpt.d").exists()


def test_a_fifo_and_a_file_with_only_the_format_attributes_are_refused_in_one_line(tmp_path):
    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)
    for command in ("inspect", "verify", "restart"):
        proc = _pyckpt(tmp_path, command, fifo, timeout=60)  # must not block opening it
        assert proc.returncode in (1, 2) and "not a regular file" in proc.stdout + proc.stderr, proc
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as f:
        f.attrs["format"] = "pyckpt-checkpoint"
        f.attrs["format_version"] = 2
    for command in ("restart", "inspect", "verify"):  # was "map::at"
        _one_line_error(_pyckpt(tmp_path, command, bare), str(bare), "without a pyckpt header")


FILLS_DISK = textwrap.dedent("""\
    import numpy as np
    import pyckpt
    pyckpt.checkpoint()
    big = np.ones(500_000)   # 4 MB: more than the file system holds
    try:
        pyckpt.checkpoint()
    except pyckpt.CheckpointError as exc:
        print("refused:", exc, flush=True)
    """)


@pytest.fixture
def small_file_system(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_gives_one_line_and_keeps_the_previous_checkpoint_latest(tmp_path, small_file_system):
    app = tmp_path / "fills.py"
    app.write_text(FILLS_DISK)
    directory = small_file_system / "ckpt.d"
    proc = _python(tmp_path, app, PYCKPT_DIR=directory)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("refused:")]
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stdout
    assert "HDF5-DIAG" not in proc.stdout + proc.stderr and "#0" not in proc.stderr, proc.stderr
    assert latest_checkpoint(directory) == "ckpt.00000001.h5"
    assert not list(directory.glob("*.tmp"))
    assert _pyckpt(tmp_path, "verify", directory).returncode == 0


# --- the hash secret of a plain run ------------------------------------------------------

SET_ORDER = textwrap.dedent("""\
    import pyckpt
    first = pyckpt.checkpoint()
    print(list({f"word{i}" for i in range(40)}), flush=True)
    print(list({f"late{i}" for i in range(40)}), flush=True)
    """)


def test_a_plain_python_run_with_a_random_hash_seed_resumes_with_its_set_order(tmp_path):
    """Sets the resumed program builds iterate as in the uninterrupted run
    (before: in another order, 5 of 5 times). Not checked here: a set that
    existed at the checkpoint is rebuilt by inserting its elements in
    iteration order, which with the same secret gives the same order in
    most, not all, cases (doc/heap.md, "Limits")."""
    app = tmp_path / "order.py"
    app.write_text(SET_ORDER)
    directory = tmp_path / "ckpt.d"
    original = _python(tmp_path, app, PYCKPT_DIR=directory)  # PYTHONHASHSEED unset: a random secret
    assert original.returncode == 0, original.stderr
    for _ in range(3):  # each restart's own interpreter starts with another random secret
        resumed = _pyckpt(tmp_path, "restart", directory)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout == original.stdout, (original.stdout, resumed.stdout)
    # Not by chance: another run's order differs.
    other = _python(tmp_path, app, PYCKPT_DIR=tmp_path / "other.d")
    assert other.stdout != original.stdout
