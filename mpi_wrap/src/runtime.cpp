// The Runtime: lifetime of the parts, and this layer's state as portable
// bytes with its restoration in a fresh job: communicators re-created by
// replaying their lineage in creation order, derived datatypes rebuilt from
// MPI_Type_get_contents trees, channel messages reloaded for delivery,
// requests restored complete or awaiting re-post, the app's files reopened,
// its RMA windows read (created again once the layer above restored their
// memory: pyckpt_mpi_windows_recreate).
// Format (all little-endian, pyckpt/codec/bytes.hpp):
//   "PYCKMPI1" u32 version, u32 world_size
//   u64 ncomms  { u64 id, i32 op, u64 parent, u32 n, i32 args[n], u8 freed, i32 rank, i32 size,
//                 u64 members (CommRec::members_digest), u8 carried point-to-point messages }
//     (op: LineageOp; 11-13: Create_group and intercommunicators)
//   u64 ntypes  { u64 id, type-tree }   (TypeTable::encode)
//   u64 nmsgs   { u64 comm, i32 source, i32 tag, u64 n, bytes[n] }
//     (first: what the receive of a blocking call in flight at the cut got)
//   u8 has_send { u64 comm, i32 dest, i32 tag, u64 bytes }   blocking send in flight
//   u64 cut number (of this checkpoint's cut; the protocol's own counter,
//       not the checkpoint file's epoch), u64 next_request_id
//   u64 nreqs   { u64 id, u8 is_recv, u8 complete, u64 comm, u64 type, i32 count,
//                 i32 source, i32 tag, i32 status_source, i32 status_tag, i64 status_bytes }
//   u64 nfiles  { ... }   (FileTable::save)
//   u64 ncolls  { ... }   (IcollTable::save: nonblocking collectives the cut fell before)
//   u64 nwins   { ... }   (WinTable::save)
//   compound call rolled back at the cut, mpi4py's contexts (CompoundCall::save)
#include "runtime.hpp"

#include "callbacks.hpp"

#include <pyckpt/codec/bytes.hpp>

#include <cstdio>
#include <map>
#include <stdexcept>
#include <string_view>

namespace pyckpt::mpi {

std::unique_ptr<Runtime> Runtime::instance_;

namespace {
constexpr char kMagic[8] = {'P', 'Y', 'C', 'K', 'M', 'P', 'I', '1'};
// 4: + nonblocking collectives or windows; 5: both; 6: + Create_group and
// intercommunicators in lineage, or per comm whether it carried messages, or
// the compound call (three lines of work); 7: the first two; 8: all three;
// 9: + each communicator's members digest.
constexpr std::uint32_t kVersion = 9;

// A communicator made by Split_type (or from one) that the restarted job's
// placement gave other members (maybe with the same rank and size).
struct MovedComm {
  std::uint64_t id;
  int rank, size, now_rank, now_size;
};

// Traffic recorded at the cut names ranks of the old members: it cannot be
// delivered on a communicator that has other members now.
void refuse_if_moved(const std::vector<MovedComm>& moved, std::uint64_t comm, const char* what) {
  for (const MovedComm& m : moved)
    if (m.id == comm)
      throw Error(PYCKPT_MPI_EUNSUPPORTED,
                  std::string("pyckpt_mpi: ") + what + " on a node-local communicator (MPI_Comm_split_type) " +
                      "cannot be restored on this placement, which gives that communicator other members; " +
                      "restart on the placement of the checkpoint (as many ranks per node)");
}

// Point-to-point traffic on a node-local communicator: the cut aligned the
// collectives of the ranks of different nodes (CommRec::target_key), not
// their positions in that traffic, which the new members may not share.
[[noreturn]] void refuse_moved_traffic(std::uint64_t comm) {
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(comm));
  throw Error(PYCKPT_MPI_EUNSUPPORTED,
              std::string("pyckpt_mpi: node-local communicator ") + id +
                  " (MPI_Comm_split_type, or made from one) carried point-to-point messages (mpi4py's "
                  "comm.allreduce, reduce, scan and exscan of Python objects are point-to-point messages on a "
                  "duplicate of comm); this placement gives it other members, whose positions in that traffic "
                  "may differ (a checkpoint aligns only the collectives of the ranks of different nodes); "
                  "restart on the placement of the checkpoint (as many ranks per node), or use collectives on "
                  "node-local communicators (comm.Allreduce of NumPy arrays)");
}

// A window's members are fixed at its creation: the program names its
// targets by their rank among them, and a shared window's memory is that of
// the ranks of one node.
void refuse_moved_windows(const std::vector<MovedComm>& moved, const WinTable& windows) {
  for (const MovedComm& m : moved)
    if (const std::string window = windows.awaiting_on(m.id); !window.empty())
      throw Error(PYCKPT_MPI_EUNSUPPORTED,
                  "pyckpt_mpi: " + window + " is on a node-local communicator (MPI_Comm_split_type) that this " +
                      "placement gives other members (rank/size " + std::to_string(m.rank) + "/" +
                      std::to_string(m.size) + " -> " + std::to_string(m.now_rank) + "/" +
                      std::to_string(m.now_size) + "); the program addresses it by the ranks of its old " +
                      "members, and a shared window's memory is shared by the ranks of the old node; restart on " +
                      "the placement of the checkpoint (as many ranks per node)");
}

std::pair<int, int> world() {
  int rank = 0, size = 1;
  PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
  PMPI_Comm_size(MPI_COMM_WORLD, &size);
  return {rank, size};
}
}  // namespace

Runtime::Runtime(int world_rank, int world_size)
    : world_rank_(world_rank),
      world_size_(world_size),
      coordinator(world_rank, world_size, comms, requests, collectives, channel, call, files, windows,
                  unsupported_) {
  comms.add_predefined();
  int* ub = nullptr;
  int flag = 0;
  if (PMPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag) == MPI_SUCCESS && flag && ub) tag_ub_ = *ub;
}

void Runtime::start() {
  InternalScope internal;
  const auto [rank, size] = world();
  instance_.reset(new Runtime(rank, size));
}

void Runtime::stop() {
  InternalScope internal;
  instance_.reset();  // frees the private communicators
}

namespace {
// What an unsupported call means for the application, where its name alone
// does not say it (the checkpoint's failure message names the call).
std::string_view meaning(std::string_view call) {
  if (call.starts_with("MPI_Comm_spawn") || call == "MPI_Comm_connect" || call == "MPI_Comm_accept" ||
      call == "MPI_Comm_join")
    return " (dynamic processes: processes the job spawned or connected to are not part of its checkpoints; "
           "mpi4py.futures' MPIPoolExecutor spawns its workers this way)";
  return "";
}
}  // namespace

void Runtime::mark_unsupported(const char* call) {
  if (unsupported_.find(call) != std::string::npos) return;
  if (!unsupported_.empty()) unsupported_ += ", ";
  unsupported_ += call;
  // The program's line that made it: what the user can change.
  if (const std::string site = app_site(); !site.empty()) unsupported_ += " at " + site;
  unsupported_ += meaning(call);
  // Never cleared: every later checkpoint fails, naming the calls. Not a
  // switch-off (Coordinator::switch_off): the ranks keep calling the same
  // form of each collective, which they could not all change at one point.
}

std::vector<std::byte> Runtime::save() const {
  InternalScope internal;
  if (channel.holds_matched_message())
    throw Error(PYCKPT_MPI_ESTATE, "pyckpt_mpi: a matched (MPI_Mprobe) message is held by the application");
  codec::ByteWriter w;
  for (char c : kMagic) w.put(c);
  w.put(kVersion);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(world_size_));
  w.put<std::uint64_t>(comms.all().size());
  for (const auto& c : comms.all()) {
    w.put(c->id);
    w.put(static_cast<std::int32_t>(c->op));
    w.put(c->parent);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(c->args.size()));
    for (auto a : c->args) w.put(a);
    w.put<std::uint8_t>(c->freed ? 1 : 0);
    w.put<std::int32_t>(c->rank);
    w.put<std::int32_t>(c->size);
    w.put(c->members_digest());
    w.put<std::uint8_t>(c->carries_messages() ? 1 : 0);
  }
  const auto types_by_id = types.by_id();  // id order = commit order
  w.put<std::uint64_t>(types_by_id.size());
  for (auto& [id, h] : types_by_id) {
    w.put(id);
    TypeTable::encode(w, h);
  }
  const auto put_msg = [&w](const ChannelMsg& m) {
    w.put(m.comm);
    w.put(m.source);
    w.put(m.tag);
    w.put<std::uint64_t>(m.data.size());
    w.put_bytes(m.data.data(), m.data.size());
  };
  const CutCall& cut_call = call.at_cut();
  w.put<std::uint64_t>(channel.size() + (cut_call.received ? 1 : 0));
  // The re-issued receive is the restarted rank's first: its message first.
  if (cut_call.received) put_msg(*cut_call.received);
  for (const auto& m : channel.messages()) put_msg(m);
  // A send in flight at this cut, or one restored and not yet re-issued (a
  // cut at the entry of the re-issued call).
  // Inside a compound call the rank is rolled back to the call's start:
  // its sends, this one too, are the compound call's record.
  std::optional<ResumedSend> send = cut_call.send ? cut_call.send : call.resumed_send();
  if (compound.active()) {
    send.reset();
    coordinator.trace("inside an mpi4py compound call: rolled back to its start, %zu received message(s) logged, "
                      "%zu send(s) recorded",
                      compound.logged_receives(), compound.recorded_sends());
  }
  w.put<std::uint8_t>(send ? 1 : 0);
  if (send) {
    w.put(send->comm);
    w.put(send->dest);
    w.put(send->tag);
    w.put(send->bytes);
  }
  w.put(coordinator.saved_cut_number());
  w.put(requests.next_id());
  auto reqs = requests.by_id();  // by id = posting order
  // Nonblocking collectives the cut fell before are saved with their calls
  // (below); done ones are complete requests like sends. The isends of a compound
  // call rolled back at this cut are its record's (CompoundCall).
  std::erase_if(reqs, [this](const auto& kv) {
    return (kv.second->collective && !kv.second->complete) || compound.rolled_back_request(kv.first);
  });
  w.put<std::uint64_t>(reqs.size());
  for (const auto& [id, rec] : reqs) {
    const bool complete = !rec->is_recv || rec->complete;
    const std::uint64_t type = rec->is_recv ? types.id(rec->type) : 0;
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
  files.save(w);
  collectives.save(w, types);
  windows.save(w);
  compound.save(w, comms);
  return w.take();
}

void Runtime::restore(const std::byte* data, std::size_t len) {
  InternalScope internal;
  if (!comms.only_predefined() || channel.size() != 0 || !types.empty() || !requests.empty() || !files.empty() ||
      !collectives.empty() || !windows.empty())
    throw Error(PYCKPT_MPI_ESTATE, "pyckpt_mpi_state_restore: must be called once, right after MPI_Init");
  codec::ByteReader r(data, len, "pyckpt_mpi: state bytes are truncated");
  try {
    for (char c : kMagic)
      if (r.get<char>() != c) throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: not a pyckpt_mpi state (bad magic)");
    if (auto v = r.get<std::uint32_t>(); v != kVersion)
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: the MPI state is in format version " + std::to_string(v) +
                                         ", this pyckpt reads version " + std::to_string(kVersion) +
                                         " only: restart it with the pyckpt that wrote it");
    if (auto ws = r.get<std::uint32_t>(); static_cast<int>(ws) != world_size_)
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: checkpoint was taken with " + std::to_string(ws) +
                                         " ranks, this job has " + std::to_string(world_size_));
    const auto ncomms = r.get<std::uint64_t>();
    std::vector<CommRec*> to_free;
    std::vector<MovedComm> moved;
    for (std::uint64_t k = 0; k < ncomms; ++k) {
      const auto id = r.get<std::uint64_t>();
      const auto op = static_cast<LineageOp>(r.get<std::int32_t>());
      const auto parent = r.get<std::uint64_t>();
      std::vector<std::int32_t> args(r.get<std::uint32_t>());
      for (auto& a : args) a = r.get<std::int32_t>();
      const bool freed = r.get<std::uint8_t>() != 0;
      const auto rank = r.get<std::int32_t>(), size = r.get<std::int32_t>();
      const auto members = r.get<std::uint64_t>();
      const bool carried_messages = r.get<std::uint8_t>() != 0;
      if (op == LineageOp::World || op == LineageOp::Self) continue;  // exist already
      // Parents are looked up among all records: a freed parent is re-created
      // too (freed again below) so that its children can be.
      CommRec* p = comms.record(parent);
      if (!p || p->real == MPI_COMM_NULL)
        throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: communicator lineage names an unknown parent");
      const auto mismatch = [] {
        throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: re-created communicator does not match its checkpoint");
      };
      // The leaders of an intercommunicator's groups meet on the library's
      // arrival communicator: a rank already past its restore sends there
      // only after it sent what this replay receives (messages do not
      // overtake).
      MPI_Comm made = CommTable::replay(op, p->real, args, coordinator.arrival()).release();
      CommRec& c = add_comm(*p, op, std::move(args), made);
      c.carried_messages = carried_messages;
      if (c.id != id) mismatch();
      if (made != MPI_COMM_NULL && (c.rank != rank || c.size != size || c.members_digest() != members)) {
        // Split_type's members are the ranks that share a node *now*.
        if (!p->placement_dependent && op != LineageOp::SplitType) mismatch();
        if (carried_messages) refuse_moved_traffic(id);
        moved.push_back({id, rank, size, c.rank, c.size});
      }
      if (freed && c.real != MPI_COMM_NULL) to_free.push_back(&c);
    }
    if (!moved.empty()) {
      std::string list;
      for (const MovedComm& m : moved)
        list += " " + std::to_string(m.rank) + "/" + std::to_string(m.size) + "->" + std::to_string(m.now_rank) +
                "/" + std::to_string(m.now_size);
      std::fprintf(stderr,
                   "pyckpt_mpi: rank %d: %zu node-local communicator(s) (MPI_Comm_split_type) re-created on this "
                   "placement with other members (rank/size:%s); what the program derived from them before the "
                   "checkpoint describes the old placement\n",
                   world_rank_, moved.size(), list.c_str());
    }
    for (CommRec* c : to_free) comms.free(c->real);
    const auto ntypes = r.get<std::uint64_t>();
    for (std::uint64_t k = 0; k < ntypes; ++k) {
      const auto id = r.get<std::uint64_t>();
      MPI_Datatype t = TypeTable::decode(r);
      check(PMPI_Type_commit(&t), "MPI_Type_commit (restore)");
      types.restore(t, id);
    }
    const auto nmsgs = r.get<std::uint64_t>();
    for (std::uint64_t k = 0; k < nmsgs; ++k) {
      ChannelMsg m;
      m.comm = r.get<std::uint64_t>();
      m.source = r.get<std::int32_t>();
      m.tag = r.get<std::int32_t>();
      refuse_if_moved(moved, m.comm, "a message in flight at the checkpoint");
      const auto n = r.get<std::uint64_t>();
      const std::byte* p = r.get_bytes(n);
      m.data.assign(p, p + n);
      channel.append(std::move(m));
    }
    if (r.get<std::uint8_t>() != 0) {
      ResumedSend send;
      send.comm = r.get<std::uint64_t>();
      send.dest = r.get<std::int32_t>();
      send.tag = r.get<std::int32_t>();
      send.bytes = r.get<std::uint64_t>();
      refuse_if_moved(moved, send.comm, "the send in flight at the checkpoint");
      call.resume_send(send);
    }
    coordinator.restore_cut_number(r.get<std::uint64_t>());  // the next cut continues the numbering
    requests.set_next_id(r.get<std::uint64_t>());
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
      if (rec.id == 0 || rec.id >= requests.next_id())
        throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: corrupt request record");
      rec.comm = comms.by_id(comm);
      rec.type = types.from_id(type);
      if (complete) {
        // Sent, or received before the cut (data in the restored buffer):
        // MPI_Wait must just report what the first incarnation saw.
        rec.counted = rec.complete = true;
        MPI_Request h = MPI_REQUEST_NULL;
        check(start_completed_request(rec.status, MPI_SUCCESS, &h), "MPI_Grequest_start (restore)");
        requests.add(h, rec);
        continue;
      }
      refuse_if_moved(moved, comm, "a receive pending at the checkpoint");
      if (!rec.comm || rec.type == MPI_DATATYPE_NULL)
        throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: pending receive " + std::to_string(rec.id) +
                                           " names an unknown communicator or datatype");
      requests.await_repost(rec);
    }
    files.restore(r, comms);
    collectives.restore(r, comms, types);
    windows.restore(r);  // created in pyckpt_mpi_windows_recreate, over restored memory
    refuse_moved_windows(moved, windows);
    compound.restore(r, channel);  // after the channel: its messages go first
    if (!r.done()) throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: trailing bytes after the state");
  } catch (const std::length_error& e) {
    throw Error(PYCKPT_MPI_EINVAL, e.what());
  }
}

}  // namespace pyckpt::mpi
