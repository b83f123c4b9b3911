"""`pyckpt stats DIR`: what each committed checkpoint of a directory cost,
per checkpoint and per rank: size, pause, write time and throughput, as a
table, as JSON, or as a chart (--plot, matplotlib imported only then).

Everything comes from attributes and dataset descriptions the writer
recorded (doc/format.md, "Timings"); nothing is unpickled and no data is
read. A file that fails authentication shows its size only, from its header
read with plain reads, unless --trust.

The pause is what the program saw: the rank was stopped for seconds_stopped
until the write began (capture, and the fork of a forked writer), and an
inline writer (MPI jobs, `pyckpt run --sync`, pyckpt.checkpoint()) keeps it
stopped while it prepares and writes, seconds_prepare + seconds_write; an
asynchronous MPI checkpoint (`pyckpt mpirun --async`) only while it
exchanges descriptors and copies its data, seconds_prepare (a thread wrote
the copy, seconds_write, while the program went on). The final fsync and
renames come after the file is sealed and are in neither.
"""
import math
import os

from . import _core
from .errors import AuthenticationError, CheckpointError, CheckpointFileError
from .inspect import format_time, human_bytes


def _rank_payload(reader, rank):
    """Bytes of data rank `rank` wrote: its datasets and its slabs of the
    global arrays (together, the file's bytes_total)."""
    own = sum(d["bytes"] for d in reader.datasets(rank))
    slabs = sum(math.prod(s["count"]) * g["dtype"].itemsize
                for g in reader.global_arrays() for s in g["slabs"] if s["rank"] == rank)
    return own + slabs


def _rate(size, seconds):
    return size / seconds if seconds else None


def _rank_stats(reader, rank, mode):
    attrs = reader.rank_attributes(rank)
    payload = _rank_payload(reader, rank)
    write = attrs.get("seconds_write")  # absent in checkpoints of older pyckpt versions
    prepare = attrs.get("seconds_prepare")
    stopped = attrs.get("seconds_stopped")
    pause = None
    if stopped is not None and write is not None:
        pause = stopped + {"forked": 0.0, "async": prepare or 0.0}.get(mode, (prepare or 0.0) + write)
    return {"rank": rank, "bytes": payload, "seconds_stopped": stopped, "seconds_prepare": prepare,
            "seconds_write": write, "seconds_pause": pause, "bytes_per_second": _rate(payload, write)}


def checkpoint_stats(path, trust=False):
    """The statistics of the checkpoint file `path` as a dict (the `--json`
    form of one checkpoint)."""
    try:
        reader = _core.Reader(path, trust=trust)
    except AuthenticationError as exc:
        header = _core.check_header(path)
        return {"file": os.path.basename(path), "epoch": header["epoch"], "world_size": header["world_size"],
                "bytes": header["file_size"], "authenticated": False, "reason": str(exc), "ranks": []}
    attrs = reader.attributes
    mode = attrs.get("write_mode")  # absent in checkpoints of older pyckpt versions
    ranks = [_rank_stats(reader, rank, mode) for rank in range(reader.world_size)]
    pauses = [r["seconds_pause"] for r in ranks]
    write = attrs.get("seconds_write")
    return {"file": os.path.basename(reader.file), "epoch": reader.epoch, "world_size": reader.world_size,
            "authenticated": bool(reader.header["authenticated"]), "created_unix": attrs.get("created_unix"),
            "trigger": attrs.get("trigger"), "write_mode": mode, "bytes": os.path.getsize(reader.file),
            "payload_bytes": attrs.get("bytes_total"),
            "seconds_pause": max(pauses) if None not in pauses else None,
            "seconds_prepare": attrs.get("seconds_prepare"), "seconds_write": write,
            "bytes_per_second": _rate(attrs.get("bytes_total"), write), "ranks": ranks}


def directory_stats(directory, trust=False):
    """checkpoint_stats() of every committed checkpoint of `directory`, oldest first."""
    if not os.path.isdir(directory):
        raise CheckpointFileError(f"{directory}: no such checkpoint directory")
    return [checkpoint_stats(e["path"], trust) for e in _core.CheckpointDir(directory).list()]


def _seconds(value):
    return "-" if value is None else f"{value:.4f} s"


def _throughput(value):
    return "-" if value is None else f"{human_bytes(value)}/s"


_COLUMNS = f"{'epoch':>8}  {'rank':>4}  {'size':>10}  {'pause':>10}  {'write':>10}  {'throughput':>13}  notes"


def table_lines(stats):
    """The table of `pyckpt stats`: per checkpoint a row `all` (file size,
    the longest pause, the slowest rank's write, payload over that write),
    then one row per rank (its payload, pause, write, throughput)."""
    lines = [_COLUMNS]
    for c in stats:
        if not c["authenticated"] and not c["ranks"]:
            lines.append(f"{c['epoch']:>8}  {'all':>4}  {human_bytes(c['bytes']):>10}  {'-':>10}  {'-':>10}  "
                         f"{'-':>13}  NOT AUTHENTICATED, size from its header only (--trust reads it)")
            continue
        notes = [f"{c['file']}", f"{c['write_mode'] or 'writer not recorded'}", f"{c['trigger']}"]
        if c["created_unix"] is not None:
            notes.append(format_time(c["created_unix"]))
        if not c["authenticated"]:
            notes.append("NOT AUTHENTICATED (--trust)")
        lines.append(f"{c['epoch']:>8}  {'all':>4}  {human_bytes(c['bytes']):>10}  {_seconds(c['seconds_pause']):>10}  "
                     f"{_seconds(c['seconds_write']):>10}  {_throughput(c['bytes_per_second']):>13}  "
                     + ", ".join(notes))
        for r in c["ranks"]:
            lines.append(f"{'':>8}  {r['rank']:>4}  {human_bytes(r['bytes']):>10}  {_seconds(r['seconds_pause']):>10}  "
                         f"{_seconds(r['seconds_write']):>10}  {_throughput(r['bytes_per_second']):>13}")
    lines.append("size: the file (all) and each rank's data; pause: the program stopped for the checkpoint "
                 "(all: the longest); write: the slowest rank's (all) and each rank's; doc/format.md, Timings")
    return lines


def plot(stats, path):
    """Writes a chart of `stats` to `path` (PNG, or any format matplotlib
    knows by the suffix): pause and write time per rank and checkpoint, and
    each checkpoint's size."""
    try:
        import matplotlib
    except ImportError:
        raise CheckpointError("--plot draws with matplotlib, which this Python does not import "
                              "(Debian: apt-get install python3-matplotlib)") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    shown = [c for c in stats if c["ranks"]]
    figure, (times, sizes) = pyplot.subplots(2, 1, sharex=True, figsize=(8, 6), constrained_layout=True)
    for key, marker, label in (("seconds_pause", "o", "pause"), ("seconds_write", "x", "write")):
        points = [(c["epoch"], r[key]) for c in shown for r in c["ranks"] if r[key] is not None]
        if points:
            times.scatter(*zip(*points), marker=marker, label=f"{label} (one mark per rank)")
    times.set_ylabel("seconds")
    times.set_title(f"pyckpt checkpoints: {len(stats)} committed")
    times.legend()
    sizes.bar([c["epoch"] for c in stats], [c["bytes"] / 2**20 for c in stats])
    sizes.set_ylabel("file size (MiB)")
    sizes.set_xlabel("epoch")
    sizes.xaxis.set_major_locator(MaxNLocator(integer=True))
    try:
        figure.savefig(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot write the chart: {exc}") from exc
    finally:
        pyplot.close(figure)
