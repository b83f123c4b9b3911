// The application's nonblocking collectives: posting (the collective, then
// the arrival barrier), the pending view inside a cut, the state codec and
// the re-post after a restart.
#include "icoll_table.hpp"

#include "error.hpp"
#include "request_table.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace pyckpt::mpi {

const std::vector<MPI_Op>& predefined_ops() {
  static const std::vector<MPI_Op> v = {MPI_MAX,  MPI_MIN,  MPI_SUM,  MPI_PROD,   MPI_LAND,   MPI_BAND,    MPI_LOR,
                                        MPI_BOR,  MPI_LXOR, MPI_BXOR, MPI_MAXLOC, MPI_MINLOC, MPI_REPLACE, MPI_NO_OP};
  return v;
}

namespace {

std::uint64_t extent(MPI_Datatype t) {
  if (t == MPI_DATATYPE_NULL) return 0;
  MPI_Aint lb = 0, ext = 0;
  PMPI_Type_get_extent(t, &lb, &ext);
  return ext > 0 ? static_cast<std::uint64_t>(ext) : 0;
}

std::uint64_t elements(int count) { return count > 0 ? static_cast<std::uint64_t>(count) : 0; }

// The elements a v form's buffer spans: the end of its furthest block.
std::uint64_t span(const std::vector<int>& counts, const std::vector<int>& displs) {
  std::uint64_t end = 0;
  for (std::size_t i = 0; i < counts.size() && i < displs.size(); ++i)
    if (counts[i] > 0) end = std::max(end, elements(displs[i]) + elements(counts[i]));
  return end;
}

std::uint64_t sum(const std::vector<int>& counts) {
  std::uint64_t n = 0;
  for (int k : counts) n += elements(k);
  return n;
}

bool real_buffer(const void* p) { return p != nullptr && p != MPI_IN_PLACE; }

}  // namespace

const char* IcollCall::name() const {
  static const char* const names[] = {
      "MPI_Ibarrier",  "MPI_Ibcast",    "MPI_Ireduce",    "MPI_Iallreduce",  "MPI_Iscan",
      "MPI_Iexscan",   "MPI_Igather",   "MPI_Igatherv",   "MPI_Iscatter",    "MPI_Iscatterv",
      "MPI_Iallgather", "MPI_Iallgatherv", "MPI_Ialltoall", "MPI_Ialltoallv", "MPI_Ireduce_scatter_block",
      "MPI_Ireduce_scatter"};
  return names[static_cast<int>(kind)];
}

int IcollCall::post(MPI_Comm comm, MPI_Request* request) const {
  const auto* sc = scounts.data();
  const auto* sd = sdispls.data();
  const auto* rc = rcounts.data();
  const auto* rd = rdispls.data();
  switch (kind) {
    case IcollKind::Barrier: *request = MPI_REQUEST_NULL; return MPI_SUCCESS;
    case IcollKind::Bcast: return PMPI_Ibcast(rbuf, rcount, rtype, root, comm, request);
    case IcollKind::Reduce: return PMPI_Ireduce(sbuf, rbuf, rcount, rtype, op, root, comm, request);
    case IcollKind::Allreduce: return PMPI_Iallreduce(sbuf, rbuf, rcount, rtype, op, comm, request);
    case IcollKind::Scan: return PMPI_Iscan(sbuf, rbuf, rcount, rtype, op, comm, request);
    case IcollKind::Exscan: return PMPI_Iexscan(sbuf, rbuf, rcount, rtype, op, comm, request);
    case IcollKind::Gather: return PMPI_Igather(sbuf, scount, stype, rbuf, rcount, rtype, root, comm, request);
    case IcollKind::Gatherv: return PMPI_Igatherv(sbuf, scount, stype, rbuf, rc, rd, rtype, root, comm, request);
    case IcollKind::Scatter: return PMPI_Iscatter(sbuf, scount, stype, rbuf, rcount, rtype, root, comm, request);
    case IcollKind::Scatterv: return PMPI_Iscatterv(sbuf, sc, sd, stype, rbuf, rcount, rtype, root, comm, request);
    case IcollKind::Allgather: return PMPI_Iallgather(sbuf, scount, stype, rbuf, rcount, rtype, comm, request);
    case IcollKind::Allgatherv: return PMPI_Iallgatherv(sbuf, scount, stype, rbuf, rc, rd, rtype, comm, request);
    case IcollKind::Alltoall: return PMPI_Ialltoall(sbuf, scount, stype, rbuf, rcount, rtype, comm, request);
    case IcollKind::Alltoallv:
      return PMPI_Ialltoallv(sbuf, sc, sd, stype, rbuf, rc, rd, rtype, comm, request);
    case IcollKind::ReduceScatterBlock: return PMPI_Ireduce_scatter_block(sbuf, rbuf, rcount, rtype, op, comm, request);
    case IcollKind::ReduceScatter: return PMPI_Ireduce_scatter(sbuf, rbuf, rc, rtype, op, comm, request);
  }
  return MPI_ERR_INTERN;
}

// The root of a rooted call: on an intercommunicator the root passes
// MPI_ROOT (the others of its group MPI_PROC_NULL, the remote group the
// root's rank); data goes to or comes from the remote group (n below).
bool IcollCall::is_root(const CommRec& c) const { return c.inter() ? root == MPI_ROOT : c.rank == root; }

// Reduction-like calls have one datatype and count (rtype, rcount) for both
// buffers; the others name each side's own.
std::uint64_t IcollCall::send_bytes(const CommRec& c) const {
  if (!real_buffer(sbuf)) return 0;
  const bool root_here = is_root(c);
  const auto n = static_cast<std::uint64_t>(c.peers().size());
  switch (kind) {
    case IcollKind::Barrier:
    case IcollKind::Bcast: return 0;
    case IcollKind::Reduce:
    case IcollKind::Allreduce:
    case IcollKind::Scan:
    case IcollKind::Exscan: return elements(rcount) * extent(rtype);
    case IcollKind::ReduceScatterBlock: return elements(rcount) * n * extent(rtype);
    case IcollKind::ReduceScatter: return sum(rcounts) * extent(rtype);
    case IcollKind::Gather:
    case IcollKind::Gatherv:
    case IcollKind::Allgather:
    case IcollKind::Allgatherv: return elements(scount) * extent(stype);
    case IcollKind::Scatter: return root_here ? elements(scount) * n * extent(stype) : 0;
    case IcollKind::Scatterv: return root_here ? span(scounts, sdispls) * extent(stype) : 0;
    case IcollKind::Alltoall: return elements(scount) * n * extent(stype);
    case IcollKind::Alltoallv: return span(scounts, sdispls) * extent(stype);
  }
  return 0;
}

std::uint64_t IcollCall::recv_bytes(const CommRec& c) const {
  if (!real_buffer(rbuf)) return 0;
  const bool root_here = is_root(c);
  const auto n = static_cast<std::uint64_t>(c.peers().size());
  switch (kind) {
    case IcollKind::Barrier: return 0;
    case IcollKind::Bcast:
    case IcollKind::Allreduce:
    case IcollKind::Scan:
    case IcollKind::Exscan:
    case IcollKind::ReduceScatterBlock: return elements(rcount) * extent(rtype);
    case IcollKind::Reduce: return root_here ? elements(rcount) * extent(rtype) : 0;
    case IcollKind::ReduceScatter:
      return c.rank < static_cast<int>(rcounts.size()) ? elements(rcounts[static_cast<std::size_t>(c.rank)]) * extent(rtype)
                                                       : 0;
    case IcollKind::Gather: return root_here ? elements(rcount) * n * extent(rtype) : 0;
    case IcollKind::Gatherv: return root_here ? span(rcounts, rdispls) * extent(rtype) : 0;
    case IcollKind::Scatter:
    case IcollKind::Scatterv: return elements(rcount) * extent(rtype);
    case IcollKind::Allgather:
    case IcollKind::Alltoall: return elements(rcount) * n * extent(rtype);
    case IcollKind::Allgatherv:
    case IcollKind::Alltoallv: return span(rcounts, rdispls) * extent(rtype);
  }
  return 0;
}

int IcollTable::start(CommRec* c, IcollCall call, std::uint64_t id, MPI_Request* app_request,
                      std::vector<std::byte> send_copy) {
  IcollRec rec;
  rec.id = id;
  rec.comm = c;
  rec.call = std::move(call);
  rec.send_copy = std::move(send_copy);  // heap memory: call.sbuf stays valid
  if (rec.call.input_in_recv_buffer()) {
    const auto* p = static_cast<const std::byte*>(rec.call.rbuf);
    rec.input.assign(p, p + rec.call.recv_bytes(*c));
  }
  // Into the table first: the v forms are posted with the record's copies
  // of the count arrays, which must live until the collective completes.
  auto [it, inserted] = records_.insert_or_assign(id, std::move(rec));
  IcollRec& r = it->second;
  // The collective first: invalid arguments fail here, before anything else
  // is posted. Then the barrier, on every member right after it.
  int rc = r.call.post(c->real, &r.real);
  if (rc == MPI_SUCCESS) rc = PMPI_Ibarrier(c->real, &r.arrival);
  if (rc == MPI_SUCCESS) rc = start_collective_request(&r.app);
  if (rc != MPI_SUCCESS) {
    records_.erase(it);
    return rc;
  }
  *app_request = r.app;
  return MPI_SUCCESS;
}

bool IcollTable::in_flight() const {
  return std::any_of(records_.begin(), records_.end(), [](const auto& kv) { return kv.second.counted; });
}

bool IcollTable::uncounted_on(const CommRec* c) const {
  return std::any_of(records_.begin(), records_.end(),
                     [c](const auto& kv) { return kv.second.comm == c && !kv.second.counted; });
}

std::map<std::uint64_t, IcollRec>::iterator IcollTable::finish(std::map<std::uint64_t, IcollRec>::iterator it) {
  PMPI_Grequest_complete(it->second.app);
  return records_.erase(it);
}

void IcollTable::append_pending(std::vector<pyckpt_mpi_request_info>& view) const {
  for (const auto& [id, rec] : records_) {
    if (rec.counted) continue;  // completes before the capture
    pyckpt_mpi_request_info info{};
    info.id = id;
    info.bytes = rec.call.recv_bytes(*rec.comm);
    info.buf = info.bytes > 0 ? rec.call.rbuf : nullptr;
    view.push_back(info);
  }
  for (const auto& [id, rec] : awaiting_) {  // restored, not re-posted yet: no buffers here
    pyckpt_mpi_request_info info{};
    info.id = id;
    view.push_back(info);
  }
}

// Per call: u64 id, i32 kind, u64 comm, i32 root, i32 scount, i32 rcount,
// 4 x (u32 n, i32[n]) count arrays, u64 stype, u64 rtype (TypeTable ids),
// i32 op (index into predefined_ops(), -1 none), u8 flags (1: send buffer
// MPI_IN_PLACE, 2: receive buffer MPI_IN_PLACE), u64 n, input[n] (in
// place), u64 m, send buffer[m].
namespace {
constexpr std::uint8_t kSendInPlace = 1, kRecvInPlace = 2;

void put_ints(codec::ByteWriter& w, const std::vector<int>& v) {
  w.put<std::uint32_t>(static_cast<std::uint32_t>(v.size()));
  for (int k : v) w.put<std::int32_t>(k);
}
std::vector<int> get_ints(codec::ByteReader& r) {
  std::vector<int> v(r.get<std::uint32_t>());
  for (auto& k : v) k = r.get<std::int32_t>();
  return v;
}

}  // namespace

void IcollTable::save(codec::ByteWriter& w, const TypeTable& types) const {
  std::vector<const IcollRec*> pending;
  for (const auto& [id, rec] : records_)
    if (!rec.counted) pending.push_back(&rec);
  for (const auto& [id, rec] : awaiting_) pending.push_back(&rec);
  std::sort(pending.begin(), pending.end(), [](const IcollRec* a, const IcollRec* b) { return a->id < b->id; });
  w.put<std::uint64_t>(pending.size());
  for (const IcollRec* rec : pending) {
    const IcollCall& call = rec->call;
    const auto what = [&] {
      return std::string("pyckpt_mpi: ") + call.name() + " (request " + std::to_string(rec->id) + ", pending at the cut)";
    };
    const auto type_id = [&](MPI_Datatype t, bool significant) -> std::uint64_t {
      const std::uint64_t id = types.id(t);
      if (id == 0 && significant)
        throw Error(PYCKPT_MPI_EUNSUPPORTED, what() + " uses a freed or unknown datatype: it cannot be posted again "
                                                      "after a restart");
      return id;
    };
    std::int32_t op = -1;
    if (call.op != MPI_OP_NULL) {
      const auto& ops = predefined_ops();
      const auto found = std::find(ops.begin(), ops.end(), call.op);
      if (found == ops.end())
        throw Error(PYCKPT_MPI_EUNSUPPORTED, what() + " uses a user-defined reduction operation, which cannot be "
                                                      "re-created after a restart; complete it before checkpoints");
      op = static_cast<std::int32_t>(found - ops.begin());
    }
    w.put(rec->id);
    w.put(static_cast<std::int32_t>(call.kind));
    w.put(rec->comm->id);
    w.put<std::int32_t>(call.root);
    w.put<std::int32_t>(call.scount);
    w.put<std::int32_t>(call.rcount);
    put_ints(w, call.scounts);
    put_ints(w, call.sdispls);
    put_ints(w, call.rcounts);
    put_ints(w, call.rdispls);
    // A restored call not re-posted yet has no buffers, and the types as saved.
    const bool bound = rec->app != MPI_REQUEST_NULL;
    // The reductions and Ibcast have one datatype (rtype).
    const bool own_send_type = call.kind >= IcollKind::Gather && call.kind <= IcollKind::Alltoallv;
    w.put(type_id(call.stype, bound && own_send_type && call.send_bytes(*rec->comm) > 0));
    w.put(type_id(call.rtype, bound && call.recv_bytes(*rec->comm) > 0));
    w.put<std::int32_t>(op);
    w.put<std::uint8_t>((call.sbuf == MPI_IN_PLACE ? kSendInPlace : 0) | (call.rbuf == MPI_IN_PLACE ? kRecvInPlace : 0));
    w.put<std::uint64_t>(rec->input.size());
    w.put_bytes(rec->input.data(), rec->input.size());
    // A restored call not posted again yet has its send buffer in send_copy.
    const std::uint64_t sent = bound ? call.send_bytes(*rec->comm) : rec->send_copy.size();
    w.put(sent);
    w.put_bytes(bound ? static_cast<const std::byte*>(call.sbuf) : rec->send_copy.data(), sent);
  }
}

void IcollTable::restore(codec::ByteReader& r, const CommTable& comms, const TypeTable& types) {
  const auto n = r.get<std::uint64_t>();
  for (std::uint64_t k = 0; k < n; ++k) {
    IcollRec rec;
    rec.id = r.get<std::uint64_t>();
    IcollCall& call = rec.call;
    const auto kind = r.get<std::int32_t>();
    if (kind < 0 || kind > static_cast<std::int32_t>(IcollKind::ReduceScatter))
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: corrupt nonblocking collective record");
    call.kind = static_cast<IcollKind>(kind);
    rec.comm = comms.by_id(r.get<std::uint64_t>());
    call.root = r.get<std::int32_t>();
    call.scount = r.get<std::int32_t>();
    call.rcount = r.get<std::int32_t>();
    call.scounts = get_ints(r);
    call.sdispls = get_ints(r);
    call.rcounts = get_ints(r);
    call.rdispls = get_ints(r);
    call.stype = types.from_id(r.get<std::uint64_t>());
    call.rtype = types.from_id(r.get<std::uint64_t>());
    const auto op = r.get<std::int32_t>();
    const auto& ops = predefined_ops();
    if (op >= static_cast<std::int32_t>(ops.size()))
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: corrupt nonblocking collective record");
    call.op = op < 0 ? MPI_OP_NULL : ops[static_cast<std::size_t>(op)];
    const auto flags = r.get<std::uint8_t>();
    // Buffers are bound by repost(); the sentinels stay.
    call.sbuf = flags & kSendInPlace ? MPI_IN_PLACE : nullptr;
    call.rbuf = flags & kRecvInPlace ? MPI_IN_PLACE : nullptr;
    const auto bytes = r.get<std::uint64_t>();
    const std::byte* p = r.get_bytes(bytes);
    rec.input.assign(p, p + bytes);
    const auto sent = r.get<std::uint64_t>();
    const std::byte* q = r.get_bytes(sent);
    rec.send_copy.assign(q, q + sent);
    if (!rec.comm)
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: nonblocking collective " + std::to_string(rec.id) +
                                         " names an unknown communicator");
    awaiting_.emplace(rec.id, std::move(rec));
  }
}

IcollTable::Repost IcollTable::take_for_repost(std::uint64_t id, void* recv_buf) {
  auto it = awaiting_.find(id);
  if (it == awaiting_.end())
    throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi_request_repost: request " + std::to_string(id) +
                                       " is not a nonblocking collective awaiting re-post");
  IcollRec rec = std::move(it->second);
  awaiting_.erase(it);
  if (rec.call.sbuf != MPI_IN_PLACE) rec.call.sbuf = rec.send_copy.empty() ? nullptr : rec.send_copy.data();
  if (rec.call.rbuf != MPI_IN_PLACE) rec.call.rbuf = recv_buf;
  if (!rec.input.empty()) {
    if (recv_buf == nullptr || rec.call.recv_bytes(*rec.comm) != rec.input.size())
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi_request_repost: request " + std::to_string(id) +
                                         " needs its receive buffer (its input, in place) of " +
                                         std::to_string(rec.input.size()) + " bytes");
    std::memcpy(recv_buf, rec.input.data(), rec.input.size());
  }
  return {rec.comm, std::move(rec.call), std::move(rec.send_copy)};
}

}  // namespace pyckpt::mpi
