# mpi4py goes through the preloaded interposer: its counters (read with
# ctypes from the process, which only has them if the preload is active)
# must reflect the pickled and buffer traffic below.
import ctypes

from mpi4py import MPI


class Stats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "intercepted", "sent", "received", "collectives", "checkpoints", "drained",
        "channel_pending", "replayed")]


lib = ctypes.CDLL(None)
get_stats = lib.pyckpt_mpi_get_stats  # AttributeError -> not preloaded -> test fails
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
before, after = Stats(), Stats()
assert get_stats(ctypes.byref(before)) == 0
if rank == 0:
    comm.send({"x": 1}, dest=1, tag=3)
elif rank == 1:
    assert comm.recv(source=0, tag=3) == {"x": 1}
assert get_stats(ctypes.byref(after)) == 0
assert after.sent - before.sent == (1 if rank == 0 else 0), (rank, after.sent)
assert after.received - before.received == (1 if rank == 1 else 0), (rank, after.received)
comm.Barrier()
total = comm.allreduce(rank)
assert total == size * (size - 1) // 2
assert get_stats(ctypes.byref(before)) == 0
assert before.collectives - after.collectives >= 1
if rank == 0:
    print("mpi4py: interposer active, counts match")
