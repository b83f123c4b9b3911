"""The checkpoint container seen from Python: files written by 3 MPI ranks
(and by a serial process) read back through pyckpt._core.Reader, through h5py
alone (as doc/format.md promises), and through the pyckpt CLI; corrupt and
truncated files give clear errors."""
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import PYCKPT_CLI, PYTHON, mpiexec_cmd, run

sys.path.insert(0, str(Path(__file__).parent / "programs"))
import write_mixed  # noqa: E402

WRITER = str(Path(__file__).parent / "programs" / "write_mixed.py")
NP = 3


@pytest.fixture(scope="module")
def mpi_ckpt(tmp_path_factory):
    """A directory with two committed checkpoints written by NP ranks."""
    d = tmp_path_factory.mktemp("mpi") / "ckpt"
    for epoch in (1, 2):
        run(mpiexec_cmd(NP) + [PYTHON, WRITER, str(d), str(epoch)])
    return d


def test_reader_round_trip_every_dtype(mpi_ckpt):
    from pyckpt import _core
    from pyckpt.container import load_array, load_global_slab
    r = _core.Reader(str(mpi_ckpt))
    assert r.epoch == 2 and r.world_size == NP
    assert r.attributes["trigger"] == "test"
    for rank in range(NP):
        assert r.rank_attributes(rank)["note"] == f"rank {rank}"
        for name, expected in write_mixed.arrays_for(rank).items():
            got = load_array(r, rank, name)
            assert got.shape == expected.shape, name
            assert got.dtype == expected.dtype, name
            np.testing.assert_array_equal(got, expected, err_msg=name)
        assert r.read_blob(rank, "stream") == write_mixed.blob_for(rank)
    assert load_array(r, 0, "f64_fortran").flags.f_contiguous
    full = np.arange(60, dtype=np.float64).reshape(write_mixed.GLOBAL_SHAPE)
    # Read the global array back as 1, 2 and 4 readers would split it.
    for readers in (1, 2, 4):
        bounds = np.linspace(0, 12, readers + 1).astype(int)
        parts = [load_global_slab(r, "field", [lo, 0], [hi - lo, 5]) for lo, hi in zip(bounds, bounds[1:])]
        np.testing.assert_array_equal(np.concatenate(parts), full)
    assert all(ok for _, ok, _ in r.verify())


def test_h5py_reads_values_as_documented(mpi_ckpt):
    """A third party with h5py alone, following doc/format.md."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(mpi_ckpt / "latest", "r") as f:
        assert f.attrs["format"] in ("pyckpt-checkpoint", b"pyckpt-checkpoint")
        assert int(f.attrs["world_size"]) == NP
        for rank in range(NP):
            group = f[f"ranks/{rank}"]
            expected = write_mixed.arrays_for(rank)
            np.testing.assert_array_equal(group["arrays/i32"][()], expected["i32"])
            assert group["arrays/i64_be"].dtype == np.dtype(">i8")
            np.testing.assert_array_equal(group["arrays/f16"][()], expected["f16"])
            np.testing.assert_array_equal(group["arrays/c128"][()], expected["c128"])
            np.testing.assert_array_equal(group["arrays/bool"][()], expected["bool"])
            np.testing.assert_array_equal(group["arrays/bytes"][()], expected["bytes"])
            np.testing.assert_array_equal(group["arrays/strided_view"][()], expected["strided_view"])
            assert group["arrays/scalar"][()] == expected["scalar"]
            # F-order arrays are stored with reversed dimensions.
            ds = group["arrays/f64_fortran"]
            assert ds.attrs["order"] in ("F", b"F")
            np.testing.assert_array_equal(ds[()].T, expected["f64_fortran"])
            s = group["arrays/structured"][()]
            np.testing.assert_array_equal(s["x"], expected["structured"]["x"])
            np.testing.assert_array_equal(s["v"], expected["structured"]["v"])
            assert bytes(group["blobs/stream"][()]) == write_mixed.blob_for(rank)
        np.testing.assert_array_equal(f["global/field"][()], np.arange(60.0).reshape(12, 5))


def test_h5dump_reads_the_file(mpi_ckpt):
    if shutil.which("h5dump") is None:
        pytest.skip("h5dump not installed")
    out = run(["h5dump", "-H", str(mpi_ckpt / "latest")]).stdout
    assert "ranks" in out and "i32" in out


def test_serial_writer_same_format(tmp_path):
    run([PYTHON, WRITER, str(tmp_path), "7", "--serial"])
    from pyckpt import _core
    from pyckpt.container import load_array
    r = _core.Reader(str(tmp_path))
    assert (r.epoch, r.world_size) == (7, 1)
    np.testing.assert_array_equal(load_array(r, 0, "unicode"), write_mixed.arrays_for(0)["unicode"])


def test_cli_ls_and_inspect(mpi_ckpt):
    ls = run([str(PYCKPT_CLI), "ls", str(mpi_ckpt)]).stdout
    assert "ckpt.00000001.h5" in ls and "ckpt.00000002.h5  <- latest" in ls
    out = run([str(PYCKPT_CLI), "inspect", str(mpi_ckpt)]).stdout
    assert "epoch 2, 3 rank(s)" in out
    assert "f64_fortran" in out and "F-order" in out and "<f2 (9,)" in out
    assert "checksums: " in out and " 0 failed" in out
    for rank in range(NP):
        assert f"rank {rank} (note=rank {rank})" in out


def test_python_m_pyckpt_works(mpi_ckpt):
    out = run([PYTHON, "-m", "pyckpt", "ls", str(mpi_ckpt)], env={**os.environ}).stdout
    assert "<- latest" in out


def _copy_latest(src_dir, dst):
    from pyckpt import _core
    shutil.copy(_core.Reader(str(src_dir)).file, dst)
    return dst


def test_flipped_bytes_are_named(mpi_ckpt, tmp_path):
    h5py = pytest.importorskip("h5py")
    bad = _copy_latest(mpi_ckpt, tmp_path / "ckpt.00000002.h5")
    with h5py.File(bad, "r") as f:
        offset = f["ranks/1/arrays/i32"].id.get_offset()
    with open(bad, "r+b") as fh:
        fh.seek(offset + 4)
        fh.write(b"\xff\xfe")
    proc = run([str(PYCKPT_CLI), "verify", str(bad)], check=False)
    assert proc.returncode == 1
    assert "/ranks/1/arrays/i32" in proc.stderr
    proc = run([str(PYCKPT_CLI), "inspect", str(bad)], check=False)
    assert proc.returncode == 1 and "1 failed" in proc.stdout
    from pyckpt import ChecksumError, _core
    from pyckpt.container import load_array
    with pytest.raises(ChecksumError, match="i32"):
        load_array(_core.Reader(str(bad)), 1, "i32")


def test_truncated_and_foreign_files_are_named(mpi_ckpt, tmp_path):
    bad = _copy_latest(mpi_ckpt, tmp_path / "truncated.h5")
    with open(bad, "r+b") as fh:
        fh.truncate(os.path.getsize(bad) // 2)
    # The header still reads; the rest of the file no longer matches it.
    proc = run([str(PYCKPT_CLI), "inspect", str(bad)], check=False)
    assert proc.returncode == 1 and str(bad) in proc.stdout and "NOT AUTHENTICATED" in proc.stdout
    assert "truncated" in proc.stdout
    foreign = tmp_path / "foreign.h5"
    foreign.write_bytes(b"not an HDF5 file at all" * 100)
    proc = run([str(PYCKPT_CLI), "inspect", str(foreign)], check=False)
    assert proc.returncode == 2 and str(foreign) in proc.stderr
    proc = run([str(PYCKPT_CLI), "ls", str(tmp_path / "missing")], check=False)
    assert proc.returncode == 2 and "missing" in proc.stderr
