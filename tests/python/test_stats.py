"""`pyckpt stats DIR`: per checkpoint and per rank, size, pause, write time
and throughput, from what the writer recorded (doc/format.md, Timings), on
real checkpoints of a serial `pyckpt run` (forked writer) and of a 2-rank
`pyckpt mpirun` job (inline, collective writer); `--plot` writes a PNG."""
import json
import os

import pytest

from conftest import PYTHON, PYCKPT_CLI, run

MPIRUN_OPTIONS = ["--oversubscribe", "--bind-to", "none"]
MiB = 2**20

# Each rank holds (rank + 1) MiB of float64 and checkpoints twice.
PROGRAM = """
import sys
import numpy as np
import pyckpt
rank = 0
if len(sys.argv) > 1:
    from mpi4py import MPI
    rank = MPI.COMM_WORLD.Get_rank()
data = np.full((rank + 1) * 2**17, float(rank))
for step in range(2):
    data += 1
    pyckpt.checkpoint()
sys.stdout.write(f"done {rank} {data[0]}\\n")  # one write (print makes two): the ranks' lines must not interleave
sys.stdout.flush()
"""


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCKPT_")}
    env.update(PYCKPT_KEY_FILE=str(tmp_path / "key"), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def _pyckpt(tmp_path, *args, check=True):
    return run([PYTHON, str(PYCKPT_CLI), *map(str, args)], check=check, cwd=tmp_path, env=_env(tmp_path), timeout=120)


def _stats(tmp_path, directory, *extra):
    return json.loads(_pyckpt(tmp_path, "stats", "--json", directory, *extra).stdout)


def _check_consistent(directory, found, world_size, write_mode):
    """Sizes are the files' and add up; times are positive; the pause is
    what the writer mode implies; throughput is size over write time."""
    assert [c["file"] for c in found] == sorted(p.name for p in directory.glob("ckpt.*.h5"))
    for c in found:
        assert c["authenticated"] and c["world_size"] == world_size and c["write_mode"] == write_mode
        assert c["bytes"] == (directory / c["file"]).stat().st_size
        assert sum(r["bytes"] for r in c["ranks"]) == c["payload_bytes"] < c["bytes"]
        assert c["seconds_write"] == max(r["seconds_write"] for r in c["ranks"])
        assert c["bytes_per_second"] == pytest.approx(c["payload_bytes"] / c["seconds_write"])
        assert c["seconds_pause"] == max(r["seconds_pause"] for r in c["ranks"])
        for r in c["ranks"]:
            # rank r's array, (r + 1) MiB, and a small pickle and summary
            assert (r["rank"] + 1) * MiB <= r["bytes"] < (r["rank"] + 1) * MiB + MiB // 4
            assert r["seconds_stopped"] > 0 and r["seconds_prepare"] > 0 and r["seconds_write"] > 0
            assert r["bytes_per_second"] == pytest.approx(r["bytes"] / r["seconds_write"])
            if write_mode == "forked":  # the program went on once the writer was forked
                assert r["seconds_pause"] == r["seconds_stopped"]
            else:  # and waited for the write itself
                assert r["seconds_pause"] == pytest.approx(r["seconds_stopped"] + r["seconds_prepare"]
                                                           + r["seconds_write"])


def _check_table(text, found):
    lines = text.splitlines()
    assert lines[0].split()[:6] == ["epoch", "rank", "size", "pause", "write", "throughput"]
    for c in found:
        row = next(line for line in lines if line.split()[:2] == [str(c["epoch"]), "all"])
        assert c["file"] in row and c["write_mode"] in row
        ranks = lines[lines.index(row) + 1:lines.index(row) + 1 + c["world_size"]]
        assert [line.split()[0] for line in ranks] == [str(r) for r in range(c["world_size"])]


def test_stats_of_a_serial_run(tmp_path):
    (tmp_path / "app.py").write_text(PROGRAM)
    directory = tmp_path / "ckpt"
    assert _pyckpt(tmp_path, "run", "--dir", directory, "--keep", 3, "app.py").stdout == "done 0 2.0\n"
    found = _stats(tmp_path, directory)
    assert len(found) == 2
    _check_consistent(directory, found, 1, "forked")
    _check_table(_pyckpt(tmp_path, "stats", directory).stdout, found)

    chart = tmp_path / "chart.png"
    _pyckpt(tmp_path, "stats", directory, "--plot", chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Another key: nothing is read but the header's size.
    other = _pyckpt(tmp_path, "stats", directory, "--key-file", tmp_path / "other-key").stdout
    assert other.count("NOT AUTHENTICATED, size from its header only") == 2


def test_stats_of_a_two_rank_job(tmp_path):
    (tmp_path / "app.py").write_text(PROGRAM)
    directory = tmp_path / "ckpt"
    out = _pyckpt(tmp_path, "mpirun", "--dir", directory, "--keep", 3, *MPIRUN_OPTIONS, "-np", 2,
                  PYTHON, "app.py", "mpi").stdout
    assert sorted(out.splitlines()) == ["done 0 2.0", "done 1 3.0"]
    found = _stats(tmp_path, directory)
    assert len(found) == 2
    _check_consistent(directory, found, 2, "inline")
    _check_table(_pyckpt(tmp_path, "stats", directory).stdout, found)


def test_stats_of_a_checkpoint_written_by_the_container_alone(tmp_path):
    """A checkpoint written through the container API alone (a C++ program,
    or pyckpt._core as here) records no pause: stats shows its sizes and
    write times, and '-' for the pause."""
    directory = tmp_path / "ckpt"
    code = ("import numpy as np, sys; from pyckpt import _core; from pyckpt.container import add_array; "
            "w = _core.Writer(sys.argv[1], None, keep=2); add_array(w, 'x', np.zeros(2**17)); w.commit()")
    run([PYTHON, "-c", code, str(directory)], env={**_env(tmp_path), "PYTHONPATH": os.environ["PYTHONPATH"]})
    (c,) = _stats(tmp_path, directory)
    assert c["write_mode"] is None and c["seconds_pause"] is None and c["ranks"][0]["seconds_stopped"] is None
    assert c["seconds_write"] == c["ranks"][0]["seconds_write"] > 0
    assert c["payload_bytes"] == c["ranks"][0]["bytes"] == MiB
    row = next(line for line in _pyckpt(tmp_path, "stats", directory).stdout.splitlines()
               if line.split()[:2] == [str(c["epoch"]), "all"])
    assert row.split()[4] == "-" and "writer not recorded" in row


def test_stats_of_no_directory(tmp_path):
    proc = _pyckpt(tmp_path, "stats", tmp_path / "missing", check=False)
    assert proc.returncode == 2
    assert proc.stderr == f"pyckpt stats: {tmp_path / 'missing'}: no such checkpoint directory\n"
