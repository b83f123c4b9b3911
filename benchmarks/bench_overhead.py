"""What `pyckpt run` costs a program between checkpoints, at start-up, and
under an interval shorter than its checkpoints (issues 11 and 12).

Each measurement pairs a plain `python3` run with the same program under
pyckpt, back to back, in an order that alternates from round to round (what
ran just before matters on a shared machine); ratios are medians of the
per-round ratios, so that each compares runs taken seconds apart. The load
average is printed before and after: on a loaded machine the figures mean
little.

* kernel/nbody, kernel/numpy_kernel: the wall and CPU time (process_time:
  all threads of the process, so a polling thread shows) a CPU-bound kernel
  takes, measured by the program itself (start-up excluded), plain vs
  `pyckpt run --interval 3600` (the triggers armed, no checkpoint due):
  speed ratio plain/pyckpt (target >= 0.98).
* startup: wall time of an empty script: `python3 empty.py`, `pyckpt run
  empty.py`, `pyckpt restart` of a checkpoint of it (target: <= 0.2 s above
  plain).
* binary-trees: wall time of an object-heavy program (the Benchmarks Game's
  binary-trees, tuples) plain and under `pyckpt run --interval 0.3`.

Run: /usr/bin/python3 benchmarks/bench_overhead.py [--rounds 7] [--pyckpt build/bin/pyckpt] [--only kernel]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = "/usr/bin/python3"
ROOT = Path(__file__).resolve().parent.parent

NBODY = '''
import sys, time
def combinations(l):
    return [(l[x], y) for x in range(len(l) - 1) for y in l[x + 1:]]
PI = 3.14159265358979323
SOLAR_MASS = 4 * PI * PI
DAYS_PER_YEAR = 365.24
BODIES = {
    "sun": ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], SOLAR_MASS),
    "jupiter": ([4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01],
                [1.66007664274403694e-03 * DAYS_PER_YEAR, 7.69901118419740425e-03 * DAYS_PER_YEAR,
                 -6.90460016972063023e-05 * DAYS_PER_YEAR], 9.54791938424326609e-04 * SOLAR_MASS),
    "saturn": ([8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01],
               [-2.76742510726862411e-03 * DAYS_PER_YEAR, 4.99852801234917238e-03 * DAYS_PER_YEAR,
                2.30417297573763929e-05 * DAYS_PER_YEAR], 2.85885980666130812e-04 * SOLAR_MASS),
    "uranus": ([1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01],
               [2.96460137564761618e-03 * DAYS_PER_YEAR, 2.37847173959480950e-03 * DAYS_PER_YEAR,
                -2.96589568540237556e-05 * DAYS_PER_YEAR], 4.36624404335156298e-05 * SOLAR_MASS),
    "neptune": ([1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01],
                [2.68067772490389322e-03 * DAYS_PER_YEAR, 1.62824170038242295e-03 * DAYS_PER_YEAR,
                 -9.51592254519715870e-05 * DAYS_PER_YEAR], 5.15138902046611451e-05 * SOLAR_MASS)}
SYSTEM = list(BODIES.values())
PAIRS = combinations(SYSTEM)
def advance(dt, n, bodies=SYSTEM, pairs=PAIRS):
    for i in range(n):
        for (([x1, y1, z1], v1, m1), ([x2, y2, z2], v2, m2)) in pairs:
            dx = x1 - x2
            dy = y1 - y2
            dz = z1 - z2
            mag = dt * ((dx * dx + dy * dy + dz * dz) ** (-1.5))
            b1m = m1 * mag
            b2m = m2 * mag
            v1[0] -= dx * b2m
            v1[1] -= dy * b2m
            v1[2] -= dz * b2m
            v2[0] += dx * b1m
            v2[1] += dy * b1m
            v2[2] += dz * b1m
        for (r, [vx, vy, vz], m) in bodies:
            r[0] += dt * vx
            r[1] += dt * vy
            r[2] += dt * vz
start, cpu = time.perf_counter(), time.process_time()
advance(0.01, int(sys.argv[1]))
print(time.perf_counter() - start, time.process_time() - cpu)
'''

NUMPY_KERNEL = '''
import sys, time
import numpy as np
grid = np.random.default_rng(1).random((512, 512))
start, cpu = time.perf_counter(), time.process_time()
for _ in range(int(sys.argv[1])):
    grid[1:-1, 1:-1] = 0.25 * (grid[:-2, 1:-1] + grid[2:, 1:-1] + grid[1:-1, :-2] + grid[1:-1, 2:])
    grid += np.sqrt(np.abs(np.sin(grid))) * 1e-3
print(time.perf_counter() - start, time.process_time() - cpu)
'''

# The Benchmarks Game's binary-trees (Python 3 #1), trees as nested tuples.
BINARY_TREES = '''
import sys
def make_tree(d):
    return (make_tree(d - 1), make_tree(d - 1)) if d else (None, None)
def check_tree(node):
    l, r = node
    return 1 if l is None else 1 + check_tree(l) + check_tree(r)
n = int(sys.argv[1])
max_depth = max(6, n)
stretch = max_depth + 1
print(f"stretch tree of depth {stretch}\\t check: {check_tree(make_tree(stretch))}")
long_lived = make_tree(max_depth)
for d in range(4, max_depth + 1, 2):
    iters = 2 ** (max_depth - d + 4)
    check = sum(check_tree(make_tree(d)) for _ in range(iters))
    print(f"{iters}\\t trees of depth {d}\\t check: {check}")
print(f"long lived tree of depth {max_depth}\\t check: {check_tree(long_lived)}")
'''


def env():
    e = dict(os.environ)
    e.pop("PYTHONHASHSEED", None)  # as a user runs it: `pyckpt run` picks (and records) a seed
    return e


def timed(cmd, cwd):
    """(wall seconds, stdout) of one run; fails loudly."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, proc.stdout


def paired(variants, rounds, measure):
    """variants: {name: cmd}. Runs each once per round, order rotating;
    returns {name: [value per round]}."""
    names = list(variants)
    values = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            values[name].append(measure(variants[name]))
    return values


def report(title, values, base, unit="s", higher_is_slower=True):
    print(f"\n{title}")
    for name, vals in values.items():
        line = f"  {name:<28} median {statistics.median(vals):8.3f} {unit}  (min {min(vals):.3f}, max {max(vals):.3f})"
        if name != base:
            ratios = [b / v if higher_is_slower else v / b for b, v in zip(values[base], vals)]
            diffs = [v - b for b, v in zip(values[base], vals)]
            line += f"  speed vs {base}: {statistics.median(ratios):.3f}x, +{statistics.median(diffs):.3f} {unit}"
        print(line)


def bench_kernels(work, pyckpt, rounds, nbody_steps, numpy_steps):
    for name, source, arg in (("nbody", NBODY, nbody_steps), ("numpy_kernel", NUMPY_KERNEL, numpy_steps)):
        script = work / f"{name}.py"
        script.write_text(source)
        variants = {"plain": [PYTHON, script, str(arg)],
                    "pyckpt run --interval 3600": [pyckpt, "run", "--dir", work / f"{name}.d", "--interval", "3600",
                                                   script, str(arg)]}
        runs = paired(variants, rounds, lambda cmd: [float(x) for x in timed(cmd, work)[1].split()])
        for i, what in enumerate(("wall", "CPU (all threads: process_time)")):
            values = {variant: [run[i] for run in per_round] for variant, per_round in runs.items()}
            report(f"kernel/{name}: kernel {what} time, measured by the program", values, "plain")


def bench_startup(work, pyckpt, rounds):
    empty = work / "empty.py"
    empty.write_text("")
    # A checkpoint of a program that is all but empty, to restart.
    tiny = work / "tiny.py"
    tiny.write_text("import pyckpt\npyckpt.checkpoint()\n")
    ckpt = work / "tiny.d"
    proc = subprocess.run([PYTHON, tiny], cwd=work, env={**env(), "PYCKPT_DIR": str(ckpt), "PYTHONHASHSEED": "0",
                                                          "PYTHONPATH": str(Path(pyckpt).parent.parent / "python")})
    if proc.returncode != 0:
        sys.exit("could not write the checkpoint to restart")
    variants = {"python3 empty.py": [PYTHON, empty],
                "pyckpt run empty.py": [pyckpt, "run", "--dir", work / "empty.d", empty],
                "pyckpt restart (seed set)": ["env", "PYTHONHASHSEED=0", pyckpt, "restart", ckpt],
                "pyckpt restart (re-exec)": [pyckpt, "restart", ckpt]}
    values = paired(variants, rounds, lambda cmd: timed(cmd, work)[0])
    report("startup: wall time of an empty program", values, "python3 empty.py")


def bench_binary_trees(work, pyckpt, rounds, depth):
    script = work / "binary_trees.py"
    script.write_text(BINARY_TREES)
    variants = {"plain": [PYTHON, script, str(depth)],
                "pyckpt run --interval 0.3": [pyckpt, "run", "--dir", work / "bt.d", "--interval", "0.3", script,
                                              str(depth)],
                "pyckpt run --interval 0.3 --sync": [pyckpt, "run", "--sync", "--dir", work / "bts.d", "--interval",
                                                     "0.3", script, str(depth)]}
    values = paired(variants, rounds, lambda cmd: timed(cmd, work)[0])
    report(f"binary-trees {depth}: wall time", values, "plain")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pyckpt", default=str(ROOT / "build" / "bin" / "pyckpt"))
    parser.add_argument("--only", choices=("kernel", "startup", "binary-trees"))
    parser.add_argument("--nbody-steps", type=int, default=100_000)
    parser.add_argument("--numpy-steps", type=int, default=500)
    parser.add_argument("--depth", type=int, default=16)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench_overhead.") as tmp:
        work = Path(tmp)
        if args.only in (None, "kernel"):
            bench_kernels(work, args.pyckpt, args.rounds, args.nbody_steps, args.numpy_steps)
        if args.only in (None, "startup"):
            bench_startup(work, args.pyckpt, args.rounds)
        if args.only in (None, "binary-trees"):
            bench_binary_trees(work, args.pyckpt, args.rounds, args.depth)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
