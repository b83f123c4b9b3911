"""The whole call stack from the module frame down: positions and locals of
every frame (ints, strings, lists, a local bound in a caller only)."""
from ckpt import checkpoint

counter = 0


def leaf(depth, tag):
    local_list = [depth, tag]
    checkpoint()
    local_list.append("after")
    return local_list


def middle(n):
    text = "middle-%d" % n
    result = leaf(n + 1, text)
    result.append(text)
    return result


def outer():
    a, b = 10, 20
    r = middle(a + b)
    return (a, b, r)


print("before", counter)
print("outer ->", outer())
counter += 1
print("after", counter)
