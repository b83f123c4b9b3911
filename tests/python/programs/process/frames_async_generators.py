"""Async generators (async def with yield) driven without asyncio, by
send(), as a hand-written scheduler does. At the checkpoint the program
holds: an async generator suspended at a `yield`; a pending asend() awaitable
not awaited yet; an asend() being iterated while its generator is suspended
in an `await` inside it; an async generator being iterated by `async for`
inside a coroutine (suspended both at a yield and in an await); an aclose()
being iterated while the generator's `finally` awaits; one never started and
one finished. After the restart everything runs on to the same results."""
from ckpt import checkpoint


class Tick:
    """An awaitable that suspends its awaiter once, handing the driver a label."""

    def __init__(self, label):
        self.label = label

    def __await__(self):
        got = yield self.label
        return got


def drive(awaitable, value=None):
    """Sends once into an awaitable: ('yield', what it handed out) or ('done', its result)."""
    try:
        return ("yield", awaitable.send(value))
    except StopIteration as stop:
        return ("done", stop.value)
    except StopAsyncIteration:
        return ("done", "StopAsyncIteration")


async def counter(name, n):
    """Yields n values; awaits a Tick between them; records what it was sent."""
    received = []
    try:
        for i in range(n):
            got = yield f"{name}{i}"
            received.append(got)
            extra = await Tick(f"{name}-tick{i}")
            received.append(extra)
    finally:
        await Tick(f"{name}-cleanup")
        print(f"{name} cleaned up, received {received}")


async def consumer(name, agen):
    """Iterates an async generator with `async for` inside a coroutine."""
    items = []
    async for item in agen:
        items.append(item)
        await Tick(f"{name} got {item}")
    return items


def run_consumer(coro, log, checkpoint_at=()):
    """Drives a coroutine until it returns, sending the step number."""
    step = 0
    while True:
        step += 1
        if step in checkpoint_at:
            checkpoint()
        kind, value = drive(coro, None if step == 1 else step)
        log.append(value)
        if kind == "done":
            return value


log = []
# One finished, one never started.
finished = counter("f", 0)
ending = finished.__anext__()
print("finished:", drive(ending), drive(ending))
never = counter("n", 1)

# Suspended at a yield; an asend() done with (closed); a pending asend()
# not awaited yet.
at_yield = counter("y", 3)
spent = at_yield.asend(None)
print("y first:", drive(spent))
step = at_yield.asend("sent-y0")
print("y tick:", drive(step), drive(step, "tick-y0"))
pending = at_yield.asend("sent-y1")

# An asend() being iterated: its generator suspended in the `await Tick`.
in_await = counter("w", 2)
print("w first:", drive(in_await.__anext__()))
iterating = in_await.asend("sent-w0")
print("w in await:", drive(iterating))

# An aclose() being iterated: the generator's finally awaits.
closing_gen = counter("c", 5)
print("c first:", drive(closing_gen.__anext__()))
closing = closing_gen.aclose()
print("c closing:", drive(closing))

# `async for` inside a coroutine, checkpointed while the coroutine waits in
# the loop's __anext__() (the async generator in its await), then while it
# waits in its own await (the async generator at its yield).
result = run_consumer(consumer("consumer", counter("a", 3)), log, checkpoint_at=(3, 4))

print("consumer result:", result)
print("log:", log)
print("w after await:", drive(iterating, "tick-w0"))
print("y pending:", drive(pending), drive(pending, "tick-y1"))
print("c closed:", drive(closing))
print("never, now:", drive(never.__anext__()))
print("finished again:", drive(finished.__anext__()))
for name, used in (("asend", spent), ("asend", iterating), ("aclose", closing)):
    try:
        drive(used)
    except RuntimeError as exc:
        print(f"reused {name}:", exc)
for agen in (at_yield, in_await, never):
    closer = agen.aclose()
    print("closed at the end:", drive(closer), drive(closer))
