"""Coroutines (async def) driven by send(), as a hand-written scheduler does:
at the checkpoint some are suspended in an `await` of a custom awaitable,
in an `await` of another coroutine, one was never started and one has
finished; after the restart the scheduler runs them on to the same results.
A generator-based coroutine (types.coroutine) is awaited too."""
import types

from ckpt import checkpoint


class Tick:
    """An awaitable that suspends the awaiting coroutine once, handing the
    scheduler a label."""

    def __init__(self, label):
        self.label = label

    def __await__(self):
        got = yield self.label
        return got


@types.coroutine
def pause(label):
    got = yield ("pause", label)
    return got


async def leaf(name, n):
    total = 0
    for i in range(n):
        total += await Tick(f"{name}:{i}")
    return total


async def worker(name, n):
    first = await leaf(name, n)
    second = await pause(name)
    return (name, first, second)


def run_until_done(coros, log, checkpoint_at=None):
    """Round-robin: sends each live coroutine the number of the round."""
    results = {}
    rounds = 0
    while coros:
        rounds += 1
        if rounds == checkpoint_at:
            checkpoint()
        for name in list(coros):
            try:
                log.append((name, coros[name].send(None if rounds == 1 else rounds)))
            except StopIteration as stop:
                results[name] = stop.value
                del coros[name]
    return results


log = []
finished = worker("done", 1)
print("finished early:", run_until_done({"done": finished}, log))
never = worker("never", 2)
coros = {"a": worker("a", 3), "b": worker("b", 5), "c": worker("c", 1)}
print("first results:", run_until_done(coros, log, checkpoint_at=3))
print("log:", log)
print("never started, now:", run_until_done({"never": never}, []))
try:
    finished.send(None)
except RuntimeError as exc:
    print("finished coroutine:", exc)
