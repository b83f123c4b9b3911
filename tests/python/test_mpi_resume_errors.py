"""A rank that cannot resume ends the whole job (issue 13, "What a fault
campaign found"): before, the failing rank printed its error and waited in
MPI_Finalize while the others waited for it in their re-issued MPI calls, and
the job hung until its time limit. Now it says which rank, which file and
why, and MPI_Abort ends every rank with a non-zero status; the checkpoint
files are left as they were. The job is resumed by a hand-written mpirun
line: `pyckpt mpirun` would not start it from that file but from the older
one that verifies (test_faults)."""
import random
import re
import subprocess

import h5py

from conftest import MPIEXEC, PYTHON
from mpi_job_harness import (MPIRUN_OPTIONS, PROGRAMS, Job, cli, kill_random_rank, latest_checkpoint, pyckpt_mpirun,
                             wait_for_checkpoint)

RESUME_TIMEOUT = 60  # a hang fails the test (Job.wait shows the stacks)


def _flip_byte(path, dataset):
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_offset()
    assert offset is not None, f"{dataset} of {path} is not stored contiguously"
    with open(path, "r+b") as f:
        f.seek(offset + 100)
        byte = f.read(1)
        f.seek(offset + 100)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_rank_that_cannot_load_its_part_ends_the_job(tmp_path):
    directory = tmp_path / "ckpt.d"
    args = ["ring.py", 3, [400]]
    job = Job(pyckpt_mpirun(directory, *args, interval=0.4), tmp_path, "run")
    first = wait_for_checkpoint(job, directory, None)
    wait_for_checkpoint(job, directory, first)
    kill_random_rank(job, directory, 3, random.Random(1), [])  # returns once the job has ended
    latest = directory / latest_checkpoint(directory)
    _flip_byte(latest, "ranks/1/blobs/process")
    before = sorted(p.name for p in directory.iterdir())

    preload = subprocess.run(cli("preload-path"), capture_output=True, text=True, check=True).stdout.strip()
    resumed = Job([MPIEXEC, *MPIRUN_OPTIONS, "--allow-run-as-root", "-np", "3", "-x", f"LD_PRELOAD={preload}",
                   "-x", f"PYCKPT_DIR={directory}", PYTHON, str(PROGRAMS / "ring.py"), "400"], tmp_path, "resume")
    status = resumed.wait(timeout=RESUME_TIMEOUT)
    assert status != 0, resumed.describe()
    message = re.search(r"pyckpt: rank (\d+): cannot resume from (\S+): (.*); ending the job", resumed.stderr)
    assert message, resumed.describe()
    assert message.group(1) == "1" and message.group(2) == str(latest), resumed.describe()
    assert "checksum mismatch" in message.group(3) and "/ranks/1/blobs/process" in message.group(3)
    assert "program start" not in resumed.stderr, "a rank started the program over instead"
    # Nothing was deleted or replaced: the user can still try the older files.
    assert sorted(p.name for p in directory.iterdir()) == before
    verify = subprocess.run(cli("verify", str(latest)), capture_output=True, text=True)
    assert verify.returncode != 0
