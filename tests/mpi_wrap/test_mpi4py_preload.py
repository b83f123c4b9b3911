# mpi4py goes through the preloaded interposer: its counters (read through
# pyckpt._core's binding, which raises if the preload is not active) must
# reflect the pickled and buffer traffic below.
from mpi4py import MPI

from pyckpt import _core

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
before = _core.mpi_stats()
if rank == 0:
    comm.send({"x": 1}, dest=1, tag=3)
elif rank == 1:
    assert comm.recv(source=0, tag=3) == {"x": 1}
after = _core.mpi_stats()
assert after["sent"] - before["sent"] == (1 if rank == 0 else 0), (rank, after["sent"])
assert after["received"] - before["received"] == (1 if rank == 1 else 0), (rank, after["received"])
comm.Barrier()
total = comm.allreduce(rank)
assert total == size * (size - 1) // 2
before = _core.mpi_stats()
assert before["collectives"] - after["collectives"] >= 1
if rank == 0:
    print("mpi4py: interposer active, counts match")
