"""itertools objects part-way consumed: count, cycle, repeat, chain,
islice, accumulate, groupby, product, permutations, combinations,
zip_longest, starmap, takewhile, tee, pairwise; list/range/map/zip iterators."""
import itertools
import operator

from ckpt import checkpoint

its = {
    "count": itertools.count(5, 2),
    "cycle": itertools.cycle("abc"),
    "repeat": itertools.repeat("r", 5),
    "chain": itertools.chain([1, 2], (3, 4), "xy"),
    "islice": itertools.islice(range(100), 3, 30, 4),
    "accumulate": itertools.accumulate([1, 2, 3, 4, 5], operator.mul),
    "product": itertools.product("ab", repeat=2),
    "permutations": itertools.permutations(range(3)),
    "combinations": itertools.combinations("abcd", 2),
    "zip_longest": itertools.zip_longest([1, 2, 3], "ab", fillvalue="-"),
    "starmap": itertools.starmap(pow, [(2, 3), (3, 2), (10, 2)]),
    "takewhile": itertools.takewhile(lambda v: v < 5, [1, 3, 5, 2]),
    "pairwise": itertools.pairwise("abcdef"),
    "list_iter": iter([10, 20, 30]),
    "range_iter": iter(range(3, 9)),
    "map": map(str.upper, ["p", "q", "r"]),
    "zip": zip("uvw", range(3)),
}
groups = itertools.groupby("aaabbc")
tee_a, tee_b = itertools.tee(iter([1, 2, 3, 4]))
for it in its.values():
    next(it)
key, grp = next(groups)
next(tee_a)
checkpoint()
for name, it in its.items():
    print(name, list(itertools.islice(it, 4)))
print(key, list(grp), [(k, list(g)) for k, g in groups])
print(list(tee_a), list(tee_b))
