"""checkpoint() from a non-main thread, from a coroutine run by asyncio, from
a coroutine driven by hand, from an async generator run by asyncio, with an
asyncio event loop in a variable: a clear CheckpointError; the program goes
on."""
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
elif kind == "event_loop":
    loop = asyncio.new_event_loop()  # not running: refused as an object of the heap
    attempt()
    loop.close()
print(errors[0] if errors else "attempt did not run")
print("continued")
