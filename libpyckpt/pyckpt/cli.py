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


def build_parser():
    parser = argparse.ArgumentParser(prog="pyckpt", description="Checkpoint/restart for Python HPC applications.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
