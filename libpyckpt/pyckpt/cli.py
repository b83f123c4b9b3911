"""The `pyckpt` command-line tool (also `python3 -m pyckpt`).

Each subcommand is a small function taking the parsed arguments and returning
the exit status; errors of pyckpt become one clear line on stderr and exit 2.
"""
import argparse
import os
import sys

from .errors import CheckpointError


def _cmd_inspect(args):
    from .inspect import inspect_lines
    lines, ok = inspect_lines(args.path, verify=not args.no_verify)
    print("\n".join(lines))
    return 0 if ok in (None, True) else 1


def _cmd_ls(args):
    from .inspect import list_lines
    print("\n".join(list_lines(args.directory)))
    return 0


def _cmd_verify(args):
    from . import _core
    reader = _core.Reader(args.path)
    results = reader.verify()
    bad = [(name, msg) for name, ok, msg in results if not ok]
    for name, msg in bad:
        print(f"{reader.file}: {name}: {msg}", file=sys.stderr)
    print(f"{reader.file}: {len(results) - len(bad)} dataset(s) ok, {len(bad)} failed")
    return 1 if bad else 0


def _cmd_preload_path(_args):
    from . import _core
    print(os.path.join(_core.library_dir(), "libpyckpt_mpi.so"))
    return 0


def _reexec_with_hash_seed(seed):
    """Runs this command again in a fresh interpreter whose str hashes use
    `seed`: set and dict-of-set orders of a resumed program must be those of the
    original run, and the seed is fixed only at interpreter start."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONHASHSEED=str(seed))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pyckpt", *sys.argv[1:]], env)


def _cmd_run(args):
    from . import process
    if os.environ.get("PYTHONHASHSEED") in (None, "", "random"):
        _reexec_with_hash_seed(int.from_bytes(os.urandom(4), "little"))
    if not os.path.isfile(args.script):
        raise CheckpointError(f"{args.script}: no such script")
    process.configure(os.path.abspath(args.dir), args.keep, args.interval, args.signal, not args.sync)
    process.run_script(args.script, args.args)
    return 0


def _cmd_restart(args):
    from . import process
    reader = process.open_checkpoint(args.path)
    seed = reader.attributes.get("hash_seed", "random")
    if seed != "random" and os.environ.get("PYTHONHASHSEED") != seed:
        _reexec_with_hash_seed(seed)
    process.restart(reader)
    return 0


def _signal_name(text):
    import signal
    name = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
    if name not in signal.Signals.__members__:
        raise argparse.ArgumentTypeError(f"unknown signal {text!r}")
    return name


def build_parser():
    parser = argparse.ArgumentParser(prog="pyckpt", description="Checkpoint/restart for Python HPC applications.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run an unmodified script with preemptive checkpoints")
    p.add_argument("--dir", default=os.environ.get("PYCKPT_DIR", "pyckpt.d"),
                   help="checkpoint directory (default $PYCKPT_DIR, else ./pyckpt.d)")
    p.add_argument("--interval", type=float, metavar="SECONDS", help="checkpoint every SECONDS at a safe point")
    p.add_argument("--signal", type=_signal_name, default="SIGUSR1", metavar="SIGNAME",
                   help="checkpoint when the process receives this signal (default SIGUSR1)")
    p.add_argument("--keep", type=int, default=2, metavar="K", help="committed checkpoints kept (default 2)")
    p.add_argument("--sync", action="store_true",
                   help="commit each checkpoint before the script goes on (default: a forked writer commits it)")
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("restart", help="resume a process from its latest (or a given) checkpoint")
    p.add_argument("path", metavar="DIR_OR_FILE", nargs="?", default=os.environ.get("PYCKPT_DIR", "pyckpt.d"))
    p.set_defaults(func=_cmd_restart)

    p = sub.add_parser("inspect", help="show what a checkpoint holds and verify its checksums")
    p.add_argument("path", metavar="FILE_OR_DIR", help="a checkpoint file, or a directory (its latest)")
    p.add_argument("--no-verify", action="store_true", help="do not read the data to verify checksums")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("ls", help="list the committed checkpoints of a directory")
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(func=_cmd_ls)

    p = sub.add_parser("verify", help="verify every checksum of a checkpoint (exit 1 on a mismatch)")
    p.add_argument("path", metavar="FILE_OR_DIR")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("preload-path", help="print the path of libpyckpt_mpi.so for LD_PRELOAD")
    p.set_defaults(func=_cmd_preload_path)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CheckpointError as e:
        print(f"pyckpt {args.command}: {e}", file=sys.stderr)
        return 2
