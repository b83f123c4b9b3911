"""pyckpt.heap: capture of the Python object graph, restored in a fresh process.

Each round-trip case is a small program run two ways, like the checkpoint tests
of issue 3: without interruption, and killed (os._exit) right after the capture
of its __main__ module, restored in a fresh process that runs from another
directory, which then runs the rest of the program. Outputs must be identical.
heap_checkpoint.py writes them through the real container (blob and array datasets).
"""
import os
import pickle
import random
import sys
import textwrap
import types
from pathlib import Path

import pytest

from conftest import PYTHON, run

HERE = Path(__file__).resolve().parent
MARK = "--- checkpoint ---\n"

RESTORE = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import heap_checkpoint
main = heap_checkpoint.restore(sys.argv[1])
if sys.argv[2] == "save":
    heap_checkpoint.save(main, sys.argv[3])
else:
    exec(compile(open(sys.argv[3]).read(), "continuation", "exec"), vars(main))
"""


def roundtrip(tmp_path, prelude, continuation, *, chain=False, files=None):
    """Returns the continuation's output, checked equal in both runs. chain:
    restore and capture again once more before running the continuation."""
    env = dict(os.environ, PYTHONHASHSEED="0")  # str set order; the run CLI fixes the seed
    outputs = []
    for interrupted in (False, True):
        workdir = tmp_path / ("crash" if interrupted else "plain")
        workdir.mkdir()
        for name, text in (files or {}).items():
            (workdir / name).write_text(textwrap.dedent(text))
        rest = "import os as _os; _os._exit(0)" if interrupted else textwrap.dedent(continuation)
        (workdir / "prog.py").write_text(
            f"{textwrap.dedent(prelude)}\n"
            f"import sys as _sys\n_sys.path.insert(0, {str(HERE)!r})\nimport heap_checkpoint as _heap_checkpoint\n"
            f"_heap_checkpoint.save(_sys.modules['__main__'], {str(workdir / 'ckpt')!r})\n"
            f"print({MARK!r}, end='', flush=True)\n{rest}\n")
        out = run([PYTHON, str(workdir / "prog.py")], cwd=workdir, env=env).stdout
        assert out.count(MARK) == 1, out
        if interrupted:
            (workdir / "continuation.py").write_text(textwrap.dedent(continuation))
            (workdir / "restart").mkdir()
            (workdir / "restart" / "restore.py").write_text(RESTORE)
            ckpt = workdir / "ckpt"
            if chain:
                run([PYTHON, "restore.py", str(ckpt), "save", str(workdir / "ckpt2")], cwd=workdir / "restart", env=env)
                ckpt = workdir / "ckpt2"
            out = run([PYTHON, "restore.py", str(ckpt), "run", str(workdir / "continuation.py")],
                      cwd=workdir / "restart", env=env).stdout
            outputs.append(out)
        else:
            outputs.append(out.split(MARK, 1)[1])
    assert outputs[1] == outputs[0]
    return outputs[0]


FUNCTIONS = """
import functools
def make_counter():
    n = 0
    def inc(step=1, *, twice=False):
        nonlocal n
        n += step * (2 if twice else 1)
        return n
    def get():
        return n
    return inc, get
inc, get = make_counter()
inc(); inc(5)
square = lambda x: x * x
def fact(k: int) -> int:
    "Factorial."
    return 1 if k <= 1 else k * fact(k - 1)
fact.custom = "attr"
def outer():
    def rec(k):
        return 0 if k == 0 else 1 + rec(k - 1)
    return rec
rec = outer()
@functools.lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
G = 10
def uses_global():
    return G
part = functools.partial(inc, 2)
code = square.__code__
"""

FUNCTIONS_CONT = """
print(inc(), inc(twice=True), get(), part(), get())
print(square(7), fact(10), fact.__annotations__, fact.custom, fact.__doc__, fact.__qualname__, inc.__qualname__)
print(rec(50), fib(60), fib.cache_info().maxsize, inc.__kwdefaults__, inc.__defaults__, square.__name__)
G = 11
print(uses_global(), inc.__globals__ is globals(), square.__code__ is code, type(code).__name__)
"""


def test_functions_closures_lambdas(tmp_path):
    out = roundtrip(tmp_path, FUNCTIONS, FUNCTIONS_CONT)
    assert out.startswith("7 9 9 11 11\n")
    assert "make_counter.<locals>.inc" in out and "\n11 True True code\n" in out


def test_restart_chain(tmp_path):
    roundtrip(tmp_path, FUNCTIONS, FUNCTIONS_CONT, chain=True)


CLASSES = """
import abc, collections, dataclasses, enum
@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0
    tags: list = dataclasses.field(default_factory=list)
    def norm2(self):
        return self.x ** 2 + self.y ** 2
@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    a: int
    b: str = "b"
class Color(enum.Enum):
    RED = 1
    GREEN = 2
    CRIMSON = 1
    def describe(self):
        return f"{self.name}={self.value}"
class Planet(enum.Enum):
    EARTH = (5.97e24, 6.37e6)
    def __init__(self, mass, radius):
        self.mass, self.radius = mass, radius
class Perm(enum.IntFlag):
    R = 4
    W = 2
    X = 1
Pair = collections.namedtuple("Pair", "left right")
class Slotted:
    __slots__ = ("a", "b")
    def __init__(self, a):
        self.a = a
class Base(abc.ABC):
    @abc.abstractmethod
    def area(self): ...
    @classmethod
    def make(cls, *args):
        return cls(*args)
    @staticmethod
    def unit():
        return "m2"
class Square(Base):
    count = 0
    def __init__(self, s):
        self.s = s
        Square.count += 1
    def area(self):
        return self.s ** 2
    @property
    def side(self):
        return self.s
    def __repr__(self):
        return f"Square({self.s})"
class Loud(Square):
    def area(self):
        return super().area() * 10
class Virtual(abc.ABC):
    pass
Virtual.register(Pair)
objs = [Point(3, 4, ["a"]), Frozen(1), Color.GREEN, Color.CRIMSON, Planet.EARTH, Perm.R | Perm.W,
        Pair(1, 2), Slotted(5), Square.make(3), Loud(2)]
"""

CLASSES_CONT = """
p, fz, c, cr, pl, perm, pair, sl, sq, loud = objs
print(p, p.norm2(), [f.name for f in dataclasses.fields(p)], Point(1), type(p).__qualname__)
print(fz, dataclasses.replace(fz, b="c"), Frozen.__slots__)
try:
    fz.a = 2
except dataclasses.FrozenInstanceError:
    print("frozen")
print(c is Color.GREEN, cr is Color.RED, c.describe(), list(Color), Color(2) is c, Color["CRIMSON"])
print(pl.mass, pl is Planet.EARTH, perm, Perm(6) == perm, int(perm), Perm.X in perm)
print(pair, pair._replace(left=9), pair.left, Pair._fields, isinstance(pair, Virtual))
print(sl.a, hasattr(sl, "__dict__"), hasattr(sl, "b"))
print(sq, sq.area(), sq.side, Square.unit(), Square.count, loud.area(), isinstance(loud, Base))
try:
    Base()
except TypeError:
    print("abstract")
"""


def test_classes_by_value(tmp_path):
    out = roundtrip(tmp_path, CLASSES, CLASSES_CONT)
    assert "True True GREEN=2 [<Color.RED: 1>, <Color.GREEN: 2>]" in out
    assert "Square(3) 9 3 m2 2 40 True\nabstract\n" in out


def test_identity_and_misc_objects(tmp_path):
    out = roundtrip(tmp_path, """
        import threading, weakref, sys, json, os.path, collections
        shared = [1, 2]
        a = {"x": shared, "y": (shared, shared)}
        b = [a, shared]
        class Node:
            def __init__(self):
                self.me = self
            def m(self):
                return "m"
        n = Node()
        bound = n.m
        sm, cm, pr = staticmethod(len), classmethod(Node.m), property(lambda s: 1, doc="doc")
        def mk():
            x = [1]
            return (lambda: x), (lambda: x.append(2))
        getter, adder = mk()
        lock, held, rlock = threading.Lock(), threading.Lock(), threading.RLock()
        held.acquire(); rlock.acquire(); rlock.acquire()
        wr = weakref.ref(n)
        sl, rg = slice(1, 10, 2), range(3, 30, 3)
        J, join, OD, mods = json, os.path.join, collections.OrderedDict, [sys, os]
        me = threading.current_thread()
        """, """
        assert a["x"] is shared and a["y"][0] is shared and a["y"][1] is shared and b[0] is a and b[1] is shared
        assert n.me is n and bound.__self__ is n and wr() is n
        shared.append(3)
        print(a, b[1], bound(), sm.__func__ is len, cm.__func__ is Node.m, pr.fget(None), pr.__doc__)
        adder()
        print(getter(), getter.__closure__[0] is adder.__closure__[0])
        print(lock.locked(), held.locked(), rlock._is_owned(), sl, rg, rg[2])
        print(J is sys.modules["json"], join is os.path.join, OD is collections.OrderedDict, mods[0] is sys)
        print(me is threading.main_thread())
        """)
    assert "[1, 2] True\nFalse True True slice(1, 10, 2) range(3, 30, 3) 9\nTrue True True True\nTrue\n" in out


def test_builtin_iterators(tmp_path):
    out = roundtrip(tmp_path, """
        import itertools
        L = [10, 20, 30, 40]
        it_list = iter(L); next(it_list)
        it_range = iter(range(0, 100, 7)); next(it_range); next(it_range)
        en = enumerate("abcdef"); next(en)
        z = zip(L, "wxyz"); next(z)
        mp = map(str, L); next(mp)
        d = {"a": 1, "b": 2, "c": 3}
        keys, values, items = d.keys(), d.values(), d.items()
        dk = iter(d); next(dk)
        dv = iter(d.values()); next(dv)
        di = iter(d.items()); next(di); next(di)
        dr = reversed(d); next(dr)
        done = iter(d); list(done)
        cnt = itertools.count(5, 2); next(cnt)
        cyc = itertools.cycle("ab"); next(cyc)
        ch = itertools.chain([1, 2], [3]); next(ch)
        isl = itertools.islice(itertools.count(), 2, 100, 3); next(isl)
        acc = itertools.accumulate([1, 2, 3, 4]); next(acc)
        prod = itertools.product("ab", repeat=2); next(prod)
        perm = itertools.permutations(range(3)); next(perm)
        comb = itertools.combinations(range(4), 2); next(comb)
        gb = itertools.groupby("aabbbc"); next(gb)
        t1, t2 = itertools.tee(range(5)); next(t1)
        pw = itertools.pairwise("abcd"); next(pw)
        pw0 = itertools.pairwise("xyz")
        zl = itertools.zip_longest("ab", "xyz", fillvalue="-"); next(zl)
        """, """
        L.append(50)
        print(list(it_list), list(it_range), list(en), list(z), list(mp))
        print(list(dk), list(dv), list(di), list(dr), list(done))
        d["d"] = 4
        print(list(keys), list(values), list(items), keys.mapping["a"])
        print([next(cnt) for _ in range(3)], [next(cyc) for _ in range(3)], list(ch), [next(isl) for _ in range(2)])
        print(list(acc), list(prod), list(perm), list(comb), [(k, list(g)) for k, g in gb])
        print(list(t1), list(t2), list(pw), list(pw0), list(zl))
        """)
    assert out.splitlines()[1] == "['b', 'c'] [2, 3] [('c', 3)] ['b', 'a'] []"
    assert "['a', 'b', 'c', 'd'] [1, 2, 3, 4]" in out


def test_collections_numbers_order(tmp_path):
    out = roundtrip(tmp_path, """
        import collections, datetime, decimal, fractions
        dq = collections.deque([1, 2, 3], maxlen=5)
        od = collections.OrderedDict([("z", 1), ("a", 2), ("m", 3)]); od.move_to_end("z")
        dd = collections.defaultdict(lambda: [0]); dd["k"][0] += 1
        cnt = collections.Counter("hello world")
        big = 3 ** 500 - 7 ** 200
        dec, fr = decimal.Decimal("1.10") / 3, fractions.Fraction(3, 7)
        dt = datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
        td, day = datetime.timedelta(days=3, microseconds=5), datetime.date(2020, 2, 29)
        ints = {5, 3, 1000, 7, 2 ** 40}; ints.discard(3); ints.add(3)
        strs = {"pear", "apple", "fig", "kiwi"}
        order = {}
        for k in "zyxabc":
            order[k] = len(order)
        del order["x"]
        fs = frozenset(["x", "y"])
        """, """
        dq.append(4); dq.extend([5, 6])
        dd["new"][0] += 2
        print(dq, od, dict(dd), cnt.most_common(3), big % 1000003, dec, fr * 7)
        print(dt.isoformat(), dt + td, day, list(ints), list(strs), list(order.items()), sorted(fs))
        """)
    assert "deque([2, 3, 4, 5, 6], maxlen=5)" in out and "{'k': [1], 'new': [2]}" in out


USER_MODULE = """
counter = 0
def bump():
    global counter
    counter += 1
    return counter
class Thing:
    pass
"""


def test_modules_user_and_library(tmp_path):
    out = roundtrip(tmp_path, """
        import mymod, types
        mymod.bump(); mymod.bump()
        t, f = mymod.Thing(), mymod.bump
        dyn = types.ModuleType("dyn")
        exec("x = 5\\ndef get(): return x", vars(dyn))
        """, """
        print(mymod.counter, mymod.bump(), mymod.counter, type(t) is mymod.Thing, f is mymod.bump)
        dyn.x = 6
        print(dyn.get(), dyn.__name__)
        """, files={"mymod.py": USER_MODULE})
    assert out == "2 3 3 True True\n6 dyn\n"


def test_library_submodules_and_codecs(tmp_path):
    """A package the program reaches only by its name (`email`) comes back
    with the submodules it had imported bound (`email.mime.text`: importing
    `email` alone does not bind it); a codec's CodecInfo (a tuple subclass
    pickle saves but cannot load) comes back working."""
    out = roundtrip(tmp_path, """
        import codecs
        import email.mime.text
        info = codecs.lookup("latin-1")
        """, """
        print(email.mime.text.MIMEText("x").get_content_type(), info.name, info.encode("\u00e9"))
        """)
    assert out == "text/plain iso8859-1 (b'\\xe9', 1)\n"


def test_files_reopened_without_truncation(tmp_path):
    out = roundtrip(tmp_path, """
        import os, sys
        here = os.path.dirname(os.path.abspath(__file__))
        def p(name):
            return os.path.join(here, name)
        w = open(p("w.txt"), "w"); w.write("first\\n")
        a = open(p("a.txt"), "a"); a.write("A1\\n")
        wb = open(p("wb.bin"), "wb"); wb.write(b"\\x00\\x01")
        with open(p("r.txt"), "w") as done:
            done.write("line1\\nline2\\nline3\\n")
        r = open(p("r.txt")); r.readline()
        rb = open(p("r.txt"), "rb"); rb.read(3)
        raw = open(p("r.txt"), "rb", buffering=0); raw.read(2)
        rp = open(p("rp.txt"), "w+", encoding="latin-1"); rp.write("hello world"); rp.seek(6)
        out, err, outb = sys.stdout, sys.stderr, sys.stdout.buffer
        """, """
        w.write("second\\n"); w.close()
        a.write("A2\\n"); a.close()
        wb.write(b"\\x02"); wb.close()
        print(repr(r.readline()), rb.read(2), raw.read(1), rp.read(), rp.mode, rp.encoding, done.closed)
        print(w.name == p("w.txt"), w.mode, a.mode, wb.mode, out is sys.stdout, err is sys.stderr, outb is sys.stdout.buffer)
        print(repr(open(p("w.txt")).read()), repr(open(p("a.txt")).read()), open(p("wb.bin"), "rb").read())
        """)
    assert out.splitlines() == [
        "'line2\\n' b'e1' b'n' world w+ latin-1 True",
        "True w a wb True True True",
        "'first\\nsecond\\n' 'A1\\nA2\\n' b'\\x00\\x01\\x02'",
    ]


def test_random_generators_continue(tmp_path):
    roundtrip(tmp_path, """
        import random
        import numpy as np
        from random import random as rnd
        random.seed(7); random.random()
        np.random.seed(3); np.random.rand(2)
        g = np.random.default_rng(11); g.random()
        bg = g.bit_generator
        own = random.Random(5)
        """, """
        print(random.random(), rnd(), random.randint(0, 10 ** 9), own.random())
        print(np.random.rand(3), np.random.normal(size=2), g.random(3), g.integers(0, 100, 5), g.bit_generator is bg)
        """)


NUMPY = """
import numpy as np
dtypes = ["?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "g", "c8", "c16", "G",
          "M8[ns]", "m8[s]", "S5", "U3", "V4", ">i4", [("a", "<i4"), ("b", ">f8", (2,))]]
typed = [(np.arange(24 * np.dtype(dt).itemsize) % 251).astype(np.uint8).view(dt).reshape(4, -1) for dt in dtypes]
c2 = np.arange(12.).reshape(3, 4)
f2 = np.asfortranarray(c2 * 2)
zero_d, empty, empty_f = np.array(3.5), np.empty((0, 3)), np.empty((2, 0), order="F")
shared_list = [1, 2]
objarr = np.array([{"k": 1}, shared_list, None, "x"], dtype=object).reshape(2, 2)
base = np.arange(20.)
view, rev, u8, tview, fcol = base[2:12:2], base[::-1], base.view(np.uint8), c2.T, f2[:, 1]
readonly = np.arange(5); readonly.flags.writeable = False
strided = np.ndarray((3,), dtype="f8", buffer=bytearray(range(48)), strides=(16,))
bcast = np.broadcast_to(np.arange(3), (4, 3))
"""

NUMPY_CONT = """
import hashlib
for a in typed:
    print(a.dtype, a.shape, a.flags.c_contiguous, hashlib.sha1(a.tobytes()).hexdigest()[:12])
print(f2.flags.f_contiguous, f2[2, 3], zero_d.shape, zero_d, empty.shape, empty_f.shape, empty_f.flags.f_contiguous)
print(objarr, objarr[0, 1] is shared_list, objarr.dtype)
view[:] = -1; rev[0] = 99; u8[1:8] = 0; u8[0] = 1; tview[0, 1] = 7; fcol[0] = 5
print(base, c2[1, 0], f2[0, 1], view.base is base, np.shares_memory(rev, base))
print(readonly.flags.writeable, strided, bcast.strides, bcast.flags.writeable)
"""


def test_numpy_arrays(tmp_path):
    out = roundtrip(tmp_path, NUMPY, NUMPY_CONT)
    assert "True 22.0 () 3.5 (0, 3) (2, 0) True" in out
    assert "[5e-324 0.0 -1.0 3.0 -1.0" not in out  # view writes land in base (checked by equality above)


# --- in-process checks ------------------------------------------------------

np = pytest.importorskip("numpy")
from pyckpt import UnsupportedStateError, CheckpointFileError  # noqa: E402
from pyckpt import heap  # noqa: E402


def test_arrays_zero_copy_and_views():
    base = np.arange(1000.)
    fortran = np.asfortranarray(np.ones((30, 40)))
    graph = {"base": base, "view": base[10:20], "again": base, "f": fortran, "fv": fortran[2:5, :]}
    data, arrays = heap.dumps(graph)
    # views are records over their base, shared arrays are written once; the
    # rest of the list is the state of NumPy's global RNG
    (k0, a0), (k1, a1) = arrays[:2]
    assert not any(np.shares_memory(a, base) or np.shares_memory(a, fortran) for _, a in arrays[2:])
    assert a0 is base and a1 is fortran  # as they lie in memory, Fortran order too
    assert len(data) < 5000  # no array data in band
    restored = heap.loads(data, {key: a.copy(order="K") for key, a in arrays}.__getitem__)
    assert restored["base"] is restored["again"] and restored["view"].base is restored["base"]
    assert restored["f"].flags.f_contiguous and np.shares_memory(restored["fv"], restored["f"])


def test_unsupported_object_names_path():
    import socket
    class Holder:
        pass
    holder = Holder()
    with socket.socket() as sock:
        holder.sock = sock
        with pytest.raises(UnsupportedStateError, match=r"globals\['cfg'\]\['handler'\]\.sock: cannot capture a socket\.socket"):
            heap.dumps({"globals": {"cfg": {"handler": holder}}})


def test_capture_leaves_the_garbage_collector_as_it_was():
    import gc
    import socket
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            heap.dumps([object])
            with socket.socket() as sock, pytest.raises(UnsupportedStateError):
                heap.dumps([sock])
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


def test_summary_repr_reads_what_it_shows():
    """A local's summary (frames.json) is its repr cut to 80 characters, made
    from as many items as those characters need, not from all of them."""
    from pyckpt import state

    class Counted:
        calls = 0

        def __repr__(self):
            Counted.calls += 1
            return "C"

    items = [Counted() for _ in range(100_000)]
    values = [items, (items,), {"k": items}, {1, 2}, frozenset({3}), (1,), [items, items], "x" * 500, b"y" * 500]
    for value in values:
        Counted.calls = 0
        text = repr(value)
        expected = text if len(text) <= 80 else text[:77] + "..."
        Counted.calls = 0
        assert state._short_repr(value) == expected
        assert Counted.calls <= 40
    recursive = [1]
    recursive.append(recursive)
    assert state._short_repr(recursive) == repr(recursive)


def test_foreign_bytecode_refused():
    import importlib.util
    data, _ = heap.dumps(compile("x = 1", "<test>", "exec"))
    assert data.count(importlib.util.MAGIC_NUMBER) == 1
    with pytest.raises(CheckpointFileError, match=r"bytecode of Python 3\.11\.\d+.*restart with Python"):
        heap.loads(data.replace(importlib.util.MAGIC_NUMBER, b"\x00\x00\r\n"), None)


class Opaque:
    """Stands for a type pickle cannot handle (a handle to an external resource)."""
    def __init__(self, address):
        self.address = address
    def __reduce__(self):
        raise TypeError("cannot pickle Opaque")


def test_register_reducer(tmp_path):
    with pytest.raises(UnsupportedStateError, match="Opaque"):
        heap.dumps([Opaque("x")])
    roundtrip(tmp_path, """
        from pyckpt import heap
        class Conn:
            def __init__(self, address):
                self.address, self.fd = address, object()
            def __reduce__(self):
                raise TypeError("holds an OS handle")
        heap.register_reducer(Conn, lambda c: c.address, lambda address: Conn(address))
        conns = [Conn("a"), Conn("b")]
        conns.append(conns[0])
        """, """
        print([c.address for c in conns], conns[2] is conns[0], type(conns[0]) is Conn)
        """)


def _random_set(rng):
    """A set with a random history: adds, discards and pops of strings and
    of ints that collide in small tables."""
    s = set()
    for _ in range(rng.randrange(0, 150)):
        x = rng.choice([rng.randrange(64) * 8, rng.randrange(1000), f"s{rng.randrange(300)}"])
        op = rng.random()
        if op < 0.7:
            s.add(x)
        elif op < 0.9:
            s.discard(x)
        elif s:
            s.pop()
    return s


def _same_table(a, b):
    """Whether two sets behave the same from now on (which is what their
    tables decide): order, size of the table, where new elements go and
    what pop() returns. Both sets are changed."""
    if list(a) != list(b) or sys.getsizeof(a) != sys.getsizeof(b):
        return False
    for i in range(40):
        a.add(f"new{i}")
        b.add(f"new{i}")
        if i % 5 == 0 and a.pop() != b.pop():
            return False
    return list(a) == list(b)


def test_set_layouts_match_pickle_rebuild():
    """pyckpt._core.set_layouts() finds the sets whose table pickle's rebuild
    does not reproduce (simulating it on the recorded hashes), and
    restore_set_layouts() gives the rebuilt set the captured table: checked
    against real pickle round trips of 3000 random sets."""
    from pyckpt import _core

    rng = random.Random(13)
    laid_out = 0
    for _ in range(3000):
        s = _random_set(rng)
        rebuilt = pickle.loads(pickle.dumps(s))
        sets, elements, layouts = _core.set_layouts([s])
        if sets:
            laid_out += 1
            assert _core.restore_set_layouts([rebuilt], elements, layouts) == []
        assert _same_table(s, rebuilt), (layouts, s)
    assert 300 < laid_out < 2900  # both kinds were checked


def test_set_order_restored_in_place():
    """heap.dumps/loads: sets and frozensets reached from anywhere in the graph
    (in a list, as a dict key, in a frozenset, as an attribute, a set
    subclass) come back with their tables."""
    words = set()
    for i in range(200):
        words.add(f"w{i}")
        if i % 3:
            words.discard(f"w{i // 2}")
    frozen = frozenset(words)
    sub = Bag(words)
    sub.discard("w199")
    graph = {"sets": [words, {3, 11}], frozen: "key", "nested": {frozenset({3, 11}), frozen}, "sub": sub}
    graph["attr"] = types.SimpleNamespace(s=words)
    unordered = []
    data, arrays = heap.dumps(graph)
    restored = heap.loads(data, dict(arrays).__getitem__, unordered_sets=unordered)
    assert unordered == []
    assert list(restored["sets"][0]) == list(words) and restored["attr"].s is restored["sets"][0]
    assert list(restored["sets"][1]) == list({3, 11}) == [11, 3]
    frozen_back, = (k for k in restored if isinstance(k, frozenset))
    assert list(frozen_back) == list(frozen) and restored[frozen_back] == "key"
    assert [list(x) for x in restored["nested"]] == [list(x) for x in graph["nested"]]
    assert type(restored["sub"]) is Bag and list(restored["sub"]) == list(sub)


class Bag(set):
    pass


def test_set_order_of_objects_hashed_by_identity():
    """Elements whose hash changes in the restoring process (the default
    hash is the object's address): the set stays as pickle rebuilt it, and
    the Unpickler reports it."""
    class Node:
        pass

    nodes = [Node() for _ in range(50)]
    s = set(nodes)
    for node in nodes[::3]:
        s.discard(node)
    unordered = []
    data, arrays = heap.dumps([s, nodes])
    restored = heap.loads(data, dict(arrays).__getitem__, unordered_sets=unordered)
    assert unordered == [restored[0]] and len(restored[0]) == len(s)


def test_set_layouts_of_each_dump_are_its_own():
    """A Pickler dumping twice (one memo) lays out in the second dump only
    the sets it wrote first: a set of the first dump, changed since, is a
    memo reference in the second (as pickle has it), not laid out again."""
    import io

    buffer = io.BytesIO()
    pickler = heap.Pickler(buffer)
    s, t = {3, 11}, {11, 3}
    pickler.dump([s])
    s.add(19)
    pickler.dump([s, t])
    unpickler = heap.Unpickler(io.BytesIO(buffer.getvalue()), dict(pickler.arrays).__getitem__)
    first, second = unpickler.load(), unpickler.load()
    assert unpickler.unordered_sets == []
    assert second[0] is first[0] and list(first[0]) == [11, 3] and list(second[1]) == list(t) == [3, 11]


class Tags(set):
    pass


def test_set_rebuilt_as_another_type_by_a_reducer(monkeypatch):
    """A set subclass the program captures with a reducer of its own that
    rebuilds it as a list: its layout is not applied (nothing to order)."""
    monkeypatch.setitem(heap._registry, Tags, lambda tags: (list, (sorted(tags),)))
    tags = Tags()
    tags.add(3)
    tags.add(11)
    data, arrays = heap.dumps([tags])
    assert heap.loads(data, dict(arrays).__getitem__) == [[3, 11]]
