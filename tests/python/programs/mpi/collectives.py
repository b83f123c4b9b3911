"""The common collectives on COMM_WORLD and on a Split sub-communicator
(color rank % 2, reversed key order), step after step. argv: STEPS FLAVOUR,
FLAVOUR "buffer" (uppercase methods, NumPy buffers: Barrier, Bcast, Reduce,
Allreduce, Gather, Gatherv, Scatter, Scatterv, Allgather, Allgatherv,
Alltoall, Alltoallv, Scan) or "pickle" (lowercase methods, Python objects)."""
import sys
import time

import numpy as np
from mpi4py import MPI

world = MPI.COMM_WORLD
wrank = world.Get_rank()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 40
flavour = sys.argv[2] if len(sys.argv) > 2 else "buffer"
print(f"program start: rank {wrank}", file=sys.stderr, flush=True)
out = open(f"out.{wrank}", "w")
sub = world.Split(color=wrank % 2, key=world.Get_size() - wrank)
I8 = "i8"


def buffer_ops(c, s):
    r, n = c.Get_rank(), c.Get_size()
    res = []
    c.Barrier()
    b = np.arange(4, dtype=I8) + s if r == 0 else np.zeros(4, I8)
    c.Bcast(b, root=0)
    res.append(("Bcast", b))
    red = np.zeros(2, I8)
    c.Reduce(np.array([r + s, r * s], I8), red, op=MPI.SUM, root=n - 1)
    res.append(("Reduce", red))
    ar = np.zeros(2, I8)
    c.Allreduce(np.array([r + s, -r], I8), ar, op=MPI.MAX)
    res.append(("Allreduce", ar))
    g = np.zeros(n, I8)
    c.Gather(np.array([10 * r + s], I8), g, root=0)
    res.append(("Gather", g))
    counts = [i + 1 for i in range(n)]
    gv = np.zeros(sum(counts), I8)
    c.Gatherv(np.full(r + 1, r + s, I8), [gv, counts], root=0)
    res.append(("Gatherv", gv))
    sc = np.zeros(2, I8)
    c.Scatter(np.arange(2 * n, dtype=I8) * s if r == 0 else None, sc, root=0)
    res.append(("Scatter", sc))
    sv = np.zeros(r + 1, I8)
    c.Scatterv([np.arange(sum(counts), dtype=I8) + s, counts] if r == n - 1 else None, sv, root=n - 1)
    res.append(("Scatterv", sv))
    ag = np.zeros(n, I8)
    c.Allgather(np.array([r * s], I8), ag)
    res.append(("Allgather", ag))
    agv = np.zeros(sum(counts), I8)
    c.Allgatherv(np.full(r + 1, s - r, I8), [agv, counts])
    res.append(("Allgatherv", agv))
    aa = np.zeros(n, I8)
    c.Alltoall(np.arange(n, dtype=I8) + 100 * r + s, aa)
    res.append(("Alltoall", aa))
    sendcounts = [j + 1 for j in range(n)]
    recvcounts = [r + 1] * n
    av = np.zeros(sum(recvcounts), I8)
    c.Alltoallv([np.arange(sum(sendcounts), dtype=I8) + 1000 * r + s, sendcounts], [av, recvcounts])
    res.append(("Alltoallv", av))
    sn = np.zeros(1, I8)
    c.Scan(np.array([r + s], I8), sn, op=MPI.SUM)
    res.append(("Scan", sn))
    return [(name, a.tolist()) for name, a in res]


def pickle_ops(c, s):
    r, n = c.Get_rank(), c.Get_size()
    res = []
    c.barrier()
    res.append(("bcast", c.bcast({"step": s, "list": list(range(s % 5))} if r == 0 else None, root=0)))
    res.append(("reduce", c.reduce(r * s + 1, op=MPI.SUM, root=n - 1)))
    res.append(("allreduce", c.allreduce((r, s), op=MPI.MAX)))
    res.append(("gather", c.gather(f"r{r}s{s}", root=0)))
    res.append(("scatter", c.scatter([(i, s) for i in range(n)] if r == 0 else None, root=0)))
    res.append(("allgather", c.allgather([r] * (r + 1))))
    res.append(("alltoall", c.alltoall([f"{r}->{j}@{s}" for j in range(n)])))
    res.append(("scan", c.scan(r + s, op=MPI.SUM)))
    res.append(("exscan", c.exscan(r + 1, op=MPI.SUM)))
    return res


ops = buffer_ops if flavour == "buffer" else pickle_ops
for step in range(steps):
    for name, c in (("world", world), ("sub", sub)):
        for op, value in ops(c, step):
            out.write(f"step {step} {name} {op} {value}\n")
    out.flush()
    time.sleep(0.02)
out.close()
check = world.allreduce(sub.allreduce(steps))
if wrank == 0:
    print(f"final {flavour} collectives done, check {check}")
