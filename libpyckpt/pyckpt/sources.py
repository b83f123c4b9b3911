"""The program's own source files, saved with each checkpoint so that a
restart runs the code that was running, whatever happened to the files.

The user's own modules are those whose file is next to the __main__ script
or below its directory (the rest, the standard library and installed
packages, are imported again as they are). Functions and classes of those
modules are pickled by reference and come back by importing the module: if
its file was edited after the checkpoint, the resumed frames would run
under the module's new code, a result that is neither the old program's
nor the new one's. So each checkpoint holds, per module, its source as it
was when the process first checkpointed it (blob SOURCES_BLOB; the root
attribute ``sources`` has their sha256 for `pyckpt inspect`), and a restart
imports a module whose file differs, or is gone, from the saved source
(SavedSourceFinder, first on sys.meta_path for the rest of the process, so a
later import of it gets the saved code too), and says so. The __main__
script's code is in the frames and functions the checkpoint pickles: it
needs no import, only the warning.

A module's source is read the first time a checkpoint sees the module, not
when it was imported: a file edited between its import and the process's
first checkpoint is saved as edited (said in doc/process.md). A restarted
process saves what it was given, so a chain of restarts keeps the code of
the first run."""
import hashlib
import importlib.abc
import importlib.util
import json
import linecache
import os
import sys

SOURCES_BLOB = "sources"

# Module name -> (real path, source bytes) of every user module seen so far
# (or restored from the checkpoint this process resumed).
_saved = {}
# path -> real path of every module file seen: resolving the few hundred
# modules of a NumPy/mpi4py program each time took 30-50 ms of every
# checkpoint's pause (an lstat per path component).
_real_paths = {}


def _real_path(path):
    if path not in _real_paths:
        _real_paths[path] = os.path.realpath(path)
    return _real_paths[path]


def _user_modules():
    """(name, real path) of __main__'s script and of the modules loaded from
    its directory or below."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file:
        return []
    user_dir = os.path.join(os.path.dirname(os.path.realpath(main_file)), "")
    found = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and path.endswith(".py") and _real_path(path).startswith(user_dir):
            found.append((name, _real_path(path)))
    return found


def current():
    """{module name: (real path, source bytes)} of the user's modules loaded
    now, each as first seen (or as restored)."""
    seen = {}
    for name, path in _user_modules():
        if name not in _saved:
            try:
                with open(path, "rb") as f:
                    _saved[name] = (path, f.read())
            except OSError:
                continue
        seen[name] = _saved[name]
    return seen


def digests(sources):
    """The root attribute `sources`: "sha256 path" per file."""
    return sorted(f"{hashlib.sha256(text).hexdigest()} {path}" for path, text in sources.values())


def blob(sources):
    """SOURCES_BLOB's bytes: JSON {module: [path, source]}; a source that is
    not UTF-8 keeps its bytes (surrogateescape)."""
    return json.dumps({name: [path, text.decode("utf-8", "surrogateescape")]
                       for name, (path, text) in sources.items()}).encode()


def _load(data):
    return {name: (path, text.encode("utf-8", "surrogateescape"))
            for name, (path, text) in json.loads(data).items()}


class _SavedSourceLoader(importlib.abc.Loader):
    def __init__(self, path, text):
        self.path, self.text = path, text

    def create_module(self, spec):
        return None  # the default module

    def exec_module(self, module):
        exec(compile(self.text, self.path, "exec"), module.__dict__)


class SavedSourceFinder(importlib.abc.MetaPathFinder):
    """Imports the modules named in `modules` ({name: (path, source)}) from
    their saved source instead of their file."""

    def __init__(self, modules):
        self.modules = modules

    def find_spec(self, name, path, target=None):
        if name not in self.modules:
            return None
        file_path, text = self.modules[name]
        package = os.path.basename(file_path) == "__init__.py"
        return importlib.util.spec_from_file_location(
            name, file_path, loader=_SavedSourceLoader(file_path, text),
            submodule_search_locations=[os.path.dirname(file_path)] if package else None)


def restore(reader, rank):
    """Before the heap of `reader`'s checkpoint is unpickled: the saved
    sources of the user's modules whose files changed are what their
    imports run from now on; says which. Checkpoints written before sources
    were saved have only digests: the new code then runs, and that is said."""
    names = {d["name"] for d in reader.datasets(rank)}
    if SOURCES_BLOB not in names:
        for entry in reader.attributes.get("sources", []):
            digest, path = entry.split(" ", 1)
            if _digest_of(path) != digest:
                _warn(path, "; this checkpoint holds no copy of it: its current code runs under the frames "
                      "saved before the change")
        return
    saved = _load(reader.read_blob(rank, SOURCES_BLOB))
    _saved.update(saved)
    changed = {}
    for name, (path, text) in sorted(saved.items()):
        if _digest_of(path) != hashlib.sha256(text).hexdigest():
            _warn(path, "; resuming with the code saved in the checkpoint (the file is not read)")
            if name != "__main__":
                changed[name] = (path, text)
            # Tracebacks show the saved lines (mtime None: checkcache keeps them).
            lines = text.decode("utf-8", "replace").splitlines(keepends=True)
            linecache.cache[path] = (len(text), None, lines, path)
    if changed:
        sys.meta_path.insert(0, SavedSourceFinder(changed))


def _digest_of(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _warn(path, what_runs):
    state = "is gone" if not os.path.exists(path) else "changed"
    print(f"pyckpt restart: warning: {path} {state} since the checkpoint{what_runs}", file=sys.stderr, flush=True)
