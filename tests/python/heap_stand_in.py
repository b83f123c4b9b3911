"""Stand-in for the checkpoint container in the heap tests, until the container
binding (pyckpt._core) is wired to pyckpt.heap: the pickle stream goes to a file
and each array of Pickler.arrays to <key>.npy (numpy.save). Test code only."""
import sys
import types
from pathlib import Path

import numpy as np

from pyckpt import heap


def save(root, directory):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data, arrays = heap.dumps(root)
    (directory / "heap.pickle").write_bytes(data)
    for key, array in arrays:
        np.save(directory / f"{key}.npy", array, allow_pickle=False)
    return arrays


def restore(directory):
    """Loads what save() wrote; a captured __main__ module becomes this
    process's __main__, as the restart driver will do."""
    directory = Path(directory)
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    return heap.loads((directory / "heap.pickle").read_bytes(),
                      lambda key: np.load(directory / f"{key}.npy"), main_module=main)
