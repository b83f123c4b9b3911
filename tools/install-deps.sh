#!/usr/bin/env bash
# Installs the Debian packages pyckpt builds and tests with, and only those
# that are missing, so that a second run costs a dpkg query and nothing else.
# There is no PyPI here: every Python dependency is a Debian python3-* package
# living in the system interpreter /usr/bin/python3.
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-openmpi-dev hdf5-tools
  libxxhash-dev libssl-dev
  python3-dev python3-numpy python3-mpi4py python3-h5py-mpi python3-xxhash python3-pytest
  libgtest-dev libgmock-dev libbenchmark-dev
  slurm-wlm munge    # tests/python/test_slurm*.py start a local Slurm (doc/slurm.md)
  libslurm-dev       # spank.h, for the SPANK plugin slurm/spank/ (built only where it is found)
  python3-matplotlib # `pyckpt stats --plot`
  lmod               # tests/python/test_install.py loads the installed modulefile with Lmod
  dpkg-dev           # dpkg-shlibdeps: the Depends of the Debian package (cpack -G DEB, packaging/)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: ${#missing[@]} of ${#packages[@]} packages missing: ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update"
"${sudo_cmd[@]}" apt-get update -qq
# Not quiet: a fresh machine installs several hundred packages, and each
# "Unpacking"/"Setting up" line shows how far it got (no minutes of silence).
echo "install-deps: apt-get install (one line per package unpacked and set up)"
# (pipefail: the pipeline fails if apt-get does; awk always succeeds.)
if ! "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" 2>&1 \
    | awk '/^(Get:|Unpacking|Setting up|E:)/ { print; fflush() }'; then
  echo "install-deps: apt-get install failed" >&2
  exit 1
fi
echo "install-deps: done"
