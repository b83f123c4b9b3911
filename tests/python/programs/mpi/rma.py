"""One-sided communication (MPI.Win), deterministic output per rank.

rma.py STEPS fence: 1-D heat diffusion whose halo cells are Put into the
  neighbours' NumPy array (a window made with Win.Create over it) in fence
  epochs; each rank Puts its local heat into its slot of rank 0's memory of
  a second window (Win.Allocate), which rank 0 reads through a NumPy view of
  win.tomemory() and the others Get.
rma.py STEPS lock: passive target. A Win.Allocate window is held under
  Lock_all for the whole loop: each rank Puts a value into its slot on its
  right neighbour, Flushes it, and reads its own slots through a NumPy view
  after a Barrier; a counter in rank 0's memory is incremented under an
  exclusive Lock with Accumulate, Fetch_and_op and Compare_and_swap on the
  rank's own slots, and read under a shared Lock. The counter's window is
  made with Win.Create over MPI.Alloc_mem memory that the program does not
  keep (as mpi4py's nxtval demo does): it reaches it only through the
  window.
rma.py STEPS dynamic|pscw: the fence loop with a window a checkpoint
  refuses, alive throughout (a dynamic window; a window synchronized with
  Post/Start/Complete/Wait once).
"""
import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 150
mode = sys.argv[2] if len(sys.argv) > 2 else "fence"
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
left = rank - 1 if rank > 0 else MPI.PROC_NULL
right = rank + 1 if rank < size - 1 else MPI.PROC_NULL


def fence_loop(refused=None):
    n = 500
    x = (rank * n + np.arange(n)) / (size * n)
    u = np.zeros(n + 2)  # u[0], u[n + 1]: halo cells, Put by the neighbours
    u[1:-1] = np.exp(-200.0 * (x - 0.3) ** 2) + 0.5 * np.exp(-500.0 * (x - 0.7) ** 2)
    halo = MPI.Win.Create(u, disp_unit=u.itemsize, comm=comm)
    heat = MPI.Win.Allocate(8 * size if rank == 0 else 0, disp_unit=8, comm=comm)
    if rank == 0:
        slots = np.frombuffer(heat.tomemory(), dtype="d")  # a view of the window's memory
        slots[:] = 0.0
    everyone = np.zeros(size)
    halo.Fence()
    heat.Fence()
    for step in range(steps):
        halo.Put(u[1:2], left, target=n + 1)
        halo.Put(u[n:n + 1], right, target=0)
        halo.Fence()
        # Read now: once past the next fences, a neighbour may already Put
        # the next step's halo.
        halos = f"{u[0]:.15e} {u[-1]:.15e}"
        if left == MPI.PROC_NULL:
            u[0] = u[1]
        if right == MPI.PROC_NULL:
            u[-1] = u[-2]
        u[1:-1] = u[1:-1] + 0.4 * (u[:-2] - 2 * u[1:-1] + u[2:])
        heat.Put(np.array([u[1:-1].sum()]), 0, target=rank)
        heat.Fence()
        if rank == 0:
            everyone[:] = slots
        else:
            heat.Get(everyone, 0)
        heat.Fence()
        out.write(f"step {step} halo {halos} total {everyone.sum():.15e}\n")
        out.flush()
        time.sleep(0.01)
    halo.Free()
    heat.Free()
    if refused is not None:
        refused.Free()
    return float(u[1:-1].sum())


def counter_window(count):
    """A window over `count` zeroed int64 of MPI.Alloc_mem memory, which
    only the window object keeps."""
    memory = MPI.Alloc_mem(8 * count)
    np.frombuffer(memory, dtype=np.int64)[:] = 0
    return MPI.Win.Create(memory, disp_unit=8, comm=comm)


def lock_loop():
    slots = MPI.Win.Allocate(8 * size, disp_unit=8, comm=comm)
    mine = np.frombuffer(slots.tomemory(), dtype=np.int64)
    mine[:] = -1
    shared = counter_window(2 + 2 * size)  # rank 0's: the total, then per-rank slots
    neighbour = (rank + 1) % size
    comm.Barrier()
    slots.Lock_all()
    got = np.zeros(2 + 2 * size, dtype=np.int64)
    old = np.zeros(1, dtype=np.int64)
    for step in range(steps):
        slots.Put(np.array([1000 * step + rank], dtype=np.int64), neighbour, target=rank)
        slots.Flush(neighbour)
        comm.Barrier()
        slots.Sync()
        out.write(f"step {step} slots {' '.join(map(str, mine))}")
        shared.Lock(0, MPI.LOCK_EXCLUSIVE)
        shared.Accumulate(np.array([rank + 1], dtype=np.int64), 0, target=0, op=MPI.SUM)
        shared.Fetch_and_op(np.array([step], dtype=np.int64), old, 0, target_disp=2 + rank, op=MPI.SUM)
        shared.Compare_and_swap(np.array([step], dtype=np.int64), np.array([step - 1], dtype=np.int64), old, 0,
                                target_disp=2 + size + rank)
        shared.Unlock(0)
        comm.Barrier()
        shared.Lock(0, MPI.LOCK_SHARED)
        shared.Get(got, 0)
        shared.Unlock(0)
        comm.Barrier()
        out.write(f" counter {' '.join(map(str, got))}\n")
        out.flush()
        time.sleep(0.01)
    slots.Unlock_all()
    slots.Free()
    shared.Free()
    return int(got[0])


if mode == "lock":
    result = lock_loop()
elif mode == "fence":
    result = fence_loop()
elif mode == "dynamic":
    result = fence_loop(MPI.Win.Create_dynamic(comm=comm))
elif mode == "pscw":
    pscw = MPI.Win.Allocate(8, disp_unit=8, comm=comm)
    group = comm.Get_group()
    pscw.Post(group)
    pscw.Start(group)
    pscw.Complete()
    pscw.Wait()
    group.Free()
    result = fence_loop(pscw)
else:
    raise SystemExit(f"unknown mode {mode}")
out.close()
total = comm.allreduce(result)
if rank == 0:
    print(f"final {mode} result {total}")
