"""MPI objects held across a collective pyckpt.checkpoint(): groups, an Info,
error handlers (the one mpi4py sets on the communicators it creates, and
one the program sets itself), copies of predefined operations, and derived
datatypes of every constructor mpi4py offers, each used after the
checkpoint. Every rank logs what it sees to out.<rank>; a restarted job must
log what the uninterrupted one did (only "checkpoint returned" differs).

    objects.py STEPS AT          the job
    objects.py user-op           holds an MPI.Op.Create operation: the
                                 checkpoint fails, naming it (logged)
    objects.py persistent        made a persistent request (Send_init), a
                                 call checkpoints do not support: the
                                 checkpoint fails, naming the call and its
                                 line (logged)
"""
import sys
import time

import numpy as np
from mpi4py import MPI

import pyckpt

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")


def log(line):
    out.write(line + "\n")
    out.flush()


if sys.argv[1] in ("user-op", "persistent"):
    if sys.argv[1] == "user-op":
        def keep_larger(a, b, datatype):  # the operation of a user's own reduction
            np.maximum(np.frombuffer(a, dtype="i4"), np.frombuffer(b, dtype="i4"), out=np.frombuffer(b, dtype="i4"))

        held = MPI.Op.Create(keep_larger, commute=True)
    else:
        held = comm.Send_init(np.zeros(1), dest=rank)
    try:
        pyckpt.checkpoint()
        log("checkpoint written")
    except pyckpt.CheckpointError as error:
        log(f"checkpoint failed: {error}")
    held.Free()
    sys.exit(0)

steps, at = int(sys.argv[1]), int(sys.argv[2])

# Groups: the world's, a subset, an operation on two of them, the empty one.
world_group = comm.Get_group()
evens = world_group.Incl(list(range(0, size, 2)))
odds = world_group.Excl(list(range(0, size, 2)))
union = MPI.Group.Union(odds, evens)
empty = MPI.GROUP_EMPTY
# An Info with hints, and the predefined ones.
hints = MPI.Info.Create()
hints.Set("cb_nodes", "1")
hints.Set("pyckpt_test", "a value with spaces")
null_info = MPI.INFO_NULL
# Communicators: mpi4py set MPI_ERRORS_RETURN on these; on `fatal` the program
# chose MPI_ERRORS_ARE_FATAL; a group communicator.
dup = comm.Dup()
halves = comm.Split(rank % 2, -rank)
fatal = comm.Dup()
fatal.Set_errhandler(MPI.ERRORS_ARE_FATAL)
of_evens = comm.Create(evens)
handler = dup.Get_errhandler()  # a new handle to MPI_ERRORS_RETURN
sum_copy = MPI.Op(MPI.SUM)      # another handle to MPI_SUM
# Derived datatypes of every constructor, committed.
DOUBLE, INT = MPI.DOUBLE, MPI.INT
pair = MPI.Datatype.Create_struct([1, 1], [0, 8], [DOUBLE, INT])
types = {
    "contiguous": DOUBLE.Create_contiguous(3),
    "vector": DOUBLE.Create_vector(2, 1, 3),
    "hvector": DOUBLE.Create_hvector(2, 2, 24),
    "indexed": DOUBLE.Create_indexed([1, 2], [0, 3]),
    "hindexed": DOUBLE.Create_hindexed([2, 1], [0, 32]),
    "indexed_block": DOUBLE.Create_indexed_block(2, [0, 4]),
    "hindexed_block": DOUBLE.Create_hindexed_block(1, [8, 40]),
    "struct": pair,
    "resized": pair.Create_resized(0, 16),
    "subarray": DOUBLE.Create_subarray([4, 4], [2, 2], [1, 1]),
    "darray": DOUBLE.Create_darray(size, rank, [2 * size, 4], [MPI.DISTRIBUTE_BLOCK, MPI.DISTRIBUTE_NONE],
                                   [MPI.DISTRIBUTE_DFLT_DARG, MPI.DISTRIBUTE_DFLT_DARG], [size, 1]),
    "dup": DOUBLE.Dup(),
    "f90_real": MPI.Datatype.Create_f90_real(15, 307),
    "f90_integer": MPI.Datatype.Create_f90_integer(9),
}
for t in types.values():
    t.Commit()


def handler_name(h):
    return next((name for name in ("ERRORS_RETURN", "ERRORS_ARE_FATAL") if h == getattr(MPI, name)), repr(h))


def errhandler_of(c):
    h = c.Get_errhandler()
    name = handler_name(h)
    h.Free()
    return name


def describe(step):
    log(f"step {step} groups world={world_group.Get_size()} evens={evens.Get_size()} "
        f"odds={MPI.Group.Translate_ranks(odds, list(range(odds.Get_size())), world_group)} "
        f"union={MPI.Group.Compare(union, world_group)} empty={empty is MPI.GROUP_EMPTY} "
        f"my rank in evens={evens.Get_rank()}")
    log(f"step {step} info {sorted(hints.items())} null kept={null_info is MPI.INFO_NULL}")
    log(f"step {step} errhandlers world={errhandler_of(comm)} dup={errhandler_of(dup)} "
        f"halves={errhandler_of(halves)} fatal={errhandler_of(fatal)} held={handler_name(handler)}")
    try:
        dup.Send(np.zeros(1), dest=size + 5)  # an invalid rank: MPI.Exception on ERRORS_RETURN
        log(f"step {step} invalid send did not fail")
    except MPI.Exception as error:
        log(f"step {step} invalid send raised error class {error.Get_error_class()}")
    total = comm.allreduce(rank + step, op=sum_copy)
    log(f"step {step} reduction with the copied SUM {total} is SUM {sum_copy == MPI.SUM}")
    if of_evens != MPI.COMM_NULL:
        log(f"step {step} comm of evens: {of_evens.allreduce(rank)} errhandler {errhandler_of(of_evens)}")
    # Each datatype carries data around the ring; the receiver logs what arrived.
    source, dest = (rank - 1) % size, (rank + 1) % size
    for name, t in types.items():
        lb, extent = t.Get_extent()
        send = np.arange(64, dtype="f8") + 100 * rank + step
        recv = np.full(64, -1.0)
        comm.Sendrecv([send, 1, t], dest, 7, [recv, 1, t], source, 7)
        log(f"step {step} type {name} size={t.Get_size()} extent={extent} "
            f"got={[v for v in recv.tolist() if v != -1.0]}")


resumed = None
for step in range(steps):
    if step % 5 == 0:
        describe(step)
    if step == at:
        resumed = pyckpt.checkpoint()
        log(f"checkpoint returned {resumed}")
        describe(step)
    time.sleep(0.02)
out.close()
if rank == 0:
    print(f"done after {steps} steps, checkpoint returned {resumed}")
