// This layer's state as portable bytes, and its restoration in a fresh job:
// communicators re-created by replaying their lineage in creation order,
// derived datatypes rebuilt from MPI_Type_get_contents trees, channel
// messages reloaded for delivery. Format (all little-endian):
//   "PYCKMPI1" u32 version, u32 world_size
//   u64 ncomms  { u64 id, i32 op, u64 parent, u32 n, i32 args[n], u8 freed, i32 rank, i32 size }
//   u64 ntypes  { u64 id, type-tree }
//     type-tree: i32 combiner (-1: predefined, then u32 index into kPredefined)
//                u32 ni, i32[ni], u32 na, i64[na], u32 nd, type-tree[nd]
//   u64 nmsgs   { u64 comm, i32 source, i32 tag, u64 n, bytes[n] }
//     (first: what the receive of a blocking call in flight at the cut got)
//   u8 has_send { u64 comm, i32 dest, i32 tag, u64 bytes }   blocking send in flight
//   u64 epoch (of this checkpoint), u64 next_request_id
//   u64 nreqs   { u64 id, u8 is_recv, u8 complete, u64 comm, u64 type, i32 count,
//                 i32 source, i32 tag, i32 status_source, i32 status_tag, i64 status_bytes }
#include "runtime.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>

namespace pyckpt::mpi {

namespace {

constexpr char kMagic[8] = {'P', 'Y', 'C', 'K', 'M', 'P', 'I', '1'};
constexpr std::uint32_t kVersion = 2;
static_assert(std::endian::native == std::endian::little, "state encoding assumes a little-endian host");

}  // namespace

// Predefined datatypes by stable index (their addresses change per process).
const std::vector<MPI_Datatype>& predefined_types() {
  static const std::vector<MPI_Datatype> v = {
      MPI_CHAR, MPI_SIGNED_CHAR, MPI_UNSIGNED_CHAR, MPI_BYTE, MPI_SHORT, MPI_UNSIGNED_SHORT, MPI_INT,
      MPI_UNSIGNED, MPI_LONG, MPI_UNSIGNED_LONG, MPI_LONG_LONG, MPI_UNSIGNED_LONG_LONG, MPI_FLOAT, MPI_DOUBLE,
      MPI_LONG_DOUBLE, MPI_C_BOOL, MPI_INT8_T, MPI_INT16_T, MPI_INT32_T, MPI_INT64_T, MPI_UINT8_T,
      MPI_UINT16_T, MPI_UINT32_T, MPI_UINT64_T, MPI_C_FLOAT_COMPLEX, MPI_C_DOUBLE_COMPLEX,
      MPI_C_LONG_DOUBLE_COMPLEX, MPI_WCHAR, MPI_PACKED, MPI_AINT, MPI_OFFSET, MPI_COUNT, MPI_FLOAT_INT,
      MPI_DOUBLE_INT, MPI_LONG_INT, MPI_2INT, MPI_SHORT_INT, MPI_LONG_DOUBLE_INT};
  return v;
}

namespace {

const std::vector<MPI_Datatype>& predefined() { return predefined_types(); }

class Writer {
 public:
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out_.insert(out_.end(), p, p + sizeof v);
  }
  void put_bytes(const std::byte* p, std::size_t n) { out_.insert(out_.end(), p, p + n); }
  std::vector<std::byte> take() { return std::move(out_); }

 private:
  std::vector<std::byte> out_;
};

class Reader {
 public:
  Reader(const std::byte* p, std::size_t n) : p_(p), end_(p + n) {}
  template <typename T>
  T get() {
    T v;
    std::memcpy(&v, need(sizeof v), sizeof v);
    return v;
  }
  const std::byte* get_bytes(std::size_t n) { return need(n); }
  bool done() const { return p_ == end_; }

 private:
  const std::byte* need(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n)
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: state bytes are truncated");
    const std::byte* r = p_;
    p_ += n;
    return r;
  }
  const std::byte* p_;
  const std::byte* end_;
};

void encode_type(Writer& w, MPI_Datatype t) {
  int ni = 0, na = 0, nd = 0, combiner = 0;
  check(PMPI_Type_get_envelope(t, &ni, &na, &nd, &combiner), "MPI_Type_get_envelope");
  if (combiner == MPI_COMBINER_NAMED) {
    const auto& pre = predefined();
    auto it = std::find(pre.begin(), pre.end(), t);
    if (it == pre.end()) {
      char name[MPI_MAX_OBJECT_NAME];
      int len = 0;
      PMPI_Type_get_name(t, name, &len);
      throw Error(PYCKPT_MPI_EUNSUPPORTED, "pyckpt_mpi: predefined datatype " + std::string(name, len) +
                                               " is not in the checkpointable set");
    }
    w.put<std::int32_t>(-1);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(it - pre.begin()));
    return;
  }
  std::vector<int> ints(static_cast<std::size_t>(ni));
  std::vector<MPI_Aint> aints(static_cast<std::size_t>(na));
  std::vector<MPI_Datatype> types(static_cast<std::size_t>(nd));
  check(PMPI_Type_get_contents(t, ni, na, nd, ints.data(), aints.data(), types.data()), "MPI_Type_get_contents");
  w.put<std::int32_t>(combiner);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(ni));
  for (int v : ints) w.put<std::int32_t>(v);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(na));
  for (MPI_Aint v : aints) w.put<std::int64_t>(v);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(nd));
  for (MPI_Datatype child : types) {
    encode_type(w, child);
    // get_contents hands out new handles for derived children only.
    int cni, cna, cnd, ccomb;
    PMPI_Type_get_envelope(child, &cni, &cna, &cnd, &ccomb);
    if (ccomb != MPI_COMBINER_NAMED) PMPI_Type_free(&child);
  }
}

// Frees the derived children made while decoding, whatever happens.
struct TypeList {
  std::vector<MPI_Datatype> v;
  ~TypeList() {
    for (MPI_Datatype& t : v) {
      if (t == MPI_DATATYPE_NULL) continue;
      int ni, na, nd, comb = MPI_COMBINER_NAMED;
      PMPI_Type_get_envelope(t, &ni, &na, &nd, &comb);
      if (comb != MPI_COMBINER_NAMED) PMPI_Type_free(&t);
    }
  }
};

MPI_Datatype decode_type(Reader& r) {
  const auto combiner = r.get<std::int32_t>();
  if (combiner == -1) {
    const auto idx = r.get<std::uint32_t>();
    if (idx >= predefined().size()) throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: unknown predefined datatype index");
    return predefined()[idx];
  }
  std::vector<int> i(r.get<std::uint32_t>());
  for (int& v : i) v = r.get<std::int32_t>();
  std::vector<MPI_Aint> a(r.get<std::uint32_t>());
  for (MPI_Aint& v : a) v = r.get<std::int64_t>();
  TypeList children;
  children.v.assign(r.get<std::uint32_t>(), MPI_DATATYPE_NULL);
  for (MPI_Datatype& t : children.v) t = decode_type(r);
  const auto need = [&](std::size_t ni, std::size_t na, std::size_t nd) {
    if (i.size() < ni || a.size() < na || children.v.size() < nd)
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: corrupt datatype record");
  };
  MPI_Datatype t = MPI_DATATYPE_NULL;
  const int n = i.empty() ? 0 : i[0];
  const auto nn = static_cast<std::size_t>(std::max(n, 0));
  int rc = MPI_SUCCESS;
  switch (combiner) {
    case MPI_COMBINER_DUP: need(0, 0, 1); rc = PMPI_Type_dup(children.v[0], &t); break;
    case MPI_COMBINER_CONTIGUOUS: need(1, 0, 1); rc = PMPI_Type_contiguous(n, children.v[0], &t); break;
    case MPI_COMBINER_VECTOR: need(3, 0, 1); rc = PMPI_Type_vector(n, i[1], i[2], children.v[0], &t); break;
    case MPI_COMBINER_HVECTOR: need(2, 1, 1); rc = PMPI_Type_create_hvector(n, i[1], a[0], children.v[0], &t); break;
    case MPI_COMBINER_INDEXED:
      need(1 + 2 * nn, 0, 1);
      rc = PMPI_Type_indexed(n, &i[1], &i[1 + nn], children.v[0], &t);
      break;
    case MPI_COMBINER_HINDEXED:
      need(1 + nn, nn, 1);
      rc = PMPI_Type_create_hindexed(n, &i[1], a.data(), children.v[0], &t);
      break;
    case MPI_COMBINER_INDEXED_BLOCK:
      need(2 + nn, 0, 1);
      rc = PMPI_Type_create_indexed_block(n, i[1], &i[2], children.v[0], &t);
      break;
    case MPI_COMBINER_HINDEXED_BLOCK:
      need(2, nn, 1);
      rc = PMPI_Type_create_hindexed_block(n, i[1], a.data(), children.v[0], &t);
      break;
    case MPI_COMBINER_STRUCT:
      need(1 + nn, nn, nn);
      rc = PMPI_Type_create_struct(n, &i[1], a.data(), children.v.data(), &t);
      break;
    case MPI_COMBINER_SUBARRAY:
      need(2 + 3 * nn, 0, 1);
      rc = PMPI_Type_create_subarray(n, &i[1], &i[1 + nn], &i[1 + 2 * nn], i[1 + 3 * nn], children.v[0], &t);
      break;
    case MPI_COMBINER_RESIZED: need(0, 2, 1); rc = PMPI_Type_create_resized(children.v[0], a[0], a[1], &t); break;
    default:
      throw Error(PYCKPT_MPI_EUNSUPPORTED,
                  "pyckpt_mpi: datatype combiner " + std::to_string(combiner) + " cannot be restored");
  }
  check(rc, "re-creating a derived datatype");
  return t;
}

MPI_Comm replay(LineageOp op, MPI_Comm parent, const std::vector<std::int32_t>& args) {
  MPI_Comm made = MPI_COMM_NULL;
  const auto bad = [] { throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: corrupt communicator lineage"); };
  switch (op) {
    case LineageOp::Dup: check(PMPI_Comm_dup(parent, &made), "MPI_Comm_dup (restore)"); break;
    case LineageOp::Split:
      if (args.size() != 2) bad();
      check(PMPI_Comm_split(parent, args[0], args[1], &made), "MPI_Comm_split (restore)");
      break;
    case LineageOp::SplitType:
      if (args.size() != 2) bad();
      check(PMPI_Comm_split_type(parent, args[0], args[1], MPI_INFO_NULL, &made), "MPI_Comm_split_type (restore)");
      break;
    case LineageOp::Create: {
      MPI_Group pg, g;
      PMPI_Comm_group(parent, &pg);
      PMPI_Group_incl(pg, static_cast<int>(args.size()), args.data(), &g);
      check(PMPI_Comm_create(parent, g, &made), "MPI_Comm_create (restore)");
      PMPI_Group_free(&g);
      PMPI_Group_free(&pg);
      break;
    }
    case LineageOp::Cart: {
      if (args.size() < 2 || args.size() != 2 + 2 * static_cast<std::size_t>(args[0])) bad();
      const int nd = args[0];
      check(PMPI_Cart_create(parent, nd, &args[2], &args[2 + static_cast<std::size_t>(nd)], args[1], &made),
            "MPI_Cart_create (restore)");
      break;
    }
    case LineageOp::CartSub: check(PMPI_Cart_sub(parent, args.data(), &made), "MPI_Cart_sub (restore)"); break;
    default: bad();
  }
  return made;
}

}  // namespace

std::vector<std::byte> Runtime::save() const {
  InternalScope internal;
  if (holds_matched_message())
    throw Error(PYCKPT_MPI_ESTATE, "pyckpt_mpi: a matched (MPI_Mprobe) message is held by the application");
  Writer w;
  for (char c : kMagic) w.put(c);
  w.put(kVersion);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(world_size));
  w.put<std::uint64_t>(comms_.size());
  for (const auto& c : comms_) {
    w.put(c->id);
    w.put(static_cast<std::int32_t>(c->op));
    w.put(c->parent);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(c->args.size()));
    for (auto a : c->args) w.put(a);
    w.put<std::uint8_t>(c->freed ? 1 : 0);
    w.put<std::int32_t>(c->rank);
    w.put<std::int32_t>(c->size);
  }
  std::map<std::uint64_t, MPI_Datatype> types;  // id order = commit order
  for (auto& [h, id] : types_) types.emplace(id, h);
  w.put<std::uint64_t>(types.size());
  for (auto& [id, h] : types) {
    w.put(id);
    encode_type(w, h);
  }
  const auto put_msg = [&w](const ChannelMsg& m) {
    w.put(m.comm);
    w.put(m.source);
    w.put(m.tag);
    w.put<std::uint64_t>(m.data.size());
    w.put_bytes(m.data.data(), m.data.size());
  };
  w.put<std::uint64_t>(channel_.size() + (cut_call_.received ? 1 : 0));
  // The re-issued receive is the restarted rank's first: its message first.
  if (cut_call_.received) put_msg(*cut_call_.received);
  for (const auto& m : channel_) put_msg(m);
  // A send in flight at this cut, or one restored and not yet re-issued (a
  // cut at the entry of the re-issued call).
  const std::optional<ResumedSend>& send = cut_call_.send ? cut_call_.send : resumed_send;
  w.put<std::uint8_t>(send ? 1 : 0);
  if (send) {
    w.put(send->comm);
    w.put(send->dest);
    w.put(send->tag);
    w.put(send->bytes);
  }
  w.put(in_cut_ ? epoch + 1 : epoch);  // the one being taken, inside a cut
  w.put(next_request_id_);
  std::map<std::uint64_t, const ReqRec*> reqs;  // by id = posting order
  for (const auto& [h, rec] : requests_) reqs.emplace(rec.id, &rec);
  for (const auto& [id, rec] : awaiting_repost_) reqs.emplace(id, &rec);
  w.put<std::uint64_t>(reqs.size());
  for (const auto& [id, rec] : reqs) {
    const bool complete = !rec->is_recv || rec->complete;
    const std::uint64_t type = rec->is_recv ? type_id(rec->type) : 0;
    if (!complete && (type == 0 || !rec->comm))
      throw Error(PYCKPT_MPI_EUNSUPPORTED, "pyckpt_mpi: pending receive " + std::to_string(id) +
                                               " uses a freed or unknown datatype or communicator");
    w.put(id);
    w.put<std::uint8_t>(rec->is_recv ? 1 : 0);
    w.put<std::uint8_t>(complete ? 1 : 0);
    w.put<std::uint64_t>(rec->comm ? rec->comm->id : 0);
    w.put(type);
    w.put<std::int32_t>(rec->count);
    w.put<std::int32_t>(rec->source);
    w.put<std::int32_t>(rec->tag);
    w.put(rec->status.source);
    w.put(rec->status.tag);
    w.put(rec->status.bytes);
  }
  return w.take();
}

void Runtime::restore(const std::byte* data, std::size_t len) {
  InternalScope internal;
  if (comms_.size() != 2 || !channel_.empty() || !types_.empty() || !requests_.empty())
    throw Error(PYCKPT_MPI_ESTATE, "pyckpt_mpi_state_restore: must be called once, right after MPI_Init");
  Reader r(data, len);
  for (char c : kMagic)
    if (r.get<char>() != c) throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: not a pyckpt_mpi state (bad magic)");
  if (auto v = r.get<std::uint32_t>(); v != kVersion)
    throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: unknown state format version " + std::to_string(v));
  if (auto ws = r.get<std::uint32_t>(); static_cast<int>(ws) != world_size)
    throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: checkpoint was taken with " + std::to_string(ws) +
                                       " ranks, this job has " + std::to_string(world_size));
  const auto ncomms = r.get<std::uint64_t>();
  std::vector<CommRec*> to_free;
  for (std::uint64_t k = 0; k < ncomms; ++k) {
    const auto id = r.get<std::uint64_t>();
    const auto op = static_cast<LineageOp>(r.get<std::int32_t>());
    const auto parent = r.get<std::uint64_t>();
    std::vector<std::int32_t> args(r.get<std::uint32_t>());
    for (auto& a : args) a = r.get<std::int32_t>();
    const bool freed = r.get<std::uint8_t>() != 0;
    const auto rank = r.get<std::int32_t>(), size = r.get<std::int32_t>();
    if (op == LineageOp::World || op == LineageOp::Self) continue;  // exist already
    // Parents are looked up among all records: a freed parent is re-created
    // too (freed again below) so that its children can be.
    CommRec* p = nullptr;
    for (auto& c : comms_)
      if (c->id == parent) p = c.get();
    if (!p || p->real == MPI_COMM_NULL)
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: communicator lineage names an unknown parent");
    MPI_Comm made = replay(op, p->real, args);
    add_comm(p, op, std::move(args), made);
    CommRec* c = comms_.back().get();
    if (c->id != id || (made != MPI_COMM_NULL && (c->rank != rank || c->size != size)))
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: re-created communicator does not match its checkpoint");
    if (freed && made != MPI_COMM_NULL) to_free.push_back(c);
  }
  for (CommRec* c : to_free) {
    MPI_Comm h = c->real;
    free_comm(h);
    PMPI_Comm_free(&h);
  }
  const auto ntypes = r.get<std::uint64_t>();
  for (std::uint64_t k = 0; k < ntypes; ++k) {
    const auto id = r.get<std::uint64_t>();
    MPI_Datatype t = decode_type(r);
    check(PMPI_Type_commit(&t), "MPI_Type_commit (restore)");
    types_[t] = id;
    next_type_id_ = std::max(next_type_id_, id + 1);
  }
  const auto nmsgs = r.get<std::uint64_t>();
  for (std::uint64_t k = 0; k < nmsgs; ++k) {
    ChannelMsg m;
    m.comm = r.get<std::uint64_t>();
    m.source = r.get<std::int32_t>();
    m.tag = r.get<std::int32_t>();
    const auto n = r.get<std::uint64_t>();
    const std::byte* p = r.get_bytes(n);
    m.data.assign(p, p + n);
    channel_.push_back(std::move(m));
  }
  if (r.get<std::uint8_t>() != 0) {
    ResumedSend send;
    send.comm = r.get<std::uint64_t>();
    send.dest = r.get<std::int32_t>();
    send.tag = r.get<std::int32_t>();
    send.bytes = r.get<std::uint64_t>();
    resumed_send = send;
  }
  epoch = r.get<std::uint64_t>();  // the next checkpoint continues the numbering
  next_request_id_ = r.get<std::uint64_t>();
  const auto nreqs = r.get<std::uint64_t>();
  for (std::uint64_t k = 0; k < nreqs; ++k) {
    ReqRec rec;
    rec.id = r.get<std::uint64_t>();
    rec.is_recv = r.get<std::uint8_t>() != 0;
    const bool complete = r.get<std::uint8_t>() != 0;
    const auto comm = r.get<std::uint64_t>(), type = r.get<std::uint64_t>();
    rec.count = r.get<std::int32_t>();
    rec.source = r.get<std::int32_t>();
    rec.tag = r.get<std::int32_t>();
    rec.status.source = r.get<std::int32_t>();
    rec.status.tag = r.get<std::int32_t>();
    rec.status.bytes = r.get<std::int64_t>();
    if (rec.id == 0 || rec.id >= next_request_id_) throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: corrupt request record");
    rec.comm = comm_by_id(comm);
    rec.type = type_from_id(type);
    if (complete) {
      // Sent, or received before the cut (data in the restored buffer):
      // MPI_Wait must just report what the first incarnation saw.
      rec.counted = rec.complete = true;
      MPI_Request h = MPI_REQUEST_NULL;
      check(start_completed_request(rec.status, MPI_SUCCESS, &h), "MPI_Grequest_start (restore)");
      add_request(h, rec);
      continue;
    }
    if (!rec.comm || rec.type == MPI_DATATYPE_NULL)
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: pending receive " + std::to_string(rec.id) +
                                         " names an unknown communicator or datatype");
    awaiting_repost_.emplace(rec.id, rec);
  }
  if (!r.done()) throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: trailing bytes after the state");
}

}  // namespace pyckpt::mpi
