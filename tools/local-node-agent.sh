#!/bin/sh
# An Open MPI launcher agent (--mca plm_rsh_agent) for simulated nodes: Open
# MPI calls it as `agent HOST COMMAND...` to start its daemon on HOST; this
# runs COMMAND on this machine instead. With a hostfile of made-up names
# (nodea slots=2, nodeb slots=2) every name is a node to Open MPI: ranks
# placed on different names are on different nodes (Split_type(COMM_TYPE_SHARED)
# separates them), all on one machine. doc/mpi-jobs.md, "Simulated nodes".
# Each node gets a temporary directory of its own: the daemons of one machine
# otherwise create the same session directory (/tmp/ompi.HOST.UID/jf.N) at
# once, and one of them fails ("mkdir ... File exists").
# Inside a Slurm job (simulated nodes in a one-node allocation) each name is
# a Slurm node too: slurmd sets SLURMD_NODENAME on every node, the name a
# checkpoint records as where a rank ran (`pyckpt inspect`, "placement").
if [ -n "$SLURMD_NODENAME" ]; then
    export SLURMD_NODENAME="$1"
fi
node_tmp="${TMPDIR:-/tmp}/pyckpt-node.$(id -u).$1"
mkdir -p "$node_tmp"
export TMPDIR="$node_tmp"
shift
exec /bin/sh -c "$*"
