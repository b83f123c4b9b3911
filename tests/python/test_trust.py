"""Authenticated checkpoints and private files (issue 13, "Authentication and
privacy"; doc/security.md).

A checkpoint holds pickles, and restarting it runs what they say. The attack
these tests make is the one the checksums could not stop: replace the pickled
process state by one that runs a command, recompute every checksum as
doc/format.md describes (so that a reader trusting checksums accepts it), and
restart. The command's side effect -- a marker file -- must never appear.

The corruption campaign flips, overwrites and truncates bytes all over a
checkpoint file: every mutant must be refused with a message naming the file,
and none may crash the reading process (HDF5 parsing damaged metadata used to
segfault in H5HG_read). PYCKPT_CORRUPTION_CASES sets the number of mutants
(default 300); PYCKPT_TEST_SEED the seed, printed with every failing case.
"""
import json
import os
import pickle
import random
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import xxhash

from conftest import BUILD_DIR, PYCKPT_CLI, PYTHON
from mpi_job_harness import Job, cli, kill_random_rank, latest_checkpoint, pyckpt_mpirun, wait_for_checkpoint

SEED = int(os.environ.get("PYCKPT_TEST_SEED", "1"))
CORRUPTION_CASES = int(os.environ.get("PYCKPT_CORRUPTION_CASES", "300"))

APP = textwrap.dedent("""\
    import numpy as np
    import pyckpt

    field = np.arange(300_000, dtype=np.float64)   # 2.4 MB: an aligned dataset
    total = 0
    for i in range(6):
        total += i
        if i == 3 and pyckpt.checkpoint():
            print("resumed")
    print("total", total, field.sum())
    """)


class _RunsCommand:
    """Unpickling it runs a shell command: what an attacker puts in a checkpoint."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _payload(marker):
    return pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=5)


def _env(key_file, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCKPT_")}
    env.update(PYTHONPATH=str(BUILD_DIR / "python"), PYCKPT_KEY_FILE=str(key_file), **extra)
    return env


def _pyckpt(args, cwd, env, check=None):
    proc = subprocess.run([PYTHON, str(PYCKPT_CLI), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    if check is not None:
        assert proc.returncode == check, f"pyckpt {args} exited {proc.returncode}, not {check}:\n" \
                                         f"{proc.stdout}\n{proc.stderr}"
    return proc


def _checkpointed_app(tmp_path, key_file):
    """Runs APP to its end with one checkpoint at i == 3; returns the directory."""
    (tmp_path / "app.py").write_text(APP)
    directory = tmp_path / "ckpt.d"
    _pyckpt(["run", "--sync", "--dir", directory, "app.py"], tmp_path, _env(key_file), check=0)
    return directory


def _checksums_as_documented(path):
    """What a reader trusting the checksums checks (doc/format.md, "Reading
    with h5py"): {dataset: whether its data matches its checksum}."""
    results = {}
    with h5py.File(path, "r") as f:
        for rank in f["ranks"]:
            for kind in ("blobs", "arrays"):
                for name, d in f[f"ranks/{rank}/{kind}"].items():
                    raw = np.asarray(d[()], dtype=d.dtype).tobytes()
                    results[d.name] = xxhash.xxh3_64_intdigest(raw) == d.attrs["checksum"]
    return results


def _replace_blob(path, dataset, data):
    """Replaces a blob's bytes and recomputes its checksum, as an attacker
    with h5py would."""
    with h5py.File(path, "r+") as f:
        attrs = dict(f[dataset].attrs)
        del f[dataset]
        new = f.create_dataset(dataset, data=np.frombuffer(data, dtype=np.uint8))
        for name, value in attrs.items():
            new.attrs[name] = value
        new.attrs["checksum"] = np.uint64(xxhash.xxh3_64_intdigest(data))


def _assert_payload_runs(tmp_path):
    """The payload is live: unpickled, it creates its marker (so a test in
    which the marker stays absent proves something)."""
    control = tmp_path / "control-marker"
    subprocess.run([PYTHON, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                   input=_payload(control), check=True, timeout=60)
    assert control.exists()
    control.unlink()


def test_payload_with_recomputed_checksums_is_refused_before_anything_runs(tmp_path):
    key = tmp_path / "key"
    directory = _checkpointed_app(tmp_path, key)
    latest = directory / latest_checkpoint(directory)
    marker = tmp_path / "PWNED"
    _assert_payload_runs(tmp_path)
    _replace_blob(latest, "ranks/0/blobs/process", _payload(marker))
    checks = _checksums_as_documented(latest)
    assert checks and all(checks.values()), f"the forgery does not pass the checksums: {checks}"

    env = _env(key)
    restart = _pyckpt(["restart", directory], tmp_path, env, check=2)
    assert not marker.exists(), "restart ran the payload"
    assert "resumed" not in restart.stdout
    message = restart.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"pyckpt restart: {latest}: fails authentication: it was altered or damaged"), message
    assert "HDF5 metadata" in message and "Refusing to restart it" in message and "nothing of this one was run" \
        in message, message

    for args in (["inspect", directory], ["inspect", "--trust", directory], ["verify", directory],
                 ["verify", "--trust", directory], ["ls", directory]):
        proc = _pyckpt(args, tmp_path, env)
        assert not marker.exists(), f"pyckpt {args} ran the payload"
        assert "Traceback" not in proc.stderr, proc.stderr
        text = proc.stdout + proc.stderr
        if args[0] == "ls":
            assert proc.returncode == 0 and "NO: altered" in text, text
        else:
            assert proc.returncode == 1 and "NOT AUTHENTICATED" in text, text
    inspect = _pyckpt(["inspect", directory], tmp_path, env).stdout
    assert "blob   process" in inspect and "attributes, stacks and values: not shown" in inspect, inspect


def test_checkpoint_made_with_another_key_is_refused(tmp_path):
    theirs, mine = tmp_path / "their.key", tmp_path / "my.key"
    directory = _checkpointed_app(tmp_path, theirs)
    latest = directory / latest_checkpoint(directory)
    _pyckpt(["ls", directory], tmp_path, _env(mine), check=0)  # creates nothing: ls only reads
    assert not mine.exists()
    restart = _pyckpt(["restart", directory], tmp_path, _env(mine), check=2)
    assert "no checkpoint key here" in restart.stderr and str(mine) in restart.stderr, restart.stderr
    # A key of one's own, which is not the one that wrote the file.
    subprocess.run([PYTHON, "-c", "from pyckpt import _core; _core.key_id(create=True)"], env=_env(mine), check=True)
    restart = _pyckpt(["restart", directory], tmp_path, _env(mine), check=2)
    their_id = json.loads(subprocess.run(
        [PYTHON, "-c", "import json; from pyckpt import _core; print(json.dumps(_core.key_id()))"],
        env=_env(theirs), capture_output=True, text=True, check=True).stdout)
    assert f"written with another key (key id {their_id}" in restart.stderr, restart.stderr
    assert "resumed" not in restart.stdout
    assert "NO: other key" in _pyckpt(["ls", directory], tmp_path, _env(mine), check=0).stdout
    header_only = _pyckpt(["inspect", directory], tmp_path, _env(mine), check=1).stdout
    assert "NOT AUTHENTICATED: written with another key" in header_only and "Traceback at" not in header_only
    trusted = _pyckpt(["inspect", "--trust", directory], tmp_path, _env(mine), check=1).stdout
    assert "NOT AUTHENTICATED (read because of --trust)" in trusted and "Traceback at the checkpoint" in trusted
    assert "checksums: 5 ok, 0 failed" in trusted, trusted  # process, frames.json, sources, two arrays
    # With the key that wrote it (--key-file), it restarts and finishes.
    resumed = _pyckpt(["restart", "--key-file", theirs, latest], tmp_path, _env(mine), check=0)
    assert resumed.stdout.splitlines() == ["resumed", "total 15 44999850000.0"], resumed.stdout


def test_tampered_metadata_attribute_is_refused(tmp_path):
    key = tmp_path / "key"
    directory = _checkpointed_app(tmp_path, key)
    latest = directory / latest_checkpoint(directory)
    env = _env(key)
    _pyckpt(["verify", directory], tmp_path, env, check=0)
    pristine = latest.read_bytes()
    for target, name, value in (("/", "hash_seed", "0"), ("ranks/0", "pid", 1),
                                ("ranks/0/arrays/a0", "checksum", np.uint64(0))):
        with h5py.File(latest, "r+") as f:
            f[target].attrs[name] = value
        verify = _pyckpt(["verify", directory], tmp_path, env, check=1)
        assert "fails authentication: it was altered" in verify.stdout, verify.stdout
        restart = _pyckpt(["restart", directory], tmp_path, env, check=2)
        assert "fails authentication" in restart.stderr and "resumed" not in restart.stdout, restart.stderr
        latest.write_bytes(pristine)
        _pyckpt(["verify", directory], tmp_path, env, check=0)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_directories_and_key_are_private_under_umask_022(tmp_path):
    config = tmp_path / "config"
    env = _env("unused", XDG_CONFIG_HOME=str(config))
    del env["PYCKPT_KEY_FILE"]
    (tmp_path / "app.py").write_text(APP)
    directory = tmp_path / "new" / "ckpt.d"
    umask_022 = lambda: os.umask(0o022)  # noqa: E731
    # The default, asynchronous commit: a forked writer and its marker.
    run = subprocess.run([PYTHON, str(PYCKPT_CLI), "run", "--dir", str(directory), "app.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300, preexec_fn=umask_022)
    assert run.returncode == 0, run.stderr
    key = config / "pyckpt" / "key"
    assert _mode(key) == 0o600 and _mode(key.parent) == 0o700 and _mode(config) == 0o700
    assert re.fullmatch(r"[0-9a-f]{64}\n", key.read_text())
    assert _mode(directory) == 0o700 and _mode(directory.parent) == 0o700
    files = sorted(p.name for p in directory.iterdir())
    assert files == [".lock", "ckpt.00000001.h5", "latest"], files
    assert _mode(directory / "ckpt.00000001.h5") == 0o600 and _mode(directory / ".lock") == 0o600
    requested = tmp_path / "requested"
    subprocess.run([PYTHON, str(PYCKPT_CLI), "request", str(requested)], env=env, check=True, preexec_fn=umask_022)
    assert _mode(requested) == 0o700 and _mode(requested / ".request") == 0o600
    # A key others can read is refused, with what to do.
    key.chmod(0o644)
    refused = _pyckpt(["restart", directory], tmp_path, env, check=2)
    assert "accessible by other users" in refused.stderr and f"chmod 600 {key}" in refused.stderr, refused.stderr


# --- corruption campaign ---------------------------------------------------------

_WORKER = textwrap.dedent("""\
    # Reads every mutant as a restart would: open (authenticate), read every
    # blob, read every array; prints one JSON line per case as it goes.
    import json, sys
    import numpy as np
    from pyckpt import CheckpointError, _core
    from pyckpt.container import load_array

    original = open(sys.argv[1], "rb").read()
    mutant = sys.argv[2]
    for line in sys.stdin:
        case = json.loads(line)
        data = bytearray(original)
        if case["kind"] == "truncate":
            del data[case["at"]:]
        else:
            data[case["at"]:case["at"] + len(case["bytes"])] = bytes(case["bytes"])
        with open(mutant, "wb") as f:
            f.write(data)
        try:
            reader = _core.Reader(mutant)
            for rank in range(reader.world_size):
                for d in reader.datasets(rank):
                    if d["kind"] == "blob":
                        reader.read_blob(rank, d["name"])
                    else:
                        load_array(reader, rank, d["name"])
            outcome, message = "accepted", ""
        except CheckpointError as exc:
            outcome, message = type(exc).__name__, str(exc)
        print(json.dumps({**case, "outcome": outcome, "message": message}), flush=True)
    """)


def _regions(path, env):
    """(header end, user block, dataset ranges) of a checkpoint file."""
    header = json.loads(subprocess.run(
        [PYTHON, "-c", f"import json; from pyckpt import _core; print(json.dumps(_core.check_header({str(path)!r})))"],
        env=env, capture_output=True, text=True, check=True).stdout)
    with open(path, "rb") as f:
        f.seek(8)
        header_end = 48 + int.from_bytes(f.read(8), "little")
    ranges = [(d["offset"], d["offset"] + d["bytes"]) for d in header["datasets"] if d["bytes"]]
    return header_end, header["user_block"], ranges


def _cases(path, env, count, rng):
    """Mutations spread over every part of the file: the header, the rest of
    the user block, HDF5's metadata, the data, and anywhere; plus truncations."""
    size = os.path.getsize(path)
    header_end, user_block, ranges = _regions(path, env)
    metadata = []
    at = user_block
    for lo, hi in sorted(ranges):
        metadata += range(at, lo)
        at = hi
    metadata += range(at, size)
    data = [rng.randrange(lo, hi) for lo, hi in ranges for _ in range(50)]
    pools = {"header": range(0, header_end), "user block": range(header_end, user_block), "metadata": metadata,
             "data": data, "anywhere": range(0, size)}
    cases = []
    for i in range(count):
        region = list(pools)[i % len(pools)] if i % 10 else "truncate"
        if region == "truncate":
            cases.append({"case": i, "region": region, "kind": "truncate", "at": rng.randrange(0, size)})
            continue
        at = rng.choice(pools[region])
        if i % 3:
            old = Path(path).read_bytes()[at]
            cases.append({"case": i, "region": region, "kind": "flip", "at": at, "bytes": [old ^ rng.randrange(1, 256)]})
        else:
            n = min(16, size - at)
            cases.append({"case": i, "region": region, "kind": "garbage", "at": at,
                          "bytes": [rng.randrange(256) for _ in range(n)]})
    return cases


def test_corruption_campaign_every_mutant_refused_none_crashes(tmp_path):
    key = tmp_path / "key"
    directory = _checkpointed_app(tmp_path, key)
    original = directory / latest_checkpoint(directory)
    env = _env(key)
    rng = random.Random(SEED)
    cases = _cases(original, env, CORRUPTION_CASES, rng)
    # Identical bytes are no mutation: make sure each case changes the file.
    raw = original.read_bytes()
    cases = [c for c in cases if c["kind"] == "truncate" or bytes(c["bytes"]) != raw[c["at"]:c["at"] + len(c["bytes"])]]
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    proc = subprocess.run([PYTHON, str(worker), str(original), str(tmp_path / "mutant.h5")], env=env,
                          input="".join(json.dumps(c) + "\n" for c in cases), capture_output=True, text=True,
                          timeout=1800)
    done = [json.loads(line) for line in proc.stdout.splitlines()]
    if proc.returncode != 0:
        crashed = cases[len(done)] if len(done) < len(cases) else None
        raise AssertionError(f"the reader died (status {proc.returncode}) on case {crashed} (seed {SEED}):\n"
                             f"{proc.stderr[-3000:]}")
    assert len(done) == len(cases)
    accepted = [c for c in done if c["outcome"] == "accepted"]
    assert not accepted, f"mutants accepted (seed {SEED}): {accepted[:5]}"
    unnamed = [c for c in done if "mutant.h5" not in c["message"]]
    assert not unnamed, f"refusals that do not name the file (seed {SEED}): {unnamed[:5]}"
    by_region = {}
    for c in done:
        by_region.setdefault(c["region"], set()).add(c["outcome"])
    print(f"{len(done)} mutants refused; outcomes by region: {by_region}")
    # The HDF5 parser never saw a damaged header or metadata: those are
    # refused by the header check, before HDF5 opens the file.
    for c in done:
        if c["region"] in ("header", "user block", "metadata"):
            assert c["outcome"] in ("AuthenticationError", "CheckpointFileError"), c

    # The CLI on a sample: one line naming the file, exit 1 or 2, no traceback.
    mutant = tmp_path / "cli-mutant.h5"
    for c in rng.sample(cases, 12):
        data = bytearray(raw)
        if c["kind"] == "truncate":
            del data[c["at"]:]
        else:
            data[c["at"]:c["at"] + len(c["bytes"])] = bytes(c["bytes"])
        mutant.write_bytes(data)
        for command in ("verify", "inspect", "restart"):
            out = _pyckpt([command, mutant], tmp_path, env)
            assert out.returncode in (1, 2), (c, command, out.returncode, out.stdout, out.stderr)
            assert "Traceback" not in out.stderr and str(mutant) in out.stdout + out.stderr, (c, command, out.stderr)


# --- an MPI job -----------------------------------------------------------------

def test_mpi_ranks_refuse_a_forged_rank_state_before_anything_runs(tmp_path):
    """Rank 1's process state of a 3-rank job replaced by a payload, checksums
    recomputed: the job's ranks refuse to resume, nothing runs, and the job
    ends (it does not hang)."""
    directory = tmp_path / "ckpt.d"
    args = ["ring.py", 3, [400]]
    job = Job(pyckpt_mpirun(directory, *args, interval=0.4), tmp_path, "run")
    first = wait_for_checkpoint(job, directory, None)
    wait_for_checkpoint(job, directory, first)
    kill_random_rank(job, directory, 3, random.Random(SEED), [])
    latest = directory / latest_checkpoint(directory)
    assert stat.S_IMODE(os.stat(latest).st_mode) == 0o600 and stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    marker = tmp_path / "PWNED"
    _assert_payload_runs(tmp_path)
    _replace_blob(latest, "ranks/1/blobs/process", _payload(marker))
    assert all(_checksums_as_documented(latest).values())

    # Refused before mpirun starts; the job resumes the older checkpoint,
    # which verifies (doc/process.md, "Fallback"), and finishes.
    resumed = Job(pyckpt_mpirun(directory, *args, interval=0.4), tmp_path, "resume")
    status = resumed.wait(timeout=120)
    assert status == 0, resumed.describe()
    assert not marker.exists(), f"a rank ran the payload:\n{resumed.describe()}"
    assert "program start" not in resumed.stderr, "a rank started the program over instead"
    assert f"refused {latest}" in resumed.stderr and "fails authentication" in resumed.stderr, resumed.describe()
    assert "resuming the older checkpoint" in resumed.stderr, resumed.describe()
