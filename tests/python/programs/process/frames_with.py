"""with-blocks: a class-based context manager and a @contextmanager
generator, each with a checkpoint inside the block; __exit__ (and the code
after the generator's yield) runs exactly once, also when the block raises."""
import contextlib

from ckpt import checkpoint

events = []


class Resource:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        events.append("enter " + self.name)
        return self

    def __exit__(self, exc_type, exc, tb):
        events.append(f"exit {self.name} {exc_type.__name__ if exc_type else None}")
        return exc_type is ValueError  # swallow ValueError


@contextlib.contextmanager
def managed(tag):
    events.append("setup " + tag)
    try:
        yield tag.upper()
    finally:
        events.append("teardown " + tag)


with Resource("r1") as r:
    checkpoint()
    events.append("body " + r.name)

with Resource("r2"), managed("m1") as m:
    checkpoint()
    events.append("body " + m)
    raise ValueError("swallowed by r2")

print(events)
