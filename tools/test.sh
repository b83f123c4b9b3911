#!/usr/bin/env bash
# The whole test suite: installs what is missing, configures, builds, runs CTest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PYCKPT_BUILD_DIR:-$root/build}

"$root/tools/build.sh"
cd "$build"
# Two tests at a time; the MPI job and Slurm tests are RUN_SERIAL (tests/python/CMakeLists.txt).
ctest --output-on-failure --timeout 600 -j2 "$@"
