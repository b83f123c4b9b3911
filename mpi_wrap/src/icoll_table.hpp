// The application's nonblocking collectives (MPI_Ibarrier, MPI_Iallreduce,
// ...): each call's arguments, the requests that run it, and what a cut
// records of one still pending so that a restarted rank posts it again.
// The coordinator decides when one counts as entered (see
// Coordinator::progress_collectives and doc/mpi.md, "Collectives across a
// cut").
#pragma once

#include "comm_table.hpp"
#include "type_table.hpp"

#include <pyckpt/codec/bytes.hpp>
#include <pyckpt/mpi/pyckpt_mpi.h>

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace pyckpt::mpi {

enum class IcollKind : std::int32_t {
  Barrier, Bcast, Reduce, Allreduce, Scan, Exscan, Gather, Gatherv, Scatter, Scatterv,
  Allgather, Allgatherv, Alltoall, Alltoallv, ReduceScatterBlock, ReduceScatter
};

// The arguments of one nonblocking collective call. The count and
// displacement arrays of the v forms are copies (posted from here, and
// posted again after a restart); buffers are the app's memory.
struct IcollCall {
  IcollKind kind = IcollKind::Barrier;
  const void* sbuf = nullptr;  // may be MPI_IN_PLACE
  void* rbuf = nullptr;        // may be MPI_IN_PLACE (Iscatter(v) at the root)
  int scount = 0, rcount = 0;
  std::vector<int> scounts{}, sdispls{}, rcounts{}, rdispls{};
  MPI_Datatype stype = MPI_DATATYPE_NULL, rtype = MPI_DATATYPE_NULL;
  MPI_Op op = MPI_OP_NULL;
  int root = 0;

  const char* name() const;  // the app's call ("MPI_Iallreduce"), for messages
  // Posts the collective itself on comm (for Barrier: nothing to post).
  int post(MPI_Comm comm, MPI_Request* request) const;
  // Bytes of this rank's send and receive buffers that the call reads and
  // writes (count x extent; 0 where the buffer is not significant here).
  std::uint64_t send_bytes(const CommRec& c) const;
  std::uint64_t recv_bytes(const CommRec& c) const;
  bool is_root(const CommRec& c) const;
  // The receive buffer is also the input (MPI_IN_PLACE send buffer).
  bool input_in_recv_buffer() const { return sbuf == MPI_IN_PLACE && kind != IcollKind::Bcast; }
};

// One call the app made, pending in its view (not yet completed by its
// MPI_Wait/Test). Lifecycle on this rank: posted (the collective, then an
// Ibarrier on the same communicator: once that completes, every member has
// posted the collective) -> counted as the communicator's next collective
// (when the coordinator lets it pass) -> its collective done -> the app's
// generalized request completed, the record erased.
struct IcollRec {
  std::uint64_t id = 0;  // the app request's id (RequestTable)
  CommRec* comm = nullptr;
  IcollCall call;
  // In place: the input as it was when the app posted the call. A collective
  // that is running may already have written partial results into the
  // buffer; a restarted rank posts it again from this input.
  std::vector<std::byte> input;
  // Posted again after a restart: the send buffer's content as saved (the
  // app's send buffer may be a temporary only its request kept alive); the
  // call's sbuf points into it.
  std::vector<std::byte> send_copy;
  MPI_Request app = MPI_REQUEST_NULL;      // the generalized request the app holds
  MPI_Request arrival = MPI_REQUEST_NULL;  // Ibarrier: every member posted the call
  MPI_Request real = MPI_REQUEST_NULL;     // the collective
  bool arrived = false, counted = false, done = false;
};

// The predefined reduction operations, by stable index (a user-defined one
// cannot be re-created after a restart).
const std::vector<MPI_Op>& predefined_ops();

class IcollTable {
 public:
  // Posts call on c (the collective, then the arrival barrier) and hands the
  // app a generalized request that the coordinator completes. With invalid
  // arguments MPI reports the error and nothing is recorded. An input in
  // the receive buffer is copied first. send_copy: the memory call.sbuf
  // points into, kept with the record (a re-posted call).
  int start(CommRec* c, IcollCall call, std::uint64_t id, MPI_Request* app_request,
            std::vector<std::byte> send_copy = {});

  // Posting order = id order: the order of the app's collectives on each
  // communicator, in which they are counted.
  std::map<std::uint64_t, IcollRec>& records() { return records_; }
  bool empty() const { return records_.empty(); }
  // A collective counted here and not done yet: every member posted it, it
  // completes without application code; a cut waits for it.
  bool in_flight() const;
  // A call on c not counted yet: a later collective on c is counted after it.
  bool uncounted_on(const CommRec* c) const;
  // Completes the app's request of the call at it (its collective done) and
  // erases the record; the next one.
  std::map<std::uint64_t, IcollRec>::iterator finish(std::map<std::uint64_t, IcollRec>::iterator it);

  // Inside a cut: the calls not yet counted (posted again after a restart)
  // as pending-request entries (the receive buffer to capture).
  void append_pending(std::vector<pyckpt_mpi_request_info>& view) const;

  // --- the state codec -------------------------------------------------------
  // The calls not yet counted (counted ones completed before the capture),
  // with the content of their send buffers. Throws Error if one cannot be
  // posted again (a user-defined operation, an unknown datatype).
  void save(codec::ByteWriter& w, const TypeTable& types) const;
  void restore(codec::ByteReader& r, const CommTable& comms, const TypeTable& types);
  // After restore: whether call id waits to be posted again; the call
  // bound to its restored receive buffer (NULL where it has none), its
  // input put back into an in place buffer, and its saved send buffer
  // (which the call's sbuf points into), to be started again.
  bool awaiting(std::uint64_t id) const { return awaiting_.count(id) != 0; }
  struct Repost {
    CommRec* comm;
    IcollCall call;
    std::vector<std::byte> send_copy;
  };
  Repost take_for_repost(std::uint64_t id, void* recv_buf);

 private:
  std::map<std::uint64_t, IcollRec> records_;
  std::map<std::uint64_t, IcollRec> awaiting_;  // restored, waiting for repost()
};

}  // namespace pyckpt::mpi
