"""The heap tests' checkpoint: a root object through pyckpt.heap into the real
container (a checkpoint directory, one blob and the arrays as datasets) and
back, without frames. Test code only."""
import sys
import types

from pyckpt import _core, heap
from pyckpt.container import ArrayLoader, add_array

BLOB = "heap"


def save(root, directory):
    data, arrays = heap.dumps(root)
    writer = _core.Writer(str(directory))
    writer.add_blob(BLOB, data)
    for key, array in arrays:
        add_array(writer, key, array)
    writer.commit()
    return arrays


def restore(directory):
    """Loads what save() wrote; a captured __main__ module becomes this
    process's __main__, as a restart does."""
    reader = _core.Reader(str(directory))
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    return heap.loads(reader.read_blob(0, BLOB), ArrayLoader(reader, 0), main_module=main)
