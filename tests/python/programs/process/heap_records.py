"""Instances with __slots__, dataclasses (frozen too), enums (Flag too),
namedtuples: values, equality, identity of enum members, methods."""
import dataclasses
import enum
from collections import namedtuple
from typing import NamedTuple

from ckpt import checkpoint


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0
    tags: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


Pair = namedtuple("Pair", "left right")


class Typed(NamedTuple):
    name: str
    size: int = 1


s = Slotted(1, [2])
p = Point(3, tags=["t"])
v = Version(1, 2)
c = Color.GREEN
perm = Perm.R | Perm.W
pair = Pair(1, 2)
typed = Typed("n")
checkpoint()
print(s.a, s.b, not hasattr(s, "__dict__"))
print(p, p == Point(3, 0, ["t"]), dataclasses.asdict(p), Point(9))
print(v, v < Version(1, 3), hash(v) == hash(Version(1, 2)))
print(c, c is Color.GREEN, Color(1), list(Color), perm, Perm.W in perm)
print(pair, pair.left, pair._replace(right=5), typed, typed._asdict())
