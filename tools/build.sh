#!/usr/bin/env bash
# Configures and builds pyckpt into ./build (or $PYCKPT_BUILD_DIR).
# Installs missing Debian packages first. Extra arguments go to cmake's
# configure step, e.g. -DPython3_EXECUTABLE=/path/to/python3.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PYCKPT_BUILD_DIR:-$root/build}

"$root/tools/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$build" -j "$(nproc)"
