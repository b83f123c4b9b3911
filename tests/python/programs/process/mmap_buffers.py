"""mmap.mmap maps across checkpoints (doc/heap.md, "Memory of mmap maps and
MPI.Alloc_mem"): anonymous maps of every access mode and of explicit flags
and prot, with their contents and positions; file-backed maps (shared,
read-only, copy-on-write) of a data file next to the program; NumPy arrays
made with np.frombuffer over maps, which must still be views of them after
a restart (writes through an array show in the map and the other way
round); a closed map. Prints what it sees after each checkpoint, and
`describe` prints the maps' sizes as JSON for the test to find them in the
checkpoint file."""
import json
import mmap
import os
import sys

import numpy as np

from ckpt import checkpoint

PAGE = mmap.PAGESIZE
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mmap_data.bin")


def state(mm):
    return (repr(mm), mm[:8], mm[-4:]) if not mm.closed else repr(mm)


with open(DATA, "wb") as f:
    f.write(bytes(range(256)) * (3 * PAGE // 256))

anon = mmap.mmap(-1, 3 * PAGE)                      # MAP_SHARED, ACCESS_DEFAULT (the OSU benchmarks' buffers)
anon.write(b"hello anonymous map")
anon[-4:] = b"tail"
private = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE)
private[:5] = b"priv!"
private.seek(3)
readonly = mmap.mmap(-1, PAGE, access=mmap.ACCESS_READ)
copy_anon = mmap.mmap(-1, PAGE, access=mmap.ACCESS_COPY)
copy_anon[:4] = b"copy"
big = mmap.mmap(-1, 1 << 22)                        # 4 MiB, the OSU benchmarks' MAX_MSG_SIZE
big_view = np.frombuffer(big, dtype=np.float64)     # aliasing views, as a program makes them
big_view[:] = np.arange(big_view.size) * 0.5
words = np.frombuffer(anon, dtype=np.uint32, count=PAGE // 4, offset=PAGE)
strided = np.frombuffer(anon, dtype=np.uint8)[PAGE:2 * PAGE:3]

with open(DATA, "r+b") as f:
    shared_file = mmap.mmap(f.fileno(), PAGE, offset=PAGE)       # pages 1 of the file, ACCESS_DEFAULT
    readonly_file = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    copy_file = mmap.mmap(f.fileno(), PAGE, access=mmap.ACCESS_COPY)
file_view = np.frombuffer(shared_file, dtype=np.uint8)
shared_file[:6] = b"shared"                          # reaches the file
copy_file[:6] = b"cowcow"                            # private: not in the file
readonly_file.seek(100)

closed = mmap.mmap(-1, PAGE)
closed.close()

if sys.argv[1:] == ["describe"]:
    print(json.dumps({"anon": len(anon), "private": len(private), "copy_anon": len(copy_anon), "big": len(big),
                      "copy_file": len(copy_file)}))
maps = {"anon": anon, "private": private, "readonly": readonly, "copy_anon": copy_anon, "big": big,
        "shared_file": shared_file, "readonly_file": readonly_file, "copy_file": copy_file, "closed": closed}

checkpoint()
for name, mm in maps.items():
    print(name, state(mm), mm.tell() if not mm.closed else "-")
print("big", big_view[:3].tolist(), big_view[-1], float(big_view.sum()))
words[0] = 0x01020304                                # through the views into the maps
strided[:] = 7
big_view[0] = -1.0
file_view[-1] = 0xEE
anon.seek(0)
anon.write(b"HELLO")
private[100:104] = b"more"

checkpoint()
print("anon via words", anon[PAGE:PAGE + 4], anon[PAGE:PAGE + 10:3], words[:2].tolist())
print("big via view", big[:8], np.shares_memory(big_view, np.frombuffer(big, dtype=np.uint8)))
print("file view", shared_file[-1], file_view[0], bytes(shared_file[:6]))
print("private", private[:5], private[100:104], private.tell())
with open(DATA, "rb") as f:
    f.seek(PAGE)
    print("file", f.read(6), f.read(PAGE - 7)[-3:], f.read(1))   # the shared map's writes are in the file
    f.seek(0)
    print("file start", f.read(6))                               # the copy-on-write map's are not
readonly_file.seek(0)
print("readonly file", readonly_file.read(3), readonly_file[PAGE:PAGE + 6])
del words, strided, big_view, file_view
for mm in maps.values():
    mm.close()                                       # no buffer export left behind by the restart
print("closed all", all(mm.closed for mm in maps.values()))
