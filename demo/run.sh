#!/usr/bin/env bash
# The main job: a 4-rank mpi4py simulation (demo/heat.py, which knows nothing
# of pyckpt) run under `pyckpt mpirun` with a checkpoint every second; one
# rank is killed with SIGKILL mid-run; the same command resumes the job from
# the latest checkpoint; its final result is compared with an uninterrupted
# run. Installs what is missing, configures and builds first (into ./build,
# or $PYCKPT_BUILD_DIR). Checkpoints and logs stay in $build/demo (or
# $PYCKPT_DEMO_DIR) afterwards.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PYCKPT_BUILD_DIR:-$root/build}
echo "== 0. installing missing Debian packages, configuring and building into $build"
build_log=$(mktemp)
if ! "$root/tools/build.sh" >"$build_log" 2>&1; then
  tail -50 "$build_log"
  echo "DEMO FAILED: the build failed (full log: $build_log)"
  exit 1
fi
rm -f "$build_log"

pyckpt=$build/bin/pyckpt
python=$(sed -n '1s/^#!//p' "$pyckpt")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# 4 ranks on few cores: let waiting ranks yield the CPU.
mpi_opts=(--oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -np 4)
work=${PYCKPT_DEMO_DIR:-$build/demo}
rm -rf "$work"
mkdir -p "$work"
cd "$work"
echo "pyckpt demo: 1-D heat diffusion (demo/heat.py), 4 MPI ranks, checkpointed every second"
echo "build: $build   checkpoints and logs: $work"

echo "== 1. uninterrupted reference run (plain mpirun, no pyckpt)"
mpirun "${mpi_opts[@]}" "$python" "$root/demo/heat.py" --out "$work/reference.npy" | tee "$work/reference.log"

echo "== 2. the same program under pyckpt; one rank is killed with SIGKILL after the 2nd checkpoint"
job=("$pyckpt" mpirun --dir "$work/ckpt" --interval 1 "${mpi_opts[@]}" "$root/demo/heat.py" --out "$work/result.npy")
echo "\$ ${job[*]}"
"${job[@]}" > "$work/run1.log" 2>&1 &
pid=$!
until [[ -e "$work/ckpt/ckpt.00000002.h5" ]]; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/run1.log"; echo "DEMO FAILED: the job ended before its 2nd checkpoint"; exit 1; }
  sleep 0.1
done
sleep 0.5  # into the next interval: work done after the checkpoint is lost by the kill
victim=$(pgrep -f "^$python $root/demo/heat.py" | tail -1 || true)
if [[ -z "$victim" ]]; then
  cat "$work/run1.log"
  echo "DEMO FAILED: the job ended before a rank could be killed (this machine is faster than the demo expects: raise --steps in demo/heat.py)"
  exit 1
fi
victim_rank=$(tr '\0' '\n' < "/proc/$victim/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
kill -KILL "$victim"
status=0
wait "$pid" || status=$?
grep -E "^step" "$work/run1.log" || true
echo "-> killed rank ${victim_rank:-?} (pid $victim) with SIGKILL; mpirun ended the job with exit status $status"
if [[ $status -eq 0 ]]; then echo "DEMO FAILED: the job was expected to die"; exit 1; fi
echo "committed checkpoints left by the killed job (pyckpt ls):"
"$pyckpt" ls "$work/ckpt"
epochs_before=$(readlink "$work/ckpt/latest" | sed 's/^ckpt\.0*\([0-9][0-9]*\)\.h5$/\1/')

echo "== 3. what the latest checkpoint holds (pyckpt inspect, abridged)"
"$pyckpt" inspect --no-verify "$work/ckpt" | grep -E "^checkpoint|^  epoch|trigger|^  rank|File \"|channel" | head -30

echo "== 4. the same command again: every rank resumes from the latest checkpoint"
echo "\$ ${job[*]}"
"${job[@]}" 2>&1 | tee "$work/run2.log" | grep -vE "^--|^ |^$" || true

echo "== 5. result check and figures"
PYTHONPATH="$build/python" "$python" - "$work" "$epochs_before" <<'PY'
import sys, numpy as np
from pyckpt import _core
work, before = sys.argv[1], int(sys.argv[2] or 0)
ref, got = np.load(f"{work}/reference.npy"), np.load(f"{work}/result.npy")
same = ref.shape == got.shape and np.array_equal(ref, got)
print(f"reference rod: {ref.size} cells, total heat {ref.sum():.9e}")
print(f"restarted rod: {got.size} cells, total heat {got.sum():.9e}  -> {'bit-identical' if same else 'DIFFERENT'}")
entries = _core.list_checkpoints(f"{work}/ckpt")
seconds = nbytes = 0.0
for e in entries:
    a = _core.Reader(e["path"]).attributes
    seconds += a.get("seconds_prepare", 0) + a.get("seconds_write", 0)
    nbytes += e["bytes"]
last = max(e["epoch"] for e in entries)
print(f"checkpoints taken: {before} before the kill, {last - before} after the restart; "
      f"each {nbytes / len(entries) / 2**20:.1f} MiB for 4 ranks, written in {seconds / len(entries):.3f} s "
      f"({nbytes / seconds / 1e9:.2f} GB/s)")
sys.exit(0 if same else 1)
PY
echo "DEMO OK: the killed and restarted job ends with exactly the uninterrupted run's result"
echo "checkpoints kept in $work/ckpt (latest -> $(readlink "$work/ckpt/latest")); logs in $work/*.log"
