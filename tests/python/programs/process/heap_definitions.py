"""Functions, lambdas and classes defined in __main__ come back by value
(with defaults, closures, class attributes, inheritance, super(), methods
referring to the class), and keep working after the restart."""
from ckpt import checkpoint


def double(x, factor=2):
    return x * factor


square = lambda v: v * v  # noqa: E731


def make_adder(n):
    return lambda v: v + n


class Base:
    kind = "base"

    def describe(self):
        return f"{type(self).__name__}:{self.kind}"


class Derived(Base):
    kind = "derived"
    instances = 0

    def __init__(self):
        Derived.instances += 1

    def describe(self):
        return "[" + super().describe() + "]"


add5 = make_adder(5)
objs = [Derived(), Base()]
funcs = {"double": double, "square": square}
checkpoint()
print(double(4), double(4, 3), square(7), add5(1), funcs["double"] is double)
print([o.describe() for o in objs], Derived.instances, isinstance(objs[0], Base))
print(type(objs[0]) is Derived, Derived.__mro__[1] is Base, Derived().describe(), Derived.instances)
