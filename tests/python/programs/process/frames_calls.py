"""Calls with *args, **kwargs and keyword-only arguments, defaults, a bound
method and a staticmethod/classmethod on the stack at the checkpoint."""
from ckpt import checkpoint


def target(a, b=2, *rest, key, opt="o", **extra):
    checkpoint()
    return (a, b, rest, key, opt, sorted(extra.items()))


class K:
    factor = 3

    def method(self, *args, **kwargs):
        return target(*args, **kwargs)

    @classmethod
    def cm(cls, x, *, y):
        return cls.factor * sum(target(x, key=y)[:2])

    @staticmethod
    def sm(**kw):
        return target(0, **kw)


args = (1, 5, 6, 7)
kwargs = {"key": "k", "z": 26, "y": 25}
print(target(*args, **kwargs))
print(K().method(1, key="kw-only", opt="given", extra=True))
print(K.cm(4, y=10))
print(K.sm(key=1, b=9))
