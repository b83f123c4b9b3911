"""Restart on another number of nodes (issue 10, "Different node counts"):
a job checkpointed on 2 nodes (2 ranks each) resumes on 4 nodes (1 rank
each) and on 1 node, with the same rank count, and again on yet another
placement after a second kill. Nodes are simulated on this machine: a
hostfile of made-up names and tools/local-node-agent.sh as Open MPI's
launcher agent make each name a node to Open MPI (shared memory off between
them: TCP on localhost). programs/mpi/nodes.py uses a node-local
communicator (Split_type(COMM_TYPE_SHARED)) every step; the restarted job
re-creates it on the new placement, says so, and computes what the
uninterrupted job computed. What a restart on another placement cannot
carry over (point-to-point traffic on the node-local communicator, a shared
window on it) is refused naming it, and the old placement still resumes."""
import random
import re
import subprocess
from pathlib import Path

import pytest

from mpi_job_harness import Job, START_MARK, check_same_as_reference, cli, kill_random_rank, latest_checkpoint, \
    pyckpt_mpirun, reference, wait_for_checkpoint, wait_for_lines

AGENT = Path(__file__).resolve().parents[2] / "tools" / "local-node-agent.sh"
NP = 4
NOTICE = (r"pyckpt_mpi: rank \d+: \d+ node-local communicator\(s\) \(MPI_Comm_split_type\) "
          r"re-created on this placement with other members")


def _nodes(work, count, ranks_on=None):
    """mpirun options placing NP ranks on `count` simulated nodes: in blocks
    (ranks 0,1 on node0 of 2), or rank r on node ranks_on[r] (a rankfile). With
    slots=NP/count a node is not oversubscribed to Open MPI, which then
    busy-polls without yielding; the simulated nodes share this machine's
    cores, so the ranks are told to yield (without it a checkpoint took
    10 times as long, 2-4 s, and a job checkpointing every 0.3 s barely ran)."""
    hostfile = work / f"hosts.{count}"
    hostfile.write_text("".join(f"node{n} slots={NP // count}\n" for n in range(count)))
    placed = []
    if ranks_on:
        rankfile = work / ("ranks." + "".join(map(str, ranks_on)))
        rankfile.write_text("".join(f"rank {r}=node{n} slot={ranks_on[:r].count(n)}\n"
                                    for r, n in enumerate(ranks_on)))
        placed = ["--rankfile", str(rankfile)]
    return ["--hostfile", str(hostfile), "--mca", "plm_rsh_agent", str(AGENT), "--mca", "btl", "self,tcp",
            "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo", "--mca", "mpi_yield_when_idle", "1",
            *placed]


def _checkpoint_and_kill(job, work, rng, history):
    """Once `job` runs its loop (out.0 has lines beyond those of the
    checkpoint it resumed from, if any), waits for a new checkpoint, then
    SIGKILLs a random rank. A job whose ranks are mostly inside mpi4py's
    pickled reductions is captured only when none is (doc/mpi.md, "Bounded
    latency"): hence the long timeout."""
    directory = work / "ckpt.d"
    out = work / "out.0"
    wait_for_lines(job, out, (out.read_text().count("\n") if out.exists() else 0) + 3)
    wait_for_checkpoint(job, directory, latest_checkpoint(directory), timeout=120)
    kill_random_rank(job, directory, NP, rng, history)


# 2 -> 1 alone is the first restart of 2 -> 1 -> 4.
@pytest.mark.parametrize("placements", [[2, 4], [2, 1, 4]], ids=lambda p: "-".join(map(str, p)))
def test_resume_on_another_node_count(tmp_path, placements):
    """Nodes per run: the first run is killed after its checkpoints, each
    next one resumes on its node count from the previous run's checkpoint
    (killed too, but the last)."""
    program, args = "nodes.py", [300]
    ref = reference(tmp_path, program, NP, args)
    work = tmp_path / "work"
    work.mkdir()
    directory = work / "ckpt.d"
    rng = random.Random("-".join(map(str, placements)))
    history = []
    job = Job(pyckpt_mpirun(directory, program, NP, args, interval=0.3, extra=_nodes(work, placements[0])),
              work, "run0")
    for number, nodes in enumerate(placements[1:], 1):
        _checkpoint_and_kill(job, work, rng, history)
        history.append(f"resumed on {nodes} node(s)")
        if number == 1:
            shown = _inspect(directory)
            assert "node-local communicators (MPI_Comm_split_type" in shown, shown
            assert re.search(r"node_local_comms=\d", shown), shown
        job = Job(pyckpt_mpirun(directory, program, NP, args, interval=0.3, extra=_nodes(work, nodes)),
                  work, f"run{number}")
    assert job.wait() == 0, f"{history}\n{job.describe()}"
    for number in range(1, len(placements)):
        stderr = (work / f"run{number}.stderr").read_text()
        assert len(re.findall(NOTICE, stderr)) == NP, f"run {number}: {history}\n{stderr[-4000:]}"
    check_same_as_reference(ref, job, work, history, len(placements) - 1)


PICKLED = r"node-local communicator [0-9a-f]+ \(MPI_Comm_split_type, or made from one\) carried point-to-point messages"
WINDOW = r"MPI window \d+ \(MPI_Win_allocate_shared at [^)]*nodes\.py:\d+\)"


# Ranks 0,2 and 1,3 share a node, then 0,3 and 1,2: every rank has the same
# rank and size in its node-local communicator, with another member.
ROUND_ROBIN, PERMUTED = {"count": 2, "ranks_on": (0, 1, 0, 1)}, {"count": 2, "ranks_on": (0, 1, 1, 0)}


@pytest.mark.parametrize("kind, refused, placement, other_placement", [
    ("pickled", PICKLED, {"count": 2}, {"count": 1}), ("window", WINDOW, {"count": 2}, {"count": 1}),
    ("pickled", PICKLED, ROUND_ROBIN, PERMUTED)], ids=["pickled-1", "window-1", "pickled-permuted"])
def test_refused_on_another_placement(tmp_path, kind, refused, placement, other_placement):
    """A restart on 1 node, or on the same 2 nodes with other pairs of
    ranks sharing them, fails before the program resumes, naming what it
    cannot carry over, and leaves the checkpoint as it was: the same command
    on the old placement resumes and computes what the uninterrupted job
    computed (window: each rank's view of its node's first segment, from
    Shared_query(0), is that segment of the re-created window)."""
    program, args = "nodes.py", [150 if kind == "pickled" else 300, kind]
    ref = reference(tmp_path, program, NP, args)
    work = tmp_path / "work"
    work.mkdir()
    directory = work / "ckpt.d"
    history = []
    job = Job(pyckpt_mpirun(directory, program, NP, args, interval=0.3, extra=_nodes(work, **placement)), work,
              "run0")
    _checkpoint_and_kill(job, work, random.Random(kind), history)
    latest = latest_checkpoint(directory)
    other = Job(pyckpt_mpirun(directory, program, NP, args, extra=_nodes(work, **other_placement)), work,
                "other_placement")
    assert other.wait() != 0, f"the restart on {other_placement} succeeded:\n{other.describe()}"
    assert re.search(refused, other.stderr) and "restart on the placement of the checkpoint" in other.stderr, \
        other.describe()
    assert START_MARK not in other.stderr, other.describe()
    assert latest_checkpoint(directory) == latest
    resumed = Job(pyckpt_mpirun(directory, program, NP, args, interval=0.3, extra=_nodes(work, **placement)), work,
                  "run1")
    assert resumed.wait() == 0, resumed.describe()
    assert not re.search(NOTICE, resumed.stderr), resumed.describe()
    check_same_as_reference(ref, resumed, work, history, 1)


def _inspect(directory):
    result = subprocess.run(cli("inspect", str(directory)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
