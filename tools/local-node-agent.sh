#!/bin/sh
# An Open MPI launcher agent (--mca plm_rsh_agent) for simulated nodes: Open
# MPI calls it as `agent HOST COMMAND...` to start its daemon on HOST; this
# runs COMMAND on this machine instead. With a hostfile of made-up names
# (nodea slots=2, nodeb slots=2) every name is a node to Open MPI: ranks
# placed on different names are on different nodes (Split_type(COMM_TYPE_SHARED)
# separates them), all on one machine. doc/mpi-jobs.md, "Simulated nodes".
shift
exec /bin/sh -c "$*"
