"""An unmodified program (no pyckpt), as preempt_coroutines.py, whose
coroutines get their work from async generators: each particle iterates an
async generator of moves with `async for`, driven by a hand-written
round-robin scheduler with send(). A preemptive checkpoint is taken at a line
of the scheduler, while every coroutine and async generator is suspended (at
a `yield`, or in an `await` with its asend() being iterated). A progress line
per round (deterministic)."""
import sys

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 100


class Yield:
    def __await__(self):
        return (yield)


def compute(seed, n):
    x = seed
    for _ in range(n):
        x = (x * 1103515245 + 12345) % 2147483648
    return x


async def moves(seed):
    x = seed
    while True:
        x = compute(x, 20000)
        await Yield()
        yield x % 1000


async def particle(index):
    position = index
    async for step in moves(position + index):
        position = (position + step) % 100003
        await Yield()
        if position % 7 == 0:
            position += 1


particles = [particle(i) for i in range(5)]
for p in particles:
    p.send(None)
for round_number in range(ROUNDS):
    for p in particles:
        p.send(round_number)
    print(f"round {round_number}: {[p.cr_frame.f_locals['position'] for p in particles]}", flush=True)
print("done")
