"""mmap.mmap maps across checkpoints and restarts (doc/heap.md, "Memory of
mmap maps and MPI.Alloc_mem"), with programs/process/mmap_*.py: anonymous
maps of every access mode, file-backed maps, NumPy arrays made over maps with
np.frombuffer (still views of the maps after a restart: the program writes
through both and prints what the other shows, so a copy would print something
else than the uninterrupted run), a closed map, and closing every map after
the restart (no buffer export left behind). MPI.Alloc_mem memory:
test_mpi_buffers.py."""
import ast
import json

import h5py
import numpy as np
import pytest

from process_harness import CRASH_STATUS, References, Workspace, check_survives


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return References(tmp_path_factory)


@pytest.mark.parametrize("crash", ["exit", "kill"])
def test_maps_and_views_survive(tmp_path, references, crash):
    check_survives(tmp_path, references, "mmap_buffers", crash=crash, checkpoints=2)


def test_contents_are_uint8_datasets_not_pickled(tmp_path):
    """Each captured map's contents are one uint8 dataset of the map's length
    (the 4 MiB map too, so the pickle stream stays small) that records how the
    restart allocates the memory it is read into; the views over the maps
    add no dataset."""
    ws = Workspace(tmp_path)
    run = ws.python("mmap_buffers", "describe")
    assert run.returncode == 0, run.describe()
    lengths = json.loads(run.stdout.splitlines()[0])
    with h5py.File(ws.checkpoint_files()[0], "r") as f:
        arrays = {name: (ds.dtype, ds.shape, dict(ds.attrs)) for name, ds in f["ranks/0/arrays"].items()
                  if "allocation" in ds.attrs}
        others = {name: ds.nbytes for name, ds in f["ranks/0/arrays"].items() if "allocation" not in ds.attrs}
        blobs = {name: ds.size for name, ds in f["ranks/0/blobs"].items()}
    assert sorted(shape[0] for _, shape, _ in arrays.values()) == sorted(lengths.values()), arrays
    for dtype, shape, attrs in arrays.values():
        assert dtype == np.uint8 and len(shape) == 1, arrays
        allocator, spec = json.loads(attrs["allocation"])
        assert allocator == "mmap" and spec["length"] == shape[0], attrs
        assert ast.literal_eval(attrs["numpy_descr"]) == "|u1", attrs
    copy_file = next(json.loads(a["allocation"])[1] for _, _, a in arrays.values()
                     if json.loads(a["allocation"])[1]["path"])
    assert copy_file["path"] == str(ws.src / "mmap_data.bin") and copy_file["access"] == "ACCESS_COPY", copy_file
    assert max(blobs.values()) < 64 * 1024, blobs
    assert sum(others.values()) < 64 * 1024, others  # the NumPy RNG's state, not copies of the views


def test_file_gone_at_restart_is_named(tmp_path):
    ws = Workspace(tmp_path)
    run = ws.python("mmap_buffers", crash="exit")
    assert run.returncode == CRASH_STATUS, run.describe()
    (ws.src / "mmap_data.bin").unlink()
    restart = ws.restart()
    assert restart.returncode != 0, restart.describe()
    assert f"cannot map '{ws.src / 'mmap_data.bin'}' again" in restart.stderr, restart.describe()
    assert "No such file or directory" in restart.stderr and "Traceback" not in restart.stderr, restart.describe()


def test_map_of_deleted_file_is_refused(tmp_path):
    ws = Workspace(tmp_path)
    run = ws.python("mmap_deleted_file")
    assert run.returncode == 0, run.describe()
    refusal, rest = run.stdout.split("\n", 1)
    assert refusal.startswith("UnsupportedStateError: ") and "a file that was deleted" in refusal, run.describe()
    assert str(ws.src / "mmap_gone.bin") in refusal and "mapped" in refusal, run.describe()
    assert rest == "continued b'xxx'\n" and not ws.checkpoint_files(), run.describe()
