"""checkpoint() from a non-main thread, from a coroutine run by asyncio, from
a coroutine driven by hand, from an async generator: a clear CheckpointError;
the program goes on."""
import asyncio
import sys
import threading

import pyckpt

kind = sys.argv[1]
errors = []


def attempt():
    try:
        pyckpt.checkpoint()
        errors.append("no error")
    except pyckpt.CheckpointError as e:
        errors.append(f"{type(e).__name__}: {e}")


async def coro():
    attempt()
    await asyncio.sleep(0)


async def agen():
    attempt()
    yield 1


async def consume():
    async for _ in agen():
        pass


if kind == "thread":
    t = threading.Thread(target=attempt, name="worker-thread")
    t.start()
    t.join()
elif kind == "asyncio":
    asyncio.run(coro())
elif kind == "coroutine":
    c = coro()
    try:
        c.send(None)
        c.send(None)
    except StopIteration:
        pass
elif kind == "async_generator":
    asyncio.run(consume())
print(errors[0] if errors else "attempt did not run")
print("continued")
