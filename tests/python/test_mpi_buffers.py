"""Message buffers in MPI.Alloc_mem memory and in mmap maps, as mpi4py's OSU
benchmarks hold them (issue 14), with the harness of test_mpi_jobs.py.

programs/mpi/buffers.py alternates ping-pongs and windows of Isend/Irecv
between pairs of ranks, sending from MPI.Alloc_mem memory and receiving into
an anonymous map, writing and reading both through np.frombuffer views, and
keeps a log in a file-backed map. It is killed with SIGKILL after
checkpoints and restarted; its outputs (digests of everything received, the
mapped log file) must be byte-identical to an uninterrupted run's: the views
must still alias the restored buffers, and a receive pending at the cut must
be re-posted into the restored map (a restart from a checkpoint cut
while receives were pending checks that case every time).

An MPI.memory that is not an Alloc_mem block (MPI.memory.fromaddress) fails
the checkpoint with a message naming it, and the job runs on.
"""
import json
import re
import subprocess

import h5py

from mpi_job_harness import (Job, check_same_as_reference, cli, latest_checkpoint, pyckpt_mpirun, reference,
                             restart_after, run_with_kills, wait_for_lines)

PROGRAM = "buffers.py"
NP = 4
STEPS = 400  # ~5 s uninterrupted on an idle 2-core machine (see test_mpi_jobs.CASES)


def test_killed_and_restarted(tmp_path):
    ref = reference(tmp_path, PROGRAM, NP, [STEPS])
    assert {f"out.map.{rank}" for rank in range(NP)} <= set(ref[1]), f"the reference run wrote {sorted(ref[1])}"
    job, work, history = run_with_kills(tmp_path, PROGRAM, NP, [STEPS], interval=0.3,
                                        restarts=["same", "restart", "same"], seed_name="buffers")
    check_same_as_reference(ref, job, work, history, 3)
    print("; ".join(history))
    with h5py.File(work / "ckpt.d" / latest_checkpoint(work / "ckpt.d"), "r") as f:
        for rank in range(NP):
            allocations = sorted(json.loads(ds.attrs["allocation"])[0] for ds in f[f"ranks/{rank}/arrays"].values()
                                 if "allocation" in ds.attrs)
            # s_buf (Alloc_mem) and r_buf (anonymous map) by content; the
            # log's shared file map by its file, not in the checkpoint.
            assert allocations == ["mmap", "mpi_alloc_mem"], (rank, allocations)


def _receives_pending_into_map(path):
    """Ranks of checkpoint `path` cut while receives into their mmap were
    pending (re-posted into the new map at restart)."""
    ranks = []
    with h5py.File(path, "r") as f:
        for rank in range(NP):
            arrays = f[f"ranks/{rank}/arrays"]
            pending = json.loads(bytes(f[f"ranks/{rank}/blobs/mpi_requests"][()]))
            if any(json.loads(arrays[key].attrs.get("allocation", "[null]"))[0] == "mmap"
                   for key, _offset in pending.values()):
                ranks.append(rank)
    return ranks


def test_restart_with_receives_pending_into_the_map(tmp_path):
    """Not left to chance: a run keeps every checkpoint; the job is restarted
    from the first one cut while a rank waited in Waitall for receives into
    its anonymous map, and must end as the uninterrupted run."""
    ref = reference(tmp_path, PROGRAM, NP, [STEPS])
    work = tmp_path / "run"
    work.mkdir()
    directory = work / "ckpt.d"
    job = Job(pyckpt_mpirun(directory, PROGRAM, NP, [STEPS], interval=0.3, extra=["--keep", "1000"]), work, "run0")
    assert job.wait() == 0, job.describe()
    chosen = next((path for path in sorted(directory.glob("ckpt.*.h5")) if _receives_pending_into_map(path)), None)
    assert chosen is not None, f"no checkpoint of {sorted(directory.glob('ckpt.*.h5'))} was cut with receives pending"
    history = [f"restart from {chosen.name}, ranks {_receives_pending_into_map(chosen)} had receives pending"]
    job = restart_after(work, directory, chosen, NP)
    check_same_as_reference(ref, job, work, history, 1)


def test_memory_not_from_alloc_mem_is_refused(tmp_path):
    directory = tmp_path / "ckpt.d"
    job = Job(pyckpt_mpirun(directory, PROGRAM, NP, [150, "refuse"]), tmp_path, "run")
    wait_for_lines(job, tmp_path / "out.0", 5)
    request = subprocess.run(cli("request", str(directory)), capture_output=True, text=True, timeout=60)
    assert request.returncode == 0, request.stdout + request.stderr
    assert job.wait() == 0, f"the job did not finish:\n{job.describe()}"
    # Named by the variable and frame that hold it (state._in_program_terms).
    assert re.search(r"rank \d: checkpoint failed: foreign in <module> at \S+/buffers\.py:\d+: "
                     r"cannot capture a mpi4py\.MPI\.memory object "
                     r"\(an MPI\.memory of 16 bytes at 0x[0-9a-f]+ that is not a block of MPI\.Alloc_mem", job.stderr), \
        f"no failure naming the memory:\n{job.describe()}"
    assert latest_checkpoint(directory) is None, "a checkpoint was committed"
