"""The `pyckpt` command-line tool (also `python3 -m pyckpt`). scripts/pyckpt.in
is only its launcher; the commands live here, in the package, so that
`python3 -m pyckpt` and the installed command are one program.

Each subcommand is a small function taking the parsed arguments and returning
the exit status; errors of pyckpt become one clear line on stderr and exit 2.
Once `run` or `restart` has handed control to the program, its exceptions
(CheckpointErrors and SystemExit included) propagate to Python's top level,
which reports them as in an uninterrupted run.
"""
import argparse
import json
import math
import os
import stat
import sys

from . import launch, lock, settings
from .errors import CheckpointError, CheckpointFileError

EXIT_STATUSES = """exit status:
  0  done (run/restart: the program's own status once it runs)
  1  inspect/verify: the checkpoint fails authentication or a checksum
  2  a pyckpt error, printed as one line: a wrong command line, a checkpoint
     refused or unusable, a directory in use by another job, a failed write
  the program's status: once `run`/`restart` has started the program, its
     exit status and tracebacks are its own, as without pyckpt"""


def _cmd_inspect(args):
    from .inspect import inspect_lines
    lines, ok = inspect_lines(args.path, verify=not args.no_verify, trust=args.trust)
    print("\n".join(lines))
    return 0 if ok in (None, True) else 1


def _cmd_ls(args):
    from .inspect import list_lines
    print("\n".join(list_lines(args.directory)))
    return 0


def _cmd_stats(args):
    from . import stats
    found = stats.directory_stats(args.directory, trust=args.trust)
    if args.json:
        import json
        print(json.dumps(found, indent=1))
    elif found:
        print("\n".join(stats.table_lines(found)))
    else:
        print(f"{args.directory}: no committed checkpoints")
    if args.plot:
        stats.plot(found, args.plot)
        print(f"pyckpt stats: chart of {len(found)} checkpoint(s) written to {args.plot}", file=sys.stderr)
    return 0


def _cmd_verify(args):
    """Exit 0 only for a file restart would accept: authenticated, every
    checksum right."""
    from . import _core
    from .errors import AuthenticationError
    try:
        reader = _core.Reader(args.path, trust=args.trust)
    except AuthenticationError as exc:
        header = _core.check_header(args.path)
        bad = [(name, msg) for name, ok, msg in _core.verify_raw(args.path) if not ok] if header["intact"] else []
        for name, msg in bad:
            print(f"{header['file']}: {name}: {msg}", file=sys.stderr)
        print(f"{exc}\n{header['file']}: NOT AUTHENTICATED: restart refuses it"
              + (f" ({len(bad)} dataset(s) also differ from its header)" if bad else ""))
        return 1
    results = reader.verify()
    bad = [(name, msg) for name, ok, msg in results if not ok]
    for name, msg in bad:
        print(f"{reader.file}: {name}: {msg}", file=sys.stderr)
    header = reader.header
    authenticated = (f"authenticated with key id {header['key_id']}" if header["authenticated"] else
                     f"NOT AUTHENTICATED (read because of --trust: {header['authentication_message']})")
    print(f"{reader.file}: {authenticated}; {len(results) - len(bad)} dataset(s) ok, {len(bad)} failed")
    return 1 if bad or not header["authenticated"] else 0


def _preload():
    """LD_PRELOAD of a checkpointed rank: the interposer, then the library
    that attaches a Python rank to it at MPI_Init."""
    from . import _core
    # _core finds them relative to itself (PACKAGE/../../../libpyckpt_mpi.so
    # when installed): shown, and preloaded, without the detour.
    return ":".join(os.path.normpath(path) for path in _core.preload_libraries())


def _cmd_preload_path(_args):
    print(_preload())
    return 0


def _interpreter_options():
    """The options this interpreter was started with (-u, -X dev, ...)."""
    return list(launch.parse_python(sys.orig_argv[1:]).options)


# Set by _reexec in an interpreter it gives a recorded hash secret: if that
# one's secret is still not the recorded one, another exec would not help.
_SECRET_GIVEN_VARIABLE = "PYCKPT_HASH_SECRET_GIVEN"


def _reexec(hash_seed, interpreter_options=None, hash_secret=None):
    """Runs this command again in a fresh interpreter whose str hashes use
    `hash_seed` (set and dict-of-set orders of a resumed program must be
    those of the original run, and the seed is fixed only at interpreter
    start), started with `interpreter_options` (default: this one's).
    hash_seed "random" with hash_secret (hex): the interpreter gets that
    secret itself, through libpyckpt_hash_secret.so."""
    from . import _core
    env = dict(os.environ)
    if hash_seed != "random":
        env["PYTHONHASHSEED"] = str(hash_seed)
    elif hash_secret is not None:
        env.pop("PYTHONHASHSEED", None)
        env["PYCKPT_HASH_SECRET"] = hash_secret
        env[_SECRET_GIVEN_VARIABLE] = "1"
        env["LD_PRELOAD"] = ":".join(p for p in (env.get("LD_PRELOAD"), _core.hash_secret_library()) if p)
    _exec_again(env, interpreter_options)


def _exec_again(env, interpreter_options=None):
    """Replaces this process by `python3 -m pyckpt` with this command's
    arguments, the environment `env`, and `interpreter_options` (default:
    this interpreter's)."""
    if interpreter_options is None:
        interpreter_options = _interpreter_options()
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(path if path[:1] == [package_parent] else [package_parent, *path])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *interpreter_options, "-m", "pyckpt", *sys.argv[1:]], env)


def _reexec_for_checkpoint_of(reader, interpreter_options=None):
    """Before resuming `reader`'s checkpoint: run this command again if this
    interpreter's hash secret is not the one the checkpoint was written with
    (its PYTHONHASHSEED, or the random secret it recorded), or
    (interpreter_options given: a rank of an MPI job) if it was not started
    with the options of the checkpointed rank."""
    from . import _core
    seed = reader.attributes.get("hash_seed", "random")
    secret = reader.attributes.get("hash_secret")  # absent in checkpoints of older pyckpt versions
    if seed != "random":
        wrong_secret = os.environ.get("PYTHONHASHSEED") != seed
    else:
        wrong_secret = secret is not None and _core.hash_secret().hex() != secret
    wrong_options = interpreter_options is not None and list(interpreter_options) != _interpreter_options()
    if os.environ.pop(_SECRET_GIVEN_VARIABLE, None) is not None and wrong_secret:
        raise CheckpointError(f"{reader.file}: the restarted interpreter did not get the hash secret of the "
                              f"checkpointed one ({sys.executable} may not read it with getrandom(); "
                              f"doc/process.md); set orders would differ from the original run's")
    if wrong_secret or wrong_options:
        _reexec(seed, interpreter_options, secret)


def _cmd_run(args):
    # Before anything heavy is imported (pyckpt._core loads HDF5 and MPI
    # libraries): the first interpreter only decides on the seed.
    if os.environ.get("PYTHONHASHSEED") in (None, "", "random"):
        _reexec(int.from_bytes(os.urandom(4), "little"))
    from . import session
    if not os.path.isfile(args.script):
        raise CheckpointError(f"{args.script}: no such script")
    session.configure(os.path.abspath(settings.directory(args.dir)), args.keep, args.interval, args.signal,
                      not args.sync)
    session.run_script(args.script, args.args)
    return 0


def _cmd_restart(args):
    from . import session
    if args.mpirun is not None:
        return _restart_mpirun(args.mpirun)
    path = settings.directory(args.path)
    # A directory's newest checkpoint is read once: its data checksums are
    # verified as the restore reads it, before the program resumes.
    reader = session.open_checkpoint(path, verify_data=False)
    _reexec_for_checkpoint_of(reader)
    try:
        session.restart(reader)
    except CheckpointFileError as exc:
        if session.program_started() or not os.path.isdir(path):
            raise
        # Half restored (modules imported, __main__ replaced): the restart
        # runs again in a fresh process, without that file.
        refused = [*settings.refused_checkpoints(), (reader.file, str(exc))]
        _exec_again({**os.environ, "PYCKPT_REFUSED": json.dumps(refused)})
    return 0


def _cmd_resume_rank(args):
    from . import mpi, session
    command = args.program[1:] if args.program[:1] == ["--"] else args.program
    python = launch.parse_python(command)
    if python is None:
        raise CheckpointError(f"`{' '.join(command)}` runs no program to resume")
    # Every rank opens the one file `pyckpt mpirun` chose; without it (a
    # hand-written mpirun line), the directory's `latest` or nothing.
    reader = session.open_checkpoint(settings.resume_file() or settings.resume_directory(), world_size=None,
                                     fallback=False)
    # The rank runs with the interpreter options of the checkpointed one
    # (-u, -W, -X, -O...): the preload library's exec put them after
    # `-m pyckpt resume-rank --`.
    _reexec_for_checkpoint_of(reader, python.options)
    mpi.resume_rank(reader, command)
    return 0


def _cmd_request(args):
    from . import triggers
    if os.path.exists(args.directory) and not os.path.isdir(args.directory):
        raise CheckpointError(f"{args.directory}: not a directory; give the checkpoint directory of the running "
                              f"job (its --dir)")
    triggers.request(args.directory)
    print(f"pyckpt: checkpoint requested from the job checkpointing into {os.path.abspath(args.directory)}")
    return 0


def _launch(command, slurm_requeue=None, environment=None):
    """Replaces this process with the job's launcher (`command`: mpirun or
    srun with its arguments), run in `environment` (default: this one's).
    An exec, not a child: signals sent to `pyckpt mpirun` (`kill -USR1 $!`, a
    batch system's warning signal) must reach the launcher, which forwards
    them to the ranks; a Python parent would die of SIGUSR1 and leave the
    launcher running without it. The exception: slurm_requeue, the arguments
    of `--slurm-requeue`, under which this process stays the launcher's
    parent and handles the signal (pyckpt.slurm)."""
    environment = dict(os.environ if environment is None else environment)
    if slurm_requeue is not None:
        from . import slurm
        return slurm.supervise(command, environment, **slurm_requeue)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, environment)
    except OSError as exc:
        raise CheckpointError(f"cannot run {command[0]}: {exc.strerror}") from exc


def _mpirun(mpirun_args, program, environment, slurm_requeue=None):
    """mpirun, the interposer preloaded and `environment` exported to the
    ranks (-x), run by _launch."""
    command = ["mpirun"]
    if os.geteuid() == 0 and "--allow-run-as-root" not in mpirun_args:
        command.append("--allow-run-as-root")
    environment = dict(environment, LD_PRELOAD=_preload())
    for name, value in environment.items():
        command += ["-x", f"{name}={value}"]
    return _launch([*command, *mpirun_args, *program], slurm_requeue)


def _job_settings(args):
    """What `pyckpt mpirun` and `pyckpt srun` give the ranks from their
    options (PYCKPT_* variables), and the supervisor's arguments under
    --slurm-requeue (None without). A directory whose run finished is refused
    here, or by the supervisor (a Slurm restart of a finished job is no
    error)."""
    args.dir = settings.directory(args.dir)
    env = settings.job_environment(args.dir, args.keep, args.interval, args.signal, args.asynchronous)
    from . import slurm
    requeue = None
    if args.slurm_requeue:
        max_restarts = slurm.DEFAULT_MAX_RESTARTS if args.max_restarts is None else args.max_restarts
        requeue = {"directory": args.dir, "signal_name": args.signal, "max_restarts": max_restarts}
        env["PYCKPT_END_FILE"] = slurm.end_file(os.path.abspath(args.dir))
    elif args.max_restarts is not None:
        raise CheckpointError("--max-restarts bounds the requeues of --slurm-requeue: give both")
    else:
        slurm.refuse_completed(os.path.abspath(args.dir))
    lock.hold(args.dir, pass_to_exec=True)  # the launcher holds it until the job ends
    return env, requeue


def _cmd_mpirun(args):
    command = launch.parse_mpirun(args.mpirun_args)
    env, requeue = _job_settings(args)
    reader = _checkpoint_to_resume(args.dir) if command.python is not None else None
    if reader is not None and list(reader.attributes.get("command", [])) == list(command.program[1:]):
        # the ranks will resume it (its command is a rank's orig_argv[1:])
        env.update(_position_job_input(reader), PYCKPT_RESUME_FILE=os.path.abspath(reader.file))
    return _mpirun(command.mpirun_options, command.program, env, requeue)


def _checkpoint_to_resume(directory):
    """The Reader of the checkpoint a job launched into `directory` resumes,
    chosen once before the launcher starts (the newest that verifies, see
    session.open_checkpoint), so that every rank opens the same file; None
    when the job starts afresh."""
    from . import _core, session
    if not settings.restart_enabled() or _core.CheckpointDir(os.path.abspath(directory)).latest() is None:
        return None
    return session.open_checkpoint(directory, world_size=None)


def _cmd_srun(args):
    from . import slurm
    env, requeue = _job_settings(args)
    reader = _checkpoint_to_resume(args.dir)
    if reader is not None:
        env["PYCKPT_RESUME_FILE"] = os.path.abspath(reader.file)
    command, environment = slurm.srun_command(args.srun_args, env, _preload())
    return _launch(command, requeue, environment)


def _position_job_input(reader):
    """Before mpirun starts a job that resumes `reader`'s checkpoint: puts the
    job's input (this process's stdin, which mpirun forwards to rank 0)
    where rank 0 had read it, if it is a regular file, and returns what
    tells rank 0 so (settings.stdin_offset()). Otherwise rank 0 reads its
    input from the beginning and says so (pyckpt.state)."""
    position = int(reader.rank_attributes(0).get("stdin_position", 0))
    try:
        regular = position > 0 and stat.S_ISREG(os.fstat(0).st_mode)
    except OSError:  # no stdin
        regular = False
    if not regular:
        return {}
    os.lseek(0, position, os.SEEK_SET)
    return {"PYCKPT_STDIN_OFFSET": str(position)}


def _restart_mpirun(tokens):
    """`pyckpt restart --mpirun [MPIRUN_OPTIONS] DIR`: the original command of
    the checkpoint in DIR, run again; its ranks resume (PYCKPT_RESTART=auto)."""
    from . import session
    if not tokens or not os.path.isdir(tokens[-1]):
        raise CheckpointError("restart --mpirun needs the checkpoint directory as its last argument")
    directory = tokens[-1]
    lock.hold(directory, pass_to_exec=True)  # mpirun holds it until the job ends
    reader = session.open_checkpoint(directory, world_size=None)
    command = list(reader.attributes.get("command", []))
    if not command:
        raise CheckpointError(f"{reader.file}: not written by an MPI job (no command recorded); "
                              f"use `pyckpt restart {directory}`")
    # The restarted job checkpoints as the original did (interval, signal, --async).
    env = settings.job_environment(directory, reader.attributes.get("keep", settings.DEFAULT_KEEP),
                                   reader.attributes.get("interval") or None, reader.attributes.get("signal") or None,
                                   bool(reader.attributes.get("asynchronous", 0)))
    env.update(PYCKPT_RESTART="auto", PYTHONHASHSEED=reader.attributes.get("hash_seed", "random"))
    if env["PYTHONHASHSEED"] == "random":
        del env["PYTHONHASHSEED"]
    env.update(_position_job_input(reader), PYCKPT_RESUME_FILE=os.path.abspath(reader.file))
    return _mpirun(tokens[:-1], [sys.executable, *command], env)


class _Parser(argparse.ArgumentParser):
    """Reports a wrong command line in one line (what is wrong, where the
    usage is), exit status 2 like every other pyckpt error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message}; see `{self.prog} --help`\n")


def _count(minimum, what):
    """An argparse type: an integer of at least `minimum` (`what` it counts)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of {what}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} {what}: give at least {minimum}")
        return value
    return parse


def _seconds(text):
    """An argparse type: a finite number of seconds greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} seconds: give a finite number of seconds greater than 0 "
                                         f"(no --interval: no periodic checkpoints)")
    return value


def _signal_name(text):
    try:
        return settings.canonical_signal(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_key_option(p):
    p.add_argument("--key-file", metavar="FILE",
                   help="the key that authenticates checkpoints (default $PYCKPT_KEY_FILE, else "
                        "~/.config/pyckpt/key, created on first use; see doc/security.md)")


def _add_trust_option(p):
    p.add_argument("--trust", action="store_true",
                   help="read a checkpoint that fails authentication anyway (you know where it came from); "
                        "nothing is unpickled either way")


def _add_job_options(p, launcher):
    """The options of `pyckpt mpirun` and `pyckpt srun` (launcher: which)."""
    p.add_argument("--dir",
                   help="checkpoint directory (default $PYCKPT_DIR, else ./pyckpt.d); a job whose directory "
                        "holds a checkpoint resumes from it")
    p.add_argument("--interval", type=_seconds, metavar="SECONDS", help="checkpoint every SECONDS")
    p.add_argument("--signal", type=_signal_name, default=settings.DEFAULT_SIGNAL, metavar="SIGNAME",
                   help=f"checkpoint when {launcher} or any rank receives this signal (default SIGUSR1)")
    p.add_argument("--keep", type=_count(1, "checkpoints kept"), default=settings.DEFAULT_KEEP, metavar="K",
                   help="committed checkpoints kept (default 2)")
    p.add_argument("--async", dest="asynchronous", action="store_true",
                   help="ranks stop only to capture their state and copy their data; a thread of each rank writes "
                        "it while the job goes on (memory: one copy of each rank's arrays; doc/mpi-jobs.md)")
    p.add_argument("--slurm-requeue", action="store_true",
                   help="in a Slurm batch job (sbatch --requeue --signal=B:USR1@SECONDS, the script ending with "
                        f"`exec pyckpt {launcher} ...`): on the signal, checkpoint, end the job and requeue it; the "
                        "requeued job resumes; a finished run marks DIR complete (doc/slurm.md)")
    p.add_argument("--max-restarts", type=_count(0, "restarts"), default=None, metavar="N",
                   help="with --slurm-requeue: do not requeue a job restarted N times, nor run one restarted "
                        "more often (default 10)")
    _add_key_option(p)


def build_parser():
    parser = _Parser(prog="pyckpt", description="Checkpoint/restart for Python HPC applications.",
                     epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run an unmodified script with preemptive checkpoints")
    p.add_argument("--dir", help="checkpoint directory (default $PYCKPT_DIR, else ./pyckpt.d)")
    p.add_argument("--interval", type=_seconds, metavar="SECONDS",
                   help="checkpoint every SECONDS at a safe point")
    p.add_argument("--signal", type=_signal_name, default=settings.DEFAULT_SIGNAL, metavar="SIGNAME",
                   help="checkpoint when the process receives this signal (default SIGUSR1)")
    p.add_argument("--keep", type=_count(1, "checkpoints kept"), default=settings.DEFAULT_KEEP, metavar="K",
                   help="committed checkpoints kept (default 2)")
    p.add_argument("--sync", action="store_true",
                   help="commit each checkpoint before the script goes on (default: a forked writer commits it)")
    _add_key_option(p)
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("restart", help="resume a process from its latest (or a given) checkpoint",
                       description="Resume a process from its latest (or a given) checkpoint. Only a checkpoint "
                                   "authenticated with your key (--key-file) is restarted: one written with another "
                                   "key, or changed since it was written, is refused before anything in it runs. "
                                   "Given a directory, restart resumes its newest checkpoint that verifies "
                                   "(authentication and every checksum, as `pyckpt verify`): when `latest` is "
                                   "refused (corrupt, torn, forged), the reason and the older file resumed instead "
                                   "are printed on stderr. Given a file, that file is resumed or refused. The same "
                                   "holds for --mpirun and for a job's own `pyckpt mpirun` command run again: one "
                                   "file, chosen before mpirun starts, for every rank.",
                       epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="DIR_OR_FILE", nargs="?",
                   help="checkpoint directory or file (default $PYCKPT_DIR, else ./pyckpt.d)")
    _add_key_option(p)
    p.add_argument("--mpirun", nargs=argparse.REMAINDER, metavar="MPIRUN_OPTIONS DIR",
                   help="resume an MPI job: mpirun options (e.g. -np 4), then the checkpoint directory")
    p.set_defaults(func=_cmd_restart)

    p = sub.add_parser("mpirun", help="run an mpi4py job under mpirun with checkpoints (LD_PRELOAD set up)")
    _add_job_options(p, "mpirun")
    p.add_argument("mpirun_args", nargs=argparse.REMAINDER, metavar="MPIRUN_ARGS",
                   help="mpirun options, the script and its arguments, e.g. -np 4 app.py")
    p.set_defaults(func=_cmd_mpirun)

    p = sub.add_parser("srun", help="run an mpi4py job step under srun with checkpoints (LD_PRELOAD set up)",
                       usage="pyckpt srun [PYCKPT OPTIONS] -- SRUN_ARGS",
                       description="Run an mpi4py job step under srun (inside a Slurm allocation) with checkpoints: "
                                   "pyckpt's options, then `--`, then srun's arguments as you would give them, "
                                   "e.g. `pyckpt srun --dir ckpt.d -- --mpi=pmix -n 4 python3 app.py`. "
                                   "See doc/slurm.md.")
    _add_job_options(p, "srun")
    p.add_argument("srun_args", nargs=argparse.REMAINDER, metavar="-- SRUN_ARGS",
                   help="after `--`: srun's options, the program and its arguments")
    p.set_defaults(func=_cmd_srun)

    p = sub.add_parser("request", help="ask the MPI job checkpointing into DIR for a checkpoint now")
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(func=_cmd_request)

    p = sub.add_parser("resume-rank", help="(run by libpyckpt_mpi.so) resume one rank of an MPI job")
    p.add_argument("program", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_resume_rank)

    p = sub.add_parser("inspect", help="show what a checkpoint holds and verify its checksums")
    p.add_argument("path", metavar="FILE_OR_DIR", help="a checkpoint file, or a directory (its latest)")
    p.add_argument("--no-verify", action="store_true", help="do not read the data to verify checksums")
    _add_key_option(p)
    _add_trust_option(p)
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("ls", help="list the committed checkpoints of a directory, and whether each is authenticated")
    p.add_argument("directory", metavar="DIR")
    _add_key_option(p)
    p.set_defaults(func=_cmd_ls)

    p = sub.add_parser("stats", help="per checkpoint and per rank: size, pause, write time and throughput",
                       description="Per committed checkpoint of DIR and per rank: size, pause (how long the "
                                   "program was stopped), write time and throughput, from what the writer "
                                   "recorded in each file (nothing is unpickled). See doc/format.md, Timings.")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--plot", metavar="FILE.png", help="also draw a chart into FILE.png (needs matplotlib)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON instead of a table")
    _add_key_option(p)
    _add_trust_option(p)
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("verify", help="verify a checkpoint's authentication and every checksum (exit 1 unless "
                                      "restart would accept it)")
    p.add_argument("path", metavar="FILE_OR_DIR")
    _add_key_option(p)
    _add_trust_option(p)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("preload-path", help="print the path of libpyckpt_mpi.so for LD_PRELOAD")
    p.set_defaults(func=_cmd_preload_path)
    return parser


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "mpirun":  # mpirun's own options pass through, in order
        args.mpirun_args = unknown + args.mpirun_args
    elif args.command == "srun" and unknown:  # srun has options of the same names (--signal): no guessing
        parser.error(f"srun: unrecognized arguments: {' '.join(unknown)} (give srun's arguments after `--`: "
                     f"pyckpt srun [PYCKPT OPTIONS] -- SRUN_ARGS)")
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "key_file", None):
        # Read by the container (and passed on to a restarted program and to
        # the ranks of an MPI job), as if set by hand.
        os.environ[settings.KEY_FILE_VARIABLE] = os.path.abspath(args.key_file)
    try:
        return args.func(args)
    except CheckpointError as e:
        from . import session
        if session.program_started():
            # Raised by the program that `run`/`restart` runs (an uncaught
            # refusal of its checkpoint(), say): Python reports it, as it
            # would without pyckpt (traceback, status 1).
            raise
        print(f"pyckpt {args.command}: {e}", file=sys.stderr)
        return 2
