// Tables of the interposer: communicators (with lineage), datatypes,
// requests, channel state; error plumbing.
#include "runtime.hpp"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>

namespace pyckpt::mpi {

std::unique_ptr<Runtime> Runtime::instance_;
std::atomic<bool> Runtime::requested_{false};

namespace {
thread_local std::string last_error;

// Child communicator ids must be equal on every member without talking: the
// k-th communicator made from a parent is the same object on all members,
// because creation is collective over the parent.
std::uint64_t child_id(std::uint64_t parent, std::uint64_t k) {
  std::uint64_t z = parent * 0x9E3779B97F4A7C15ull + k + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z < 16 ? z + 16 : z;  // never collides with predefined ids
}
}  // namespace

void set_last_error(const std::string& msg) { last_error = msg; }
const char* last_error_cstr() { return last_error.c_str(); }

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  PMPI_Error_string(rc, text, &len);
  throw Error(PYCKPT_MPI_EMPI, std::string("pyckpt_mpi: ") + what + " failed: " + std::string(text, len));
}

void Runtime::start() {
  InternalScope internal;
  auto rt = std::make_unique<Runtime>();
  PMPI_Comm_rank(MPI_COMM_WORLD, &rt->world_rank);
  PMPI_Comm_size(MPI_COMM_WORLD, &rt->world_size);
  for (auto [id, op, handle] : {std::tuple{kWorldId, LineageOp::World, MPI_COMM_WORLD},
                                std::tuple{kSelfId, LineageOp::Self, MPI_COMM_SELF}}) {
    auto rec = std::make_unique<CommRec>();
    rec->id = id;
    rec->op = op;
    rec->real = handle;
    rt->insert_comm(std::move(rec));
  }
  check(PMPI_Comm_dup(MPI_COMM_WORLD, &rt->ctl_), "MPI_Comm_dup (control)");
  check(PMPI_Comm_dup(MPI_COMM_WORLD, &rt->fin_), "MPI_Comm_dup (finish)");
  const char* trace = std::getenv("PYCKPT_MPI_TRACE");
  rt->tracing_ = trace != nullptr && *trace != '\0' && std::strcmp(trace, "0") != 0;
  instance_ = std::move(rt);
}

void Runtime::stop() {
  InternalScope internal;
  if (!instance_) return;
  PMPI_Comm_free(&instance_->ctl_);
  PMPI_Comm_free(&instance_->fin_);
  instance_.reset();
}

void Runtime::trace(const char* format, ...) const {
  if (!tracing_) return;
  char line[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  // Wall-clock time orders the lines of the ranks of a node (MPI_Wtime
  // need not be global); one write per line: the ranks share a stderr.
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::fprintf(stderr, "pyckpt_mpi trace %.6f rank %d epoch %llu: %s\n", now, world_rank,
               static_cast<unsigned long long>(epoch + 1), line);
}

CommRec* Runtime::insert_comm(std::unique_ptr<CommRec> rec) {
  if (rec->real != MPI_COMM_NULL) {
    PMPI_Comm_rank(rec->real, &rec->rank);
    PMPI_Comm_size(rec->real, &rec->size);
    rec->sent.assign(rec->size, 0);
    rec->received.assign(rec->size, 0);
    MPI_Group group, world;
    PMPI_Comm_group(rec->real, &group);
    PMPI_Comm_group(MPI_COMM_WORLD, &world);
    std::vector<int> ranks(static_cast<std::size_t>(rec->size));
    std::iota(ranks.begin(), ranks.end(), 0);
    rec->world_ranks.resize(ranks.size());
    PMPI_Group_translate_ranks(group, rec->size, ranks.data(), world, rec->world_ranks.data());
    PMPI_Group_free(&group);
    PMPI_Group_free(&world);
    comms_by_handle_[rec->real] = rec.get();
  }
  comms_.push_back(std::move(rec));
  return comms_.back().get();
}

CommRec* Runtime::comm_by_id(std::uint64_t id) {
  for (auto& c : comms_)
    if (c->id == id && c->real != MPI_COMM_NULL) return c.get();
  return nullptr;
}

void Runtime::add_comm(CommRec* parent, LineageOp op, std::vector<std::int32_t> args, MPI_Comm made) {
  InternalScope internal;
  auto rec = std::make_unique<CommRec>();
  rec->id = child_id(parent->id, parent->children++);
  rec->op = op;
  rec->parent = parent->id;
  rec->args = std::move(args);
  rec->real = made;
  // A member that got MPI_COMM_NULL (split colour MPI_UNDEFINED, not in the
  // group) still took part in the creation: the record keeps it in lineage.
  rec->freed = made == MPI_COMM_NULL;
  CommRec* c = insert_comm(std::move(rec));
  // Made during an epoch: other members may have had it, and used it, before.
  if (phase_ != Phase::Idle) c->coll_target = target_of(*c);
}

void Runtime::free_comm(MPI_Comm c) {
  CommRec* rec = comm(c);
  if (!rec) return;
  InternalScope internal;
  comms_by_handle_.erase(c);
  last_comm_handle_ = MPI_COMM_NULL;
  last_comm_ = nullptr;
  // Messages counted on a freed communicator can no longer be drained; the
  // app must have completed them (MPI requires it before MPI_Comm_free).
  // Its counts stay until the next cut: its peers still exchange them.
  rec->real = MPI_COMM_NULL;
  rec->freed = true;
}

std::uint64_t Runtime::add_type(MPI_Datatype t) {
  auto [it, inserted] = types_.try_emplace(t, next_type_id_);
  if (inserted) ++next_type_id_;
  return it->second;
}

void Runtime::free_type(MPI_Datatype t) { types_.erase(t); }

std::uint64_t Runtime::type_id(MPI_Datatype t) const {
  if (auto it = types_.find(t); it != types_.end()) return it->second;
  int ni, na, nd, combiner = 0;
  if (PMPI_Type_get_envelope(t, &ni, &na, &nd, &combiner) != MPI_SUCCESS || combiner != MPI_COMBINER_NAMED) return 0;
  const auto& pre = predefined_types();
  for (std::size_t i = 0; i < pre.size(); ++i)
    if (pre[i] == t) return kPredefinedTypeBit | i;
  return 0;
}

MPI_Datatype Runtime::type_from_id(std::uint64_t id) const {
  if (id & kPredefinedTypeBit) {
    const auto& pre = predefined_types();
    const auto idx = id & ~kPredefinedTypeBit;
    return idx < pre.size() ? pre[idx] : MPI_DATATYPE_NULL;
  }
  for (auto& [h, i] : types_)
    if (i == id) return h;
  return MPI_DATATYPE_NULL;
}

ReqRec& Runtime::add_request(MPI_Request r, ReqRec rec) {
  if (rec.id == 0) rec.id = next_request_id_++;
  return requests_.insert_or_assign(r, rec).first->second;
}

RecvStatus recv_status(const MPI_Status& st) {
  MPI_Count bytes = 0;
  PMPI_Get_elements_x(&st, MPI_BYTE, &bytes);
  return RecvStatus{st.MPI_SOURCE, st.MPI_TAG, static_cast<std::int64_t>(bytes)};
}

void Runtime::record_completion(ReqRec& rec, const MPI_Status& st) {
  if (rec.complete) return;
  if (!rec.counted) count_recv(rec.comm, st.MPI_SOURCE);
  rec.counted = rec.complete = true;
  rec.status = recv_status(st);
}

void Runtime::on_complete(MPI_Request r, const MPI_Status& st, bool release) {
  auto it = requests_.find(r);
  if (it == requests_.end()) return;
  ReqRec& rec = it->second;
  if (release) {  // the handle is gone: only the count matters
    if (rec.is_recv && !rec.counted) count_recv(rec.comm, st.MPI_SOURCE);
    requests_.erase(it);
  } else if (rec.is_recv) {  // still held: a cut may save it complete
    record_completion(rec, st);
  }
}

void Runtime::forget_request(MPI_Request r) {
  auto it = requests_.find(r);
  if (it == requests_.end()) return;
  // A receive freed while pending completes unseen: its count would be
  // missing at the next cut and the drain could not finish.
  if (it->second.is_recv && !it->second.counted) mark_unsupported("MPI_Request_free of a pending receive");
  requests_.erase(it);
}

std::uint64_t Runtime::request_id(MPI_Request r) const {
  auto it = requests_.find(r);
  return it == requests_.end() ? 0 : it->second.id;
}

MPI_Request Runtime::request_from_id(std::uint64_t id) const {
  for (auto& [h, rec] : requests_)
    if (rec.id == id) return h;
  return MPI_REQUEST_NULL;
}

const std::vector<pyckpt_mpi_request_info>& Runtime::pending_requests() {
  InternalScope internal;
  pending_view_.clear();
  const auto add = [this](const ReqRec& rec) {
    pyckpt_mpi_request_info info{rec.id, rec.is_recv ? 1 : 0, !rec.is_recv || rec.complete ? 1 : 0, rec.buf, 0};
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
  std::sort(pending_view_.begin(), pending_view_.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return pending_view_;
}

MPI_Request Runtime::repost(std::uint64_t id, void* buf) {
  auto it = awaiting_repost_.find(id);
  if (it == awaiting_repost_.end())
    throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi_request_repost: request " + std::to_string(id) +
                                       " is not a receive awaiting re-post");
  ReqRec rec = it->second;
  rec.buf = buf;
  MPI_Request request = MPI_REQUEST_NULL;
  // Channel state first, as MPI_Irecv does: a drained message may be the one
  // this receive gets.
  if (auto m = channel_match(rec.comm->id, rec.source, rec.tag); m != channel_.end()) {
    rec.status = RecvStatus{m->source, m->tag, static_cast<std::int64_t>(m->data.size())};
    rec.counted = rec.complete = true;  // counted before the cut, when drained
    const int error = channel_deliver(m, buf, rec.count, rec.type, MPI_STATUS_IGNORE);
    check(start_completed_request(rec.status, error, &request), "MPI_Grequest_start (repost)");
  } else {
    check(PMPI_Irecv(buf, rec.count, rec.type, rec.source, rec.tag, rec.comm->real, &request),
          "MPI_Irecv (repost)");
  }
  add_request(request, rec);
  awaiting_repost_.erase(it);
  return request;
}

bool Runtime::take_resumed_send(const BlockingSend& s) {
  const ResumedSend r = *resumed_send;
  resumed_send.reset();
  if (r.comm == s.comm->id && r.dest == s.dest && r.tag == s.tag && r.bytes == s.bytes) return true;
  // Not the call that was in flight: the restarted program took another
  // path. Sending normally is the best left to do; say so, since the peer
  // may now get the message twice.
  std::fprintf(stderr,
               "pyckpt_mpi: rank %d: the first blocking send after restart (dest %d, tag %d, %llu bytes) is not "
               "the send in flight at the checkpoint (dest %d, tag %d, %llu bytes); sending it normally\n",
               world_rank, s.dest, s.tag, static_cast<unsigned long long>(s.bytes), r.dest, r.tag,
               static_cast<unsigned long long>(r.bytes));
  return false;
}

std::deque<ChannelMsg>::iterator Runtime::channel_match(std::uint64_t comm, int source, int tag) {
  // Drained messages are kept in arrival order, so the first match is the
  // one MPI's non-overtaking rule would deliver first.
  return std::find_if(channel_.begin(), channel_.end(), [&](const ChannelMsg& m) {
    return m.comm == comm && (source == MPI_ANY_SOURCE || source == m.source) &&
           (tag == MPI_ANY_TAG || tag == m.tag);
  });
}

void Runtime::fill_status(const ChannelMsg& m, MPI_Status* status) const {
  if (status == MPI_STATUS_IGNORE) return;
  status->MPI_SOURCE = m.source;
  status->MPI_TAG = m.tag;
  status->MPI_ERROR = MPI_SUCCESS;
  PMPI_Status_set_elements_x(status, MPI_BYTE, static_cast<MPI_Count>(m.data.size()));
  PMPI_Status_set_cancelled(status, 0);
}

int Runtime::channel_deliver(std::deque<ChannelMsg>::iterator m, void* buf, int count, MPI_Datatype type,
                             MPI_Status* status) {
  InternalScope internal;
  int type_size = 0;
  PMPI_Type_size(type, &type_size);
  const auto bytes = m->data.size();
  int rc = MPI_SUCCESS;
  if (bytes > static_cast<std::size_t>(type_size) * static_cast<std::size_t>(count)) {
    rc = MPI_ERR_TRUNCATE;
  } else if (bytes > 0) {
    // The bytes are the sender's data in native packed form (received as
    // MPI_BYTE); unpacking lays them out like a direct receive would.
    int pos = 0;
    rc = PMPI_Unpack(m->data.data(), static_cast<int>(bytes), &pos, buf,
                     static_cast<int>(bytes / static_cast<std::size_t>(type_size)), type, MPI_COMM_SELF);
  }
  fill_status(*m, status);
  if (status != MPI_STATUS_IGNORE) status->MPI_ERROR = rc;
  channel_.erase(m);
  ++stats.replayed;
  return rc;
}

namespace {
// State of a generalized request that is complete from the start.
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

int start_completed_request(const RecvStatus& st, int error, MPI_Request* request) {
  InternalScope internal;
  auto d = std::make_unique<CompletedRequest>(CompletedRequest{st, error});
  int rc = PMPI_Grequest_start(completed_query, completed_free, completed_cancel, d.get(), request);
  if (rc != MPI_SUCCESS) return rc;
  d.release();  // owned by the request now: completed_free deletes it
  return PMPI_Grequest_complete(*request);
}

void Runtime::mark_unsupported(const char* call) {
  if (unsupported_.find(call) != std::string::npos) return;
  if (!unsupported_.empty()) unsupported_ += ", ";
  unsupported_ += call;
}

}  // namespace pyckpt::mpi
