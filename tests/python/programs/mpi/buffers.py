"""A benchmark loop shaped like mpi4py's demo/osu_latency.py and osu_bw.py:
message buffers in MPI.Alloc_mem memory and in an anonymous mmap, NumPy
arrays made over them with np.frombuffer (and an MPI.memory slice of the
block), and per pair of ranks (0-1, 2-3,
...) steps that alternate a ping-pong (Send/Recv, latency) and a window of
Isend/Irecv completed by Waitall and acknowledged (bandwidth), over message
sizes 0 B .. 64 KiB. Each rank also keeps a log in a file-backed shared map
(out.map.<rank>, compared with the other outputs).

Instead of timings, every rank writes per step a digest of what it received
to out.<rank>. What is sent is written through the NumPy views and what is
received is read through them, so a view that stopped aliasing its buffer
after a restart (or a receive pending at the cut that was re-posted into
other memory) changes the digests.

argv: steps [refuse]; refuse: the program also holds an MPI.memory made
with MPI.memory.fromaddress, which a checkpoint must refuse, naming it.
"""
import mmap
import sys
import time
import zlib

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
assert size % 2 == 0, "ranks work in pairs"

SIZES = [0, 1, 8, 64, 512, 4096, 1 << 16]
MAX_MSG_SIZE = SIZES[-1]
WINDOW = 8
LOG_SLOTS = 512

s_buf = MPI.Alloc_mem(MAX_MSG_SIZE)
r_buf = mmap.mmap(-1, WINDOW * MAX_MSG_SIZE)
s_view = np.frombuffer(s_buf, dtype=np.uint8)
ack = s_buf[:4]  # an MPI.memory slice of the block
spare = MPI.Alloc_mem(64)
MPI.Free_mem(spare)  # kept, freed (an empty memory)
r_view = np.frombuffer(r_buf, dtype=np.uint8)
log_path = f"out.map.{rank}"
with open(log_path, "wb") as f:
    f.truncate(LOG_SLOTS * 8)
with open(log_path, "r+b") as f:
    log_map = mmap.mmap(f.fileno(), 0)
log = np.frombuffer(log_map, dtype=np.uint64)
if sys.argv[2:] == ["refuse"]:
    foreign = MPI.memory.fromaddress(s_buf.address + 8, 16)

peer = rank ^ 1
sender = rank % 2 == 0
out = open(f"out.{rank}", "w")
digest = rank
for step in range(steps):
    nbytes = SIZES[step % len(SIZES)]
    s_view[:nbytes] = (np.arange(nbytes) * 7 + digest + step) % 251
    if step % 2 == 0:  # latency: one message each way
        if sender:
            comm.Send([s_buf, nbytes, MPI.BYTE], peer, 1)
            comm.Recv([r_buf, nbytes, MPI.BYTE], peer, 1)
        else:
            comm.Recv([r_buf, nbytes, MPI.BYTE], peer, 1)
            comm.Send([s_buf, nbytes, MPI.BYTE], peer, 1)
        received = r_view[:nbytes]
    else:  # bandwidth: a window of messages, then a 4-byte acknowledgement
        if sender:
            # The receiver waits in Waitall meanwhile, with its receives
            # posted: checkpoints are often cut there.
            time.sleep(0.01)
            requests = [comm.Isend([s_buf, nbytes, MPI.BYTE], peer, 100) for _ in range(WINDOW)]
            MPI.Request.Waitall(requests)
            comm.Recv([r_buf, 4, MPI.BYTE], peer, 101)
            received = r_view[:4]
        else:
            slots = [r_view[j * MAX_MSG_SIZE:j * MAX_MSG_SIZE + nbytes] for j in range(WINDOW)]
            requests = [comm.Irecv([slot, MPI.BYTE], peer, 100) for slot in slots]
            MPI.Request.Waitall(requests)
            received = np.concatenate(slots)
            s_view[:4] = np.frombuffer(zlib.crc32(received).to_bytes(4, "little"), dtype=np.uint8)
            comm.Send([ack, MPI.BYTE], peer, 101)
    digest = zlib.crc32(received, digest)
    # The map's contents are state too (an older entry: folding the current
    # digest into itself would give CRC-32's constant residue).
    digest = zlib.crc32(log[(step - 2) % LOG_SLOTS], digest)
    log[step % LOG_SLOTS] = digest
    out.write(f"step {step} bytes {nbytes} digest {digest:08x}\n")
    out.flush()
    time.sleep(0.005)
out.write(f"freed {len(spare)} {spare.address}\n")
out.close()
digests = comm.gather(digest)
s_view = r_view = log = received = slots = ack = None  # the buffers' last exports, before closing them
MPI.Free_mem(s_buf)
r_buf.close()
log_map.close()
if rank == 0:
    print(f"final digests {' '.join(f'{d:08x}' for d in digests)}")
