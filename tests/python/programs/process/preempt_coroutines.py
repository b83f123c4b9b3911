"""An unmodified program (no pyckpt) whose work runs inside coroutines
(async def) driven by a hand-written round-robin scheduler with send(), as
simulation frameworks built on coroutines do: a preemptive checkpoint is
taken at a line of the scheduler, while every coroutine is suspended in an
`await` (a line inside a running coroutine is no safe point: the request
waits until it suspends). A progress line per round (deterministic)."""
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


async def stage(seed):
    partial = compute(seed, 20000)
    await Yield()
    return partial % 1000


async def particle(index):
    position = index
    while True:
        position = (position + await stage(position + index)) % 100003
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
