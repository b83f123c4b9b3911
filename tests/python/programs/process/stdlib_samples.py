"""Samples of the objects the standard library's C modules make, for
test_process_stdlib.py and stdlib_values.py: SAMPLES maps a name to
(factory, describe). `factory()` makes the object in a state worth keeping
(an iterator part-consumed, a buffer read half-way); `describe(obj)` turns it
into text that two processes can compare (and may go on using it: a restored
StringIO must take further writes where the original would).

COVERED_MODULES lists the C modules whose every public type must have an
instance among the samples or a reason in NO_SAMPLE, so that a type added to the standard
library (or forgotten) shows up as a test failure, not as silence.
"""
import array
import codecs
import collections
import contextvars
import csv
import datetime
import decimal
import enum
import fractions
import functools
import hashlib
import io
import ipaddress
import itertools
import operator
import pathlib
import queue
import random
import re
import socket
import sqlite3
import string
import struct
import threading
import time
import types
import uuid
import weakref
import zlib
import zoneinfo
from xml.etree import ElementTree


class Weekday(enum.Enum):
    MON = 1
    TUE = 2


class Perm(enum.IntFlag):
    R = 4
    W = 2


def _text(obj):
    """repr without memory addresses."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(obj))


def _items(it, limit=12):
    """What an iterator yields next (consumes it)."""
    return _text(list(itertools.islice(it, limit)))


def _string_io(s):
    s.write("|written after")
    return _text((s.getvalue(), s.tell(), s.newlines, s.read()))


def _bytes_io(b):
    b.write(b"|written after")
    return _text((b.getvalue(), b.tell()))


def _read(f, first):
    f.read(first)
    return f


def _advanced(it, n):
    for _ in range(n):
        next(it)
    return it


def _struct(s):
    return _text((s.format, s.size, s.pack(1, 2.5)))


def _decimal_context():
    return decimal.Context(prec=7, rounding=decimal.ROUND_DOWN, Emax=999, traps=[decimal.Overflow])


# name: (factory, describe); describe defaults to the repr.
SAMPLES = {
    # _io
    "io.StringIO": (lambda: _read(io.StringIO("one\r\ntwo\nthree"), 5), _string_io),
    "io.StringIO(newline='')": (lambda: _read(io.StringIO("one\r\ntwo\rthree", newline=""), 6), _string_io),
    "io.StringIO(newline='\\r\\n')": (lambda: _read(io.StringIO("a\nb\n", newline="\r\n"), 2), _string_io),
    "io.BytesIO": (lambda: _read(io.BytesIO(b"\x00binary\xff"), 3), _bytes_io),
    "io.BytesIO(empty)": (io.BytesIO, _bytes_io),
    # _collections
    "collections.deque": (lambda: collections.deque(range(7), maxlen=5), lambda d: _text((d, d.maxlen))),
    "collections.deque iterator": (lambda: _advanced(iter(collections.deque("abcdef")), 2), _items),
    "collections.deque reverse iterator": (lambda: _advanced(reversed(collections.deque("abcdef")), 2), _items),
    "collections.defaultdict": (lambda: collections.defaultdict(list, a=[1]),
                                lambda d: _text((d["new"], sorted(d.items()), d.default_factory))),
    "collections.OrderedDict": (lambda: collections.OrderedDict([("b", 1), ("a", 2)]), _text),
    "collections.Counter": (lambda: collections.Counter("abracadabra"), lambda c: _text(c.most_common())),
    "collections.ChainMap": (lambda: collections.ChainMap({"a": 1}, {"a": 2, "b": 3}), lambda m: _text(dict(m))),
    "collections.namedtuple field": (lambda: time.localtime(0).__class__, _text),
    # _datetime
    "datetime.date": (lambda: datetime.date(2024, 2, 29), _text),
    "datetime.time": (lambda: datetime.time(23, 59, 1, 5, fold=1), lambda t: _text((t, t.fold))),
    "datetime.datetime": (lambda: datetime.datetime(2024, 2, 29, 12, 0, 7, 123), _text),
    "datetime.timedelta": (lambda: datetime.timedelta(days=-3, microseconds=7), _text),
    "datetime.timezone": (lambda: datetime.timezone(datetime.timedelta(hours=5, minutes=30), "IST"), _text),
    "datetime.datetime(tz)": (lambda: datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), _text),
    "zoneinfo.ZoneInfo": (lambda: zoneinfo.ZoneInfo("Europe/Paris"),
                          lambda z: _text((z, z is zoneinfo.ZoneInfo("Europe/Paris")))),
    "datetime.datetime(ZoneInfo)": (lambda: datetime.datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
                                    lambda d: _text((d, d.utcoffset()))),
    # _decimal, fractions
    "decimal.Decimal": (lambda: decimal.Decimal("-1.2300E+5"), _text),
    "decimal.Decimal(nan)": (lambda: decimal.Decimal("sNaN12"), _text),
    "decimal.Context": (_decimal_context, lambda c: _text((c, c.divide(decimal.Decimal(1), decimal.Decimal(3))))),
    "decimal.DecimalTuple": (lambda: decimal.Decimal("1.5").as_tuple(), _text),
    "fractions.Fraction": (lambda: fractions.Fraction(-22, 7), _text),
    # _functools, _operator
    "functools.partial": (lambda: functools.partial(int, base=2), lambda p: _text((p.func, p.args, p.keywords, p("101")))),
    "functools.lru_cache": (lambda: functools.lru_cache(maxsize=3)(abs), lambda f: _text((f(-2), f.cache_parameters()))),
    "operator.itemgetter": (lambda: operator.itemgetter(2, 0), lambda g: _text((g, g("xyz")))),
    "operator.attrgetter": (lambda: operator.attrgetter("real", "imag"), lambda g: _text((g, g(3 + 4j)))),
    "operator.methodcaller": (lambda: operator.methodcaller("split", ",", 1), lambda m: _text((m, m("a,b,c")))),
    # _struct, array
    "struct.Struct": (lambda: struct.Struct("<id"), _struct),
    "array.array": (lambda: array.array("d", [1.5, -2.0]), _text),
    "array.array('u')": (lambda: array.array("u", "text"), _text),
    "array iterator": (lambda: _advanced(iter(array.array("i", range(6))), 2), _items),
    # itertools (what plain pickle supports)
    "itertools.count": (lambda: _advanced(itertools.count(5, 2), 3), _items),
    "itertools.cycle": (lambda: _advanced(itertools.cycle("abc"), 4), _items),
    "itertools.repeat": (lambda: _advanced(itertools.repeat("x", 5), 2), _items),
    "itertools.accumulate": (lambda: _advanced(itertools.accumulate(range(10), initial=100), 3), _items),
    "itertools.chain": (lambda: _advanced(itertools.chain("ab", "cd"), 3), _items),
    "itertools.compress": (lambda: _advanced(itertools.compress("abcdef", [1, 0, 1, 1, 0, 1]), 1), _items),
    "itertools.dropwhile": (lambda: itertools.dropwhile(operator.not_, [0, 0, 1, 0, 2]), _items),
    "itertools.takewhile": (lambda: itertools.takewhile(bool, [3, 2, 1, 0, 5]), _items),
    "itertools.filterfalse": (lambda: _advanced(itertools.filterfalse(None, [0, 1, 0, 2, 0]), 1), _items),
    "itertools.groupby": (lambda: _advanced(itertools.groupby("aabbbc"), 1),
                          lambda g: _text([(k, list(v)) for k, v in g])),
    "itertools.groupby _grouper": (lambda: next(itertools.groupby("aaab"))[1], _items),
    "itertools.islice": (lambda: _advanced(itertools.islice(range(20), 2, 15, 3), 1), _items),
    "itertools.pairwise": (lambda: _advanced(itertools.pairwise("abcde"), 1), _items),
    "itertools.starmap": (lambda: _advanced(itertools.starmap(pow, [(2, 3), (3, 2), (4, 2)]), 1), _items),
    "itertools.tee": (lambda: _advanced(itertools.tee("abcdef")[0], 2), _items),
    "itertools.zip_longest": (lambda: _advanced(itertools.zip_longest("ab", "wxyz", fillvalue="-"), 1), _items),
    "itertools.product": (lambda: _advanced(itertools.product("ab", repeat=2), 1), _items),
    "itertools.permutations": (lambda: _advanced(itertools.permutations("abc", 2), 2), _items),
    "itertools.combinations": (lambda: _advanced(itertools.combinations("abcd", 2), 2), _items),
    "itertools.combinations_with_replacement": (
        lambda: _advanced(itertools.combinations_with_replacement("abc", 2), 2), _items),
    # builtins made by C code
    "range iterator": (lambda: _advanced(iter(range(3, 30, 4)), 2), _items),
    "list reverse iterator": (lambda: _advanced(reversed([1, 2, 3, 4]), 1), _items),
    "str iterator": (lambda: _advanced(iter("hello"), 2), _items),
    "bytes iterator": (lambda: _advanced(iter(b"hello"), 2), _items),
    "tuple iterator": (lambda: _advanced(iter((1, 2, 3)), 1), _items),
    "set iterator": (lambda: _advanced(iter({10, 20, 30}), 1), _items),
    "enumerate": (lambda: _advanced(enumerate("abc", 5), 1), _items),
    "zip": (lambda: _advanced(zip("abc", range(3)), 1), _items),
    "map": (lambda: _advanced(map(str.upper, "abc"), 1), _items),
    "filter": (lambda: _advanced(filter(str.isupper, "aBcD"), 1), _items),
    "reversed(sequence)": (lambda: _advanced(reversed("abcd"), 1), _items),
    "callable iterator": (lambda: iter(functools.partial(next, iter([1, 2, 3, None])), None), _items),
    "slice": (lambda: slice(1, None, -2), _text),
    "complex": (lambda: complex(1.5, -2), _text),
    "bytearray": (lambda: bytearray(b"\x00\x01abc"), _text),
    "frozenset": (lambda: frozenset({1, 2, 3}), lambda s: _text(sorted(s))),
    "types.SimpleNamespace": (lambda: types.SimpleNamespace(a=1, b=[2]), _text),
    "types.GenericAlias": (lambda: dict[str, list[int]], _text),
    "types.UnionType": (lambda: int | None, _text),
    "builtin method": (lambda: [3, 1, 2].copy, lambda m: _text(m())),
    "method descriptor": (lambda: str.upper, lambda m: _text(m("abc"))),
    "exception": (lambda: KeyError("missing", 3), lambda e: _text((type(e), e.args))),
    # _sre, _random, _contextvars, _thread, _queue
    "re.Pattern": (lambda: re.compile(r"(?P<word>\w+)\s", re.I | re.M), lambda p: _text((p, p.flags, p.findall("a b c")))),
    "random.Random": (lambda: random.Random(42), lambda r: _text([r.random() for _ in range(3)])),
    "threading.Lock": (threading.Lock, lambda lock: _text(lock.locked())),
    "threading.Event": (lambda: (lambda e: (e.set(), e)[1])(threading.Event()), lambda e: _text(e.is_set())),
    "queue.Queue": (lambda: (lambda q: (q.put(1), q.put("two"), q)[2])(queue.Queue()),
                    lambda q: _text((q.qsize(), q.get(), q.get()))),
    # pure-Python types of the standard library
    "pathlib.PurePosixPath": (lambda: pathlib.PurePosixPath("/a/b.txt"), _text),
    "pathlib.Path": (lambda: pathlib.Path("relative/dir"), _text),
    "uuid.UUID": (lambda: uuid.UUID("12345678-1234-5678-1234-567812345678"), _text),
    "enum member": (lambda: Weekday.TUE, lambda e: _text((e, e is Weekday.TUE))),
    "enum flag": (lambda: Perm.R | Perm.W, lambda p: _text((p, int(p)))),
    "library enum member": (lambda: re.IGNORECASE, lambda e: _text((e, e is re.IGNORECASE))),
    # re's parse tree: its opcodes are constants of re._constants that refuse pickling
    # (__reduce__ = None); a checkpoint taken while re compiles a pattern holds them
    "re parse tree": (lambda: re._parser.parse(r"a+(b|[cd])"),
                      lambda t: _text((t.data, t.data[0][0] is re._constants.MAX_REPEAT))),
    "ipaddress.IPv4Network": (lambda: ipaddress.ip_network("10.1.0.0/16"), _text),
    "ipaddress.IPv6Address": (lambda: ipaddress.ip_address("::1"), _text),
    "string.Template": (lambda: string.Template("$who likes $what"), lambda t: t.substitute(who="a", what="b")),
    "csv.Dialect": (csv.excel_tab, lambda d: _text((d.delimiter, d.quoting))),
    "time.struct_time": (lambda: time.gmtime(86400 * 365), _text),
    "xml Element": (lambda: ElementTree.fromstring("<a x='1'><b>t</b></a>"), lambda e: ElementTree.tostring(e)),
    "weakref.ref": (lambda: weakref.ref(Weekday), lambda r: _text(r() is Weekday)),
    "codecs.CodecInfo": (lambda: codecs.lookup("utf-8"), lambda i: _text((i.name, i.encode("\u00e9")))),
    # forwards unknown attributes to its stream (__getattr__), which pickle's load tripped on
    "codecs.StreamReader": (lambda: _read(codecs.getreader("utf-8")(io.BytesIO("d\u00e9j\u00e0 vu".encode())), 2),
                            lambda r: _text((r.read(), r.tell()))),
    "codecs.CodecInfo(unregistered)": (lambda: codecs.CodecInfo(str.upper, str.lower, name="upper"),
                                       lambda i: _text((i.name, i.encode("abc"), i._is_text_encoding))),
    # weak containers hold what is still alive (classes here), made again with new KeyedRefs
    "weakref.WeakValueDictionary": (lambda: weakref.WeakValueDictionary({"day": Weekday, "perm": Perm}),
                                    lambda d: _text(sorted((k, v.__name__) for k, v in d.items()))),
    "weakref.WeakKeyDictionary": (lambda: weakref.WeakKeyDictionary({Weekday: 1, Perm: 2}),
                                  lambda d: _text(sorted((k.__name__, v) for k, v in d.items()))),
    "weakref.WeakSet": (lambda: weakref.WeakSet([Weekday, Perm]), lambda s: _text(sorted(c.__name__ for c in s))),
    # state that plain pickle cannot capture either: refused, naming the type
    "hashlib.sha256": (lambda: hashlib.sha256(b"abc"), None),
    "hashlib.blake2b": (lambda: hashlib.blake2b(b"abc"), None),
    "zlib.Compress": (zlib.compressobj, None),
    "re.Match": (lambda: re.match(r"\w", "abc"), None),
    "contextvars.ContextVar": (lambda: contextvars.ContextVar("var"), None),
    "contextvars.Context": (contextvars.copy_context, None),
    "queue.SimpleQueue": (queue.SimpleQueue, None),
    "csv.writer": (lambda: csv.writer(io.StringIO()), None),
    "csv writer's dialect": (lambda: csv.writer(io.StringIO(), delimiter=";").dialect, None),
    "socket.socket": (socket.socket, None),
    "sqlite3.Connection": (lambda: sqlite3.connect(":memory:"), None),
    "memoryview": (lambda: memoryview(b"abc"), None),
    "functools.cmp_to_key": (lambda: functools.cmp_to_key(lambda a, b: a - b)(1), None),
    "io.TextIOWrapper(BytesIO)": (lambda: io.TextIOWrapper(io.BytesIO(b"x")), None),
    "io.IncrementalNewlineDecoder": (lambda: io.IncrementalNewlineDecoder(None, translate=True), None),
}

# Refused with UnsupportedStateError: plain pickle cannot capture these either.
REFUSED = {name for name, (_factory, describe) in SAMPLES.items() if describe is None}

# The C modules checked type by type (see module docstring).
COVERED_MODULES = (
    "_io", "_collections", "_datetime", "_decimal", "_functools", "_operator", "_struct", "array", "itertools",
    "_random", "_zoneinfo", "_csv", "_contextvars", "_queue", "_thread", "_bz2", "_lzma", "_hashlib", "_md5",
    "_sha1", "_sha256", "_sha512", "_sha3", "_blake2", "_socket", "select", "_sqlite3", "_elementtree",
    "pyexpat", "_weakref", "time", "unicodedata", "_json", "_pickle", "zlib",
)

# Public types of COVERED_MODULES that no sample is an instance of, and why.
NO_SAMPLE = {
    "_io.FileIO": "open files: test_process_heap (heap_files)",
    "_io.BufferedReader": "open files: heap_files",
    "_io.BufferedWriter": "open files: heap_files",
    "_io.BufferedRandom": "open files: heap_files",
    "_io._RawIOBase": "abstract base of FileIO",
    "_io.BufferedRWPair": "a pair of streams (sockets, pipes), refused as they are",
    "_collections._tuplegetter": "a namedtuple's field descriptor, part of its class",
    "_thread.RLock": "test_process_heap (heap_records)",
    "_thread._local": "thread-local data: threads are another suite's",
    "_thread._ExceptHookArgs": "exists only while threading.excepthook runs",
    "_csv.Reader": "reads a file: refused as csv.writer is",
    "_contextvars.Token": "made by ContextVar.set, refused as ContextVar is",
    "_bz2.BZ2Compressor": "compressor state: refused as zlib.Compress is",
    "_bz2.BZ2Decompressor": "as BZ2Compressor",
    "_lzma.LZMACompressor": "as BZ2Compressor",
    "_lzma.LZMADecompressor": "as BZ2Compressor",
    "_hashlib.HASHXOF": "hash state: refused as hashlib.sha256 is",
    "_hashlib.HMAC": "as HASHXOF",
    "_md5.MD5Type": "as HASHXOF",
    "_sha1.SHA1Type": "as HASHXOF",
    "_sha256.SHA224Type": "as HASHXOF",
    "_sha256.SHA256Type": "as HASHXOF",
    "_sha512.SHA384Type": "as HASHXOF",
    "_sha3.sha3_224": "as HASHXOF",
    "_sha3.sha3_256": "as HASHXOF",
    "_sha3.sha3_384": "as HASHXOF",
    "_sha3.sha3_512": "as HASHXOF",
    "_sha3.shake_128": "as HASHXOF",
    "_sha3.shake_256": "as HASHXOF",
    "_blake2.blake2s": "as hashlib.blake2b",
    "select.epoll": "an OS handle: refused as socket.socket is",
    "_sqlite3.Cursor": "part of a Connection",
    "_sqlite3.Blob": "part of a Connection",
    "_sqlite3.Row": "part of a Cursor's results",
    "_sqlite3.PrepareProtocol": "protocol marker of the sqlite3 adapters",
    "_elementtree.TreeBuilder": "parser state",
    "_elementtree.XMLParser": "parser state",
    "pyexpat.XMLParserType": "parser state",
    "_weakref.ProxyType": "a proxy acts as its target",
    "_weakref.CallableProxyType": "a proxy acts as its target",
    "unicodedata.UCD": "the unicodedata.ucd_3_2_0 database object",
    "_json.make_scanner": "internal of json.JSONDecoder",
    "_json.make_encoder": "internal of json.JSONEncoder",
    "_pickle.Pickler": "pickler state",
    "_pickle.Unpickler": "pickler state",
    "_pickle.PickleBuffer": "a view of another object's memory, refused as memoryview is",
    "itertools._tee_dataobject": "part of a tee",
}
