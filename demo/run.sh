#!/usr/bin/env bash
# The main job: a 4-rank MPI simulation checkpointed every 50 steps, one rank
# killed with SIGKILL mid-run, the job started again from the latest
# checkpoint, and its final result compared with an uninterrupted run.
# Installs what is missing, configures and builds first.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PYCKPT_BUILD_DIR:-$root/build}
"$root/tools/build.sh" >/dev/null

python=$(sed -n '1s/^#!//p' "$build/bin/pyckpt")
export PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun=(mpirun --oversubscribe --bind-to none -np 4)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
app=("$python" "$root/demo/heat.py" --steps 400 --every 50 --step-sleep 0.01)

echo "== 1. uninterrupted reference run"
"${mpirun[@]}" "${app[@]}" --every 0 --dir "$work/ref.ckpt" | tee "$work/ref.out"

echo "== 2. checkpointed run; one rank is killed with SIGKILL after the 3rd checkpoint"
"${mpirun[@]}" "${app[@]}" --dir "$work/ckpt" > "$work/run1.out" 2>&1 &
job=$!
until [[ -e "$work/ckpt/ckpt.00000003.h5" ]]; do sleep 0.1; done
victim=$(pgrep -f "demo/heat.py.*$work/ckpt" | tail -1)
echo "killing rank process $victim"
kill -KILL "$victim"
wait "$job" && { echo "the job was expected to die"; exit 1; } || true
cat "$work/run1.out" | grep -E "^step" || true
"$build/bin/pyckpt" ls "$work/ckpt"

echo "== 3. the same command again: resumes from the latest checkpoint"
"${mpirun[@]}" "${app[@]}" --dir "$work/ckpt" | tee "$work/run2.out"

echo "== 4. what the latest checkpoint holds"
"$build/bin/pyckpt" inspect "$work/ckpt"

echo "== 5. result check"
ref=$(grep '^final' "$work/ref.out")
got=$(grep '^final' "$work/run2.out")
echo "reference: $ref"
echo "restarted: $got"
if [[ "$ref" == "$got" ]]; then echo "DEMO OK: restarted job matches the uninterrupted run"; else echo "DEMO FAILED"; exit 1; fi
