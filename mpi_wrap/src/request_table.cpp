// The request table: ids, completion counting, the pending view inside a
// cut, re-posting after a restart; already-complete generalized requests.
#include "request_table.hpp"

#include "channel.hpp"
#include "error.hpp"
#include "internal_scope.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

namespace pyckpt::mpi {

RecvStatus recv_status(const MPI_Status& st) {
  MPI_Count bytes = 0;
  PMPI_Get_elements_x(&st, MPI_BYTE, &bytes);
  return RecvStatus{st.MPI_SOURCE, st.MPI_TAG, static_cast<std::int64_t>(bytes)};
}

ReqRec& RequestTable::add(MPI_Request r, ReqRec rec) {
  if (rec.id == 0) rec.id = next_id_++;
  return requests_.insert_or_assign(r, rec).first->second;
}

void RequestTable::record_completion(ReqRec& rec, const MPI_Status& st) {
  if (rec.complete) return;
  if (!rec.counted) {
    int cancelled = 0;  // a cancelled receive got no message
    PMPI_Test_cancelled(&st, &cancelled);
    if (!cancelled) channel_.count_recv(rec.comm, st.MPI_SOURCE);
  }
  rec.counted = rec.complete = true;
  rec.status = recv_status(st);
}

void RequestTable::on_complete(MPI_Request r, const MPI_Status& st, bool release) {
  auto it = requests_.find(r);
  if (it == requests_.end()) return;
  ReqRec& rec = it->second;
  if (release) {  // the handle is gone: only the count matters
    if (rec.is_recv && !rec.counted) {
      int cancelled = 0;  // a cancelled receive got no message
      PMPI_Test_cancelled(&st, &cancelled);
      if (!cancelled) channel_.count_recv(rec.comm, st.MPI_SOURCE);
    }
    requests_.erase(it);
  } else if (rec.is_recv) {  // still held: a cut may save it complete
    record_completion(rec, st);
  }
}

bool RequestTable::forget(MPI_Request r) {
  auto it = requests_.find(r);
  if (it == requests_.end()) return false;
  const bool pending_recv = it->second.is_recv && !it->second.counted;
  requests_.erase(it);
  return pending_recv;
}

std::uint64_t RequestTable::id(MPI_Request r) const {
  auto it = requests_.find(r);
  return it == requests_.end() ? 0 : it->second.id;
}

MPI_Request RequestTable::from_id(std::uint64_t id) const {
  for (auto& [h, rec] : requests_)
    if (rec.id == id) return h;
  return MPI_REQUEST_NULL;
}

void RequestTable::collective_done(MPI_Request r) {
  if (auto it = requests_.find(r); it != requests_.end()) it->second.complete = true;
}

const std::vector<pyckpt_mpi_request_info>& RequestTable::pending(const IcollTable& collectives) {
  InternalScope internal;
  pending_view_.clear();
  const auto add = [this](const ReqRec& rec) {
    if (rec.collective && !rec.complete) return;  // listed by the IcollTable
    pyckpt_mpi_request_info info{};
    info.id = rec.id;
    info.is_recv = rec.is_recv ? 1 : 0;
    info.completed = !rec.is_recv || rec.complete ? 1 : 0;
    info.buf = rec.buf;
    if (rec.is_recv) {
      info.comm = rec.comm ? rec.comm->id : 0;
      info.source = rec.source;
      info.tag = rec.tag;
    }
    // A receive restored complete (or not yet re-posted) has no buffer here:
    // the upper layer restores its memory itself.
    if (rec.is_recv && rec.type != MPI_DATATYPE_NULL) {
      MPI_Aint lb = 0, extent = 0;
      PMPI_Type_get_extent(rec.type, &lb, &extent);
      info.bytes = static_cast<std::uint64_t>(rec.count) * static_cast<std::uint64_t>(extent);
    }
    if (!rec.is_recv) info.buf = nullptr;
    pending_view_.push_back(info);
  };
  for (const auto& [h, rec] : requests_) add(rec);
  for (const auto& [id, rec] : awaiting_repost_) add(rec);
  collectives.append_pending(pending_view_);
  std::sort(pending_view_.begin(), pending_view_.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return pending_view_;
}

bool RequestTable::test_receives(ReqRec* extra, const MPI_Request* extra_handle) {
  bool matched_incomplete = false;
  const auto test = [&](ReqRec& rec, MPI_Request handle) {
    if (!rec.is_recv || rec.complete || handle == MPI_REQUEST_NULL) return;
    int flag = 0;
    MPI_Status st;
    PMPI_Request_get_status(handle, &flag, &st);
    if (flag) record_completion(rec, st);
    // Counted at MPI_Improbe, received by MPI_Imrecv: its sender counted it,
    // so it must be complete (data in the app buffer) before the capture.
    else if (rec.counted) matched_incomplete = true;
  };
  for (auto& [handle, rec] : requests_) test(rec, handle);
  if (extra) test(*extra, *extra_handle);
  return !matched_incomplete;
}

std::uint64_t RequestTable::held_file_io() const {
  for (const auto& [handle, rec] : requests_)
    if (rec.file != 0) return rec.file;
  return 0;
}

MPI_Request RequestTable::repost(std::uint64_t id, void* buf) {
  auto it = awaiting_repost_.find(id);
  if (it == awaiting_repost_.end())
    throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi_request_repost: request " + std::to_string(id) +
                                       " is not a receive awaiting re-post");
  ReqRec rec = it->second;
  rec.buf = buf;
  MPI_Request request = MPI_REQUEST_NULL;
  // Channel state first, as MPI_Irecv does: a drained message may be the one
  // this receive gets.
  if (auto m = channel_.match(rec.comm->id, rec.source, rec.tag)) {
    check(channel_.deliver_as_request(*m, rec, *this, &request), "MPI_Grequest_start (repost)");
  } else {
    check(PMPI_Irecv(buf, rec.count, rec.type, rec.source, rec.tag, rec.comm->real, &request),
          "MPI_Irecv (repost)");
    add(request, rec);
  }
  awaiting_repost_.erase(it);
  return request;
}

void RequestTable::expect_reissue(std::uint64_t id) {
  const bool restored_complete = std::any_of(requests_.begin(), requests_.end(), [id](const auto& kv) {
    return kv.second.id == id && kv.second.is_recv && kv.second.complete;
  });
  if (!restored_complete && !awaiting_repost_.contains(id))
    throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi_request_expect_reissue: request " + std::to_string(id) +
                                       " is not a receive of the checkpoint");
  reissue_ = id;
}

std::optional<MPI_Request> RequestTable::take_reissue(const ReqRec& call) {
  const std::uint64_t id = std::exchange(reissue_, 0);
  if (id == 0) return std::nullopt;
  const auto same = [&call](const ReqRec& rec) {
    return rec.comm && rec.comm->id == call.comm->id && rec.source == call.source && rec.tag == call.tag &&
           rec.count == call.count && rec.type == call.type;
  };
  if (auto it = awaiting_repost_.find(id); it != awaiting_repost_.end())
    return same(it->second) ? std::optional(repost(id, call.buf)) : std::nullopt;
  for (const auto& [handle, rec] : requests_)
    if (rec.id == id) return same(rec) ? std::optional(handle) : std::nullopt;
  return std::nullopt;
}

std::map<std::uint64_t, const ReqRec*> RequestTable::by_id() const {
  std::map<std::uint64_t, const ReqRec*> reqs;  // by id = posting order
  for (const auto& [h, rec] : requests_) reqs.emplace(rec.id, &rec);
  for (const auto& [id, rec] : awaiting_repost_) reqs.emplace(id, &rec);
  return reqs;
}

namespace {
// State of a generalized request of the library: the status it reports.
struct CompletedRequest {
  RecvStatus status;
  int error;
};
int completed_query(void* extra, MPI_Status* s) {
  const auto* d = static_cast<CompletedRequest*>(extra);
  s->MPI_SOURCE = d->status.source;
  s->MPI_TAG = d->status.tag;
  s->MPI_ERROR = d->error;
  PMPI_Status_set_elements_x(s, MPI_BYTE, static_cast<MPI_Count>(d->status.bytes));
  PMPI_Status_set_cancelled(s, 0);
  return MPI_SUCCESS;
}
int completed_free(void* extra) {
  delete static_cast<CompletedRequest*>(extra);
  return MPI_SUCCESS;
}
int completed_cancel(void*, int) { return MPI_SUCCESS; }
}  // namespace

namespace {
int start_request(const RecvStatus& st, int error, MPI_Request* request) {
  InternalScope internal;
  auto d = std::make_unique<CompletedRequest>(CompletedRequest{st, error});
  int rc = PMPI_Grequest_start(completed_query, completed_free, completed_cancel, d.get(), request);
  if (rc == MPI_SUCCESS) d.release();  // owned by the request now: completed_free deletes it
  return rc;
}
}  // namespace

int start_completed_request(const RecvStatus& st, int error, MPI_Request* request) {
  int rc = start_request(st, error, request);
  return rc == MPI_SUCCESS ? PMPI_Grequest_complete(*request) : rc;
}

int start_collective_request(MPI_Request* request) { return start_request(RecvStatus{}, MPI_SUCCESS, request); }

}  // namespace pyckpt::mpi
