"""The serial trigger engine (pyckpt.triggers, _core/triggers.cpp): a C
thread that never takes the GIL, and pacing that keeps checkpoints from
starving the program. Whether the interval and signals lead to checkpoints
that restart correctly is test_process_preempt's."""
import re

from process_harness import PYCKPT_CLI, Workspace

STRETCH_NOTICE = re.compile(r"^pyckpt: a checkpoint stops this program for .*, so they are taken .* apart rather "
                            r"than every .* \(--interval\)", re.MULTILINE)


def test_no_python_thread_for_the_triggers(tmp_path):
    ws = Workspace(tmp_path)
    run = ws.run([PYCKPT_CLI, "run", "--sync", "--interval", "0.05", "--dir", ws.ckpt_dir,
                  ws.script("triggers_threads"), ws.ckpt_dir])
    assert run.returncode == 0, run.describe()
    assert run.stdout == "['MainThread']\n", run.describe()


def test_interval_shorter_than_a_checkpoint_does_not_starve_the_program(tmp_path):
    """--interval 0.001 against checkpoints of a heap of 50,000 objects: the
    program reaches four checkpoints and ends; the stretched interval is
    reported once."""
    ws = Workspace(tmp_path)
    run = ws.run([PYCKPT_CLI, "run", "--sync", "--keep", "10", "--interval", "0.001", "--dir", ws.ckpt_dir,
                  ws.script("triggers_slow_checkpoint"), ws.ckpt_dir, "4"])
    assert run.returncode == 0 and run.stdout == "done\n", run.describe()
    assert len(STRETCH_NOTICE.findall(run.stderr)) == 1, run.describe()
    assert len(ws.checkpoint_files()) >= 4, run.describe()


def test_signals_during_a_write_give_one_more_checkpoint(tmp_path):
    """Three SIGUSR1 sent while the first (synchronous) checkpoint is being
    written are served by one checkpoint right after it, not queued."""
    ws = Workspace(tmp_path)
    run = ws.run([PYCKPT_CLI, "run", "--sync", "--keep", "10", "--dir", ws.ckpt_dir,
                  ws.script("triggers_signals_during_write"), ws.ckpt_dir])
    assert run.returncode == 0, run.describe()
    assert run.stdout == "2 checkpoints\n", run.describe()
    assert STRETCH_NOTICE.search(run.stderr) is None, run.describe()  # no interval, nothing to stretch
