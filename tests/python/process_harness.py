"""Harness of the process checkpoint/restart tests (test_process_*.py).

Every test program lives in programs/process/ and is run as a user runs it:
`python3 prog.py` (or `pyckpt run prog.py`), then `pyckpt restart DIR`. Each
run gets a fresh copy of that directory (programs write files next to
themselves, and some tests edit the sources) and its own checkpoint directory.

Explicit checkpoints: programs call ``ckpt.checkpoint()`` (programs/process/
ckpt.py), which is ``pyckpt.checkpoint()`` followed, when the environment
variable PYCKPT_TEST_CRASH is set, by a crash right after every checkpoint it
writes (``exit``: os._exit(CRASH_STATUS); ``kill``: SIGKILL to itself). A crash
run is thus a restart chain: crash after checkpoint 1, restart (checkpoint 1
returns True, the program goes on to checkpoint 2 and crashes), restart, ...
until the program finishes. Its stdout pieces, concatenated, and the final
exit status must equal the uninterrupted run's, and the chain must have
crashed once per checkpoint the uninterrupted run wrote.

Preemption: an unmodified program under `pyckpt run --interval` is killed with
SIGKILL at random (seeded) moments and restarted until it finishes, stdout
going to one regular file (so the restart cuts off what the killed run printed
after its last checkpoint); that file must equal the uninterrupted output.
"""
import difflib
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from conftest import PYCKPT_CLI, PYTHON  # noqa: F401 (PYTHON re-exported for the tests)

PROGRAMS = Path(__file__).resolve().parent / "programs" / "process"
CRASH_STATUS = 70  # ckpt.py's os._exit status after a checkpoint
CRASH_STATUSES = {"exit": CRASH_STATUS, "kill": -signal.SIGKILL}
HASH_SEED = "1234"  # recorded in the checkpoints, which a restart must run with
TIMEOUT = 120


def programs(prefix):
    """Names (without .py) of the programs of one theme, for parametrize."""
    return sorted(p.stem for p in PROGRAMS.glob(f"{prefix}_*.py"))


def _env(**extra):
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)
    env.pop("PYCKPT_TEST_CRASH", None)
    env.pop("PYCKPT_DIR", None)
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


@dataclass
class Run:
    """One process: what it printed and how it ended."""
    cmd: list
    returncode: int
    stdout: str
    stderr: str

    def describe(self):
        return f"$ {' '.join(map(str, self.cmd))}\n-> {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@dataclass
class Outcome:
    """A whole execution of a program, possibly over several processes."""
    stdout: str
    returncode: int
    runs: list = field(default_factory=list)
    checkpoints: int = 0  # checkpoints written (uninterrupted) / crashes (chain)

    @property
    def stderr(self):
        return "".join(r.stderr for r in self.runs)

    def describe(self):
        return "\n\n".join(r.describe() for r in self.runs)


class Workspace:
    """A fresh copy of programs/process/ plus a checkpoint directory."""

    def __init__(self, root):
        self.root = Path(root)
        self.src = self.root / "prog"
        self.ckpt_dir = self.root / "ckpt"
        shutil.copytree(PROGRAMS, self.src, ignore=shutil.ignore_patterns("__pycache__"))

    def script(self, name):
        return self.src / f"{name}.py"

    def run(self, cmd, stdout=subprocess.PIPE, cwd=None, **env):
        """Runs one process (cwd: the program directory unless told)."""
        proc = subprocess.run([str(c) for c in cmd], stdout=stdout, stderr=subprocess.PIPE, text=True,
                              cwd=cwd or self.src, env=_env(**env), timeout=TIMEOUT)
        return Run(cmd, proc.returncode, proc.stdout or "", proc.stderr)

    def python(self, name, *args, crash=None, cwd=None):
        """`python3 name.py args` checkpointing into ckpt_dir."""
        return self.run([PYTHON, self.script(name), *args], cwd=cwd, PYTHONHASHSEED=HASH_SEED,
                        PYCKPT_DIR=str(self.ckpt_dir), PYCKPT_TEST_CRASH=crash)

    def restart(self, target=None, crash=None, stdout=subprocess.PIPE, hash_seed=HASH_SEED):
        """`pyckpt restart DIR_OR_FILE`, started from outside the program
        directory (the restart must go back into it). hash_seed=None: without
        the seed, so the restart must re-execute itself with the recorded one
        (costs a second interpreter start, hence not the default)."""
        return self.run([PYCKPT_CLI, "restart", target or self.ckpt_dir], stdout=stdout, cwd=self.root,
                        PYCKPT_TEST_CRASH=crash, PYTHONHASHSEED=hash_seed)

    def cli(self, *args):
        return self.run([PYCKPT_CLI, *args], cwd=self.root)

    def checkpoint_files(self):
        return sorted(self.ckpt_dir.glob("ckpt.*.h5"))

    def latest_epoch(self):
        """Epoch of the newest committed checkpoint (= checkpoints written into
        a fresh directory, whatever --keep removed), 0 if none."""
        files = self.checkpoint_files()
        return int(files[-1].name.split(".")[1]) if files else 0


def uninterrupted(root, name, *args):
    """Runs `name` once, start to end, checkpoints written but no crash."""
    ws = Workspace(root)
    run = ws.python(name, *args)
    return Outcome(run.stdout, run.returncode, [run], ws.latest_epoch())


def crash_chain(root, name, *args, crash="exit", max_restarts=30, hash_seed=HASH_SEED):
    """Runs `name` crashing right after every checkpoint, restarting until it
    ends; returns the concatenated stdout and the final status."""
    ws = Workspace(root)
    runs = [ws.python(name, *args, crash=crash)]
    while runs[-1].returncode == CRASH_STATUSES[crash]:
        assert len(runs) <= max_restarts, "restart chain does not end:\n" + Outcome("", 0, runs).describe()
        runs.append(ws.restart(crash=crash, hash_seed=hash_seed))
    return Outcome("".join(r.stdout for r in runs), runs[-1].returncode, runs, len(runs) - 1)


def assert_same(reference, outcome):
    """stdout and exit status of `outcome` equal `reference`'s."""
    context = f"\n--- uninterrupted ---\n{reference.describe()}\n--- with crashes ---\n{outcome.describe()}"
    diff = "".join(difflib.unified_diff(reference.stdout.splitlines(True), outcome.stdout.splitlines(True),
                                        "uninterrupted", "with crashes"))
    assert outcome.stdout == reference.stdout, f"stdout differs:\n{diff}" + context
    assert outcome.returncode == reference.returncode, "exit status differs" + context


class References:
    """Uninterrupted runs, one per (program, args), shared by the tests of a
    module that crash the same program in different ways."""

    def __init__(self, tmp_path_factory):
        self.factory = tmp_path_factory
        self.cache = {}

    def get(self, name, *args):
        key = (name, args)
        if key not in self.cache:
            self.cache[key] = uninterrupted(self.factory.mktemp(f"{name}-ref"), name, *args)
        return self.cache[key]


def check_survives(tmp_path, references, name, *args, crash="exit", status=0, checkpoints=None,
                   hash_seed=HASH_SEED):
    """The core check: crash after every checkpoint + restarts == uninterrupted.
    status: what the uninterrupted run must exit with (a program that fails by
    itself proves nothing); checkpoints: how many it must write."""
    reference = references.get(name, *args)
    assert reference.returncode == status, reference.describe()
    assert reference.checkpoints >= 1, f"{name} wrote no checkpoint\n{reference.describe()}"
    if checkpoints is not None:
        assert reference.checkpoints == checkpoints, reference.describe()
    outcome = crash_chain(tmp_path, name, *args, crash=crash, hash_seed=hash_seed)
    assert outcome.checkpoints == reference.checkpoints, \
        f"{outcome.checkpoints} crashes for {reference.checkpoints} checkpoints\n{outcome.describe()}"
    assert_same(reference, outcome)
    return reference, outcome


# --- preemption ---------------------------------------------------------------

def preempted_run(root, name, *args, seed, interval="0.05", signal_name=None, kill_times=(0.05, 0.5),
                  rounds=3, signal_period=None, sync=True, after_kill=None):
    """Runs `name` under `pyckpt run`, killing it (SIGKILL) `rounds` times at
    random moments (seeded; seconds after it or its restart printed its
    first line), restarting it each
    time, then letting it finish. stdout goes to one file opened for
    appending by every process. With signal_period, the harness also sends
    signal_name to the process every so often (random, seeded).
    after_kill(workspace): called after each kill, once a background writer
    the killed process left is done.
    Returns an Outcome whose `checkpoints` counts the restarts that resumed
    a checkpoint (not those that started over for lack of one)."""
    rng = random.Random(seed)
    ws = Workspace(root)
    out_path = ws.root / "out.txt"
    out_path.touch()
    run_cmd = [PYCKPT_CLI, "run", "--dir", ws.ckpt_dir]
    if interval is not None:
        run_cmd += ["--interval", interval]
    if signal_name is not None:
        run_cmd += ["--signal", signal_name]
    if sync:
        run_cmd += ["--sync"]
    run_cmd += [ws.script(name), *args]
    restart_cmd = [PYCKPT_CLI, "restart", ws.ckpt_dir]
    runs, kills, restarts = [], 0, 0
    cmd = run_cmd
    while True:
        with open(out_path, "ab") as out:
            proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.PIPE, cwd=ws.src,
                                    env=_env())
        killed = False
        if kills < rounds or signal_period:
            # The random moments count from when the program (or its resumed
            # part) prints its first line: start-up times vary with the load.
            size, started = out_path.stat().st_size, time.monotonic()
            while proc.poll() is None and out_path.stat().st_size == size and time.monotonic() < started + 10:
                time.sleep(0.005)
        if kills < rounds:
            deadline = time.monotonic() + rng.uniform(*kill_times)
            next_signal = time.monotonic() + rng.uniform(0, signal_period) if signal_period else None
            while proc.poll() is None and time.monotonic() < deadline:
                if next_signal is not None and time.monotonic() >= next_signal:
                    proc.send_signal(signal.Signals[signal_name])
                    next_signal = time.monotonic() + rng.uniform(0.5, 1.5) * signal_period
                time.sleep(0.005)
            if proc.poll() is None:
                proc.kill()
                killed = True
                kills += 1
        elif signal_period:
            while proc.poll() is None:
                time.sleep(rng.uniform(0.5, 1.5) * signal_period)
                if proc.poll() is None:
                    proc.send_signal(signal.Signals[signal_name])
        try:
            _, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        runs.append(Run(cmd, proc.returncode, "", stderr.decode()))
        # Killed by the trigger signal itself: it arrived before pyckpt
        # installed its handler (during start-up), as a kill would.
        killed = killed or (signal_name is not None and proc.returncode == -signal.Signals[signal_name])
        if not killed:
            break
        assert len(runs) < 3 * rounds + 5, Outcome("", 0, runs).describe()
        committed = _committed(ws.ckpt_dir)
        if after_kill is not None:
            after_kill(ws)
        if committed:
            cmd = restart_cmd
            restarts += 1
        else:  # killed before its first checkpoint: start again from scratch
            out_path.write_bytes(b"")
            cmd = run_cmd
    outcome = Outcome(out_path.read_text(), runs[-1].returncode, runs, restarts)
    outcome.workspace = ws
    return outcome


def _committed(directory):
    """Whether `directory` holds a committed checkpoint once the background
    writer the killed process may have left behind is done."""
    from pyckpt import _core, commit
    commit.wait_for_writers(str(directory))
    return os.path.isdir(directory) and bool(_core.CheckpointDir(str(directory)).list())
