"""Refusals, bad checkpoints, edited sources and `pyckpt inspect` (issue 3,
"Safe points and preemption", "Inspection"): explicit checkpoints where a C
function sits between frames, in a non-main thread or a coroutine raise a
CheckpointError naming what is at fault and write nothing (one the program
does not catch ends it as any uncaught exception would, restarted or not); a
damaged or missing checkpoint fails naming the file (a one-line error of the
`pyckpt` command, status 2) and leaves the previous one usable;
an edited source is named in a warning; inspect shows the stack.
"""
import re

import h5py
import pytest

from process_harness import CRASH_STATUS, PYCKPT_CLI, PYTHON, Outcome, Workspace, assert_same, crash_chain, uninterrupted

C_FUNCTIONS = {  # kind: what the message must name, the innermost frame
    "sorted": ("built-in function sorted", "in key_fn"),
    "map": ("class 'list'", "in key_fn"),
    "init": ("class '__main__.Holder'", "in Holder.__init__"),
    "eq": ("method 'index' of 'list' objects", "in Eq.__eq__"),
    "property": ("property", "in Holder.prop"),
}


@pytest.mark.parametrize("kind", sorted(C_FUNCTIONS))
def test_checkpoint_under_c_function_raises(tmp_path, kind):
    ws = Workspace(tmp_path)
    run = ws.python("errors_c_function", kind)
    what, frame = C_FUNCTIONS[kind]
    assert run.returncode == 0 and "CheckpointError: UnsupportedStateError" in run.stdout, run.describe()
    message = run.stdout.split("message: ", 1)[1]
    assert what in message and frame in message and "errors_c_function.py:" in message and "in <module>" in message, \
        run.describe()
    assert run.stdout.endswith("continued\n") and not ws.checkpoint_files(), run.describe()


@pytest.mark.parametrize("kind,expected", [
    ("thread", "thread 'worker-thread'"),
    ("asyncio", "inside coroutine coro"),
    ("coroutine", "inside coroutine coro"),
    ("async_generator", "inside async generator agen"),
    ("event_loop", "loop in <module> at "),
])
def test_unsupported_context_raises(tmp_path, kind, expected):
    ws = Workspace(tmp_path)
    run = ws.python("errors_unsupported", kind)
    assert run.returncode == 0 and run.stdout.startswith("UnsupportedStateError: "), run.describe()
    assert expected in run.stdout and run.stdout.endswith("continued\n"), run.describe()
    if kind == "event_loop":  # no reducer of the user's could save it: what to do instead
        assert "checkpoint before asyncio.run()" in run.stdout and "register_reducer" not in run.stdout, run.describe()
    assert not ws.checkpoint_files(), run.describe()


def test_running_event_loop_refused_in_program_terms(tmp_path):
    # An unmodified asyncio program under `pyckpt run --interval`: while its
    # event loop runs, every checkpoint is refused, said once on stderr with
    # the frame that runs the loop and what to do; the program is unharmed.
    ws = Workspace(tmp_path)
    reference = ws.run([PYTHON, ws.script("errors_asyncio_loop")])
    assert reference.returncode == 0 and reference.stdout.startswith("results: "), reference.describe()
    run = ws.run([PYCKPT_CLI, "run", "--sync", "--interval", "0.05", "--dir", ws.ckpt_dir,
                  ws.script("errors_asyncio_loop")])
    assert run.returncode == 0 and run.stdout == reference.stdout, run.describe()
    refusals = [line for line in run.stderr.splitlines() if "asyncio event loop" in line]
    assert len(refusals) == 1, run.describe()
    assert re.search(r"^pyckpt: checkpoint failed: the program is running the asyncio event loop <\S+EventLoop "
                     r"running=True .*> \(it runs under <module> at \S+/errors_asyncio_loop\.py:\d+\): event "
                     r"loops cannot be captured .*drive the coroutines with send\(\)", refusals[0]), run.describe()
    assert "Traceback" not in run.stderr, run.describe()


def _program_traceback(run, root):
    """The traceback `run` printed on stderr from the program's outermost
    frame on (below it, a restart shows its own frames), the workspace `root`
    written <ws> (each run has its own)."""
    lines = run.stderr.splitlines()
    assert "Traceback (most recent call last):" in lines, run.describe()
    program = f'  File "{root}/prog/'
    start = next((i for i, line in enumerate(lines) if line.startswith(program)), None)
    assert start is not None, run.describe()
    return "\n".join(lines[start:]).replace(str(root), "<ws>")


def test_uncaught_checkpoint_error_of_the_program(tmp_path):
    # A CheckpointError the program raises itself and does not catch (its
    # checkpoint() refused in a key function of sorted(), after a checkpoint)
    # is an uncaught exception like any other: resumed by `pyckpt restart` or
    # run by `pyckpt run`, the same traceback and status 1 as the
    # uninterrupted run, not a one-line error of the pyckpt command.
    name = "errors_uncaught_refusal"
    reference = uninterrupted(tmp_path / "ref", name)
    assert reference.returncode == 1 and reference.checkpoints == 1, reference.describe()
    expected = _program_traceback(reference.runs[0], tmp_path / "ref")
    assert "\npyckpt.errors.UnsupportedStateError: " in expected and "<built-in function sorted>" in expected, \
        reference.describe()
    resumed = crash_chain(tmp_path / "crash", name)
    assert resumed.checkpoints == 1, resumed.describe()
    assert_same(reference, resumed)
    assert _program_traceback(resumed.runs[-1], tmp_path / "crash") == expected, resumed.describe()
    ws = Workspace(tmp_path / "run")
    run = ws.run([PYCKPT_CLI, "run", "--dir", ws.ckpt_dir, ws.script(name)])
    assert_same(reference, Outcome(run.stdout, run.returncode, [run]))
    assert _program_traceback(run, ws.root) == expected, run.describe()


@pytest.fixture
def two_checkpoints(tmp_path):
    """errors_two_checkpoints run uninterrupted: two checkpoints kept."""
    ws = Workspace(tmp_path)
    run = ws.python("errors_two_checkpoints")
    assert run.returncode == 0 and len(ws.checkpoint_files()) == 2, run.describe()
    return ws, run


AFTER_FIRST = "after first 999000.0 ['first']\nafter second 1000000.0 ['first']\n"


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_latest_checkpoint(two_checkpoints, damage):
    ws, _ = two_checkpoints
    first, second = ws.checkpoint_files()
    data = bytearray(second.read_bytes())
    if damage == "truncated":
        second.write_bytes(data[: len(data) // 2])
    else:  # flip bytes inside the pickled process state (its checksum must catch it)
        with h5py.File(second, "r") as f:
            offset = f["ranks/0/blobs/process"].id.get_offset()
        assert offset
        for i in range(offset + 100, offset + 110):
            data[i] ^= 0xFF
        second.write_bytes(bytes(data))
    bad = ws.restart(second)  # named: that file, refused
    assert bad.returncode == 2 and str(second) in bad.stderr and "Traceback" not in bad.stderr, bad.describe()
    assert bad.stdout == "", bad.describe()
    # the directory: the previous checkpoint, intact, resumed instead (doc/process.md, "Fallback")
    good = ws.restart()
    assert good.returncode == 0 and good.stdout == AFTER_FIRST, good.describe()
    assert f"refused {second}" in good.stderr and f"resuming the older checkpoint {first}" in good.stderr, \
        good.describe()


def test_missing_directory(tmp_path):
    ws = Workspace(tmp_path)
    missing = tmp_path / "no-such-dir"
    run = ws.restart(missing)
    assert run.returncode == 2 and str(missing) in run.stderr and "Traceback" not in run.stderr, run.describe()


def test_changed_sources_warn_and_saved_code_runs(tmp_path):
    """The script and a module of the user's are edited after the
    checkpoint: the restart runs the code saved in the checkpoint (the
    module's edited register() would store 'FIRST'), says so, and goes on
    saving that code: the second restart runs it too."""
    ws = Workspace(tmp_path)
    first = ws.python("errors_two_checkpoints", crash="exit")
    assert first.returncode == CRASH_STATUS and first.stdout == "start\n", first.describe()
    script, module = ws.script("errors_two_checkpoints"), ws.src / "usermod.py"
    script.write_text(script.read_text().replace('print("after first"', 'print("EDITED"'))
    module.write_text(module.read_text().replace("registry.append(item)", "registry.append(item.upper())"))
    run = ws.restart(crash="exit")  # resumes checkpoint 1, crashes at checkpoint 2
    assert run.returncode == CRASH_STATUS, run.describe()
    warnings = [line for line in run.stderr.splitlines() if "warning" in line]
    for path in (script, module):
        assert any(f"{path} changed since the checkpoint; resuming with the code saved in the checkpoint" in w
                   for w in warnings), run.describe()
    assert run.stdout == "after first 999000.0 ['first']\n", run.describe()
    module.unlink()
    last = ws.restart()  # resumes checkpoint 2, whose code is still the first run's
    assert last.returncode == 0, last.describe()
    assert f"{module} is gone since the checkpoint; resuming with the code saved" in last.stderr, last.describe()
    assert last.stdout == "after second 1000000.0 ['first']\n", last.describe()


def test_inspect_shows_frames_locals_and_arrays(tmp_path):
    ws = Workspace(tmp_path)
    run = ws.python("inspect_frames")
    assert run.returncode == 0, run.describe()
    report = ws.cli("inspect", ws.ckpt_dir)
    assert report.returncode == 0, report.describe()
    text = report.stdout
    script = str(ws.script("inspect_frames"))
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text)
    ours = [(int(line), fn) for path, line, fn in frames if path == script]
    source = ws.script("inspect_frames").read_text().splitlines()
    assert [fn for _, fn in ours] == ["<module>", "solve", "step"], text
    assert [source[line - 1].strip() for line, _ in ours] == \
        ["print(solve(7))", "return step(iterations, residual, long_text)", "checkpoint()"], text
    assert "iterations = 7" in text and "tolerance = 1e-06" in text and "n = 7" in text, text
    assert "counts = {'n': 7, 'items': [0, 1, 2, 3, 4]}" in text, text
    long_line = next(line for line in text.splitlines() if line.strip().startswith("long_text = "))
    assert long_line.rstrip().endswith("...") and len(long_line) < 200, long_line
    # arrays by the variables holding them, with dtype, shape and size
    assert re.search(r"array .*solve:residual.*: int64 \(100,\) 800 B", text), text
    assert re.search(r"array .*<module>:grid.*: float32 \(16, 8\) 512 B", text), text
