// The request table: the application's requests the library must see
// complete (to count a receive) or re-post after a restart (a receive still
// pending at the cut), their stable ids, and the pending view handed to the
// layer above inside a cut.
#pragma once

#include <pyckpt/mpi/pyckpt_mpi.h>

#include "comm_table.hpp"
#include "icoll_table.hpp"

#include <mpi.h>

#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

namespace pyckpt::mpi {

class Channel;

// What a receive got, as MPI_Wait reports it (kept so that a request that
// completed before a cut can complete again, identically, after a restart).
struct RecvStatus {
  std::int32_t source = MPI_ANY_SOURCE, tag = MPI_ANY_TAG;
  std::int64_t bytes = 0;
};
RecvStatus recv_status(const MPI_Status& st);

// An application request the library must see complete (to count a receive)
// or re-post after a restart (a receive still pending at the cut).
struct ReqRec {
  std::uint64_t id = 0;  // stable: kept across a restart
  bool is_recv = false;
  bool counted = false;   // receive already counted (seen complete in a drain, or replayed)
  bool complete = false;  // receive seen complete by the library; status is valid
  CommRec* comm = nullptr;
  void* buf = nullptr;
  int count = 0;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  int source = 0, tag = 0;
  RecvStatus status{};  // valid once complete
  // Nonblocking I/O on the app's file with this id (FileTable), 0 for a
  // message: a checkpoint fails while the app holds one (FileTable::settle).
  std::uint64_t file = 0;
  // A nonblocking collective of the app: IcollTable has its call until
  // `complete` (its collective done, the generalized request completed).
  bool collective = false;
};

// A generalized request that is already complete and reports st (with
// MPI_ERROR = error): for receives served from channel state and for
// requests restored complete after a restart. MPI_Wait/Test work unchanged.
int start_completed_request(const RecvStatus& st, int error, MPI_Request* request);
// A generalized request for an app's nonblocking collective: MPI_Wait/Test
// report it complete, with an empty status, once the library calls
// MPI_Grequest_complete.
int start_collective_request(MPI_Request* request);

class RequestTable {
 public:
  // Receives are counted on channel's per-peer counts.
  explicit RequestTable(Channel& channel) : channel_(channel) {}

  // Tracks r; assigns the next id unless rec.id is set (restored requests).
  ReqRec& add(MPI_Request r, ReqRec rec);
  // A request completed (or was freed) in the app's view: count it.
  // release: the handle is gone (Wait/Test); else only observed complete
  // (MPI_Request_get_status), counted once either way.
  void on_complete(MPI_Request r, const MPI_Status& st, bool release = true);
  // The library saw receive rec complete with st: count it (once), keep st.
  void record_completion(ReqRec& rec, const MPI_Status& st);
  // The app freed a request it will never complete through us. True if it
  // was a receive still pending: it completes unseen, so its count would be
  // missing at the next cut and the drain could not finish (the caller
  // records the call as unsupported).
  bool forget(MPI_Request r);
  std::uint64_t id(MPI_Request r) const;
  // The id of a request the caller adds once it has its handle.
  std::uint64_t reserve_id() { return next_id_++; }
  MPI_Request from_id(std::uint64_t id) const;

  // Inside a cut: the app's requests not yet completed in its view, by id
  // (= posting order), with its nonblocking collectives the cut fell before
  // (listed by `collectives`). Valid until the next call.
  const std::vector<pyckpt_mpi_request_info>& pending(const IcollTable& collectives);
  // The app's nonblocking collective with handle r is done (IcollTable).
  void collective_done(MPI_Request r);
  // Inside a cut: records the receives that completed (their counts), also
  // `extra` (the receive of the blocking call in progress, handle *extra_handle).
  // False while a receive of a message matched by MPI_Improbe/Mprobe is
  // still incomplete (the drain waits for it).
  bool test_receives(ReqRec* extra, const MPI_Request* extra_handle);
  // The file id of nonblocking file I/O the app holds (posted, not yet
  // completed by its MPI_Wait/Test), 0 if none.
  std::uint64_t held_file_io() const;

  // After restore: re-post receive id (pending at the cut) into buf, from
  // channel state if a drained message matches. Returns the new handle.
  MPI_Request repost(std::uint64_t id, void* buf);
  // After restore: the app's next MPI_Irecv re-issues receive id (pending
  // at the cut, or restored complete), see pyckpt_mpi_request_expect_reissue.
  void expect_reissue(std::uint64_t id);
  // In the app's MPI_Irecv (`call` its arguments): the request it re-issues
  // (re-posted into call.buf if it was pending), or none if no re-issue is
  // expected or the arguments differ from the record's (then it is posted
  // as a new receive). Ends the expectation.
  std::optional<MPI_Request> take_reissue(const ReqRec& call);

  // --- the state codec (Runtime::save/restore) ---------------------------
  // Every tracked request and every one awaiting re-post, by id.
  std::map<std::uint64_t, const ReqRec*> by_id() const;
  std::uint64_t next_id() const { return next_id_; }
  void set_next_id(std::uint64_t id) { next_id_ = id; }
  bool empty() const { return requests_.empty() && awaiting_repost_.empty(); }
  // A restored receive that was pending at the cut, waiting for repost().
  void await_repost(const ReqRec& rec) { awaiting_repost_.emplace(rec.id, rec); }

 private:
  Channel& channel_;
  std::unordered_map<MPI_Request, ReqRec> requests_;
  std::uint64_t next_id_ = 1;
  std::vector<pyckpt_mpi_request_info> pending_view_;  // what pending() hands out
  // Restored receives that were pending at the cut, waiting for repost().
  std::map<std::uint64_t, ReqRec> awaiting_repost_;
  std::uint64_t reissue_ = 0;  // the receive the app's next MPI_Irecv re-issues, 0 none
};

}  // namespace pyckpt::mpi
