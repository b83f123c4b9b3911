"""Frame capture in one process, resume in a fresh one (pyckpt._core interp API).

Each program runs (a) uninterrupted and (b) as a restart chain: every
checkpoint() captures the stack, saves it and kills the process (os._exit);
a fresh process resumes the saved stack, where that checkpoint() returns True.
The concatenated output of the chain must equal the uninterrupted output.

States travel with a STAND-IN pickler defined here (pickle + marshal, with
functions and classes of __main__ by value, module dicts by reference, cells,
code objects and generators through the interp API) until the real pyckpt heap
layer exists. This module is also imported by the test programs (checkpoint())
and by the resume driver, so its helpers are what the pickles refer to.
"""
import importlib
import marshal
import os
import pickle
import subprocess
import sys
import textwrap
import types
from pathlib import Path

from pyckpt import _core

HERE = Path(__file__).resolve().parent
PYTHON = os.environ.get("PYCKPT_PYTHON", "/usr/bin/python3")


# --- stand-in pickler -------------------------------------------------------

def _code(data):
    return marshal.loads(data)


def _cell():
    return types.CellType()


def _set_cell(cell, value):
    if value is not _core.NULL:
        cell.cell_contents = value


def _function(code, globals_, name, closure):
    return types.FunctionType(code, globals_, name, None, closure)


def _set_function(fn, state):
    # __module__ too: the globals dict may still be half-built when fn is made.
    fn.__defaults__, fn.__kwdefaults__, fn.__qualname__, fn.__module__, attrs = state
    fn.__dict__.update(attrs)


def _class(name, bases, qualname):
    return type(name, bases, {"__module__": "__main__", "__qualname__": qualname})


def _set_class(cls, attrs):
    for key, value in attrs.items():
        setattr(cls, key, value)


def _module_dict(name):
    return importlib.import_module(name).__dict__


class StandInPickler(pickle.Pickler):
    def __init__(self, file):
        super().__init__(file, protocol=5)
        self._module_dicts = {id(m.__dict__): name for name, m in list(sys.modules.items())
                              if name != "__main__" and isinstance(m, types.ModuleType)}

    def persistent_id(self, obj):
        if type(obj) is dict and id(obj) in self._module_dicts:
            return ("moddict", self._module_dicts[id(obj)])
        return None

    def reducer_override(self, obj):
        t = type(obj)
        if t is types.CodeType:
            return _code, (marshal.dumps(obj),)
        if t is types.CellType:
            try:
                value = obj.cell_contents
            except ValueError:
                value = _core.NULL
            return _cell, (), value, None, None, _set_cell
        if t is types.ModuleType:
            return importlib.import_module, (obj.__name__,)
        if t is types.GeneratorType:
            return _core.rebuild_generator, (_core.capture_generator(obj),)
        if t is types.FunctionType and (obj.__module__ == "__main__" or "<" in obj.__qualname__):
            state = (obj.__defaults__, obj.__kwdefaults__, obj.__qualname__, obj.__module__, obj.__dict__)
            return (_function, (obj.__code__, obj.__globals__, obj.__name__, obj.__closure__), state,
                    None, None, _set_function)
        if isinstance(obj, type) and obj.__module__ == "__main__":
            attrs = {k: v for k, v in vars(obj).items() if k not in ("__dict__", "__weakref__", "__module__", "__qualname__")}
            return _class, (obj.__name__, obj.__bases__, obj.__qualname__), attrs, None, None, _set_class
        return NotImplemented


class StandInUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        kind, name = pid
        return _module_dict(name)


def save(state, path):
    with open(path, "wb") as f:
        StandInPickler(f).dump(state)


def load(path):
    with open(path, "rb") as f:
        return StandInUnpickler(f).load()


# --- what the test programs call ---------------------------------------------

def checkpoint():
    """False in an uninterrupted run; in a chain, saves the stack and dies,
    and returns True in the process that resumes it."""
    path = os.environ.get("INTERP_STATE")
    if not path:
        return False
    state = _core.capture_stack()
    if state is True:
        return True
    save(state, path)
    sys.stdout.flush()
    os._exit(0)


def checkpoint_in_c_call():
    """Called back from a C function: saves the stack down to the frame that
    called that C function and dies; the resumed process runs the C call
    again (so this returns normally only in an uninterrupted run)."""
    path = os.environ.get("INTERP_STATE")
    if not path:
        return
    save(_core.capture_stack(reissue_c_call=True), path)
    sys.stdout.flush()
    os._exit(0)


def resume_main(path):
    """Body of the fresh process: resume the saved stack."""
    _core.resume_stack(load(path), True)


# --- harness ------------------------------------------------------------------

PRELUDE = f"import sys\nsys.path.insert(0, {str(HERE)!r})\nfrom test_interp_resume import checkpoint, checkpoint_in_c_call\n"


def _run(args, env_extra, cwd):
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(HERE)) if p)
    return subprocess.run([PYTHON, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def run_chain(tmp_path, source, max_restarts=10):
    """Returns (uninterrupted result, chain stdout, chain exit status, restarts)."""
    prog = tmp_path / "prog.py"
    prog.write_text(PRELUDE + textwrap.dedent(source))
    plain = _run([str(prog)], {}, tmp_path)
    state = tmp_path / "state.pkl"
    proc = _run([str(prog)], {"INTERP_STATE": str(state)}, tmp_path)
    out, restarts = proc.stdout, 0
    while state.exists() and restarts < max_restarts:
        assert proc.returncode == 0, proc.stderr
        moved = tmp_path / f"state{restarts}.pkl"
        state.rename(moved)
        restarts += 1
        proc = _run(["-c", f"import test_interp_resume as t; t.resume_main({str(moved)!r})"],
                    {"INTERP_STATE": str(state)}, tmp_path)
        out += proc.stdout
    return plain, out, proc, restarts


def check_program(tmp_path, source, restarts=1):
    plain, out, last, n = run_chain(tmp_path, source)
    assert plain.returncode == 0, plain.stderr
    assert n == restarts, f"expected {restarts} restarts, got {n}\n{last.stderr}"
    assert last.returncode == plain.returncode, last.stderr
    assert out == plain.stdout, f"--- chain:\n{out}\n--- plain:\n{plain.stdout}\n--- stderr:\n{last.stderr}"


# --- programs -------------------------------------------------------------------

def test_pending_arithmetic(tmp_path):
    check_program(tmp_path, """
        def b():
            x = 4
            checkpoint()
            return x
        def a():
            return 5 * (3 + b())
        print("start")
        print(a(), 100 - a() * 2)
    """, restarts=2)


def test_loops_with_live_iterators(tmp_path):
    check_program(tmp_path, """
        d = {"a": 1, "b": 2, "c": 3}
        total = 0
        for i in range(3):
            for j, x in enumerate([10, 20]):
                for k, v in zip("xy", d.values()):
                    total += i * x + v
                    if i == 1 and j == 1 and k == "y":
                        checkpoint()
                    print(i, j, k, v, total)
        for key in d.keys():
            for item in d.items():
                if key == "b" and item[0] == "c":
                    checkpoint()
            print(key)
        n = 0
        while n < 5:
            n += 1
            if n == 3:
                checkpoint()
        print("while", n)
    """, restarts=3)


def test_try_except_finally(tmp_path):
    check_program(tmp_path, """
        def f():
            try:
                try:
                    raise KeyError("k")
                except KeyError as e:
                    checkpoint()
                    print("handling", repr(e))
                    raise
                finally:
                    print("finally runs once")
            except KeyError as e2:
                print("re-raised", repr(e2))
            try:
                1 / 0
            except ZeroDivisionError:
                try:
                    checkpoint()
                    print("exc_info", sys.exc_info()[0].__name__)
                finally:
                    print("inner finally")
            return "done"
        print(f())
        print("after", sys.exc_info())
    """, restarts=2)


def test_with_blocks(tmp_path):
    check_program(tmp_path, """
        from contextlib import contextmanager
        class CM:
            def __init__(self, name):
                self.name = name
            def __enter__(self):
                print("enter", self.name)
                return self
            def __exit__(self, *exc):
                print("exit", self.name, exc[0])
                return False
        @contextmanager
        def managed(tag):
            print("setup", tag)
            try:
                yield tag.upper()
            finally:
                print("teardown", tag)
        with CM("a") as a, managed("m") as m:
            print("inside", a.name, m)
            checkpoint()
            print("still inside")
        try:
            with CM("b"):
                checkpoint()
                raise ValueError("boom")
        except ValueError as e:
            print("caught", e)
    """, restarts=2)


def test_call_shapes(tmp_path):
    check_program(tmp_path, """
        def target(a, b=2, *rest, k, m=5, **kw):
            checkpoint()
            return (a, b, rest, k, m, sorted(kw.items()))
        class C:
            def meth(self, x, *, y):
                return target(x, y, k=x + y)
        args, kws = (1, 2, 3), {"k": 4, "z": 6}
        print(target(*args, **kws))
        print(target(0, k=1))
        print(C().meth(3, y=4))
        bound = C().meth
        print(bound(5, y=6))
        print([target(i, k=i) for i in range(2)])
        print({i: target(i, k=-i)[3] for i in range(2)})
    """, restarts=8)


def test_recursion_200_deep(tmp_path):
    check_program(tmp_path, """
        def down(n):
            if n == 0:
                checkpoint()
                return 0
            return n + down(n - 1)
        print(down(200))
        print(down(3))
    """, restarts=2)


def test_getitem(tmp_path):
    check_program(tmp_path, """
        class Seq:
            def __init__(self):
                self.hits = 0
            def __getitem__(self, i):
                self.hits += 1
                if i == 2:
                    checkpoint()
                return i * 10
        s = Seq()
        print(s[1] + s[2] * 2, s.hits)
        print([s[i] for i in range(4)], s.hits)
    """, restarts=2)


def test_generators(tmp_path):
    check_program(tmp_path, """
        def counter(n):
            for i in range(n):
                got = yield i
                if got:
                    print("got", got)
        def inner():
            yield 1
            checkpoint()
            yield 2
            return "inner-done"
        def outer():
            r = yield from inner()
            print("returned", r)
            yield 3
        running = counter(5)
        print(next(running), running.send("hello"))
        fresh = counter(2)
        def gen_with_ckpt():
            for i in range(3):
                if i == 1:
                    checkpoint()
                yield i
        for v in gen_with_ckpt():
            print("for", v)
        for v in outer():
            print("outer", v)
        g = gen_with_ckpt()
        print(next(g), next(g), next(g))
        print(list(running), list(fresh))
    """, restarts=3)


def test_closures_nonlocal_global(tmp_path):
    check_program(tmp_path, """
        counter = 0
        def make():
            total = 0
            shared = []
            def add(x):
                nonlocal total
                global counter
                total += x
                counter += 1
                shared.append(x)
                if x == 2:
                    checkpoint()
                return total
            def peek():
                return total, shared
            return add, peek
        add, peek = make()
        for x in (1, 2, 3):
            print(add(x), peek(), counter)
        print(add.__closure__[1].cell_contents is peek()[1])
    """, restarts=1)


def test_restart_chain(tmp_path):
    check_program(tmp_path, """
        acc = []
        def step(i):
            acc.append(i)
            checkpoint()
            print("step", i)
            return i * 2
        x = 0
        for i in range(3):
            x += step(i)
        print("acc", acc, x)
    """, restarts=3)


def test_reissue_c_call(tmp_path):
    # The frame that called sorted()/max() is captured mid-call; on resume
    # the C function runs again from the start with the same arguments.
    check_program(tmp_path, """
        seen = []
        def key(x):
            if x == 2 and len(seen) < 2:
                seen.append(x)
                checkpoint_in_c_call()
            return -x
        def outer(values, **kw):
            total = 100 + len(sorted(values, key=key))
            return total, max(*values, **kw)
        print("start")
        print(outer([1, 2, 3]), outer([4, 2, 5], key=key), seen)
    """, restarts=2)
