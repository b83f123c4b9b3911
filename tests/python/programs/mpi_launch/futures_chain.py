"""An mpi4py.futures application run as `python3 -m mpi4py.futures
futures_chain.py STEPS`: rank 0 runs it and submits STEPS tasks one after
the other (each needs the previous result) to the pool that the other ranks
serve; it prints the last result."""
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def step(x):
    time.sleep(0.02)
    return x + 1


if __name__ == "__main__":
    steps = int(sys.argv[1])
    with MPIPoolExecutor() as pool:
        x = 0
        for _ in range(steps):
            x = pool.submit(step, x).result()
    print(f"chain {x}", flush=True)
