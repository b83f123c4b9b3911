"""Static value-stack depth analysis of 3.11 bytecode (pyckpt._core.stack_depths)."""
import collections
import dis
import difflib
import json
import pprint
import re
import textwrap

from pyckpt import _core


def sample(o, a, kw, *rest, k=1, **more):
    try:
        with open("/dev/null") as fh:
            x = [i * 2 for i in range(3) if i]
    except (ValueError, KeyError) as e:
        raise RuntimeError from e
    finally:
        pass
    match o:
        case [1, *tail] if tail:
            pass
        case {"a": v}:
            pass
    return o[1] + 5 * (3 + len(a)) if a else f"{k!r:>4}"


def test_plain_and_quickened_agree():
    plain = _core.stack_depths(sample.__code__)
    for _ in range(20):  # quickened after warm-up: specialised opcodes, superinstructions
        sample([1, 2], [3], {})
    assert _core.stack_depths(sample.__code__, live=True) == plain
    assert len(plain) == len(sample.__code__.co_code) // 2


def test_depth_at_call():
    def f():
        return 5 * (3 + len("ab"))
    depths = _core.stack_depths(f.__code__)
    call = next(i for i in dis.get_instructions(f) if i.opname == "CALL")
    precall = next(i for i in dis.get_instructions(f) if i.opname == "PRECALL")
    # 5, 3, NULL, len, "ab": the arguments stay until CALL.
    assert depths[precall.offset // 2] == depths[call.offset // 2] == 5
    assert depths[call.offset // 2 + 1] is None  # inline cache


def test_extended_arg():
    src = "def f():\n    x = 0\n" + "".join(f"    v{i} = {i}\n" for i in range(300)) + "    return [v0, v299]\n"
    ns = {}
    exec(src, ns)
    ops = [i.opname for i in dis.get_instructions(ns["f"])]
    assert "EXTENDED_ARG" in ops
    checked, bad = _core._verify_stack_depths(ns["f"])
    assert checked > 600 and bad == []


def test_matches_interpreter_on_stdlib_workload():
    def work():
        for _ in range(5):
            json.loads(json.dumps({"a": [1, 2.5, None, {"b": "c"}]}, indent=2))
            re.compile(r"(a|b)*c[0-9]{2,}(?P<x>\w+)").match("abc12x")
            textwrap.fill("hello world " * 20, 30)
            list(difflib.unified_diff("abc\ndef".splitlines(), "abd\ndef".splitlines()))
            pprint.pformat({"x": list(range(30))})
            collections.namedtuple("P", "x y")(1, 2)
            sample([1, 2], [3], {})
            sample({"a": 1}, [], {})
    checked, bad = _core._verify_stack_depths(work)
    assert checked > 50000
    assert bad == []
