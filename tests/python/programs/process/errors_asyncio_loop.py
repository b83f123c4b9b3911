"""An unmodified asyncio program (asyncio.run(main()) with tasks and
asyncio.sleep). Under `pyckpt run --interval` no checkpoint can be taken
while its event loop runs: each attempt is refused with one message naming
the frame that runs the loop, and the program runs to its end unharmed."""
import asyncio
import sys

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 100


async def worker(name, steps, results):
    total = 0
    for i in range(steps):
        total += sum(range(2000 * (i + 1)))
        await asyncio.sleep(0.03)
    results[name] = total


async def main():
    results = {}
    tasks = [asyncio.create_task(worker(f"w{i}", STEPS, results)) for i in range(3)]
    await asyncio.gather(*tasks)
    return sorted(results.items())


print("results:", asyncio.run(main()), flush=True)
