"""A set of objects hashed by identity (their address), whose order a
restart cannot restore: the restart warns, naming the variable."""
from ckpt import checkpoint


class Node:
    def __init__(self, n):
        self.n = n


def work():
    nodes = {Node(i) for i in range(40)}
    for node in list(nodes)[::3]:
        nodes.discard(node)
    checkpoint()
    print(len(nodes), "nodes")


work()
