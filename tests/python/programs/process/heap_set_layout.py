"""Sets that existed at a checkpoint iterate after the restart as they do in
the uninterrupted run, also where a fresh set holding the same elements would
iterate otherwise (doc/heap.md, "Sets"): strings after adds and discards,
ints that collide in the table, a frozenset made from a set (its table is
sized for the whole set at once), a set emptied by discards (large table,
few elements), a set whose pop() finger moved; held by a global, a user
object, a function's local, a generator's local, a dict key. What the
program does with them after the checkpoint (adds that grow the table,
pops) goes on as uninterrupted."""
from ckpt import checkpoint

words = set()
for i in range(60):
    words.add(f"w{i}")
    if i % 3 == 0:
        words.discard(f"w{i // 2}")
collided = set()
collided.add(3)
collided.add(11)  # same home slot as 3 in a table of 8: probes to slot 0
multiples = set()
for i in range(0, 400, 8):
    multiples.add(i)
for i in range(0, 400, 24):
    multiples.discard(i)
frozen = frozenset(words)
emptied = set(range(1000))
emptied -= set(range(10, 1000))
popped = {f"p{i}" for i in range(30)}
for _ in range(5):
    popped.pop()
by_key = {frozenset(f"k{i}" for i in range(12)): "value"}
nested = {frozenset({"x", "y"}), frozen, "z"}
ordered = {f"d{i}": i for i in range(20)}
for i in range(0, 20, 3):
    del ordered[f"d{i}"]
ordered["d0"] = 0


class Bag:
    def __init__(self):
        self.items = set()
        for i in range(40):
            self.items.add(f"b{i * 7 % 40}")
            self.items.discard(f"b{i // 3}")


def sets_of(gen_items):
    return [words, collided, multiples, frozen, emptied, popped, next(iter(by_key)), nested, gen_items]


def show(label, sets):
    for i, s in enumerate(sets):
        print(label, i, list(s))
    print(label, "dict", list(ordered.items()))


def generator():
    local = set()
    for i in range(50):
        local.add(i * 33 % 101)
        if i % 4 == 0:
            local.discard(i * 33 % 101 // 2)
    yield local
    yield list(local)


def work():
    bag = Bag()
    h = {f"h{i}" for i in range(25)} - {f"h{i}" for i in range(0, 25, 2)}
    gen = generator()
    gen_items = next(gen)
    sets = sets_of(gen_items) + [bag.items, h]
    show("before", sets)
    for round_ in range(2):
        checkpoint()
        show(f"after {round_}", sets)
        print("generator", next(gen) if round_ == 0 else "done")
    # The tables go on as in the uninterrupted run: new elements, growth,
    # pop() from the restored finger.
    for s in sets:
        if isinstance(s, set):
            for i in range(20):
                s.add(f"n{i}")
            print("popped", [s.pop() for _ in range(3)])
    show("end", sets)


work()
