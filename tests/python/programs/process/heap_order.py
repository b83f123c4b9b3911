"""Sets and dicts keep their order: a set of strings (order depends on the
hash seed, which the restart must restore), a dict with deleted and
re-inserted keys, a set of ints after removals."""
from ckpt import checkpoint

words = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
d = {k: len(k) for k in ["one", "two", "three", "four"]}
del d["two"]
d["two"] = 2
nums = set(range(0, 40, 3))
nums.discard(9)
checkpoint()
print(list(words))
print(list(d.items()))
print(list(nums))
words.add("iota")
print(list(words))
