"""pyckpt._core's binding of libpyckpt_mpi.so (mpi.cpp), in a job of 2 ranks
under mpirun with the real interposer preloaded alone: nothing attaches at
MPI_Init, this script registers its own capture and write callbacks.

    binding.py save     every function of the binding against the running
                        interposer; the last checkpoint leaves a pending
                        receive, a sent request, a drained message and an
                        open MPI file (view, atomicity, both file pointers)
                        and saves the interposer's state to state.<rank> and
                        the ids of the handles to ids.<rank>.json (in the cwd)
    binding.py restore  the restarted job: restores that state right after
                        MPI_Init, finds the handles by id (the file reopened
                        as it was), re-posts the pending receive, gets the
                        drained message again, and takes another checkpoint

Each rank prints `rank R OK` at the end. An assertion error aborts the whole
job (MPI_Abort), so that no rank is left waiting. Callback failures print
`pyckpt: rank R: checkpoint failed: ...` on stderr (checked by the test).
"""
import faulthandler
import json
import os
import signal
import sys
import threading
import time
import traceback

import numpy as np

from pyckpt import _core
from pyckpt.errors import CheckpointError

MODE = sys.argv[1]
faulthandler.dump_traceback_later(float(os.environ.get("BINDING_TIMEOUT", 40)), exit=True)  # a hang: where


def say(line):
    """One line, one write: mpirun does not mix it with the other rank's."""
    os.write(1, (line + "\n").encode())


def fails(fn, *args):
    """The message of the CheckpointError fn(*args) raises."""
    try:
        fn(*args)
    except CheckpointError as e:
        return str(e)
    raise AssertionError(f"{fn.__name__}{args} did not raise CheckpointError")


# The interposer is in the process, MPI is not initialised yet: the binding
# is loaded and passes on the library's own error.
assert _core.mpi_loaded()
assert "MPI is not initialised" in fails(_core.mpi_world)

from mpi4py import MPI  # noqa: E402  MPI_Init (nothing registered an init callback)


def abort_job(kind, value, tb):
    traceback.print_exception(kind, value, tb)
    sys.stderr.flush()
    MPI.COMM_WORLD.Abort(1)


sys.excepthook = abort_job

world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
peer = 1 - rank
assert size == 2

if MODE == "restore":
    # Right after MPI_Init, as pyckpt.mpi.attach does in a resuming rank.
    assert "not a pyckpt_mpi state" in fails(_core.mpi_state_restore, b"junk")
    with open(f"state.{rank}", "rb") as f:
        saved_state = f.read()
    _core.mpi_state_restore(saved_state)
    assert "must be called once" in fails(_core.mpi_state_restore, saved_state)

assert _core.mpi_world() == (rank, size)


def same_on_all_ranks(values):
    mine = np.array(values, dtype=np.uint64)
    every = np.empty((size, len(mine)), dtype=np.uint64)
    world.Allgather(mine, every)
    return all((row == mine).all() for row in every)


def round_trip(from_id, cls, obj, ident):
    """from_id(cls, ident) is cls.f2py() of obj's handle: an object of cls
    (mpi4py's Comm.f2py picks the subclass) wrapping that handle."""
    got = from_id(cls, ident)
    assert isinstance(got, cls) and got is not obj, (from_id.__name__, type(got))
    assert got == obj and got.py2f() == obj.py2f(), (from_id.__name__, ident)
    return got


class Callbacks:
    """Registered capture/write callbacks that count their calls; capture(n)
    and write(n) get the call's number and give the callback's result."""

    def __init__(self, capture=None, write=None):
        self.captures = self.writes = 0
        self._capture, self._write = capture, write
        _core.mpi_set_capture_callbacks(self.capture, self.write)

    def capture(self):
        self.captures += 1
        return self._capture(self.captures) if self._capture else None

    def write(self):
        self.writes += 1
        return self._write(self.writes) if self._write else None


def checkpoints():
    return _core.mpi_stats()["checkpoints"]


def run_until_checkpointed(before):
    """The application's MPI calls (safe points) until every rank counts a
    checkpoint more than `before`."""
    deadline = time.monotonic() + 60
    state = np.zeros(2, dtype=np.int64)  # MIN: fewest checkpoints, -(any rank past the deadline)
    while True:
        state[:] = checkpoints(), -(time.monotonic() > deadline)
        world.Allreduce(MPI.IN_PLACE, state, op=MPI.MIN)
        if state[0] > before:
            return
        assert state[1] == 0, "no checkpoint at the application's safe points within 60 s"


OUTBOX = np.arange(3.0) + 10 * rank  # the message drained into the peer's channel state (tag 7)
POST_CUT = np.full(4, 5.0 + rank)    # the message the peer's pending receive gets (tag 5)


def after_the_cut(recv):
    """What the job does after the saving checkpoint, in the first job and in
    the restarted one alike: the drained message is delivered from channel
    state, the pending receive gets a message sent after the cut."""
    got = np.empty(3)
    world.Recv(got, source=peer, tag=7)
    assert (got == np.arange(3.0) + 10 * peer).all(), got
    stats = _core.mpi_stats()
    assert stats["replayed"] == 1 and stats["channel_pending"] == 0, stats
    world.Send(POST_CUT, dest=peer, tag=5)
    recv.Wait()


def save():
    # --- handles: mpi4py objects <-> stable ids, through py2f/f2py ----------
    assert _core.mpi_comm_id(world) == 1 and _core.mpi_comm_id(MPI.COMM_SELF) == 2
    assert type(round_trip(_core.mpi_comm_from_id, MPI.Intracomm, world, 1)) is MPI.Intracomm
    round_trip(_core.mpi_comm_from_id, MPI.Comm, MPI.COMM_SELF, 2)  # the class is the caller's
    dup = world.Dup()
    split = world.Split(color=0, key=peer)  # the ranks in reverse order
    vector = MPI.DOUBLE.Create_vector(2, 1, 3).Commit()
    # Topologies: each re-created at restart from this rank's arguments.
    cart = world.Create_cart([2], periods=[True])
    graph = world.Create_graph([1, 2], [1, 0])
    adjacent = world.Create_dist_graph_adjacent([peer], [peer], sourceweights=[3], destweights=[4])
    dist = world.Create_dist_graph([rank], [1], [peer])
    ids = {"dup": _core.mpi_comm_id(dup), "split": _core.mpi_comm_id(split), "type": _core.mpi_type_id(vector),
           "double": _core.mpi_type_id(MPI.DOUBLE), "cart": _core.mpi_comm_id(cart),
           "graph": _core.mpi_comm_id(graph), "adjacent": _core.mpi_comm_id(adjacent),
           "dist": _core.mpi_comm_id(dist)}
    got = np.zeros(1, "i8")
    adjacent.Neighbor_allgather(np.array([rank], "i8"), got)  # a neighbourhood collective through the interposer
    assert got[0] == peer, got
    assert len({1, 2, ids["dup"], ids["split"]}) == 4 and 0 not in ids.values(), ids
    assert same_on_all_ranks([ids["dup"], ids["split"]])  # communicator ids: equal on every member
    assert ids["double"] >> 63 == 1 and ids["type"] >> 63 == 0, ids  # predefined types: fixed ids
    round_trip(_core.mpi_comm_from_id, MPI.Intracomm, dup, ids["dup"])
    assert round_trip(_core.mpi_comm_from_id, MPI.Intracomm, split, ids["split"]).Get_rank() == peer
    round_trip(_core.mpi_type_from_id, MPI.Datatype, vector, ids["type"])
    round_trip(_core.mpi_type_from_id, MPI.Datatype, MPI.DOUBLE, ids["double"])
    assert _core.mpi_comm_from_id(MPI.Intracomm, 12345) is None
    assert _core.mpi_type_from_id(MPI.Datatype, 12345) is None
    assert _core.mpi_request_from_id(MPI.Request, 12345) is None
    assert _core.mpi_comm_id(MPI.COMM_NULL) == 0
    # MPI_Alloc_mem blocks: known by their start until freed.
    block = MPI.Alloc_mem(1000)
    assert _core.mpi_alloc_mem_size(block.address) == 1000
    assert _core.mpi_alloc_mem_size(block.address + 8) is None
    assert _core.mpi_alloc_mem_size(np.zeros(8).ctypes.data) is None
    address = block.address
    MPI.Free_mem(block)
    assert _core.mpi_alloc_mem_size(address) is None

    # --- errors of the library, passed on as CheckpointError ---------------
    assert "is not a receive awaiting re-post" in fails(_core.mpi_request_repost, 12345, 0)
    assert "must be called once" in fails(_core.mpi_state_restore, b"junk")  # not right after MPI_Init
    assert "signal 9" in fails(_core.mpi_install_signal_trigger, signal.SIGKILL)
    try:
        _core.mpi_set_capture_callbacks(1, 2)
        raise AssertionError("non-callables accepted")
    except TypeError:
        pass

    # --- the GIL is released during mpi_checkpoint ------------------------
    # Rank 1 comes late: rank 0 waits in mpi_checkpoint meanwhile, while its
    # other thread counts.
    ticks = [0]
    inside = threading.Event()

    def ticker():
        while True:
            if inside.is_set():
                ticks[0] += 1
            time.sleep(0.001)

    threading.Thread(target=ticker, daemon=True).start()
    at_capture = []
    cb = Callbacks(capture=lambda n: at_capture.append(ticks[0]))
    before = checkpoints()
    if rank == 1:
        time.sleep(1.0)
    inside.set()
    _core.mpi_checkpoint()
    inside.clear()
    assert cb.captures == 1 and cb.writes == 1 and checkpoints() == before + 1
    if rank == 0:
        assert at_capture[0] >= 20, f"the other thread ran {at_capture[0]} times while rank 0 waited 1 s"

    # --- capture returning False: not here, retried at a later safe point --
    cb = Callbacks(capture=lambda n: False if rank == 1 and n <= 2 else None)
    before = checkpoints()
    _core.mpi_checkpoint()  # retries until every rank captured
    assert (cb.captures, cb.writes, checkpoints()) == (3, 1, before + 1), (cb.captures, cb.writes)
    # The same at the application's own safe points, after a request.
    cb = Callbacks(capture=lambda n: False if rank == 1 and n == 1 else True)
    before = checkpoints()
    if rank == 0:
        _core.mpi_request_checkpoint()  # one rank suffices
    run_until_checkpointed(before)
    assert (cb.captures, cb.writes) == (2, 1), (cb.captures, cb.writes)
    # A signal: the library's handler requests it, and counts it.
    _core.mpi_install_signal_trigger(signal.SIGUSR2)
    cb = Callbacks()
    before = checkpoints()
    assert _core.mpi_stats()["trigger_signals"] == 0
    if rank == 1:
        os.kill(os.getpid(), signal.SIGUSR2)
    run_until_checkpointed(before)
    assert (cb.captures, cb.writes) == (1, 1)
    assert _core.mpi_stats()["trigger_signals"] == (1 if rank == 1 else 0)

    # --- mpi_poll: a safe point of the program's own code ------------------
    # Rank 1 computes without MPI calls but polls; rank 0 asks.
    cb = Callbacks()
    before = checkpoints()
    if rank == 0:
        _core.mpi_request_checkpoint()
    while checkpoints() == before:
        _core.mpi_poll()
    assert (cb.captures, cb.writes) == (1, 1)

    # --- the library's triggers: a request file, an interval --------------
    request_file = os.path.abspath(f"binding.request.{rank}")
    if rank == 0:
        _core.mpi_set_triggers(request_file, 0)
        open(request_file, "w").close()
    before = checkpoints()
    while checkpoints() == before:
        _core.mpi_poll()
    assert not os.path.exists(request_file), "the library's thread did not take the request file"
    if rank == 0:
        _core.mpi_set_triggers("", 0.2)
    before = checkpoints()
    while checkpoints() < before + 2:  # the interval counts from the end of the previous one
        _core.mpi_poll()
    if rank == 0:
        _core.mpi_set_triggers("", 0)

    # --- the waker: a rank that computes without calling MPI is woken -----
    woken = []
    wake_signal = signal.SIGRTMAX - 1
    signal.signal(wake_signal, lambda *_: woken.append(time.monotonic()))
    _core.mpi_enable_wake(int(wake_signal))
    before = checkpoints()
    world.Barrier()
    if rank == 0:
        _core.mpi_request_checkpoint()
    deadline = time.monotonic() + 30
    while not woken and time.monotonic() < deadline:  # pure Python: the handler runs between bytecodes
        sum(range(1000))
    assert woken, f"rank {rank} computing in Python was not woken for a pending checkpoint"
    while checkpoints() == before:
        _core.mpi_poll()
    _core.mpi_disable_wake()
    signal.signal(wake_signal, signal.SIG_DFL)

    # Files (opened after the waker's test: while an MPI file is open the
    # waker makes no MPI call, so a computing rank is not woken by another
    # rank's request; doc/mpi.md): the id of the file's own communicator,
    # equal on every member.
    fh = MPI.File.Open(world, "binding.bin", MPI.MODE_RDWR | MPI.MODE_CREATE)
    ids["file"] = _core.mpi_file_id(fh)
    assert ids["file"] not in {0, 1, 2, ids["dup"], ids["split"]} and same_on_all_ranks([ids["file"]]), ids
    round_trip(_core.mpi_file_from_id, MPI.File, fh, ids["file"])
    assert _core.mpi_file_from_id(MPI.File, 12345) is None
    assert _core.mpi_file_id(MPI.FILE_NULL) == 0

    # --- the write communicator: world's group, not world ------------------
    write_comm = _core.mpi_write_comm(MPI.Intracomm)
    assert MPI.Comm.Compare(write_comm, world) == MPI.CONGRUENT
    assert _core.mpi_comm_id(write_comm) == 0  # the library's own, not the app's

    # --- capture raising on rank 1 only: the checkpoint fails on all ------
    def boom(n):
        raise RuntimeError(f"no state for you on rank {rank}")

    cb = Callbacks(capture=boom if rank == 1 else None)
    before = checkpoints()
    message = fails(_core.mpi_checkpoint)
    # The failing rank's error says why (what its callback raised).
    expected = ("the capture callback failed: no state for you on rank 1" if rank == 1
                else "the capture callback failed on another rank")
    assert message.endswith(expected) and f"checkpoint failed on rank {rank}" in message, message
    assert (cb.captures, cb.writes, checkpoints()) == (1, 0, before), (cb.captures, cb.writes)

    # --- write raising on rank 0 only: fails on all ------------------------
    def full(n):
        raise OSError(f"disk full on rank {rank}")

    cb = Callbacks(write=full if rank == 0 else None)
    message = fails(_core.mpi_checkpoint)
    expected = ("the write callback failed: disk full on rank 0" if rank == 0
                else "the write callback failed on another rank")
    assert message.endswith(expected), message
    assert (cb.captures, cb.writes, checkpoints()) == (1, 1, before), (cb.captures, cb.writes)

    # --- unregistered: the old callbacks are no longer called -------------
    _core.mpi_set_capture_callbacks(None, None)
    _core.mpi_checkpoint()
    assert (cb.captures, cb.writes, checkpoints()) == (1, 1, before + 1)

    # --- the saving checkpoint: requests, channel state, a file, state bytes
    # The file's view: a filetype freed at once (saved as a type tree, not
    # by id), atomic mode, both file pointers moved.
    filetype = MPI.INT.Create_vector(2, 1, 4).Create_resized(0, 64).Commit()
    fh.Set_view(4 * rank, MPI.INT, filetype)
    filetype.Free()
    fh.Set_atomicity(True)
    fh.Write_all(np.array([1, 2, 3], dtype=np.int32) + 10 * rank)  # individual pointer: 3 ints
    # The shared file pointer, on a second file (shared pointer routines
    # need the same view on every rank).
    shared = MPI.File.Open(world, "binding.shared.bin", MPI.MODE_WRONLY | MPI.MODE_CREATE)
    shared.Write_ordered(np.array([7 + rank], dtype=np.int32))
    ids["shared"] = _core.mpi_file_id(shared)
    assert ids["shared"] not in {0, ids["file"]}, ids
    inbox = np.zeros(4)
    recv = world.Irecv(inbox, source=peer, tag=5)  # pending across the cut
    send = world.Isend(OUTBOX, dest=peer, tag=7)   # drained at the peer's cut
    ids["recv"], ids["send"] = _core.mpi_request_id(recv), _core.mpi_request_id(send)
    assert 0 < ids["recv"] < ids["send"], ids
    round_trip(_core.mpi_request_from_id, MPI.Request, recv, ids["recv"])
    seen = {}

    def capture(n):
        seen.update(pending=_core.mpi_pending_requests(), channel=_core.mpi_channel_messages(),
                    state=_core.mpi_state_save(), stats=_core.mpi_stats())

    cb = Callbacks(capture=capture)
    _core.mpi_checkpoint()
    pending = seen["pending"]
    assert [type(p) for p in pending] == [_core.RequestInfo] * 2, pending
    assert pending[0] == (ids["recv"], True, False, inbox.ctypes.data, inbox.nbytes, 1, peer, 5), pending
    assert (pending[0].id, pending[0].is_recv, pending[0].completed, pending[0].buf, pending[0].bytes,
            pending[0].comm, pending[0].source, pending[0].tag) == (ids["recv"], True, False, inbox.ctypes.data, 32,
                                                                    1, peer, 5)
    assert (pending[1].id, pending[1].is_recv, pending[1].completed, pending[1].buf, pending[1].bytes,
            pending[1].comm, pending[1].source, pending[1].tag) == (ids["send"], False, True, None, 0, 0, 0, 0), \
        pending[1]
    assert seen["channel"] == [{"comm": 1, "source": peer, "dest": rank, "tag": 7, "bytes": 24}], seen["channel"]
    stats = seen["stats"]
    assert set(stats) == {"intercepted", "sent", "received", "collectives", "checkpoints", "drained",
                          "channel_pending", "replayed", "node_local_comms", "trigger_signals"}, stats
    assert stats["node_local_comms"] == 0, stats  # no Split_type in this job
    assert stats["drained"] == 1 and stats["channel_pending"] == 1 and stats["sent"] >= 1, stats
    assert stats["intercepted"] > 0 and stats["collectives"] > 0, stats
    assert isinstance(seen["state"], bytes) and seen["state"], seen["state"]
    assert _core.mpi_channel_messages() == seen["channel"]  # outside a cut too
    with open(f"state.{rank}", "wb") as f:
        f.write(seen["state"])
    with open(f"ids.{rank}.json", "w") as f:
        json.dump(ids, f)
    after_the_cut(recv)
    assert (inbox == 5.0 + peer).all(), inbox
    send.Wait()
    assert _core.mpi_pending_requests() == []
    for f in (fh, shared):
        f.Close()
    assert _core.mpi_file_from_id(MPI.File, ids["file"]) is None  # closed: forgotten
    for comm in (dup, split):
        comm.Free()
    vector.Free()


def restore():
    with open(f"ids.{rank}.json") as f:
        ids = json.load(f)
    # Communicators and datatypes re-created from their lineage, same ids.
    dup = _core.mpi_comm_from_id(MPI.Intracomm, ids["dup"])
    split = _core.mpi_comm_from_id(MPI.Intracomm, ids["split"])
    assert type(dup) is MPI.Intracomm and type(split) is MPI.Intracomm, (dup, split)
    assert MPI.Comm.Compare(dup, world) == MPI.CONGRUENT and dup != world
    assert split.Get_rank() == peer and split.Get_size() == 2
    assert (_core.mpi_comm_id(dup), _core.mpi_comm_id(split)) == (ids["dup"], ids["split"])
    cart = _core.mpi_comm_from_id(MPI.Cartcomm, ids["cart"])
    assert cart.Get_topo() == ([2], [True], [rank]), cart.Get_topo()
    graph = _core.mpi_comm_from_id(MPI.Graphcomm, ids["graph"])
    assert graph.Get_topo() == ([1, 2], [1, 0]), graph.Get_topo()
    adjacent = _core.mpi_comm_from_id(MPI.Distgraphcomm, ids["adjacent"])
    assert adjacent.Get_dist_neighbors() == ([peer], [peer], ([3], [4])), adjacent.Get_dist_neighbors()
    dist = _core.mpi_comm_from_id(MPI.Distgraphcomm, ids["dist"])
    assert dist.Get_dist_neighbors_count() == (1, 1, False), dist.Get_dist_neighbors_count()
    got = np.zeros(1, "i8")
    adjacent.Neighbor_allgather(np.array([rank], "i8"), got)
    assert got[0] == peer, got
    vector = _core.mpi_type_from_id(MPI.Datatype, ids["type"])
    assert type(vector) is MPI.Datatype and _core.mpi_type_id(vector) == ids["type"]
    assert vector.Get_size() == 16 and vector.Get_extent() == (0, 32), (vector.Get_size(), vector.Get_extent())
    assert vector.Get_envelope()[3] == MPI.COMBINER_VECTOR
    assert _core.mpi_type_from_id(MPI.Datatype, ids["double"]) == MPI.DOUBLE
    # The files reopened as they were at the cut, and written on from there.
    fh = _core.mpi_file_from_id(MPI.File, ids["file"])
    assert type(fh) is MPI.File and fh != MPI.FILE_NULL and _core.mpi_file_id(fh) == ids["file"]
    assert fh.Get_amode() == MPI.MODE_RDWR, fh.Get_amode()  # without MODE_CREATE: the file must exist
    disp, etype, filetype = fh.Get_view()[:3]
    assert disp == 4 * rank and etype == MPI.INT, (disp, etype)
    assert filetype.Get_size() == 8 and filetype.Get_extent() == (0, 64), (filetype.Get_size(), filetype.Get_extent())
    filetype.Free()
    assert fh.Get_atomicity() and fh.Get_position() == 3, (fh.Get_atomicity(), fh.Get_position())
    fh.Write_all(np.array([4], dtype=np.int32) + 10 * rank)
    shared = _core.mpi_file_from_id(MPI.File, ids["shared"])
    assert shared.Get_position_shared() == 8, shared.Get_position_shared()
    shared.Write_ordered(np.array([9 + rank], dtype=np.int32))
    for f in (fh, shared):
        f.Close()
    world.Barrier()
    with open("binding.bin", "rb") as f:
        data = np.frombuffer(f.read(), dtype=np.int32)
    # Rank r's view: ints r, r + 4 of every 16, from the start.
    assert [list(data[k:k + 2]) for k in (0, 4, 16, 20)] == [[1, 11], [2, 12], [3, 13], [4, 14]], data
    with open("binding.shared.bin", "rb") as f:
        assert list(np.frombuffer(f.read(), dtype=np.int32)) == [7, 8, 9, 10]
    # Channel state reloaded.
    assert _core.mpi_channel_messages() == [{"comm": 1, "source": peer, "dest": rank, "tag": 7, "bytes": 24}]
    # The send: an already complete request. The receive: awaits a re-post.
    send = _core.mpi_request_from_id(MPI.Request, ids["send"])
    assert type(send) is MPI.Request and send != MPI.REQUEST_NULL
    assert _core.mpi_request_from_id(MPI.Request, ids["recv"]) is None
    assert "is not a receive awaiting re-post" in fails(_core.mpi_request_repost, ids["send"], 0)
    # The application's next MPI_Irecv may re-issue a receive of the
    # checkpoint (mpi4py's lowercase irecv): with other arguments it is a
    # receive of its own, and the expectation ends with it.
    assert "is not a receive of the checkpoint" in fails(_core.mpi_request_expect_reissue, ids["send"])
    _core.mpi_request_expect_reissue(ids["recv"])
    other = world.Irecv(np.zeros(1), source=peer, tag=11)
    assert _core.mpi_request_id(other) not in (0, ids["recv"], ids["send"])
    world.Send(np.zeros(1), dest=peer, tag=11)
    other.Wait()
    assert _core.mpi_request_from_id(MPI.Request, ids["recv"]) is None
    inbox = np.zeros(4)
    _core.mpi_request_repost(ids["recv"], inbox.ctypes.data)
    assert "is not a receive awaiting re-post" in fails(_core.mpi_request_repost, ids["recv"], inbox.ctypes.data)
    recv = _core.mpi_request_from_id(MPI.Request, ids["recv"])
    assert type(recv) is MPI.Request and recv != MPI.REQUEST_NULL and _core.mpi_request_id(recv) == ids["recv"]
    after_the_cut(recv)
    assert (inbox == 5.0 + peer).all(), inbox
    assert send.Test()
    # A checkpoint of the restarted job; ids go on where they were.
    cb = Callbacks()
    _core.mpi_checkpoint()
    assert (cb.captures, cb.writes, checkpoints()) == (1, 1, 1)
    later = world.Irecv(np.zeros(1), source=peer, tag=9)
    assert _core.mpi_request_id(later) > ids["send"]
    world.Send(np.zeros(1), dest=peer, tag=9)
    later.Wait()


save() if MODE == "save" else restore()
_core.mpi_set_capture_callbacks(None, None)
say(f"rank {rank} OK")
