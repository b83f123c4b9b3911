"""A second Python thread calls MPI (Barrier, Allreduce) while the main
thread computes: pyckpt supports one application thread calling MPI, so
checkpoints requested meanwhile fail, saying why, and the job goes on.
argv: SECONDS. Rank 0 prints the sum the helper threads computed."""
import sys
import threading
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
seconds = float(sys.argv[1])
total = np.zeros(1)


def helper(rounds):
    for i in range(rounds):
        comm.Barrier()
        part = np.zeros(1)
        comm.Allreduce(np.array([float(i)]), part)
        total[0] += part[0]
        time.sleep(0.01)


rounds = int(seconds / 0.02)
thread = threading.Thread(target=helper, args=(rounds,))
thread.start()
end, x = time.monotonic() + seconds, 1
while time.monotonic() < end:  # the main thread computes, no MPI
    x = (x * 1103515245 + 12345) % 2147483648
thread.join()
comm.Barrier()
if comm.rank == 0:
    print(f"threads done: {total[0]:.0f}", flush=True)
