"""A checkpoint inside obj[i] handled by a user __getitem__ (the subscript
is pending in the caller), also in an augmented assignment."""
from ckpt import checkpoint


class Lazy:
    def __init__(self):
        self.data = [10, 20, 30]

    def __getitem__(self, i):
        if i == 1:
            checkpoint()
        return self.data[i] + 1


lazy = Lazy()
total = 100
total += lazy[1]
print(total, [lazy[0], lazy[2]])
print(lazy[1] * 2 + lazy[0])
