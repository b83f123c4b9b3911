"""Checkpoint and restart of a linked list of N user-class objects (issue
12: ~400 nodes used to exceed the pickler's recursion limit).

Times, in one process: plain pickle.dumps + pickle.loads of the list on a
thread with a 2 GiB stack and a raised recursion limit (the baseline, what a
user would otherwise need), then pyckpt.checkpoint() (synchronous: capture,
pickle on the large stack, write, commit); then `pyckpt restart` of that
checkpoint in a fresh process, until the resumed program has walked the list.

Run: PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_deep.py --build build [--nodes 1000000]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

PROGRAM = textwrap.dedent('''
    import pickle, sys, threading, time
    import pyckpt

    class Node:
        def __init__(self, value, next_node):
            self.value, self.next = value, next_node

    head = None
    for i in range(int(sys.argv[1])):
        head = Node(i, head)

    def baseline():
        started = time.perf_counter()
        data = pickle.dumps(head, protocol=5)
        dumped = time.perf_counter()
        pickle.loads(data)
        print(f"pickle.dumps {dumped - started:.2f} s, pickle.loads {time.perf_counter() - dumped:.2f} s, "
              f"{len(data) / 2**20:.0f} MiB", flush=True)

    sys.setrecursionlimit(10**8)
    threading.stack_size(2 << 30)
    thread = threading.Thread(target=baseline)
    thread.start()
    thread.join()
    del thread
    started = time.perf_counter()
    if pyckpt.checkpoint(sys.argv[2]):
        count, node = 0, head
        while node is not None:
            count, node = count + 1, node.next
        assert count == int(sys.argv[1])
    else:
        print(f"pyckpt.checkpoint {time.perf_counter() - started:.2f} s", flush=True)
''')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="build")
    parser.add_argument("--nodes", type=int, default=1_000_000)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(args.build), "python"), PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as tmp:
        script, ckpt_dir = os.path.join(tmp, "linked.py"), os.path.join(tmp, "ckpt")
        with open(script, "w") as f:
            f.write(PROGRAM)
        print(f"linked list of {args.nodes:,} objects")
        # Through a pipe: a restart writing to the same regular file would
        # cut off what was printed after the checkpoint (doc/process.md).
        first = subprocess.run([sys.executable, script, str(args.nodes), ckpt_dir], env=env, check=True,
                               stdout=subprocess.PIPE, text=True)
        print(first.stdout, end="", flush=True)
        size = sum(os.path.getsize(os.path.join(ckpt_dir, n)) for n in os.listdir(ckpt_dir) if n.endswith(".h5"))
        started = time.perf_counter()
        subprocess.run([os.path.join(args.build, "bin", "pyckpt"), "restart", ckpt_dir], env=env, check=True,
                       stdout=subprocess.PIPE)
        print(f"pyckpt restart (whole process) {time.perf_counter() - started:.2f} s, checkpoint {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
