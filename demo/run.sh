#!/usr/bin/env bash
# The main job: a 4-rank MPI simulation checkpointed every 50 steps, one rank
# killed with SIGKILL mid-run, the job started again from the latest
# checkpoint, and its final result compared with an uninterrupted run.
# Installs what is missing, configures and builds first (into ./build, or
# $PYCKPT_BUILD_DIR). Checkpoints and logs stay in $build/demo (or
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

python=$(sed -n '1s/^#!//p' "$build/bin/pyckpt")
export PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun=(mpirun --oversubscribe --bind-to none -np 4)
# Kept after the demo, so the checkpoints can be looked at; replaced by the next run.
work=${PYCKPT_DEMO_DIR:-$build/demo}
rm -rf "$work"
mkdir -p "$work"
app=("$python" "$root/demo/heat.py" --steps 400 --every 50 --step-sleep 0.01)
echo "pyckpt demo: 1-D heat diffusion, 4 MPI ranks, 400 steps, a checkpoint every 50 steps"
echo "build: $build   checkpoints and logs: $work"

echo "== 1. uninterrupted reference run"
"${mpirun[@]}" "${app[@]}" --every 0 --dir "$work/ref.ckpt" | tee "$work/ref.out"

echo "== 2. checkpointed run; one rank is killed with SIGKILL after the 3rd checkpoint"
"${mpirun[@]}" "${app[@]}" --dir "$work/ckpt" > "$work/run1.out" 2>&1 &
job=$!
until [[ -e "$work/ckpt/ckpt.00000003.h5" ]]; do
  kill -0 "$job" 2>/dev/null || { cat "$work/run1.out"; echo "DEMO FAILED: the job ended before its 3rd checkpoint"; exit 1; }
  sleep 0.1
done
victim=$(pgrep -f "demo/heat.py.*$work/ckpt" | tail -1)
victim_rank=$(tr '\0' '\n' < "/proc/$victim/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
kill -KILL "$victim"
status=0
wait "$job" || status=$?
grep -E "^step" "$work/run1.out" || true
echo "-> killed rank ${victim_rank:-?} (pid $victim) with SIGKILL; mpirun ended the job with exit status $status"
if [[ $status -eq 0 ]]; then echo "DEMO FAILED: the job was expected to die"; exit 1; fi
echo "committed checkpoints left by the killed job (pyckpt ls $work/ckpt):"
"$build/bin/pyckpt" ls "$work/ckpt"

echo "== 3. the same command again: resumes from the latest checkpoint"
"${mpirun[@]}" "${app[@]}" --dir "$work/ckpt" | tee "$work/run2.out"

echo "== 4. what the latest checkpoint holds (pyckpt inspect $work/ckpt)"
"$build/bin/pyckpt" inspect "$work/ckpt"

echo "== 5. result check"
ref=$(grep '^final' "$work/ref.out")
got=$(grep '^final' "$work/run2.out")
echo "reference: $ref"
echo "restarted: $got"
if [[ "$ref" != "$got" ]]; then echo "DEMO FAILED: the restarted job's result differs from the uninterrupted run"; exit 1; fi
echo "DEMO OK: the killed and restarted job ends with exactly the uninterrupted run's result"
echo "checkpoints kept in $work/ckpt (latest -> $(readlink "$work/ckpt/latest" 2>/dev/null || echo '?')); logs in $work/*.out"
