"""MPI-IO on the program's own files, the way simulation codes write output.
Each step computes a block of doubles per rank and writes it
- with Write_at_all at an explicit offset into out.at.bin (opened with hints
  and MODE_EXCL), plus a checksum with Write_at, and reads the previous
  block back with Read_at;
- with Write_all through a file view into out.view.bin: a vector filetype
  interleaves the ranks' elements (freed right after Set_view), the
  individual file pointer advances, atomic mode is on;
- with Write_ordered (the shared file pointer) into out.ordered.<half>.bin,
  opened on the two halves of a split communicator that is freed at once;
and every 8 steps a summary with Write_at_all into out.summary.bin, opened
and closed again each time. The per-rank log out.<rank> records the file
pointers, the atomicity and whether the block read back is the one written,
so a file that lost data written before a checkpoint changes the log.

A second argument keeps something open from before the loop to after it
that a checkpoint refuses, in out.extra.bin: "delete-on-close" (opened with
MODE_DELETE_ON_CLOSE), "held-request" (an Iwrite_at request), "split" (a
split collective begun)."""
import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 120
refused = sys.argv[2] if len(sys.argv) > 2 else None
n = 256  # doubles per rank and step
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
log = open(f"out.{rank}", "w")


def open_with_hints(comm, name, amode, **hints):
    info = MPI.Info.Create()
    for key, value in hints.items():
        info.Set(key, value)
    fh = MPI.File.Open(comm, name, amode, info)
    info.Free()
    return fh


at = open_with_hints(comm, "out.at.bin", MPI.MODE_RDWR | MPI.MODE_CREATE | MPI.MODE_EXCL,
                     access_style="write_mostly", collective_buffering="true")
checksums = steps * size * n  # doubles: where the per-step checksums start in out.at.bin

view = MPI.File.Open(comm, "out.view.bin", MPI.MODE_WRONLY | MPI.MODE_CREATE)
vector = MPI.DOUBLE.Create_vector(n, 1, size)
filetype = vector.Create_resized(0, n * size * MPI.DOUBLE.Get_extent()[1]).Commit()
vector.Free()
view.Set_view(rank * MPI.DOUBLE.Get_extent()[1], MPI.DOUBLE, filetype)
filetype.Free()
view.Set_atomicity(True)

half = comm.Split(rank % 2, rank)
ordered = MPI.File.Open(half, f"out.ordered.{rank % 2}.bin", MPI.MODE_WRONLY | MPI.MODE_CREATE)
half.Free()

if refused:
    marker = np.full(4, rank, dtype=np.int32)
    extra = MPI.File.Open(comm, "out.extra.bin", MPI.MODE_WRONLY | MPI.MODE_CREATE
                          | (MPI.MODE_DELETE_ON_CLOSE if refused == "delete-on-close" else 0))
    if refused == "held-request":
        held = extra.Iwrite_at(rank * marker.nbytes, marker)
    elif refused == "split":
        extra.Write_at_all_begin(rank * marker.nbytes, marker)

u = np.cos(np.arange(n) * (rank + 1) / n)
previous = np.zeros(n)
readback = np.zeros(n)
checksum = np.zeros(1)
total = np.zeros(1)
for step in range(steps):
    u = np.sin(u + 0.01 * step) + 0.001 * rank  # compute
    at.Write_at_all((step * size + rank) * n * 8, u)
    view.Write_all(u)
    ordered.Write_ordered(np.full(1 + (rank + step) % 3, 1000 * step + rank, dtype=np.int32))
    checksum[0] = u.sum()
    at.Write_at((checksums + step * size + rank) * 8, checksum)
    comm.Allreduce(checksum, total, op=MPI.SUM)
    time.sleep(0.01)
    if step > 0:
        at.Read_at(((step - 1) * size + rank) * n * 8, readback)
    same = step == 0 or np.array_equal(readback, previous)
    previous[:] = u
    if step % 8 == 7:
        summary = MPI.File.Open(comm, "out.summary.bin", MPI.MODE_WRONLY | MPI.MODE_CREATE)
        summary.Write_at_all(((step // 8) * size + rank) * 8, total)
        summary.Close()
    log.write(f"step {step} total {total[0]:.15e} view position {view.Get_position()} "
              f"shared position {ordered.Get_position_shared()} atomic {view.Get_atomicity()} "
              f"read back {'as written' if same else 'DIFFERENT'}\n")
    log.flush()
if refused == "held-request":
    held.Wait()
elif refused == "split":
    extra.Write_at_all_end(marker)
for fh in (at, view, ordered, *([extra] if refused else [])):
    fh.Close()
log.close()
if rank == 0:
    print(f"final total {total[0]:.15e}")
