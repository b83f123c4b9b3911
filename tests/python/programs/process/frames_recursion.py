"""Recursion 200 deep with a checkpoint at the bottom and pending work in
every frame on the way back."""
from ckpt import checkpoint


def down(n, acc):
    if n == 0:
        checkpoint()
        return acc
    return down(n - 1, acc + [n % 7]) + [n]


result = down(200, [])
print(len(result), sum(result), result[:5], result[-5:])
