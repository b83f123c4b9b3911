"""How a Python rank is started (issue 14, "MPI features that real codes
use"): `pyckpt mpirun`'s command line split into mpirun's options and the
program with its interpreter options (pyckpt.launch), and real jobs run as
`python3 [OPTIONS] -m module`, killed and restarted, resuming with the same
module and interpreter options.

The programs are in programs/mpi_launch/ (put on the ranks' PYTHONPATH with
`-x`); their conventions are those of test_mpi_jobs.py (out.<rank> files,
"program start" on stderr, one final stdout line from rank 0).
"""
import random
import re
import sys
import time
from pathlib import Path

import pytest

from conftest import MPIEXEC, PYTHON, run
from mpi_job_harness import (MPIRUN_OPTIONS, SEED, Job, check_same_as_reference, cli, kill_random_rank,
                             latest_checkpoint, read_outputs, wait_for_checkpoint)
from pyckpt import launch
from pyckpt.errors import CheckpointError
from stdin_inputs import expected_lines, input_file

LAUNCH_PROGRAMS = Path(__file__).resolve().parent / "programs" / "mpi_launch"


# --- the parser ------------------------------------------------------------------

@pytest.mark.parametrize("tokens, mpirun_options, program, options, kind, target, args", [
    # A script without an interpreter runs with pyckpt's.
    (["-np", "2", "app.py", "a"], ["-np", "2"], [sys.executable, "app.py", "a"], [], "script", "app.py", ["a"]),
    # Options with values are skipped, even when they look like a program.
    (["--oversubscribe", "--bind-to", "none", "-x", "PYTHONPATH=/opt/python3", "--mca", "btl", "self.py",
      "-np", "2", "python3", "app.py"],
     ["--oversubscribe", "--bind-to", "none", "-x", "PYTHONPATH=/opt/python3", "--mca", "btl", "self.py",
      "-np", "2"], ["python3", "app.py"], [], "script", "app.py", []),
    # The interpreter's options, -m and what follows it (mpi4py.futures' own arguments).
    (["-np", "2", "python3", "-u", "-X", "utf8", "-m", "mpi4py.futures", "app.py", "-x"], ["-np", "2"],
     ["python3", "-u", "-X", "utf8", "-m", "mpi4py.futures", "app.py", "-x"], ["-u", "-X", "utf8"], "module",
     "mpi4py.futures", ["app.py", "-x"]),
    # Combined flags, attached arguments, a path to the interpreter.
    (["-n", "4", "/usr/bin/python3.11", "-uB", "-Werror", "-OO", "-mpkg.mod", "z"], ["-n", "4"],
     ["/usr/bin/python3.11", "-uB", "-Werror", "-OO", "-mpkg.mod", "z"], ["-uB", "-Werror", "-OO"], "module",
     "pkg.mod", ["z"]),
    (["-np", "2", "python3", "-sum", "mod"], ["-np", "2"], ["python3", "-sum", "mod"], ["-su"], "module", "mod", []),
    (["-np", "1", "python", "-c", "print(1)", "a"], ["-np", "1"], ["python", "-c", "print(1)", "a"], [], "command",
     "print(1)", ["a"]),
    (["-np", "1", "python3", "--check-hash-based-pycs", "always", "-X", "dev", "--", "s.py", "-u"], ["-np", "1"],
     ["python3", "--check-hash-based-pycs", "always", "-X", "dev", "--", "s.py", "-u"],
     ["--check-hash-based-pycs", "always", "-X", "dev"], "script", "s.py", ["-u"]),
])
def test_parse_mpirun(tokens, mpirun_options, program, options, kind, target, args):
    command = launch.parse_mpirun(tokens)
    assert list(command.mpirun_options) == mpirun_options
    assert list(command.program) == program
    assert (list(command.python.options), command.python.kind, command.python.target, list(command.python.args)) \
        == (options, kind, target, args)


def test_parse_mpirun_other_programs():
    """A program that is not Python is passed on unchanged, its arguments
    not searched for scripts; an informational interpreter call runs no
    program."""
    command = launch.parse_mpirun(["-np", "2", "./a.out", "x.py"])
    assert (command.mpirun_options, command.program, command.python) == (("-np", "2"), ("./a.out", "x.py"), None)
    command = launch.parse_mpirun(["-np", "1", "python3", "-V"])
    assert (command.program, command.python) == (("python3", "-V"), None)


def test_arguments_are_a_ranks_command_line():
    """What a rank's sys.orig_argv[1:] is, and what its checkpoints record:
    parsing it again gives the same command."""
    for tokens in (["-u", "-X", "utf8", "-m", "mod", "a"], ["-c", "pass"], ["-W", "error", "app.py", "-m"]):
        python = launch.parse_python(tokens)
        assert python.arguments() == tokens
        assert launch.parse_python(python.arguments()) == python


@pytest.mark.parametrize("tokens, message", [
    (["python3", "-E", "app.py"], "python -E cannot be checkpointed and restarted: with it the interpreter ignores "
                                  "PYTHONHASHSEED and PYTHONPATH"),
    (["python3", "-sI", "app.py"], "python -I cannot be checkpointed and restarted: isolated mode implies -E"),
    (["python3", "-u"], "`python3 -u` reads its program from stdin"),
    (["python3", "-"], "`python3 -` reads its program from stdin"),
    (["python3", "-m"], "interpreter option -m needs an argument"),
    (["python3", "-Z", "app.py"], "unknown interpreter option -Z"),
    (["python3", "--frozen", "app.py"], "unknown interpreter option --frozen"),
])
def test_refused(tokens, message):
    with pytest.raises(CheckpointError) as info:
        launch.parse_mpirun(["-np", "2", *tokens])
    assert message in str(info.value)


def test_cli_refuses_before_mpirun(tmp_path):
    """`pyckpt mpirun` says so in one line and exits 2; no mpirun is started."""
    proc = run(cli("mpirun", "--dir", str(tmp_path / "d"), "-np", "2", "python3", "-E", "app.py"), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("pyckpt mpirun: python -E cannot be checkpointed and restarted"), proc.stderr
    assert not (tmp_path / "d").exists()


# --- real jobs --------------------------------------------------------------------

def _reference(tmp_path, mpirun_options, program):
    ref = tmp_path / "ref"
    ref.mkdir()
    job = Job([MPIEXEC, *MPIRUN_OPTIONS, *mpirun_options, *program], ref, "run")
    assert job.wait() == 0, f"reference run failed:\n{job.describe()}"
    return job.stdout, read_outputs(ref)


def _run_with_kills(tmp_path, mpirun_options, program, np_, restarts, seed_name, stdin=None):
    """`pyckpt mpirun --interval 0.3 [mpirun_options] -np np_ PROGRAM`, a random
    rank killed after each committed checkpoint and the job restarted
    (restarts: "same" command or "restart" --mpirun), until a run ends."""
    rng = random.Random(f"{SEED}:{seed_name}")
    work = tmp_path / "run"
    work.mkdir()
    directory = work / "ckpt.d"
    options = [*MPIRUN_OPTIONS, *mpirun_options, "-np", str(np_)]
    command = cli("mpirun", "--dir", str(directory), "--interval", "0.3", *options, *program)
    history = [f"seed {SEED}:{seed_name}"]
    job = Job(command, work, "run0")
    previous = None
    for number, how in enumerate(restarts, 1):
        previous = wait_for_checkpoint(job, directory, previous)
        history.append(f"run {number - 1}: {previous} committed")
        kill_random_rank(job, directory, np_, rng, history)
        previous = latest_checkpoint(directory)
        again = command if how == "same" else cli("restart", "--mpirun", *options, str(directory))
        job = Job(again, work, f"run{number}")
    assert job.wait() == 0, f"the last restart failed ({'; '.join(history)}):\n{job.describe()}"
    return job, work, history


def test_module_with_interpreter_options_restarted(tmp_path):
    """`python3 -u -X utf8 -W ignore::DeprecationWarning -m launch_ring`: the
    resumed ranks run the module again (not its file as a script), with the
    same sys.path[0] and the same interpreter options (the program writes
    them at its end, after the restarts), by the same command and by
    `pyckpt restart --mpirun`."""
    mpirun_options = ["-x", f"PYTHONPATH={LAUNCH_PROGRAMS}"]
    program = [PYTHON, "-u", "-X", "utf8", "-W", "ignore::DeprecationWarning", "-m", "launch_ring", "200"]
    ref = _reference(tmp_path, [*mpirun_options, "-np", "2"], program)
    assert b"write_through True utf8 1 warnoptions ['ignore::DeprecationWarning']" in ref[1]["out.0"]
    job, work, history = _run_with_kills(tmp_path, mpirun_options, program, 2, ["same", "restart"], "module")
    check_same_as_reference(ref, job, work, history, 2)


# --- dynamic processes: mpi4py.futures -------------------------------------------

def test_mpi4py_futures_module_refused_without_hang(tmp_path):
    """`python3 -m mpi4py.futures app.py` (the pool's manager runs in a thread
    of rank 0 and talks to the other ranks over an intercommunicator):
    checkpoints requested by the interval and by `pyckpt request` fail,
    saying why once per rank, and the job runs to its end; neither it nor
    the request hangs."""
    work = tmp_path / "run"
    work.mkdir()
    directory = work / "ckpt.d"
    program = [PYTHON, "-m", "mpi4py.futures", str(LAUNCH_PROGRAMS / "futures_chain.py"), "150"]
    job = Job(cli("mpirun", "--dir", str(directory), "--interval", "0.3", *MPIRUN_OPTIONS, "-np", "2", *program),
              work, "run")
    deadline = time.monotonic() + 60  # the interval's first checkpoint fails, then a request is made
    while "checkpoint failed" not in job.stderr and job.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    request = run(cli("request", str(directory)), timeout=30, check=False)
    assert request.returncode == 0, request.stdout + request.stderr
    assert job.wait(timeout=120) == 0, job.describe()
    assert job.stdout.strip().splitlines()[-1] == "chain 150", job.describe()
    failures = [line for line in job.stderr.splitlines() if "checkpoint failed" in line]
    assert failures, f"no checkpoint failure reported:\n{job.describe()}"
    for line in failures:
        # Its intercommunicator is supported; its manager thread calling MPI is not.
        assert "mpi4py.futures" in line, line
    ranks = [re.search(r"on rank (\d+)", line).group(1) for line in failures]
    assert len(ranks) == len(set(ranks)), f"a rank said it more than once:\n{job.describe()}"
    assert latest_checkpoint(directory) is None


def test_spawned_pool_after_checkpoints(tmp_path):
    """One rank computes alone (checkpoints are committed), then spawns an
    MPIPoolExecutor's workers with MPI_Comm_spawn. Killed after a checkpoint
    and restarted, it resumes there and spawns its workers again; the
    spawned processes (which inherit LD_PRELOAD and PYCKPT_DIR) neither
    resume the job's checkpoint nor take their own. Checkpoints while the
    pool runs fail, saying why."""
    program = [PYTHON, str(LAUNCH_PROGRAMS / "futures_spawn.py"), "6", "4", "2"]
    ref = _reference(tmp_path, ["-np", "1"], program)
    assert ref[0].strip().endswith("sum of squares 55"), ref
    job, work, history = _run_with_kills(tmp_path, [], program, 1, ["same"], "spawn")
    assert job.stdout.strip().splitlines()[-1] == "sum of squares 55", job.describe()
    assert "program start" not in job.stderr, f"the restart did not resume:\n{job.describe()}"
    assert "resume-rank" not in job.stderr, job.describe()
    failures = [line for line in job.stderr.splitlines() if "checkpoint failed" in line]
    assert len(failures) <= 1 and all("mpi4py.futures" in line for line in failures), job.describe()


# --- stdin: the job's input across a restart -------------------------------------

def _with_stdin(path, cmd):
    """`cmd < path`, for a Job (which inherits the test's stdin)."""
    return ["sh", "-c", 'exec "$@" < "$0"', str(path), *cmd]


def _with_piped_stdin(path, cmd):
    """`cat path | cmd`: stdin is a pipe."""
    return ["sh", "-c", 'cat "$0" | "$@"', str(path), *cmd]


def test_stdin_file_mpi_restarted(tmp_path):
    """`pyckpt mpirun ... stdin_lines.py < input`: rank 0 iterates over its
    stdin (a pipe mpirun feeds from the input file). Killed after a
    checkpoint and restarted (same command, then `pyckpt restart
    --mpirun`), each run with the input file as stdin again, it goes on
    where it was: the outputs are those of an uninterrupted run."""
    input_path = input_file(tmp_path / "input.txt", 400)
    program = [PYTHON, str(LAUNCH_PROGRAMS / "stdin_lines.py"), "0.02"]
    expected = expected_lines(input_path)
    work = tmp_path / "run"
    work.mkdir()
    directory = work / "ckpt.d"
    options = [*MPIRUN_OPTIONS, "-np", "2"]
    command = cli("mpirun", "--dir", str(directory), "--interval", "0.3", *options, *program)
    rng = random.Random(f"{SEED}:stdin")
    history = [f"seed {SEED}:stdin"]
    job = Job(_with_stdin(input_path, command), work, "run0")
    previous = None
    for number, again in enumerate([command, cli("restart", "--mpirun", *options, str(directory))], 1):
        previous = wait_for_checkpoint(job, directory, previous)
        time.sleep(rng.uniform(0, 0.5))
        kill_random_rank(job, directory, 2, rng, history)
        previous = latest_checkpoint(directory)
        job = Job(_with_stdin(input_path, again), work, f"run{number}")
        history.append(f"restart {number} from {previous}")
    assert job.wait() == 0, f"{history}\n{job.describe()}"
    assert job.stdout.strip().splitlines()[-1] == "lines read 400", job.describe()
    for number in (1, 2):
        assert "program start" not in (work / f"run{number}.stderr").read_text(), f"run {number} did not resume"
    for rank in (0, 1):
        got = (work / f"out.{rank}").read_text()
        assert got == expected, f"out.{rank} differs from the input ({history}):\n{got[-300:]}"


def test_stdin_pipe_mpi_restart_says_so(tmp_path):
    """A job whose stdin is a pipe cannot be given its input from where rank 0
    was: the restarted rank 0 says so (once), and reads the new pipe from
    its beginning."""
    input_path = input_file(tmp_path / "input.txt", 300)
    program = [PYTHON, str(LAUNCH_PROGRAMS / "stdin_lines.py"), "0.02"]
    work = tmp_path / "run"
    work.mkdir()
    directory = work / "ckpt.d"
    command = cli("mpirun", "--dir", str(directory), "--interval", "0.3", *MPIRUN_OPTIONS, "-np", "2", *program)
    job = Job(_with_piped_stdin(input_path, command), work, "run0")
    wait_for_checkpoint(job, directory, None)
    kill_random_rank(job, directory, 2, random.Random(f"{SEED}:pipe"), [])
    job = Job(_with_piped_stdin(input_path, command), work, "run1")
    assert job.wait() == 0, job.describe()
    warnings = [line for line in job.stderr.splitlines() if "stdin is not a regular file" in line]
    assert len(warnings) == 1 and "reads it from its beginning again, not from byte " in warnings[0], job.describe()
    assert "program start" not in job.stderr, job.describe()
