"""Restart on another number of nodes (issue 10, "Different node counts"):
a job checkpointed on 2 nodes (2 ranks each) resumes on 4 nodes (1 rank
each) and on 1 node, with the same rank count. Nodes are simulated on this
machine: a hostfile of made-up names and tools/local-node-agent.sh as Open
MPI's launcher agent make each name a node to Open MPI (shared memory off
between them: TCP on localhost). programs/mpi/nodes.py uses a node-local
communicator (Split_type(COMM_TYPE_SHARED)) every step; the restarted job
re-creates it on the new placement, says so, and computes what the
uninterrupted job computed."""
import random
import re
import subprocess
from pathlib import Path

import pytest

from mpi_job_harness import Job, check_same_as_reference, cli, kill_random_rank, pyckpt_mpirun, reference, \
    wait_for_checkpoint

AGENT = Path(__file__).resolve().parents[2] / "tools" / "local-node-agent.sh"
NP = 4


def _nodes(tmp_path, count):
    """mpirun options placing NP ranks on `count` simulated nodes."""
    hostfile = tmp_path / f"hosts.{count}"
    hostfile.write_text("".join(f"node{n} slots={NP // count}\n" for n in range(count)))
    return ["--hostfile", str(hostfile), "--mca", "plm_rsh_agent", str(AGENT), "--mca", "btl", "self,tcp",
            "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"]


# Known to hang (2026-12-03): after the restart on 4 or on 1 node the resumed
# ranks deadlock. Likely cause: ranks re-enter collectives on a node-local
# communicator whose new members had reached different points in the
# old communicators' collective sequences; not run until that is fixed.
@pytest.mark.xfail(run=False, reason="the resumed job deadlocks on the re-created node-local communicator")
@pytest.mark.parametrize("nodes_after", [4, 1])
def test_resume_on_another_node_count(tmp_path, nodes_after):
    program, args = "nodes.py", [300]
    ref = reference(tmp_path, program, NP, args)
    work = tmp_path / "work"
    work.mkdir()
    directory = work / "ckpt.d"
    job = Job(pyckpt_mpirun(directory, program, NP, args, interval=0.3, extra=_nodes(work, 2)), work, "run0")
    first = wait_for_checkpoint(job, directory, None)
    wait_for_checkpoint(job, directory, first)
    history = []
    kill_random_rank(job, directory, NP, random.Random(nodes_after), history)
    shown = _inspect(directory)
    assert "node-local communicators (MPI_Comm_split_type" in shown and re.search(r"node_local_comms=\d", shown), shown
    resumed = Job(pyckpt_mpirun(directory, program, NP, args, interval=0.3, extra=_nodes(work, nodes_after)),
                  work, "run1")
    assert resumed.wait() == 0, resumed.describe()
    notices = re.findall(r"pyckpt_mpi: rank \d+: \d+ node-local communicator\(s\) \(MPI_Comm_split_type\) "
                         r"re-created on this placement with other members", resumed.stderr)
    assert len(notices) == NP, resumed.describe()
    check_same_as_reference(ref, resumed, work, history, 1)


def _inspect(directory):
    result = subprocess.run(cli("inspect", str(directory)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
