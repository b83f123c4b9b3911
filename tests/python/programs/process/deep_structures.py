"""Object graphs nested far deeper than Python's recursion limit: a linked
list of user-class nodes, a degenerate tree, nested lists and dicts, and a
cycle closing a long chain. Each is checked, grown and checked again across
two checkpoints."""
import sys

from ckpt import checkpoint


class Node:
    def __init__(self, value, next_node):
        self.value = value
        self.next = next_node


class Tree:
    def __init__(self, left, right):
        self.left, self.right = left, right


def linked(n):
    head = None
    for i in reversed(range(n)):
        head = Node(i, head)
    return head


def walk(head):
    count, total, node = 0, 0, head
    while node is not None:
        count, total, node = count + 1, total + node.value, node.next
    return count, total


def nested(n, make):
    x = None
    for i in range(n):
        x = make(x, i)
    return x


def depth(x, inner):
    d = 0
    while x is not None:
        x, d = inner(x), d + 1
    return d


n = int(sys.argv[1])
head = linked(n)
tree = nested(n // 2, lambda x, i: Tree(x, [i]))
lists = nested(n, lambda x, i: [x, i])
dicts = nested(n, lambda x, i: {"in": x, "i": i})
ring = linked(n // 4)
last = ring
while last.next is not None:
    last = last.next
last.next = ring  # a cycle through the whole chain


def report(stage):
    print(stage, walk(head), depth(tree, lambda t: t.left), depth(lists, lambda x: x[0]),
          depth(dicts, lambda d: d["in"]), last.next is ring, flush=True)


report("built")
checkpoint()
report("after 1")
head = Node(-1, head)
lists = [lists, -1]
checkpoint()
report("after 2")
