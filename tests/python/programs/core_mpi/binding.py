"""pyckpt._core's MPI binding against stub_interposer.c (preloaded). Asserts
what each function returns or raises; prints OK at the end. The capture
failures also print `pyckpt: rank 0: checkpoint failed: ...` on stderr."""
import threading

from pyckpt import _core
from pyckpt.errors import CheckpointError

assert _core.mpi_loaded()
from mpi4py import MPI  # noqa: E402  (after the check: MPI_Init runs the init callback)


def fails(fn, *args):
    try:
        fn(*args)
    except CheckpointError as e:
        return str(e)
    raise AssertionError(f"{fn.__name__} did not raise")


assert _core.mpi_world() == (0, 1)
# handles: mpi4py objects <-> stable ids through py2f/f2py
assert _core.mpi_comm_id(MPI.COMM_WORLD) == 1 and _core.mpi_comm_id(MPI.COMM_SELF) == 2
assert _core.mpi_comm_id(MPI.COMM_WORLD.Dup()) == 0
comm = _core.mpi_comm_from_id(MPI.Intracomm, 1)
assert type(comm) is MPI.Intracomm and comm == MPI.COMM_WORLD
assert _core.mpi_comm_from_id(MPI.Intracomm, 99) is None
assert _core.mpi_type_id(MPI.DOUBLE) == 17 and _core.mpi_type_from_id(MPI.Datatype, 17) == MPI.DOUBLE
assert _core.mpi_type_from_id(MPI.Datatype, 3) is None
req = MPI.COMM_WORLD.Irecv(bytearray(8), source=MPI.ANY_SOURCE, tag=5)
assert _core.mpi_request_id(req) == 42 and _core.mpi_request_from_id(MPI.Request, 42) == req
assert _core.mpi_request_from_id(MPI.Request, 1) is None
req.Cancel()
req.Wait()
# requests, channel state, state bytes
pending = _core.mpi_pending_requests()
assert type(pending[0]) is _core.RequestInfo
assert pending[0][:3] == (5, True, False) and pending[0].bytes == 16 and pending[0].buf
assert pending[1].buf is None and pending[1].completed is True
_core.mpi_request_repost(5, 0x1000)
assert _core.mpi_pending_requests()[0].buf == 0x1000
assert fails(_core.mpi_request_repost, 9, 0) == "unknown request id"
assert _core.mpi_channel_messages() == [{"comm": 1, "source": 0, "dest": 1, "tag": 7, "bytes": 24}]
state = _core.mpi_state_save()
assert state == b"STATE"
_core.mpi_state_restore(state)
assert fails(_core.mpi_state_restore, b"junk") == "corrupt state bytes"
# checkpoints through the callbacks
assert fails(_core.mpi_checkpoint) == "no capture callbacks"
calls = []
_core.mpi_set_capture_callbacks(lambda: calls.append("capture"), lambda: calls.append("write"))
_core.mpi_checkpoint()
assert calls == ["capture", "write"] and _core.mpi_stats()["checkpoints"] == 1
_core.mpi_set_capture_callbacks(lambda: False, lambda: calls.append("not written"))
assert fails(_core.mpi_checkpoint) == "capture asked to retry"  # PYCKPT_MPI_EAGAIN


def boom():
    raise RuntimeError("no state for you")


_core.mpi_set_capture_callbacks(boom, lambda: None)
assert fails(_core.mpi_checkpoint) == "capture failed on rank 0 (4)"  # PYCKPT_MPI_ECALLBACK
_core.mpi_set_capture_callbacks(lambda: None, boom)
assert fails(_core.mpi_checkpoint) == "write failed (4)"
# the checkpoint runs without the GIL: another thread runs while capture waits
ran = threading.Event()
thread = threading.Thread(target=ran.set)


def capture():
    thread.start()
    assert ran.wait(10)


_core.mpi_set_capture_callbacks(capture, lambda: None)
_core.mpi_checkpoint()
assert ran.is_set()
_core.mpi_install_signal_trigger(10)
assert fails(_core.mpi_install_signal_trigger, 0) == "bad signal"
_core.mpi_request_checkpoint()
_core.mpi_poll()
assert _core.mpi_unsupported_calls() == ""
_core.mpi_set_capture_callbacks(None, None)
assert set(_core.mpi_stats()) == {"intercepted", "sent", "received", "collectives", "checkpoints", "drained",
                                  "channel_pending", "replayed"}
print("OK")
