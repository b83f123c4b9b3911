"""The command lines that start a Python rank, read the way the programs that
own them read them:

- `pyckpt mpirun [MPIRUN OPTIONS] [python3 [INTERPRETER OPTIONS]] PROGRAM ARGS`:
  which tokens are mpirun's options and where the program starts
  (parse_mpirun);
- the interpreter's part, `[INTERPRETER OPTIONS] (script | -m module | -c
  command) ARGS`, as CPython 3.11 parses it (parse_python): the options a
  resumed rank must run with again (-u, -X dev, -W error, -O, ...), and the
  options that make a restart impossible, refused naming the option.

Used by `pyckpt mpirun` (a fresh run and the same command resuming a job),
`pyckpt restart --mpirun` and `pyckpt resume-rank`, which the Python-rank
preload library execs as `python3 -m pyckpt resume-rank -- ARGUMENTS` (its
ARGUMENTS: the interpreter's part of the rank's command line, options
included; resume-rank execs itself again with those options, see
pyckpt.cli).
"""
import os
import re
import sys
from collections import namedtuple

from .errors import CheckpointError

# Open MPI 4 (`mpirun --help all`) options that take values: their values
# are not the program, even when one looks like it (`-x PYTHONPATH=...`,
# `--prefix /opt/python3`).
_MPIRUN_OPTION_VALUES = {
    **dict.fromkeys(("-am", "--app", "--bind-to", "-bind-to", "-c", "-np", "--np", "-n", "--n", "-N", "-cf",
                     "--cartofile", "-cpu-list", "--cpu-list", "-cpu-set", "--cpu-set", "-cpus-per-proc",
                     "--cpus-per-proc", "-cpus-per-rank", "--cpus-per-rank", "-debugger", "--debugger",
                     "-default-hostfile", "--default-hostfile", "-H", "-host", "--host", "-hnp", "--hnp",
                     "-hostfile", "--hostfile", "-launch-agent", "--launch-agent", "-machinefile",
                     "--machinefile", "--map-by", "-map-by", "-max-restarts", "--max-restarts", "-max-vm-size",
                     "--max-vm-size", "-npernode", "--npernode", "-npersocket", "--npersocket", "-ompi-server",
                     "--ompi-server", "-output-filename", "--output-filename", "-path", "--path", "-personality",
                     "--personality", "--ppr", "-ppr", "--prefix", "-prefix", "--preload-files",
                     "--rank-by", "-rank-by", "-report-events", "--report-events", "-report-pid", "--report-pid",
                     "-report-uri", "--report-uri", "-rf", "--rankfile", "-stdin", "--stdin", "-timeout",
                     "--timeout", "-tune", "-wd", "--wd", "-wdir", "--wdir", "-x", "-xml-file", "--xml-file",
                     "-xterm", "--xterm"), 1),
    **dict.fromkeys(("-mca", "--mca", "-gmca", "--gmca"), 2),
}

# CPython 3.11's options (Python/getopt.c, Python/initconfig.c): the short
# ones, those taking an argument marked with ':'; -c and -m end the options.
_SHORT_OPTIONS = "bBc:dEhiIm:OPqRsStuvVW:xX:?"  # -R, -t: accepted, no effect (-B -R: mpi4py.futures workers)
_LONG_OPTIONS = {"--check-hash-based-pycs": 1, "--help": 0, "--version": 0, "--help-env": 0,
                 "--help-xoptions": 0, "--help-all": 0}
# Options with which a resumed rank could not be the process that wrote the
# checkpoint: why, for the refusal.
_IGNORES_ENVIRONMENT = ("the interpreter ignores PYTHONHASHSEED and PYTHONPATH, which pyckpt sets in every rank "
                        "(a restarted rank needs the hash seed of the checkpointed one, and `import pyckpt` the path)")
_REFUSED_OPTIONS = {"-E": f"with it {_IGNORES_ENVIRONMENT}",
                    "-I": f"isolated mode implies -E: {_IGNORES_ENVIRONMENT}"}
# Options after which the interpreter runs no program (it prints and exits).
_INFORMATIONAL = frozenset({"-h", "-?", "-V", "--help", "--version", "--help-env", "--help-xoptions",
                            "--help-all"})
_INTERPRETER_NAME = re.compile(r"python(\d+(\.\d+)*)?$")


# Named tuples rather than dataclasses: the dataclasses module imports
# inspect, which the command line would pay for at every start (twice for
# `pyckpt run`, which re-executes itself).
class PythonCommand(namedtuple("PythonCommand", "interpreter options kind target args", defaults=((),))):
    """What a Python interpreter is told to run: `interpreter *options
    program_flag target *args`. kind: "script" (target: its path), "module"
    (-m; target: the module's name) or "command" (-c; target: the code)."""
    __slots__ = ()

    def arguments(self):
        """The command line after the interpreter: a rank's sys.orig_argv[1:],
        what its checkpoints record as the job's command."""
        flag = {"script": (), "module": ("-m",), "command": ("-c",)}[self.kind]
        return [*self.options, *flag, self.target, *self.args]

    def argv(self):
        return [self.interpreter, *self.arguments()]


class MpirunCommand(namedtuple("MpirunCommand", "mpirun_options program python", defaults=(None,))):
    """`pyckpt mpirun`'s command line: mpirun's options (tuple), then the
    program (tuple). python: the program as a PythonCommand; None for a
    program that is not a Python interpreter or script (then `program` is
    passed on unchanged)."""
    __slots__ = ()


def is_interpreter(token):
    """Whether `token` names a Python interpreter (python, python3,
    python3.11, a path to one, or this interpreter)."""
    return bool(_INTERPRETER_NAME.match(os.path.basename(token))) or token == sys.executable


def _parse_options(tokens):
    """CPython's option parsing of `tokens` (the arguments after the
    interpreter): (options as given, kind, target, index of the program's
    first argument). kind: "script", "module" (-m), "command" (-c), "stdin"
    (`-` or nothing: the program is read from stdin) or "informational"
    (-V, --help: no program runs)."""
    options = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--" or token == "-" or not token.startswith("-"):
            program = i + 1 if token == "--" else i
            if program >= len(tokens) or tokens[program] == "-":
                return options, "stdin", None, program + 1
            return options, "script", tokens[program], program + 1
        if token.startswith("--"):
            name = token.split("=", 1)[0]
            if name not in _LONG_OPTIONS:
                raise CheckpointError(f"unknown interpreter option {name}")
            if name in _INFORMATIONAL:
                return options, "informational", None, len(tokens)
            takes = _LONG_OPTIONS[name] if "=" not in token else 0
            options += tokens[i:i + 1 + takes]
            i += 1 + takes
            continue
        for at, letter in enumerate(token[1:], 1):
            flag = "-" + letter
            spec = _SHORT_OPTIONS.find(letter)
            if spec < 0:
                raise CheckpointError(f"unknown interpreter option {flag} (in {token})")
            if flag in _INFORMATIONAL:
                return options, "informational", None, len(tokens)
            if flag in _REFUSED_OPTIONS:
                raise CheckpointError(f"python {flag} cannot be checkpointed and restarted: "
                                      f"{_REFUSED_OPTIONS[flag]}; run without {flag}")
            if _SHORT_OPTIONS[spec + 1:spec + 2] != ":":
                continue
            # An option with an argument, attached (-Werror, -mpkg) or next.
            attached = token[at + 1:]
            value, after = (attached, i + 1) if attached else (tokens[i + 1] if i + 1 < len(tokens) else None, i + 2)
            if value is None:
                raise CheckpointError(f"interpreter option {flag} needs an argument")
            if letter in "cm":  # the program; its arguments follow
                if at > 1:  # flags before it in the same token (-um mod)
                    options.append(token[:at])
                return options, "command" if letter == "c" else "module", value, after
            options += tokens[i:after]
            i = after
            break
        else:
            options.append(token)
            i += 1
    return options, "stdin", None, len(tokens)


def parse_python(tokens, interpreter=None):
    """The PythonCommand of an interpreter's arguments `tokens` (everything
    after the interpreter's name), or None for an informational command line
    (-V, --help), which runs no program. Raises CheckpointError for an
    option that makes a restart impossible (naming it), an unknown option,
    or a program read from stdin (pyckpt could not run it again)."""
    tokens = list(tokens)
    interpreter = interpreter or sys.executable
    options, kind, target, args = _parse_options(tokens)
    if kind == "informational":
        return None
    if kind == "stdin":
        raise CheckpointError(f"`{' '.join([interpreter, *tokens])}` reads its program from stdin: pyckpt can "
                              f"only restart a script, a module (-m) or a command (-c)")
    return PythonCommand(interpreter, tuple(options), kind, target, tuple(tokens[args:]))


def parse_mpirun(tokens):
    """The MpirunCommand of `pyckpt mpirun`'s arguments after its own options.
    As for mpirun, the program starts at the first token that is neither an
    mpirun option nor the value of one. If it names a Python interpreter,
    the interpreter's arguments are parsed (parse_python); a *.py script
    named without an interpreter runs with this one (which has pyckpt and
    mpi4py); another program is passed on unchanged."""
    tokens = list(tokens)
    i = 0
    while i < len(tokens) and tokens[i].startswith("-"):
        i += 1 + _MPIRUN_OPTION_VALUES.get(tokens[i], 0)
    options, program = tuple(tokens[:i]), tokens[i:]
    if not program:
        return MpirunCommand(options, ())
    if is_interpreter(program[0]):
        return MpirunCommand(options, tuple(program), parse_python(program[1:], program[0]))
    if program[0].endswith(".py"):
        python = PythonCommand(sys.executable, (), "script", program[0], tuple(program[1:]))
        return MpirunCommand(options, tuple(python.argv()), python)
    return MpirunCommand(options, tuple(program))
