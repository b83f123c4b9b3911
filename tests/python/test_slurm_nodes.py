"""An mpi4py job under sbatch that resumes on another number of nodes (issue
10): 4 ranks on 2 nodes, checkpointed and requeued at the batch shell's
SIGUSR1 (sent at once with `scancel --batch --signal=USR1`, as in
test_slurm_srun.py), resumed by Slurm's next start of the same script on 1
node, requeued again and resumed on 4 nodes; it finishes with stdout and
per-rank files byte-identical to an uninterrupted run, and each checkpoint
says on which nodes its ranks ran.

The test cluster (slurm_cluster.LocalCluster) has one slurmd (Debian's Slurm
could run several on this host, doc/slurm.md "Not done yet"), so the nodes
are simulated inside the one-node allocation
the way test_mpi_placement.py simulates them: the batch script gives mpirun a
hostfile of made-up node names, picked by SLURM_RESTART_COUNT (standing for
an allocation of another size), and tools/local-node-agent.sh as Open MPI's
launcher agent. Open MPI's Slurm launcher and allocation are switched off
for it (`--mca plm rsh --mca ras ^slurm`): they would start one daemon per
Slurm node, and refuse node names that are not in the allocation.

programs/mpi/nodes.py uses a node-local communicator (Split_type) every
step, which each resumed run re-creates on its placement.
"""
import os
import re
import subprocess
import time
from pathlib import Path

from conftest import PYTHON
from mpi_job_harness import PROGRAMS, cli, read_outputs
from slurm_jobs import RANK_ENVIRONMENT, BatchJob, Reference, cluster_fixture

AGENT = Path(__file__).resolve().parents[2] / "tools" / "local-node-agent.sh"
PROGRAM = PROGRAMS / "nodes.py"
RANKS = 4
NODES_PER_RUN = [2, 1, 4]
STEPS = 600  # 0.02 s or more a step: the first two runs are signalled after 50 steps each
RECREATED = (r"pyckpt_mpi: rank \d+: \d+ node-local communicator\(s\) \(MPI_Comm_split_type\) "
             r"re-created on this placement with other members")

# slurm/mpirun.sbatch (its #SBATCH lines given to sbatch by the test) with
# the simulated nodes of the allocation that SLURM_RESTART_COUNT stands for.
SCRIPT = """#!/bin/bash
echo "pyckpt-app: job $SLURM_JOB_ID, run $((${{SLURM_RESTART_COUNT:-0}} + 1)), nodes $SLURM_JOB_NODELIST" >&2
hostfile=hosts.${{SLURM_RESTART_COUNT:-0}}
exec pyckpt mpirun --slurm-requeue --max-restarts 3 --dir ckpt --interval 600 \\
    --hostfile "$hostfile" --mca plm rsh --mca ras ^slurm --mca plm_rsh_agent {agent} \\
    --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo --mca mpi_yield_when_idle 1 \\
    -np "$SLURM_NTASKS" {python} {program} {steps}
"""

cluster = cluster_fixture()


def _hostfile(work, run, nodes):
    """hosts.<run>: RANKS ranks on `nodes` made-up nodes, named node0...
    (slots=RANKS/nodes: see test_mpi_placement.py for why they yield)."""
    (work / f"hosts.{run}").write_text("".join(f"node{n} slots={RANKS // nodes}\n" for n in range(nodes)))


def _placement(nodes):
    """What `pyckpt inspect` prints for RANKS ranks placed in order on `nodes` nodes."""
    per_node = RANKS // nodes
    return "; ".join(f"node{n}: " + (f"ranks {n * per_node}-{(n + 1) * per_node - 1}" if per_node > 1 else f"rank {n}")
                     for n in range(nodes))


def _steps_done(work):
    out = work / "out.0"
    return out.read_text().count("\n") if out.exists() else 0


def _checkpoints(directory):
    """The committed checkpoints, oldest first."""
    return sorted(directory.glob("ckpt.*.h5"))  # ckpt.<epoch, zero-padded>.h5


def _pyckpt(*args):
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=120, env=os.environ)


def test_requeued_job_resumes_on_another_node_count(cluster, tmp_path):
    """2 nodes -> SIGUSR1: checkpoint, requeue -> 1 node -> SIGUSR1 -> 4
    nodes, to the end; the output is that of an uninterrupted run."""
    work = tmp_path / "job"
    work.mkdir()
    for run, nodes in enumerate(NODES_PER_RUN):
        _hostfile(work, run, nodes)
    script = work / "job.sh"
    script.write_text(SCRIPT.format(agent=AGENT, python=PYTHON, program=PROGRAM, steps=STEPS))
    job = BatchJob(cluster, work, script, ["-n", RANKS, "-t", 10, "--requeue", "--open-mode=append",
                                           "--signal=B:USR1@60"], RANK_ENVIRONMENT)
    ref = Reference(tmp_path, PROGRAM, RANKS, [STEPS])
    job.requeue_on_signal(len(NODES_PER_RUN) - 1, lambda j: _steps_done(work), 50)
    ref_stdout, ref_outputs = ref.outputs()
    print(f"\nnode-count job {job.id}: runs on {NODES_PER_RUN} nodes, {job.restarts} requeues, "
          f"{time.monotonic() - job.started:.0f} s from sbatch to completion")
    job.check_resumed_after_requeues(2, ref_stdout)
    # Each resumed run re-created every rank's node-local communicator on its placement.
    assert len(re.findall(RECREATED, job.stderr)) == 2 * RANKS, job.describe()
    assert read_outputs(work) == ref_outputs
    assert (work / "ckpt" / "complete").exists()
    # The two checkpoints, taken on 2 nodes and on 1, say so.
    checkpoints = _checkpoints(work / "ckpt")
    assert len(checkpoints) == 2, checkpoints
    for restart, (checkpoint, nodes) in enumerate(zip(checkpoints, NODES_PER_RUN)):
        inspected = _pyckpt("inspect", "--no-verify", str(checkpoint))
        assert inspected.returncode == 0, inspected.stderr
        assert f"placement: {_placement(nodes)} (" in inspected.stdout, inspected.stdout
        assert f"slurm_restart_count: {restart}" in inspected.stdout, inspected.stdout
