#!/usr/bin/env bash
# The whole test suite: installs what is missing, configures, builds, runs CTest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PYCKPT_BUILD_DIR:-$root/build}

"$root/tools/build.sh"
cd "$build"
# Two tests at a time; no two MPI job tests and no two Slurm tests run at once (RESOURCE_LOCK mpi_jobs and slurm, tests/python/CMakeLists.txt).
ctest --output-on-failure --timeout 600 -j2 "$@"
