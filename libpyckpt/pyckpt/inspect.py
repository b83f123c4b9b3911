"""Human-readable views of checkpoints: `pyckpt inspect`, `pyckpt ls`, `pyckpt verify`.

What is shown of an authenticated checkpoint is read through
pyckpt._core.Reader, so it is what a restart would read, checksums included.
None of these views unpickles anything. A checkpoint that fails
authentication (another user's key, altered, damaged) is not handed to HDF5
at all: they show what its header says, read with plain reads
(_core.check_header), marked "not authenticated"; `--trust` reads it through
HDF5 anyway, for a user who knows where the file came from.
"""
import datetime
import json
import os

from . import _core
from .container import dtype_of
from .errors import AuthenticationError, CheckpointError, CheckpointFileError
from .mpi import CHANNEL_BLOB
from .state import SUMMARY_BLOB


def human_bytes(n):
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def format_time(unix):
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _frame_lines(summary, arrays):
    """A rank's stack like a Python traceback, each frame with its locals, then
    the arrays by the variables that hold them."""
    lines = ["    Traceback at the checkpoint (most recent call last):"]
    for f in summary["frames"]:
        lines.append(f'      File "{f["file"]}", line {f["line"]}, in {f["function"]}')
        for name, value in f["locals"].items():
            lines.append(f"        {name} = {value}")
    lines.extend(_output_lines(summary.get("output")))
    for key, refs in sorted(summary.get("arrays", {}).items()):
        d = arrays.get(key)
        if d is not None:
            lines.append(f"      array {', '.join(refs)}: {dtype_of(d)} {_shape(d['shape'])} "
                         f"{human_bytes(d['bytes'])} (dataset {key})")
    return lines


def _output_lines(output):
    """What the program had written to stdout and stderr at the checkpoint:
    with per-run output files, the first that many bytes of this run's file
    followed by the restarted run's file make the uninterrupted output."""
    if output is None:  # written before pyckpt recorded it
        return []
    lines = []
    for name in ("stdout", "stderr"):
        stream = output.get(name)
        if stream is None:
            lines.append(f"    {name} at the checkpoint: not a regular file (not counted)")
        else:
            lines.append(f"    {name} at the checkpoint: {stream['bytes']} bytes written to {stream['file'] or '?'}")
    return lines


_CHANNEL_SHOWN = 20  # messages listed per rank; the rest are summed up


def _channel_lines(messages):
    """The MPI messages that were in flight to this rank at the cut (recorded
    as channel state, delivered to the matching receives after a restart)."""
    if not messages:
        return ["    channel: no messages in flight"]
    lines = [f"    channel: {len(messages)} message(s) in flight, delivered to the matching receives on restart"]
    for m in messages[:_CHANNEL_SHOWN]:
        comm = "COMM_WORLD" if m["comm"] == 1 else f"comm {m['comm']:#x}"
        lines.append(f"      {comm}: {m['source']} -> {m['dest']}, tag {m['tag']}, {human_bytes(m['bytes'])}")
    if len(messages) > _CHANNEL_SHOWN:
        rest = messages[_CHANNEL_SHOWN:]
        lines.append(f"      ... and {len(rest)} more ({human_bytes(sum(m['bytes'] for m in rest))})")
    return lines


def _dataset_line(d, status):
    if d["kind"] == "blob":
        what = f"blob   {d['name']:<24} {human_bytes(d['bytes']):>10}"
    else:
        dtype = dtype_of(d).str if dtype_of(d).names is None else "structured"
        what = (f"array  {d['name']:<24} {human_bytes(d['bytes']):>10}  {dtype} {_shape(d['shape'])}"
                f"{' F-order' if d['order'] == 'F' else ''}")
    return f"    {what}  [{status}]"


# Root attributes shown in this order first; the rest follow sorted.
_HEADLINE_ATTRS = ("format", "format_version", "epoch", "world_size", "created_unix", "byte_order", "trigger",
                   "argv", "python_version", "numpy_version", "hosts", "slurm_job_id", "slurm_restart_count",
                   "slurm_nodelist")


# Rank attributes left to `pyckpt stats`, which puts them together (doc/format.md, Timings).
_RANK_TIMINGS = ("seconds_stopped", "seconds_prepare", "seconds_write")


def _ranges(numbers):
    """[0, 1, 2, 5] -> '0-2,5'."""
    spans = []
    for n in numbers:
        if spans and spans[-1][1] == n - 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


def placement(reader):
    """Which ranks ran where when the checkpoint was taken: 'node1: ranks
    0-1; node2: ranks 2-3' (the Slurm node name if there was one, else the
    host), or None for a checkpoint that records no hosts. A restart may
    place them otherwise: nothing in a checkpoint depends on it."""
    where = {}
    for rank in range(reader.world_size):
        attrs = reader.rank_attributes(rank)
        node = attrs.get("slurm_node") or attrs.get("host")
        if node is None:
            return None
        where.setdefault(node, []).append(rank)
    return "; ".join(f"{node}: rank{'s' if len(ranks) > 1 else ''} {_ranges(ranks)}" for node, ranks in where.items())


def _slurm_summary(attrs):
    """'job 12, restart 1, nodes n[1-2]' for a checkpoint taken in a Slurm job, else ''."""
    if "slurm_job_id" not in attrs:
        return ""
    return (f"job {attrs['slurm_job_id']}, restart {attrs.get('slurm_restart_count', 0)}, "
            f"nodes {attrs.get('slurm_nodelist') or '?'}")


def _header_lines(header):
    """What a header says that could not be authenticated: sizes and names
    only, from plain reads."""
    lines = [f"  epoch {header['epoch']}, {header['world_size']} rank(s), {human_bytes(header['file_size'])}, "
             f"written {format_time(header['created_unix'])}, key id {header['key_id']} (unauthenticated header)"]
    for rank in range(header["world_size"]):
        datasets = [d for d in header["datasets"] if d["rank"] == rank]
        lines.append(f"  rank {rank}:" + ("" if datasets else " (no datasets)"))
        for d in datasets:
            lines.append(f"    {d['kind']:<6} {d['path'].rsplit('/', 1)[-1]:<24} {human_bytes(d['bytes']):>10}")
    for d in header["datasets"]:
        if d["kind"] == "global":
            lines.append(f"  global array {d['path'].rsplit('/', 1)[-1]}: {human_bytes(d['bytes'])}")
    lines.append("  attributes, stacks and values: not shown, the file is not authenticated "
                 "(`pyckpt inspect --trust` reads them if you know where the file came from)")
    return lines


def _unauthenticated_inspect_lines(path, error, verify):
    """`pyckpt inspect` of a file that fails authentication: its header only."""
    header = _core.check_header(path)
    lines = [f"checkpoint {header['file']}", f"  NOT AUTHENTICATED: {_reason(header, error)}"]
    lines.extend(_header_lines(header))
    if verify and header["intact"]:
        results = _core.verify_raw(path)
        bad = [(name, msg) for name, ok, msg in results if not ok]
        lines.append(f"  data: {len(results) - len(bad)} dataset(s) match the header, {len(bad)} failed "
                     f"(which proves nothing while the header is not authenticated)")
        lines.extend(f"    {name}: {msg}" for name, msg in bad)
    return lines


def _reason(header, error):
    """Why a file is not authenticated, without the file name the error starts with."""
    text = str(error)
    return text[len(header["file"]) + 2:] if text.startswith(header["file"] + ": ") else text


def authentication_line(reader):
    """How an open reader's file checked: authenticated, or trusted by --trust."""
    header = reader.header
    if header["authenticated"]:
        return f"  authenticated with key id {header['key_id']}"
    return (f"  NOT AUTHENTICATED (read because of --trust): "
            f"{header['authentication_message'] or header['integrity_message']}")


def inspect_lines(path, verify=True, trust=False):
    """The report of `pyckpt inspect` as a list of lines, and whether every
    checksum verified (None when not verified; False when the file is not
    authenticated)."""
    try:
        reader = _core.Reader(path, trust=trust)
    except AuthenticationError as exc:
        return _unauthenticated_inspect_lines(path, exc, verify), False
    attrs = reader.attributes
    status = {}
    all_ok = None
    if verify:
        results = reader.verify()
        status = {name: ("checksum ok" if ok else f"BAD: {msg}") for name, ok, msg in results}
        all_ok = all(ok for _, ok, _ in results)

    lines = [f"checkpoint {reader.file}",
             f"  epoch {reader.epoch}, {reader.world_size} rank(s), {human_bytes(os.path.getsize(reader.file))}"
             + (f", written {format_time(attrs['created_unix'])}" if "created_unix" in attrs else ""),
             authentication_line(reader)]
    if not reader.header["authenticated"]:
        all_ok = False
    for key in _HEADLINE_ATTRS + tuple(sorted(k for k in attrs if k not in _HEADLINE_ATTRS)):
        if key in attrs and key not in ("epoch", "world_size", "created_unix"):
            lines.append(f"  {key}: {attrs[key]}")
    where = placement(reader) if reader.world_size > 1 else None
    if where is not None:
        lines.append(f"  placement: {where} (a restart may place ranks on other nodes)")
    if any("node_local_comms" in reader.rank_attributes(rank) for rank in range(reader.world_size)):
        lines.append("  node-local communicators (MPI_Comm_split_type, node_local_comms below): a restart on another "
                     "placement re-creates them with the ranks that share a node then")
    for rank in range(reader.world_size):
        rank_attrs = reader.rank_attributes(rank)
        extra = ", ".join(f"{k}={v}" for k, v in sorted(rank_attrs.items()) if k not in _RANK_TIMINGS)
        lines.append(f"  rank {rank}" + (f" ({extra})" if extra else "") + ":")
        datasets = reader.datasets(rank)
        if any(d["kind"] == "blob" and d["name"] == SUMMARY_BLOB for d in datasets):
            summary = json.loads(reader.read_blob(rank, SUMMARY_BLOB))
            lines.extend(_frame_lines(summary, {d["name"]: d for d in datasets if d["kind"] == "array"}))
        if any(d["kind"] == "blob" and d["name"] == CHANNEL_BLOB for d in datasets):
            lines.extend(_channel_lines(json.loads(reader.read_blob(rank, CHANNEL_BLOB))))
        if not datasets:
            lines.append("    (no datasets)")
        for d in datasets:
            full = _core.dataset_path(rank, d["kind"], d["name"])
            lines.append(_dataset_line(d, status.get(full, "not verified")))
    for g in reader.global_arrays():
        lines.append(f"  global array {g['name']}: {g['dtype']} {_shape(g['shape'])}, "
                     f"{len(g['slabs'])} slab(s) from rank(s) {sorted({s['rank'] for s in g['slabs']})}")
    if verify:
        bad = [name for name, text in status.items() if not text.startswith("checksum ok")]
        lines.append(f"  checksums: {len(status) - len(bad)} ok, {len(bad)} failed")
        lines.extend(f"    {name}: {status[name]}" for name in bad)
    return lines, all_ok


def list_lines(directory):
    """The report of `pyckpt ls`: one line per committed checkpoint."""
    if not os.path.isdir(directory):
        raise CheckpointFileError(f"{directory}: no such checkpoint directory")
    entries = _core.CheckpointDir(directory).list()
    if not entries:
        return [f"{directory}: no committed checkpoints"]
    lines = [f"{'epoch':>8}  {'written':<23}  {'size':>10}  {'authenticated':<17}  file"]
    for e in entries:
        lines.append(f"{e['epoch']:>8}  {format_time(e['mtime']):<23}  {human_bytes(e['bytes']):>10}  "
                     f"{_authenticity(e['path']):<17}  "
                     f"{os.path.basename(e['path'])}{'  <- latest' if e['latest'] else ''}")
        lines.extend(f"          {line}" for line in _job_lines(e["path"]))
    return lines


def _job_lines(path):
    """Under a checkpoint's line in `pyckpt ls`: the Slurm job it was taken
    in and where its ranks ran (nothing for a serial checkpoint outside Slurm)."""
    try:
        reader = _core.Reader(path)
    except CheckpointError as exc:
        return [f"unreadable: {exc}"]
    lines = []
    slurm = _slurm_summary(reader.attributes)
    if slurm:
        lines.append(f"slurm {slurm}")
    where = placement(reader) if reader.world_size > 1 or slurm else None
    if where is not None:
        lines.append(f"placement {where}")
    return lines


def _authenticity(path):
    """The `authenticated` column of `pyckpt ls`: from the header and HDF5's
    metadata, read without HDF5 (the data is not read)."""
    try:
        header = _core.check_header(path)
    except CheckpointFileError:
        return "NO: unreadable"
    if not header["intact"]:
        return "NO: altered"
    return {"authenticated": "yes", "no key": "NO: no key", "other key": "NO: other key",
            "altered": "NO: altered"}[header["authentication"]]
