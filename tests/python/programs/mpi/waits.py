"""Load imbalance with the other places a rank can wait (issue 14, "Bounded
latency"): in every step one rank (it rotates) computes in pure Python about
50 times longer than the others, which meanwhile wait in an operation of
KIND. argv: STEPS WORK KIND [HOLD], WORK the slow rank's loop length, HOLD a
file name: in step 1 the slow rank also computes until that file exists (a
test creates it once it has its checkpoint). KIND:

nonblocking collectives of NumPy arrays, KIND = NAME-late or NAME-early:
  late: the fast ranks issue it and wait for it (Wait), the slow rank issues
  it only after its computation (members that issued it and members that did
  not at the cut); early: every rank issues it, then computes, then waits
  (every member issued it). NAME: ibarrier, iallreduce, ibcast (rooted at a
  fast rank: completes early at the root without the wrapper), ireduce,
  igather, iscatter, ialltoall, iallgather.
compound lowercase calls of mpi4py (pickled Python objects):
  sendrecv       ring of comm.sendrecv: the slow rank's successor waits for it
  allreduce_obj  comm.allreduce (a tree of point-to-point messages, then bcast)
  reduce_obj     comm.reduce to the slow rank's successor (the tree; rooted at rank 0,
                 rank 2 of 3 is a leaf that only sends: it ran on to MPI_Finalize
                 while the slow rank held, which no checkpoint can cut)
  scan_obj       comm.scan (recursive doubling of sendrecvs)
  exscan_obj     comm.exscan (the same, exclusive)
  bcast_obj      comm.bcast from the slow rank (a Bcast of the size, then the data)
  gather_obj, scatter_obj, alltoall_obj (a collective of sizes, then the data)
  irecv_obj      a lowercase comm.irecv of the slow rank's object, pending while it computes
other waiting loops (NumPy buffers):
  probe          comm.Probe, then Recv of the slow rank's message
  iprobe         a loop of comm.Iprobe until the slow rank's message is there
  waitany        Irecv from the slow rank and from a fast peer, Waitany until both done
  testany        the same with a Testany loop
  waitsome       the same with Waitsome
Each rank writes one line per step to out.<rank>."""
import os
import sys

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
steps, work, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
hold = sys.argv[4] if len(sys.argv) > 4 else None
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")


def compute(n, seed):
    """Pure Python work: no MPI call for its whole duration."""
    x = seed
    for _ in range(n):
        x = (x * 1103515245 + 12345) % 2147483648
    return x


def computing_until_released():
    """The hold: computes until the file HOLD exists (a checkpoint may fall
    between two compute() calls, here)."""
    while not os.path.exists(hold):
        compute(10_000, 0)


def work_of(step):
    """The step's computation, with the hold of step 1 on its slow rank."""
    slow = step % size
    x = compute(work if rank == slow else work // 50, step * size + rank)
    if hold and step == 1 and rank == slow:
        computing_until_released()
    return x % 1000


def nonblocking_collective(name, step, value):
    """Posts the collective NAME of this step; returns (request, result array)."""
    slow = step % size
    root = (slow + 1) % size  # a fast rank: rooted ones complete early there without the wrapper
    mine = np.array([value, rank, step], "i8")
    if name == "ibarrier":
        return comm.Ibarrier(), np.array([value], "i8")
    if name == "iallreduce":
        result = np.zeros(3, "i8")
        return comm.Iallreduce(mine, result, op=MPI.SUM), result
    if name == "ibcast":
        result = mine.copy() if rank == root else np.zeros(3, "i8")
        return comm.Ibcast(result, root=root), result
    if name == "ireduce":
        result = np.zeros(3, "i8")
        return comm.Ireduce(mine, result, op=MPI.MAX, root=root), result
    if name == "igather":
        result = np.zeros(3 * size, "i8")
        return comm.Igather(mine, result, root=root), result
    if name == "iscatter":
        send = np.arange(3 * size, dtype="i8") * (step + 1) + value if rank == root else None
        result = np.zeros(3, "i8")
        return comm.Iscatter(send, result, root=root), result
    if name == "ialltoall":
        send = np.arange(size, dtype="i8") + 100 * rank + value
        result = np.zeros(size, "i8")
        return comm.Ialltoall(send, result), result
    if name == "iallgather":
        result = np.zeros(3 * size, "i8")
        return comm.Iallgather(mine, result), result
    raise SystemExit(f"unknown nonblocking collective {name}")


def lowercase(step, value):
    slow = step % size
    obj = {"rank": rank, "step": step, "value": value, "pad": "x" * (value % 7)}
    if kind == "sendrecv":
        got = comm.sendrecv(obj, dest=(rank + 1) % size, sendtag=step, source=(rank - 1) % size, recvtag=step)
        return [got["rank"], got["value"]]
    if kind == "allreduce_obj":
        return list(comm.allreduce((value, rank), op=lambda a, b: (a[0] + b[0], max(a[1], b[1]))))
    if kind == "reduce_obj":
        root = (slow + 1) % size
        got = comm.reduce([value], op=lambda a, b: a + b, root=root)
        return sorted(got) if rank == root else [0]
    if kind == "scan_obj":
        return [comm.scan(value)]
    if kind == "exscan_obj":
        return [comm.exscan(value) or 0]
    if kind == "bcast_obj":
        return [comm.bcast(obj if rank == slow else None, root=slow)["value"]]
    if kind == "gather_obj":
        got = comm.gather(obj, root=(slow + 1) % size)
        return [o["value"] for o in got] if got else [0]
    if kind == "scatter_obj":
        items = [{"to": r, "value": value + r} for r in range(size)] if rank == slow else None
        return [comm.scatter(items, root=slow)["value"]]
    if kind == "alltoall_obj":
        return [o["value"] for o in comm.alltoall([{"value": value + 10 * r} for r in range(size)])]
    if kind == "irecv_obj":
        if rank == slow:
            for r in range(size):
                if r != slow:
                    comm.send(obj, dest=r, tag=step)
            return [value]
        return [comm.irecv(source=slow, tag=step).wait()["value"]]
    raise SystemExit(f"unknown KIND {kind}")


def waiting_loop(step, value):
    """The fast ranks wait for a message of the slow rank (and one of a fast
    peer) in a loop of KIND; the slow rank sends after computing."""
    slow = step % size
    mine = np.array([value, rank, step], "i8")
    if rank == slow:
        for r in range(size):
            if r != slow:
                comm.Send(mine, dest=r, tag=step)
        return [value]
    got = np.zeros(3, "i8")
    if kind == "probe":
        status = MPI.Status()
        comm.Probe(source=slow, tag=step, status=status)
        comm.Recv(got, source=status.Get_source(), tag=step)
        return got.tolist()
    if kind == "iprobe":
        while not comm.Iprobe(source=slow, tag=step):
            pass
        comm.Recv(got, source=slow, tag=step)
        return got.tolist()
    # A fast peer's message too: the loop completes one request, then waits for the other.
    fast = [r for r in range(size) if r != slow]
    peer = fast[(fast.index(rank) + 1) % len(fast)]
    back = fast[(fast.index(rank) - 1) % len(fast)]
    from_peer = np.zeros(3, "i8")
    requests = [comm.Irecv(got, source=slow, tag=step), comm.Irecv(from_peer, source=back, tag=1000 + step)]
    comm.Send(mine, dest=peer, tag=1000 + step)
    done = []
    while len(done) < 2:
        if kind == "waitany":
            done.append(MPI.Request.Waitany(requests))
        elif kind == "testany":
            index, flag = MPI.Request.Testany(requests)
            if flag:
                done.append(index)
        elif kind == "waitsome":
            done.extend(MPI.Request.Waitsome(requests) or [])
        else:
            raise SystemExit(f"unknown KIND {kind}")
    return got.tolist() + from_peer.tolist()


total = 0
for step in range(steps):
    name, _, order = kind.partition("-")
    if order == "early":
        request, result = nonblocking_collective(name, step, step * 7 + rank)
        value = work_of(step)
        request.Wait()
        result = result.tolist() + [value]
    elif order == "late":
        value = work_of(step)
        request, result = nonblocking_collective(name, step, value)
        request.Wait()
        result = result.tolist()
    elif kind in ("probe", "iprobe", "waitany", "testany", "waitsome"):
        result = waiting_loop(step, work_of(step))
    else:
        result = lowercase(step, work_of(step))
    total += sum(result)
    out.write(f"{step} {result} {total}\n")
    out.flush()
if rank == 0:
    print(f"waits {kind} done: {total}", flush=True)
