"""The standard library's objects across a checkpoint (issue 12: io.StringIO
could never be captured, because `_io.__name__ == "io"` made its module look
dynamic; "find every other stdlib type that fails the same way").

- Every public type of every C extension module of the standard library is
  captured by reference (as itself) whenever plain pickle can, and every
  such module object comes back as itself.
- Every sample of programs/process/stdlib_samples.py round-trips through the
  heap pickler with its state, or, where plain pickle cannot capture it
  either, is refused naming its type and pyckpt.register_reducer; a type of
  the covered modules with no sample must say why (NO_SAMPLE).
- The same samples survive real checkpoints: uninterrupted run == crash
  after each of two checkpoints + restarts (exit and SIGKILL).
- A refusal in a process names the variable, the frame, the type and
  pyckpt.register_reducer, and writes nothing.
"""
import importlib
import os
import pickle
import sys
import sysconfig

import pytest

from process_harness import PROGRAMS, References, Workspace, check_survives

sys.path.insert(0, str(PROGRAMS))
import stdlib_samples  # noqa: E402  (programs/process/)

from pyckpt import UnsupportedStateError, heap  # noqa: E402

# Test-only modules of CPython's build, not the library a program uses.
_TEST_MODULE_PREFIXES = ("_test", "_xx", "xx", "_ctypes_test")


def _c_modules():
    """The standard library's C extension modules: built in, or in lib-dynload."""
    names = set(sys.builtin_module_names)
    dynload = os.path.join(sysconfig.get_paths()["platstdlib"], "lib-dynload")
    names |= {entry.split(".")[0] for entry in os.listdir(dynload) if entry.endswith(".so")}
    modules = []
    for name in sorted(names):
        if name.startswith(_TEST_MODULE_PREFIXES):
            continue
        try:
            modules.append(importlib.import_module(name))
        except ImportError:  # built without its library
            continue
    return modules


def _public_types(module):
    return [(name, value) for name, value in vars(module).items()
            if isinstance(value, type) and not name.startswith("__")]


def _roundtrip(obj):
    data, arrays = heap.dumps(obj, user_dirs=[])
    return heap.loads(data, dict(arrays).__getitem__)


def _pickles_as_itself(obj):
    try:
        return pickle.loads(pickle.dumps(obj, protocol=5)) is obj
    except Exception:  # noqa: BLE001 -- anything pickle cannot do is not this test's claim
        return False


def test_c_module_types_and_modules_by_reference():
    failures = []
    modules = _c_modules()
    assert len(modules) > 60, [m.__name__ for m in modules]
    for module in modules:
        try:
            if _roundtrip(module) is not module:
                failures.append(f"module {module.__spec__.name} (named {module.__name__!r}) comes back as another")
        except Exception as exc:  # noqa: BLE001 -- collected, reported together
            failures.append(f"module {module.__spec__.name}: {exc}")
        for name, cls in _public_types(module):
            if not _pickles_as_itself(cls):
                continue
            try:
                if _roundtrip(cls) is not cls:
                    failures.append(f"{module.__spec__.name}.{name} comes back as another class")
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{module.__spec__.name}.{name}: {exc}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", sorted(stdlib_samples.SAMPLES))
def test_sample_roundtrip_or_clear_refusal(name):
    factory, describe = stdlib_samples.SAMPLES[name]
    obj = factory()
    if name in stdlib_samples.REFUSED:
        with pytest.raises(Exception):  # noqa: B017 -- REFUSED holds only what plain pickle refuses
            pickle.dumps(obj, protocol=5)
        type_name = heap.type_name(type(obj))
        with pytest.raises(UnsupportedStateError) as refused:
            heap.dumps({"sample": obj}, user_dirs=[])
        message = str(refused.value)
        assert message.startswith(f"sample: cannot capture a {type_name} object ("), message
        assert f"pyckpt.register_reducer({type_name}, save, load)" in message, message
    else:
        assert describe(_roundtrip(obj)) == describe(factory())


def test_every_type_of_the_covered_modules_has_a_sample():
    instances = []
    for name, (factory, _describe) in stdlib_samples.SAMPLES.items():
        obj = factory()
        instances.append(obj)
    missing = []
    for module_name in stdlib_samples.COVERED_MODULES:
        module = importlib.import_module(module_name)
        for name, cls in _public_types(module):
            qualified = f"{module_name}.{name}"
            if issubclass(cls, BaseException) or qualified in stdlib_samples.NO_SAMPLE:
                continue  # exceptions: the "exception" sample
            if not any(isinstance(obj, cls) for obj in instances):
                missing.append(qualified)
    stale = [name for name in stdlib_samples.NO_SAMPLE
             if not hasattr(importlib.import_module(name.rpartition(".")[0]), name.rpartition(".")[2])]
    assert not missing and not stale, f"no sample: {missing}; NO_SAMPLE entries that do not exist: {stale}"


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return References(tmp_path_factory)


@pytest.mark.parametrize("crash", ["exit", "kill"])
def test_samples_survive_checkpoints(tmp_path, references, crash):
    reference, _ = check_survives(tmp_path, references, "stdlib_values", crash=crash, checkpoints=2)
    kept = len(stdlib_samples.SAMPLES) - len(stdlib_samples.REFUSED)
    assert reference.stdout.count("\n") == kept, reference.describe()
    # What issue 12 found refused: positions, contents and newline settings.
    for line in ["io.StringIO(newline=''): ('one\\r\\nt|written after', 20, ('\\r', '\\r\\n'), '')",
                 "io.BytesIO: (b'\\x00bi|written after', 17)"]:
        assert line in reference.stdout.splitlines(), reference.describe()


@pytest.mark.parametrize("where,variable,frame,type_name", [
    ("local", "job.digest", "compute", "_hashlib.HASH"),
    ("global", "connection", "<module>", "socket.socket"),
])
def test_refusal_names_variable_frame_type_and_reducer(tmp_path, where, variable, frame, type_name):
    ws = Workspace(tmp_path)
    run = ws.python("stdlib_refused", where)
    assert run.returncode == 0 and run.stdout.endswith("continued\n"), run.describe()
    message = run.stdout.splitlines()[0]
    script = ws.script("stdlib_refused")
    assert message.startswith(f"refused: {variable} in {frame} at {script}:"), run.describe()
    assert f": cannot capture a {type_name} object (" in message, run.describe()
    assert f"pyckpt.register_reducer({type_name}, save, load)" in message, run.describe()
    assert len(message) < 400 and not ws.checkpoint_files(), run.describe()
