// A compound call across a cut: logged while it runs, rolled back at a cut,
// replayed after a restart. See compound_call.hpp.
#include "compound_call.hpp"

#include "error.hpp"

#include <cstdio>

namespace pyckpt::mpi {

void CompoundCall::begin(int kind, std::uint64_t first_request) {
  if (depth_++ > 0) {
    // A compound call inside another (an mpi4py reduction whose Python
    // operation calls MPI): only the outer one could be rolled back, and its
    // log would mix both. A cut inside it is refused.
    unrecordable_ = true;
    return;
  }
  kind_ = kind;
  first_request_ = first_request;
  if (replay_kind_ != 0) {
    // A restarted rank re-issuing the call it was cut in: its frame was
    // captured at that call, so this is it; the kind tells if it is not.
    if (replay_kind_ != kind) {
      std::fprintf(stderr, "pyckpt_mpi: the first mpi4py compound call after the restart is not the one the "
                           "checkpoint was taken in; the job cannot resume exactly\n");
      PMPI_Abort(MPI_COMM_WORLD, 70);
    }
    replay_kind_ = 0;
  }
}

void CompoundCall::end() {
  if (depth_ == 0) return;
  if (--depth_ > 0) return;
  if (!replay_.empty()) {
    std::fprintf(stderr, "pyckpt_mpi: the re-issued mpi4py call made fewer sends than before the checkpoint; "
                         "the job cannot resume exactly\n");
    PMPI_Abort(MPI_COMM_WORLD, 70);
  }
  kind_ = 0;
  unrecordable_ = false;
  log_.clear();
  sends_.clear();
  reduction_comm_ = 0;
}

void CompoundCall::on_get_attr(const CommRec& c, int tag_ub) {
  if (depth_ != 1 || kind_ != kReduction || reduction_comm_ != 0) return;
  // One lookup of mpi4py's context per reduction (PyMPI_Commctx_lookup):
  // it wraps the counter at MPI_TAG_UB, then the reduction takes the
  // counter's value and increments it.
  MpiPyContext& ctx = contexts_[c.id];
  reduction_comm_ = c.id;
  tag_before_ = ctx.next_tag;
  if (ctx.next_tag >= tag_ub) ctx.next_tag = 0;
  ++ctx.next_tag;
}

void CompoundCall::on_dup(const CommRec& parent, const CommRec& made) {
  if (depth_ != 1 || reduction_comm_ != parent.id || !sends_.empty() || !log_.empty()) return;
  contexts_[parent.id].dup = made.id;
}

bool CompoundCall::take_replayed_send(const CommRec& c, int dest, int tag) {
  const CompoundSend s = replay_.front();
  if (s.comm != c.id || s.dest != dest || s.tag != tag) {
    std::fprintf(stderr,
                 "pyckpt_mpi: the re-issued mpi4py call sends to rank %d (tag %d), not to rank %d (tag %d) as "
                 "before the checkpoint; the job cannot resume exactly\n",
                 dest, tag, s.dest, s.tag);
    PMPI_Abort(MPI_COMM_WORLD, 70);
  }
  replay_.pop_front();
  sends_.push_back(s);  // rolled back again by a later cut: still made before it
  return true;
}

std::uint64_t CompoundCall::adopted_dup(std::uint64_t comm) const {
  auto it = adopt_.find(comm);
  return it == adopt_.end() ? 0 : it->second;
}

std::vector<std::pair<std::uint64_t, std::int32_t>> CompoundCall::contexts(const CommTable& comms) const {
  std::vector<std::pair<std::uint64_t, std::int32_t>> out;
  for (const auto& [comm, ctx] : contexts_)
    if (comms.by_id(comm) && ctx.dup != 0) out.emplace_back(comm, ctx.next_tag);
  return out;
}

// Format: u8 in_call { i32 kind, u64 nsends { u64 comm, i32 dest, i32 tag },
//                      u64 nmsgs { u64 comm, i32 source, i32 tag, u64 n, bytes[n] } }
//         u64 ncontexts { u64 comm, u64 dup, i32 next_tag }
void CompoundCall::save(codec::ByteWriter& w, const CommTable& comms) const {
  const bool in_call = depth_ > 0 || replay_kind_ != 0;
  if (depth_ > 0 && !recordable())
    throw Error(PYCKPT_MPI_ESTATE, "pyckpt_mpi: cut inside a compound call that cannot be rolled back");
  w.put<std::uint8_t>(in_call ? 1 : 0);
  if (in_call) {
    w.put<std::int32_t>(depth_ > 0 ? kind_ : replay_kind_);
    w.put<std::uint64_t>(sends_.size() + replay_.size());
    for (const auto& list : {std::deque<CompoundSend>(sends_.begin(), sends_.end()), replay_})
      for (const CompoundSend& s : list) {
        w.put(s.comm);
        w.put(s.dest);
        w.put(s.tag);
      }
    w.put<std::uint64_t>(log_.size());
    for (const ChannelMsg& m : log_) {
      w.put(m.comm);
      w.put(m.source);
      w.put(m.tag);
      w.put<std::uint64_t>(m.data.size());
      w.put_bytes(m.data.data(), m.data.size());
    }
  }
  std::uint64_t n = 0;
  for (const auto& [comm, ctx] : contexts_) n += comms.by_id(comm) && ctx.dup != 0 ? 1 : 0;
  w.put(n);
  for (const auto& [comm, ctx] : contexts_) {
    if (!comms.by_id(comm) || ctx.dup == 0) continue;
    w.put(comm);
    w.put(ctx.dup);
    // Rolled back: the re-issued reduction takes its tag again.
    w.put<std::int32_t>(depth_ > 0 && reduction_comm_ == comm ? tag_before_ : ctx.next_tag);
  }
}

void CompoundCall::restore(codec::ByteReader& r, Channel& channel) {
  if (r.get<std::uint8_t>() != 0) {
    replay_kind_ = r.get<std::int32_t>();
    const auto nsends = r.get<std::uint64_t>();
    for (std::uint64_t k = 0; k < nsends; ++k) {
      CompoundSend s;
      s.comm = r.get<std::uint64_t>();
      s.dest = r.get<std::int32_t>();
      s.tag = r.get<std::int32_t>();
      replay_.push_back(s);
    }
    const auto nmsgs = r.get<std::uint64_t>();
    std::vector<ChannelMsg> received;
    for (std::uint64_t k = 0; k < nmsgs; ++k) {
      ChannelMsg m;
      m.comm = r.get<std::uint64_t>();
      m.source = r.get<std::int32_t>();
      m.tag = r.get<std::int32_t>();
      const auto n = r.get<std::uint64_t>();
      const std::byte* p = r.get_bytes(n);
      m.data.assign(p, p + n);
      received.push_back(std::move(m));
    }
    // Received first in the call: before anything drained at the cut.
    for (auto it = received.rbegin(); it != received.rend(); ++it) channel.prepend(std::move(*it));
  }
  const auto ncontexts = r.get<std::uint64_t>();
  for (std::uint64_t k = 0; k < ncontexts; ++k) {
    const auto comm = r.get<std::uint64_t>();
    MpiPyContext ctx;
    ctx.dup = r.get<std::uint64_t>();
    ctx.next_tag = r.get<std::int32_t>();
    contexts_[comm] = ctx;
    adopt_[comm] = ctx.dup;
  }
}

}  // namespace pyckpt::mpi
