"""The harness of the mpi4py job tests: run a program under plain mpirun (the
reference) and under `pyckpt mpirun`, kill random ranks once checkpoints are
committed, restart, and compare outputs byte for byte.

Used by test_mpi_jobs.py, test_mpi_files.py and the other test_mpi_*.py files.
The programs' conventions (per-rank out.<rank> files, "program start" on
stderr, one final stdout line from rank 0) are described in test_mpi_jobs.py.
"""
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path


from conftest import MPIEXEC, PYCKPT_CLI, PYTHON

PROGRAMS = Path(__file__).resolve().parent / "programs" / "mpi"
MPIRUN_OPTIONS = ["--oversubscribe", "--bind-to", "none"]
SEED = int(os.environ.get("PYCKPT_TEST_SEED", "1"))
RUN_TIMEOUT = 90          # one mpirun; a deadlocked job fails the test
CHECKPOINT_TIMEOUT = 30   # from a job's start to its first new checkpoint
START_MARK = "program start"
TRACE = "pyckpt_mpi trace "


def _environment():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCKPT_") or k == "PYCKPT_BUILD_DIR"}
    # The ranks trace the checkpoint protocol on stderr: a job that hangs
    # reports each rank's last steps (Job.describe).
    env.update(OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1", PYCKPT_MPI_TRACE="1")
    return env


def cli(*args):
    return [PYTHON, str(PYCKPT_CLI), *args]


def latest_checkpoint(directory):
    try:
        return os.readlink(directory / "latest")
    except OSError:
        return None


def _rank_processes():
    """(pid, rank, stat fields after the command name, environment) of every
    live MPI rank process on this machine."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = [e for e in env if e.startswith(b"OMPI_COMM_WORLD_RANK=")]
        if rank and fields[0] != "Z":
            yield int(entry), int(rank[0].split(b"=", 1)[1]), fields, env


def _ranks(directory):
    """{rank: pid} of the live ranks of the job checkpointing into `directory`
    (their environment has PYCKPT_DIR=directory; mpirun's has not)."""
    want = f"PYCKPT_DIR={directory}".encode()
    return {rank: pid for pid, rank, _, env in _rank_processes() if want in env}


def _native_stacks(session):
    """The C stacks of the Python ranks in a hung job's session (gdb, if
    installed): where each rank waits names the MPI call and the protocol
    step of a deadlock."""
    if shutil.which("gdb") is None:
        return "(no gdb: no stacks)"
    out = []
    for pid, rank, fields, _ in _rank_processes():
        if int(fields[3]) != session:
            continue
        bt = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "bt 25"], capture_output=True, text=True,
                            timeout=60).stdout
        frames = []
        for line in bt.splitlines():
            if line.startswith("#"):
                frames.append(line)
            if re.match(r"#\d+\s+(0x[0-9a-f]+ in )?MPI_\w+ \(", line):
                break  # the app's MPI call: what called it is the program (see the trace)
        out.append(f"--- OMPI_COMM_WORLD_RANK={rank} (pid {pid}):\n" + "\n".join(frames))
    return "\n".join(out)


class Job:
    """One started mpirun (through the pyckpt CLI or plain), output to files."""

    def __init__(self, cmd, cwd, log):
        self.cmd = cmd
        self.log = log
        self.stdout_path = cwd / f"{log}.stdout"
        self.stderr_path = cwd / f"{log}.stderr"
        with open(self.stdout_path, "w") as so, open(self.stderr_path, "w") as se:
            self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=so, stderr=se, env=_environment(),
                                         start_new_session=True)

    def wait(self, timeout=RUN_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stacks = _native_stacks(self.proc.pid)
            self.kill_all()
            raise AssertionError(f"{self.describe()}\ndid not finish within {timeout} s (deadlock?)\n{stacks}")

    def kill_all(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    @property
    def stdout(self):
        return self.stdout_path.read_text()

    @property
    def stderr(self):
        return self.stderr_path.read_text()

    def describe(self):
        lines = self.stderr.splitlines()
        output = "\n".join(line for line in lines if not line.startswith(TRACE))
        traces = {}
        for line in lines:
            if line.startswith(TRACE):
                traces.setdefault(line.split(" rank ", 1)[1].split()[0], []).append(line)
        last = "".join(f"--- protocol trace of rank {rank}, last steps:\n" + "\n".join(steps[-12:]) + "\n"
                       for rank, steps in sorted(traces.items()))
        return (f"{' '.join(map(str, self.cmd))}\n--- stdout:\n{self.stdout[-3000:]}\n"
                f"--- stderr:\n{output[-4000:]}\n{last}")


def read_outputs(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.glob("out.*"))}


_references = {}


def reference(tmp_path, program, np_, args):
    """The uninterrupted run of the unmodified program under plain mpirun
    (once per program and arguments in this session)."""
    key = (program, np_, tuple(map(str, args)))
    if key not in _references:
        _references[key] = _reference(tmp_path, program, np_, args)
    return _references[key]


def _reference(tmp_path, program, np_, args):
    ref = tmp_path / "ref"
    ref.mkdir()
    job = Job([MPIEXEC, *MPIRUN_OPTIONS, "-np", str(np_), PYTHON, str(PROGRAMS / program), *map(str, args)],
              ref, "run")
    rc = job.wait()
    assert rc == 0, f"reference run failed:\n{job.describe()}"
    outputs = read_outputs(ref)
    assert {f"out.{rank}" for rank in range(np_)} <= set(outputs), f"reference run wrote {sorted(outputs)}"
    return job.stdout, outputs


def pyckpt_mpirun(directory, program, np_, args, interval=None, extra=()):
    cmd = cli("mpirun", "--dir", str(directory))
    if interval:
        cmd += ["--interval", str(interval)]
    return cmd + [*extra, *MPIRUN_OPTIONS, "-np", str(np_), str(PROGRAMS / program), *map(str, args)]


def restart_mpirun(directory, np_):
    return cli("restart", "--mpirun", *MPIRUN_OPTIONS, "-np", str(np_), str(directory))


def wait_for_checkpoint(job, directory, previous, timeout=CHECKPOINT_TIMEOUT):
    """Waits until `directory`/latest points to a checkpoint other than
    `previous` (committed by this job); returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = latest_checkpoint(directory)
        if latest is not None and latest != previous:
            return latest
        if job.proc.poll() is not None:
            raise AssertionError(f"the job ended (status {job.proc.returncode}) before committing a new "
                                 f"checkpoint (latest still {previous}):\n{job.describe()}")
        time.sleep(0.02)
    ranks = _ranks(directory)
    lines = {p.name: p.read_bytes().count(b"\n") for p in sorted(directory.parent.glob("out.*"))}
    job.kill_all()
    raise AssertionError(f"no new checkpoint within {timeout} s (latest still {previous}); live ranks {ranks}, "
                         f"lines written {lines}:\n{job.describe()}")


def kill_random_rank(job, directory, np_, rng, history):
    """SIGKILLs one random rank of the job; the job must then end with a failure."""
    victim = rng.randrange(np_)
    deadline = time.monotonic() + 10
    while True:
        pids = _ranks(directory)
        if victim in pids or job.proc.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert job.proc.poll() is None, (f"the job finished before rank {victim} could be killed "
                                     f"({history}); the program is too short:\n{job.describe()}")
    assert victim in pids, f"rank {victim} of the job not found among {pids}"
    os.kill(pids[victim], signal.SIGKILL)
    history.append(f"killed rank {victim} (pid {pids[victim]}) at {latest_checkpoint(directory)}")
    rc = job.wait()
    assert rc != 0, f"the job survived the SIGKILL of rank {victim}:\n{job.describe()}"


def run_with_kills(tmp_path, program, np_, args, *, interval, restarts, seed_name, max_delay=0.6,
                   triggers=None, after_kill=None, extra=()):
    """Runs `program` under pyckpt with checkpoints every `interval` s (None:
    no interval), kills a random rank after a committed checkpoint, and
    restarts as listed in `restarts` ("same": the same pyckpt mpirun command;
    "restart": pyckpt restart --mpirun), killing again after each restart but
    the last. triggers(job, directory): called instead of waiting for the
    interval's checkpoint in the first run. after_kill(work, directory,
    number): called after kill `number` (1, 2, ...), before the restart.
    extra: options of `pyckpt mpirun` (e.g. --async) and of mpirun.
    Returns (final job, directory of the outputs, history)."""
    rng = random.Random(f"{SEED}:{seed_name}")
    work = tmp_path / "run"
    work.mkdir()
    directory = work / "ckpt.d"
    command = pyckpt_mpirun(directory, program, np_, args, interval, extra)
    history = [f"seed {SEED}:{seed_name}"]
    started = time.monotonic()
    job = Job(command, work, "run0")
    previous = None
    for number, how in enumerate(restarts, 1):
        if number == 1 and triggers is not None:
            previous = triggers(job, directory, history)
        else:
            # A restarted run, too, must commit a checkpoint of its own
            # before it is killed: a restart chain.
            previous = wait_for_checkpoint(job, directory, previous)
        delay = rng.uniform(0.0, max_delay)
        history.append(f"run {number - 1}: {previous} committed at {time.monotonic() - started:.1f} s, "
                       f"kill after {delay:.2f} s")
        time.sleep(delay)
        kill_random_rank(job, directory, np_, rng, history)
        if after_kill is not None:
            after_kill(work, directory, number)
        previous = latest_checkpoint(directory)
        job = Job(command if how == "same" else restart_mpirun(directory, np_), work, f"run{number}")
    rc = job.wait()
    history.append(f"run {len(restarts)} ended at {time.monotonic() - started:.1f} s")
    assert rc == 0, f"the last restart failed ({'; '.join(history)}):\n{job.describe()}"
    return job, work, history


def restart_after(work, directory, chosen, np_):
    """Restarts the job of `directory` from its checkpoint `chosen` (a
    path), as if it had been killed right after that checkpoint: the later
    ones are removed and `latest` points to it. Returns the finished job."""
    for path in directory.glob("ckpt.*.h5"):
        if path.name > chosen.name:
            path.unlink()
    (directory / "latest").unlink()
    (directory / "latest").symlink_to(chosen.name)
    job = Job(restart_mpirun(directory, np_), work, "run1")
    assert job.wait() == 0, job.describe()
    return job


def wrong_rank_count(work, directory, np_, program, args):
    """A restart with another rank count, by `pyckpt restart --mpirun` and by
    the job's own command, fails, names both counts, and leaves the
    checkpoint as it was (the restarts that follow use it)."""
    before = latest_checkpoint(directory)
    files = sorted(p.name for p in directory.iterdir())
    outputs = read_outputs(work)
    wrong = np_ - 1 if np_ > 2 else np_ + 1
    for how, cmd in [("restart", restart_mpirun(directory, wrong)),
                     ("same", pyckpt_mpirun(directory, program, wrong, args))]:
        job = Job(cmd, work, f"wrong_np_{how}")
        rc = job.wait()
        assert rc != 0, f"a restart with -np {wrong} of a {np_}-rank checkpoint succeeded:\n{job.describe()}"
        text = job.stdout + job.stderr
        assert re.search(rf"\b{np_} (MPI )?ranks\b", text) and re.search(rf"\b{wrong}\b", text), \
            f"the error does not name both rank counts ({np_} and {wrong}):\n{job.describe()}"
        assert START_MARK not in job.stderr, f"the program ran from the start:\n{job.describe()}"
        assert latest_checkpoint(directory) == before
        assert sorted(p.name for p in directory.iterdir()) == files
        assert read_outputs(work) == outputs, "the failed restart changed the output files"
    verify = subprocess.run(cli("verify", str(directory)), capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def inspect_shows_ranks(directory, np_, program):
    """`pyckpt inspect DIR`: a traceback per rank, into the program."""
    proc = subprocess.run(cli("inspect", str(directory)), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sections = re.split(r"^  rank (\d+) ", proc.stdout, flags=re.M)
    ranks = {int(sections[i]): sections[i + 1] for i in range(1, len(sections), 2)}
    assert sorted(ranks) == list(range(np_)), f"ranks shown: {sorted(ranks)}\n{proc.stdout}"
    for rank, text in ranks.items():
        assert "Traceback at the checkpoint" in text and f'File "{PROGRAMS / program}", line ' in text, \
            f"no traceback into {program} for rank {rank}:\n{proc.stdout}"
    return ranks


def _difference(expected, got):
    """Where an output file first differs: a line of a text file, a byte of
    a binary one (MPI-IO data)."""
    try:
        exp_lines, got_lines = expected.decode().splitlines(), got.decode().splitlines()
    except UnicodeDecodeError:
        at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
        return f"at byte {at} ({len(expected)} bytes expected, {len(got)} written)"
    first = next((i for i, (a, b) in enumerate(zip(exp_lines, got_lines)) if a != b),
                 min(len(exp_lines), len(got_lines)))
    return (f"at line {first + 1}:\nexpected: {exp_lines[first:first + 3]}\n     got: {got_lines[first:first + 3]}\n"
            f"({len(exp_lines)} lines expected, {len(got_lines)} written)")


def check_same_as_reference(ref, job, work, history, runs):
    ref_stdout, ref_outputs = ref
    context = "; ".join(history)
    for number in range(1, runs + 1):
        stderr = (work / f"run{number}.stderr").read_text()
        assert START_MARK not in stderr, \
            f"restart {number} ran the program from the start instead of resuming ({context}):\n{stderr[-4000:]}"
    outputs = read_outputs(work)
    assert sorted(outputs) == sorted(ref_outputs), f"output files differ ({context})"
    for name, expected in ref_outputs.items():
        got = outputs[name]
        if got != expected:
            raise AssertionError(f"{name} differs from the uninterrupted run {_difference(expected, got)} ({context})")
    assert job.stdout.strip().splitlines()[-1:] == ref_stdout.strip().splitlines()[-1:], \
        f"final line differs ({context}):\nexpected {ref_stdout!r}\n{job.describe()}"

def wait_for_lines(job, path, count, timeout=CHECKPOINT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        assert job.proc.poll() is None, f"the job ended early:\n{job.describe()}"
        time.sleep(0.02)
    job.kill_all()
    raise AssertionError(f"{path.name} has not {count} lines after {timeout} s:\n{job.describe()}")


def checkpoint_while_one_rank_computes(tmp_path, program, np_, args, seed_name):
    """Load imbalance (issue 14, "Bounded latency"): `program` (imbalance.py,
    waits.py; args STEPS WORK KIND HOLD) has one rank compute in pure Python in
    step 1 until the file HOLD exists while the others wait in an MPI
    operation. `pyckpt request` must be served while it computes: the
    checkpoint shows it inside compute() (taken at a Python line), not after
    the operation the others wait in. Then a rank is killed (the job is still
    held, so it cannot have ended), HOLD is created, the job restarted and its
    output compared with an uninterrupted run."""
    ref = reference(tmp_path, program, np_, args[:3])

    def triggers(job, directory, history):
        wait_for_lines(job, directory.parent / "out.0", 1)
        request = subprocess.run(cli("request", str(directory)), capture_output=True, text=True, timeout=60)
        assert request.returncode == 0, request.stdout + request.stderr
        latest = wait_for_checkpoint(job, directory, None)
        shown = inspect_shows_ranks(directory, np_, program)
        computing = [rank for rank, text in shown.items()
                     if re.search(r", in (compute|computing_until_released)\n", text)]
        assert computing, ("no rank was inside compute() or its hold loop at the checkpoint: it waited for the "
                           "operation the others wait in instead of taking the computing rank at a Python line:\n"
                           + "\n".join(f"rank {r}:\n{t}" for r, t in shown.items()))
        history.append(f"`pyckpt request` -> {latest}, computing: ranks {computing}")
        return latest

    def release(work, _directory, _number):
        (work / args[3]).touch()

    job, work, history = run_with_kills(tmp_path, program, np_, args, interval=None, restarts=["same"],
                                        seed_name=seed_name, max_delay=0.3, triggers=triggers, after_kill=release)
    check_same_as_reference(ref, job, work, history, 1)
