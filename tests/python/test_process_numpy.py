"""NumPy arrays survive a checkpoint/restart (issue 3, "What must survive",
NumPy): every dtype and layout, views stay views, object arrays
(programs/process/numpy_*.py, run uninterrupted and with crashes +
restarts); each array is an HDF5 dataset of its own dtype and shape, read
here with h5py; the data is written from the array's memory and read
straight into new arrays (no copy of it).
"""
import ast
import hashlib
import json
import re

import h5py
import numpy as np
import pytest

from process_harness import References, Workspace, check_survives

CASES = [pytest.param(name, "exit", id=name) for name in ("numpy_arrays", "numpy_views", "numpy_objects")]
CASES += [pytest.param("numpy_views", "kill", id="numpy_views-sigkill")]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return References(tmp_path_factory)


@pytest.mark.parametrize("name,crash", CASES)
def test_survives(tmp_path, references, name, crash):
    check_survives(tmp_path, references, name, crash=crash)


def _logical_arrays(path):
    """Rank 0's array datasets read with h5py and interpreted as
    doc/format.md says (order "F": the transpose; "unicode": UCS-4 code
    points; numpy_descr: the exact dtype): {name: (h5py dataset dtype,
    dataset shape, attrs, logical ndarray)}."""
    found = {}
    with h5py.File(path, "r") as f:
        for name, ds in f["ranks/0/arrays"].items():
            attrs = dict(ds.attrs)
            dtype = np.lib.format.descr_to_dtype(ast.literal_eval(attrs["numpy_descr"]))
            data = np.asarray(ds[()], dtype=ds.dtype)
            if "unicode" in attrs:
                data = np.ascontiguousarray(data).view(dtype)[..., 0]
            data = data.view(dtype) if dtype.kind in "Mm" else data.astype(dtype, copy=False)
            found[name] = (ds.dtype, ds.shape, attrs, data.T if attrs["order"] == "F" else data)
    return found


def _sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_arrays_are_hdf5_datasets_of_their_dtype_and_shape(tmp_path):
    ws = Workspace(tmp_path)
    run = ws.python("numpy_arrays", "describe")
    assert run.returncode == 0, run.describe()
    described = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    files = ws.checkpoint_files()
    assert len(described) > 30 and len(files) == 1, run.describe()
    datasets = _logical_arrays(files[0])
    by_content = {(a.dtype.str, a.shape, _sha(a)): (name, h5_dtype, h5_shape, attrs)
                  for name, (h5_dtype, h5_shape, attrs, a) in datasets.items()}
    for entry in described:
        key = (entry["dtype"], tuple(entry["shape"]), entry["sha"])
        assert key in by_content, f"no dataset holds {entry['name']} ({entry['descr']} {entry['shape']}): " \
                                  f"{ {n: (str(d[0]), d[1], d[2]['order']) for n, d in datasets.items()} }"
        name, h5_dtype, h5_shape, attrs = by_content[key]
        dtype, shape = np.lib.format.descr_to_dtype(ast.literal_eval(entry["descr"])), tuple(entry["shape"])
        expected_shape = shape[::-1] if attrs["order"] == "F" else shape
        if dtype.kind == "U":
            assert h5_dtype == np.dtype(dtype.byteorder.replace("|", "<") + "u4") and \
                h5_shape == expected_shape + (dtype.itemsize // 4,), (entry, name, h5_dtype, h5_shape)
        else:  # HDF5 has no datetime type: those are stored as their int64 counts
            assert h5_dtype == (np.dtype(dtype.byteorder + "i8") if dtype.kind in "Mm" else dtype), \
                (entry, name, h5_dtype)
            assert h5_shape == expected_shape, (entry, name, h5_shape)
        if entry["name"].startswith("fortran"):
            assert attrs["order"] == "F", (entry, name, attrs)


def test_no_copy_of_array_data(tmp_path):
    """96 MiB array: the checkpoint adds far less than that to the peak RSS,
    and the restarted process holds it once."""
    ws = Workspace(tmp_path)
    first = ws.python("numpy_zero_copy")
    assert first.returncode == 0, first.describe()
    second = ws.restart()
    assert second.returncode == 0, second.describe()
    (before, peak), = [tuple(map(int, m)) for m in re.findall(r"before=(\d+) peak=(\d+)", first.stderr)]
    assert peak - before < 40, f"checkpoint of a 96 MiB array raised peak RSS from {before} to {peak} MiB"
    (_, restarted_peak), = [tuple(map(int, m)) for m in re.findall(r"before=(\d+) peak=(\d+)", second.stderr)]
    assert restarted_peak < before + 40, \
        f"restart of a 96 MiB array peaked at {restarted_peak} MiB (the original process: {before} MiB)"
    assert second.stdout == f"{96 * 2 ** 20 // 8} {float(sum(range(3072)))} 4095.0\n", second.describe()
