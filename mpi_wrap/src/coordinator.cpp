// The snapshot coordinator: a Chandy-Lamport style consistent cut for MPI
// (doc/mpi.md). Phases, all driven from safe points (MPI calls of the app,
// progress loops of blocking calls, pyckpt_mpi_poll):
//   Idle -> Agreeing : a local trigger or a REQ message from another rank;
//                      REQ goes to every rank on the private control comm.
//   Agreeing         : rounds on the control comm. Each rank reports whether
//                      it is at its targets and the collective sequence
//                      number it wants per communicator; targets are the
//                      highest wanted. Lagging ranks run the app on until
//                      they get there; ranks at a target park at their next
//                      collective on that comm, and ask for one more if they
//                      are still below a target elsewhere.
//   Agreeing -> Decided : every rank reported ready in one round.
//   Decided -> cut   : at the next safe point outside a collective: exchange
//                      per-peer counts on the control comm, drain the
//                      difference into channel state, capture, reset counters.
// All of the coordinator's collectives run on the control comm, never on
// per-communicator duplicates: ranks start an epoch at different points, so
// one rank may already have made (or freed) a communicator that another has
// not made yet (or still holds), and a collective on that communicator would
// be posted by only some of its members.
#include "runtime.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>

namespace pyckpt::mpi {

namespace {
constexpr int kTagRequest = 1;
unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }
}

void Runtime::poll_slow(bool cut_allowed) {
  if (in_cut_) return;
  InternalScope internal;
  try {
    step(cut_allowed);
  } catch (const Error& e) {
    // The protocol's own MPI traffic failed: the job cannot continue
    // consistently, and this runs inside an app MPI call that cannot throw.
    std::fprintf(stderr, "%s\n", e.what());
    PMPI_Abort(MPI_COMM_WORLD, 70);
  }
}

void Runtime::step(bool cut_allowed) {
  if (phase_ == Phase::Idle && requested_.load(std::memory_order_relaxed) && !finishing_) {
    trace("begins (requested here)");
    begin_epoch();
  }
  for (;;) {
    int flag = 0;
    MPI_Status st;
    PMPI_Iprobe(MPI_ANY_SOURCE, kTagRequest, ctl_, &flag, &st);
    if (!flag) break;
    std::uint64_t e = 0;
    PMPI_Recv(&e, 1, MPI_UINT64_T, st.MPI_SOURCE, kTagRequest, ctl_, MPI_STATUS_IGNORE);
    if (e != epoch + 1) throw Error(PYCKPT_MPI_ESTATE, "pyckpt_mpi: checkpoint request for an unexpected epoch");
    ++req_received_;
    if (phase_ == Phase::Idle) {
      trace("begins (request from rank %d)", st.MPI_SOURCE);
      begin_epoch();
    }
  }
  if (phase_ == Phase::Agreeing) advance_round();
  if (phase_ == Phase::Decided && cut_allowed && !holds_matched_message()) run_cut();
}

void Runtime::begin_epoch() {
  const std::uint64_t e = epoch + 1;
  for (int r = 0; r < world_size; ++r)
    if (r != world_rank) check(PMPI_Send(&e, 1, MPI_UINT64_T, r, kTagRequest, ctl_), "MPI_Send (request)");
  phase_ = Phase::Agreeing;
  round_.number = 0;
  post_round();
}

// A round: every rank reports whether it is ready (at every target, not
// inside a communicator creation, holding no matched message) and, per
// communicator it entered collectives on since the last cut (freed ones
// too: other members may not have got as far), the sequence number it
// wants as target: where it is, or one more for the communicator it is
// parked at while still below a target elsewhere. Posted eagerly, from any
// safe point: a rank in a collective or a blocking receive must take part
// too, or a parked peer's raise could never be agreed.
void Runtime::post_round() {
  Round& a = round_;
  const bool below = !a.targets_known() || !at_targets();
  const bool ready = !below && !creating_comm_ && !holds_matched_message();
  const bool stuck = a.targets_known() && below && parked_on_ != nullptr && parked_on_->coll_seq >= parked_on_->coll_target;
  if (stuck)
    trace("parked before collective %llu on comm %016llx@%d, below a target elsewhere: asks for one more",
          ull(parked_on_->coll_seq + 1), ull(parked_on_->id), parked_on_->world_ranks[0]);
  a.out.clear();
  for (auto& c : comms_) {
    const std::uint64_t want = c->coll_seq + (stuck && c.get() == parked_on_ ? 1 : 0);
    if (want > 0 && !c->world_ranks.empty()) a.out.insert(a.out.end(), {c->key().first, c->key().second, want});
  }
  a.mine[0] = static_cast<int>(a.out.size());
  a.mine[1] = ready ? 1 : 0;
  a.flags.assign(2 * static_cast<std::size_t>(world_size), 0);
  a.stage = Round::Stage::Flags;
  check(PMPI_Iallgather(a.mine, 2, MPI_INT, a.flags.data(), 2, MPI_INT, ctl_, &a.req),
        "MPI_Iallgather (agreement flags)");
}

void Runtime::advance_round() {
  Round& a = round_;
  int done = 0;
  PMPI_Test(&a.req, &done, MPI_STATUS_IGNORE);
  if (!done) return;
  if (a.stage == Round::Stage::Flags) {
    bool all_ready = true;
    a.counts.resize(static_cast<std::size_t>(world_size));
    for (std::size_t r = 0; r < a.counts.size(); ++r) {
      a.counts[r] = a.flags[2 * r];
      all_ready &= a.flags[2 * r + 1] != 0;
    }
    if (all_ready) {
      // Every rank is at the same targets and stays there (it parks at any
      // further collective): a consistent cut.
      phase_ = Phase::Decided;
      trace("every rank at its targets after %d round(s): the cut runs", a.number);
      return;
    }
    a.displs.assign(a.counts.size(), 0);
    std::partial_sum(a.counts.begin(), a.counts.end() - 1, a.displs.begin() + 1);
    a.in.resize(static_cast<std::size_t>(a.displs.back() + a.counts.back()));
    a.stage = Round::Stage::Triples;
    check(PMPI_Iallgatherv(a.out.data(), a.mine[0], MPI_UINT64_T, a.in.data(), a.counts.data(), a.displs.data(),
                           MPI_UINT64_T, ctl_, &a.req),
          "MPI_Iallgatherv (collective sequence numbers)");
    return;
  }
  // Target per communicator: the most any member wants, and never less than
  // before. Members behind run on to it, the others park there. A member
  // that must pass more collectives on a comm to reach a target elsewhere
  // (program order: a split comm's collectives come before world's next
  // one) asks for one more, round after round, until it gets there.
  bool raised = false;
  for (std::size_t i = 0; i + 2 < a.in.size(); i += 3) {
    std::uint64_t& target = targets_[{a.in[i], a.in[i + 1]}];
    if (a.in[i + 2] > target) {
      target = a.in[i + 2];
      raised = true;
    }
  }
  for (auto& c : comms_) c->coll_target = target_of(*c);
  if (raised && tracing_) {
    std::string line;
    for (auto& c : comms_)
      if (c->real != MPI_COMM_NULL && !c->world_ranks.empty())
        line += " " + std::to_string(c->coll_seq) + "/" + std::to_string(c->coll_target);
    trace("round %d: seq/target per comm:%s", a.number, line.c_str());
  }
  ++a.number;
  post_round();
}

std::uint64_t Runtime::target_of(const CommRec& c) const {
  if (c.world_ranks.empty()) return 0;
  const auto it = targets_.find(c.key());
  return it == targets_.end() ? 0 : it->second;
}

bool Runtime::at_targets() const {
  for (auto& c : comms_)
    if (c->real != MPI_COMM_NULL && c->coll_seq < c->coll_target) return false;
  return true;
}

void Runtime::enter_collective(CommRec* c) {
  poll();
  // Entering now would pass the agreed target (or none is known yet): wait
  // here, serving the protocol, until the cut is done or the target raised.
  const auto must_wait = [&] {
    return phase_ != Phase::Idle && (!round_.targets_known() || c->coll_seq >= c->coll_target);
  };
  if (must_wait()) {
    trace("waits before collective %llu on comm %016llx@%d", ull(c->coll_seq + 1), ull(c->id), c->world_ranks[0]);
    parked_on_ = c;
    while (must_wait()) poll_blocked(true);
    parked_on_ = nullptr;
  }
  ++c->coll_seq;
  ++stats.collectives;
}

void Runtime::synchronize(CommRec* c, bool creating) {
  enter_collective(c);
  creating_comm_ = creating;
  InternalScope internal;
  MPI_Request req;
  // On the app's communicator: every member posts this barrier at the same
  // point of the app's collective order.
  check(PMPI_Ibarrier(c->real, &req), "MPI_Ibarrier (synchronize)");
  for (int flag = 0;;) {
    PMPI_Test(&req, &flag, MPI_STATUS_IGNORE);
    if (flag) return;
    poll_blocked(/*cut_allowed=*/false);
  }
}

bool Runtime::test_pending_receives() {
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
  if (in_call.recv) test(*in_call.recv, *in_call.recv_request);
  return !matched_incomplete;
}

void Runtime::drain(const std::vector<CommRec*>& live, const std::vector<std::size_t>& offsets) {
  for (;;) {
    bool deficit = !test_pending_receives();
    for (std::size_t i = 0; i < live.size(); ++i) {
      CommRec* c = live[i];
      bool short_here = false;
      for (int p = 0; p < c->size; ++p) short_here |= c->received[p] < expected_[offsets[i] + p];
      if (!short_here) continue;
      deficit = true;
      // Everything unexpected on an app communicator now was sent before the
      // cut: no rank sends app messages until the final agreement below.
      int flag = 0;
      MPI_Message msg;
      MPI_Status st;
      check(PMPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->real, &flag, &msg, &st), "MPI_Improbe (drain)");
      if (!flag) continue;
      int bytes = 0;
      PMPI_Get_count(&st, MPI_BYTE, &bytes);
      ChannelMsg m{c->id, st.MPI_SOURCE, st.MPI_TAG, std::vector<std::byte>(static_cast<std::size_t>(bytes))};
      check(PMPI_Mrecv(m.data.data(), bytes, MPI_BYTE, &msg, MPI_STATUS_IGNORE), "MPI_Mrecv (drain)");
      count_recv(c, st.MPI_SOURCE);
      channel_.push_back(std::move(m));
      ++stats.drained;
    }
    if (!deficit) return;
  }
}

void Runtime::run_cut() {
  in_cut_ = true;
  struct Leave {
    Runtime& rt;
    ~Leave() { rt.in_cut_ = false; }
  } leave{*this};

  // 1. What every peer sent me, per communicator: each rank sends each peer
  //    (comm id, world rank of the comm's rank 0, count) for the comms it
  //    sent it messages on, freed ones too, on the control comm (never
  //    counted, cannot match app receives).
  std::vector<std::vector<std::uint64_t>> to(static_cast<std::size_t>(world_size));
  for (auto& c : comms_)
    for (std::size_t p = 0; p < c->sent.size(); ++p)
      if (c->sent[p] > 0) {
        auto& triples = to[static_cast<std::size_t>(c->world_ranks[p])];
        triples.insert(triples.end(), {c->key().first, c->key().second, c->sent[p]});
      }
  std::vector<int> send_counts(to.size()), send_displs(to.size()), recv_counts(to.size()), recv_displs(to.size());
  std::vector<std::uint64_t> send_buf;
  for (std::size_t q = 0; q < to.size(); ++q) {
    send_counts[q] = static_cast<int>(to[q].size());
    send_displs[q] = static_cast<int>(send_buf.size());
    send_buf.insert(send_buf.end(), to[q].begin(), to[q].end());
  }
  check(PMPI_Alltoall(send_counts.data(), 1, MPI_INT, recv_counts.data(), 1, MPI_INT, ctl_),
        "MPI_Alltoall (message count sizes)");
  std::partial_sum(recv_counts.begin(), recv_counts.end() - 1, recv_displs.begin() + 1);
  std::vector<std::uint64_t> recv_buf(static_cast<std::size_t>(recv_displs.back() + recv_counts.back()));
  check(PMPI_Alltoallv(send_buf.data(), send_counts.data(), send_displs.data(), MPI_UINT64_T, recv_buf.data(),
                       recv_counts.data(), recv_displs.data(), MPI_UINT64_T, ctl_),
        "MPI_Alltoallv (message counts)");
  std::vector<CommRec*> live;
  std::vector<std::size_t> offsets;
  std::map<CommRec::Key, std::size_t> live_index;
  std::size_t total = 0;
  for (auto& c : comms_)
    if (c->real != MPI_COMM_NULL) {
      live_index[c->key()] = live.size();
      live.push_back(c.get());
      offsets.push_back(total);
      total += static_cast<std::size_t>(c->size);
    }
  expected_.assign(total, 0);
  for (std::size_t q = 0; q < to.size(); ++q) {
    const std::uint64_t* triple = recv_buf.data() + recv_displs[q];
    for (const std::uint64_t* end = triple + recv_counts[q]; triple < end; triple += 3) {
      auto it = live_index.find({triple[0], triple[1]});
      if (it == live_index.end()) continue;  // freed here: what was sent on it was received before the free
      const CommRec* c = live[it->second];
      const auto p = std::find(c->world_ranks.begin(), c->world_ranks.end(), static_cast<int>(q)) -
                     c->world_ranks.begin();
      expected_[offsets[it->second] + static_cast<std::size_t>(p)] = triple[2];
    }
  }

  // 2. Drain in-flight messages into channel state.
  drain(live, offsets);

  // 3. Every rank sent one REQ to every other rank for this epoch; take the
  //    rest so the control comm is empty for the next epoch.
  for (; req_received_ < world_size - 1; ++req_received_) {
    std::uint64_t e = 0;
    check(PMPI_Recv(&e, 1, MPI_UINT64_T, MPI_ANY_SOURCE, kTagRequest, ctl_, MPI_STATUS_IGNORE), "MPI_Recv (request)");
  }

  // 4. Can this rank's state be captured? The allreduce doubles as the
  //    barrier that keeps post-cut messages out of everyone's drain.
  //    The blocking call in progress is recorded for a re-issue (step 5).
  std::string why;
  struct ForgetCutCall {
    CutCall& c;
    ~ForgetCutCall() { c = CutCall{}; }
  } forget_cut_call{cut_call_};
  if (finishing_) {
    why = "the job reached MPI_Finalize";
  } else if (!unsupported_.empty()) {
    why = "the job used MPI calls a checkpoint cannot capture: " + unsupported_;
  } else {
    try {
      cut_call_ = record_cut_call();
    } catch (const Error& e) {
      why = e.what();
    }
  }
  int fail = why.empty() ? 0 : 1;
  check(PMPI_Allreduce(MPI_IN_PLACE, &fail, 1, MPI_INT, MPI_MAX, ctl_), "MPI_Allreduce (cut check)");
  if (fail && why.empty()) why = "another rank cannot be captured (see its error)";

  // 5. Capture. Outcomes as bits, OR-ed over ranks: 1 failed, 2 retry.
  bool again = false;
  if (!fail && callbacks.capture) {
    int rc = 0;
    try {
      rc = callbacks.capture(callbacks.user, epoch + 1);
    } catch (...) {
      rc = -1;
    }
    int outcome = rc == PYCKPT_MPI_EAGAIN ? 2 : rc != 0 ? 1 : 0;
    check(PMPI_Allreduce(MPI_IN_PLACE, &outcome, 1, MPI_INT, MPI_BOR, ctl_), "MPI_Allreduce (capture result)");
    fail = outcome & 1;
    again = !fail && (outcome & 2);
    if (fail) why = rc && rc != PYCKPT_MPI_EAGAIN ? "the capture callback failed"
                                                 : "the capture callback failed on another rank";
  }

  // 6. The drained messages now belong to channel state: counting restarts.
  for (auto& c : comms_) {
    std::fill(c->sent.begin(), c->sent.end(), 0);
    std::fill(c->received.begin(), c->received.end(), 0);
    c->coll_seq = c->coll_target = 0;
  }
  targets_.clear();
  req_received_ = 0;
  phase_ = Phase::Idle;
  if (again) {
    trace("cut to be retried: a rank was not at a capturable point");
    return;  // still requested: the next safe point starts a new cut
  }
  requested_.store(false, std::memory_order_relaxed);
  ++cuts_done_;
  if (fail) {
    trace("cut failed: %s", why.c_str());
    last_result_ = why.find("capture callback") != std::string::npos ? PYCKPT_MPI_ECALLBACK : PYCKPT_MPI_EUNSUPPORTED;
    last_message_ = "pyckpt_mpi: checkpoint " + std::to_string(epoch + 1) + " failed on rank " +
                    std::to_string(world_rank) + ": " + why;
    if (!finishing_) std::fprintf(stderr, "%s\n", last_message_.c_str());  // at the end: nothing lost
    return;
  }
  trace("cut done: %llu message(s) in channel state", ull(channel_.size()));
  last_result_ = PYCKPT_MPI_OK;
  ++epoch;
  ++stats.checkpoints;
}

CutCall Runtime::record_cut_call() const {
  CutCall call;
  if (const BlockingSend* s = in_call.send)
    call.send = ResumedSend{s->comm->id, s->dest, s->tag, s->bytes};
  // Its receive completed in the drain: counted here, its data is in the app
  // buffer. A restarted rank re-issues the call, which must get this message
  // again: it is saved at the front of channel state. (A receive still
  // pending can only match a message sent after its sender's cut: every
  // earlier one is counted and was received or drained.)
  if (const ReqRec* r = in_call.recv; r && r->complete) {
    InternalScope internal;
    int type_size = 0;
    PMPI_Type_size(r->type, &type_size);
    const auto bytes = static_cast<std::uint64_t>(r->status.bytes);
    if (type_size <= 0 || bytes % static_cast<std::uint64_t>(type_size) != 0)
      throw Error(PYCKPT_MPI_EUNSUPPORTED, "pyckpt_mpi: a receive in flight at the cut got a partial datatype element");
    ChannelMsg m{r->comm->id, r->status.source, r->status.tag, std::vector<std::byte>(bytes)};
    int pos = 0;
    check(PMPI_Pack(r->buf, static_cast<int>(bytes / static_cast<std::uint64_t>(type_size)), r->type, m.data.data(),
                    static_cast<int>(bytes), &pos, MPI_COMM_SELF),
          "MPI_Pack (receive in flight at the cut)");
    call.received = std::move(m);
  }
  return call;
}

void Runtime::finish() {
  InternalScope internal;
  finishing_ = true;
  // A checkpoint requested here but not begun is dropped (it could only
  // fail now), and none begins any more: a REQ sent now could reach a rank
  // that already left. One under way on some ranks (their REQs may still be
  // on their way to ranks that look idle) is finished by all: the ranks
  // agree on the number of cuts to wait for (cuts are counted alike on every
  // rank), on a comm of their own (ctl_ carries the agreement rounds), serving
  // the protocol meanwhile.
  requested_.store(false, std::memory_order_relaxed);
  std::uint64_t target = cuts_done_ + (phase_ != Phase::Idle ? 1 : 0);
  MPI_Request agree;
  check(PMPI_Iallreduce(MPI_IN_PLACE, &target, 1, MPI_UINT64_T, MPI_MAX, fin_, &agree), "MPI_Iallreduce (finish)");
  for (int done = 0;;) {
    PMPI_Test(&agree, &done, MPI_STATUS_IGNORE);
    if (done) break;
    step(true);
  }
  while (cuts_done_ < target) step(true);
}

int Runtime::checkpoint_now() {
  if (in_cut_) {
    last_message_ = "pyckpt_mpi_checkpoint called from inside a checkpoint";
    return PYCKPT_MPI_ESTATE;
  }
  // Collective: without this barrier a rank could be cut (at an earlier
  // safe point) by a peer's call, then start a second epoch with its own.
  synchronize(comm(MPI_COMM_WORLD));
  const std::uint64_t before = cuts_done_;
  request();
  while (cuts_done_ == before) poll_blocked(true);
  return last_result_;
}

}  // namespace pyckpt::mpi
