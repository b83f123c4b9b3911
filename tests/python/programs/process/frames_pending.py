"""Pending values on the value stack of every frame: nested arithmetic
`5 * (3 + b())`, a list display, f-string parts, a method call (NULL/self
slots) with a keyword argument being built, a comparison chain, a dict
display."""
from ckpt import checkpoint


def b():
    checkpoint()
    return 4


class Box:
    def __init__(self, v):
        self.v = v

    def add(self, x, *, scale=1):
        return (self.v + x) * scale


box = Box(7)
x = 2
print(5 * (3 + b()))
print([1, "two", 3.0, f"{box.v}-{b()}-{'z' * 2}", x ** 3 - (x << 1)])
print(box.add(10, scale=b() + 1))
print(1 < b() < 10)
print({"k": 1, "j": [3, b()]})
