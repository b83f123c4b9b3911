"""An unmodified program that spends most of its time in the import system:
each step imports preempt_imported_module again with
importlib.import_module (a pure-Python call into importlib, unlike the
`import` statement, which enters it through C), after 300 empty directories
on sys.path that the path finders search first, in Python. A checkpoint
must not be taken inside the import (the import system's module locks
belong to this process's thread id; a restart resumed there fails with
"cannot release un-acquired lock"): it waits until the import is done."""
import importlib
import os
import sys

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 20

empty = [os.path.abspath(os.path.join("empty_path", f"d{i:03}")) for i in range(300)]
for directory in empty:
    os.makedirs(directory, exist_ok=True)
sys.path[:0] = empty
for step in range(STEPS):
    sys.modules.pop("preempt_imported_module", None)
    module = importlib.import_module("preempt_imported_module")
    print(step, module.RESULT, flush=True)
print("done")
