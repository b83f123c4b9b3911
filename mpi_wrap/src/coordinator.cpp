// The snapshot coordinator: a Chandy-Lamport style consistent cut for MPI
// (doc/mpi.md). Phases, all driven from safe points (MPI calls of the app,
// progress loops of blocking calls, pyckpt_mpi_poll):
//   Idle -> Agreeing : a local trigger or a REQ message from another rank;
//                      REQ reaches every rank down a binomial tree rooted
//                      at world rank 0 on the private control comm.
//   Agreeing         : rounds on the control comm. Each rank reports whether
//                      it is at its targets and the collective sequence
//                      number it wants per communicator; targets are the
//                      highest wanted. Lagging ranks run the app on until
//                      they get there; ranks at a target park at their next
//                      collective on that comm (or wait at a safe point of
//                      their own code, serve_here), and ask for one more if
//                      they are still below a target elsewhere. A rank
//                      waiting in a collective that completed on no member
//                      is at the target before it (CollectiveKind).
//   Agreeing -> Decided : every rank reported ready in one round.
//   Decided -> cut   : at the next safe point outside a collective: exchange
//                      per-peer counts on the control comm, drain the
//                      difference into channel state, each rank's verdict
//                      (capture callback), one agreement on it, the write
//                      callback and the agreement on its outcome, reset
//                      counters.
// All of the coordinator's collectives run on the control comm, never on
// per-communicator duplicates: ranks start a cut at different points, so
// one rank may already have made (or freed) a communicator that another has
// not made yet (or still holds), and a collective on that communicator would
// be posted by only some of its members.
#include "coordinator.hpp"

#include "callbacks.hpp"
#include "error.hpp"
#include "internal_scope.hpp"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include <sched.h>

namespace pyckpt::mpi {

std::atomic<bool> Coordinator::requested_{false};

namespace {
unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }
}  // namespace

Coordinator::Coordinator(int world_rank, int world_size, CommTable& comms, RequestTable& requests,
                         IcollTable& icolls, Channel& channel, BlockingCall& call, FileTable& files,
                         WinTable& windows, const std::string& unsupported)
    : world_rank_(world_rank),
      world_size_(world_size),
      comms_(comms),
      requests_(requests),
      icolls_(icolls),
      channel_(channel),
      call_(call),
      files_(files),
      windows_(windows),
      unsupported_(unsupported) {
  InternalScope internal;
  check(PMPI_Comm_dup(MPI_COMM_WORLD, ctl_.out()), "MPI_Comm_dup (control)");
  check(PMPI_Comm_dup(MPI_COMM_WORLD, fin_.out()), "MPI_Comm_dup (finish)");
  check(PMPI_Comm_dup(MPI_COMM_WORLD, write_comm_.out()), "MPI_Comm_dup (write)");
  check(PMPI_Comm_dup(MPI_COMM_WORLD, arrival_.out()), "MPI_Comm_dup (arrival)");
  const char* trace = std::getenv("PYCKPT_MPI_TRACE");
  tracing_ = trace != nullptr && *trace != '\0' && std::strcmp(trace, "0") != 0;
}

void Coordinator::trace(const char* format, ...) const {
  if (!tracing_) return;
  char line[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  // Wall-clock time orders the lines of the ranks of a node (MPI_Wtime
  // need not be global); one write per line: the ranks share a stderr.
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::fprintf(stderr, "pyckpt_mpi trace %.6f rank %d cut %llu: %s\n", now, world_rank_, ull(completed_cuts_ + 1),
               line);
}

void Coordinator::progress_layer_above(bool finishing) {
  if (in_cut_ || callbacks.progress == nullptr) return;
  InternalScope internal;
  int more = 0;
  try {
    more = callbacks.progress(finishing ? 1 : 0, callbacks.progress_user);
  } catch (...) {
    more = 0;  // a C++ layer above that threw: its work cannot go on
  }
  if (!more || finishing) callbacks.progress = nullptr;
}

void Coordinator::poll_slow(bool cut_allowed) {
  note_activity();
  if (in_cut_) return;
  if (callbacks.progress != nullptr) progress_layer_above();
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

void Coordinator::step(bool cut_allowed) {
  if (!icolls_.empty()) progress_collectives();
  if (phase_ == Phase::Idle && requested_.load(std::memory_order_relaxed) && !finishing_) {
    if (off())
      refuse_request();
    else
      initiate();
  }
  for (;;) {
    int flag = 0;
    MPI_Status st;
    PMPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, ctl_.get(), &flag, &st);
    if (!flag) break;
    receive_request(st);
  }
  if (phase_ == Phase::Agreeing) advance_round();
  // A nonblocking collective counted here is posted on every member: it
  // completes first, so that its output is captured (never half written).
  if (phase_ == Phase::Decided && cut_allowed && !channel_.holds_matched_message() && !icolls_.in_flight())
    run_cut();
}

// This rank asks for the cut: the root starts it down the tree, any other
// rank asks the root. Either way it begins at once.
void Coordinator::initiate() {
  trace("begins (requested here)");
  initiated_ = true;
  if (world_rank_ == 0) {
    broadcast_request();
  } else {
    const std::uint64_t n = completed_cuts_ + 1;
    check(PMPI_Send(&n, 1, MPI_UINT64_T, 0, kTagAsk, ctl_.get()), "MPI_Send (checkpoint request to rank 0)");
  }
  begin_cut();
}

// One message on the control comm: an ASK at the root (the first one of an
// attempt starts the tree), the REQ from this rank's parent (forwarded to
// its children), an OFF notice. A rank that is off still takes part in an
// attempt another rank began: it reports itself off in the rounds, and the
// attempt ends on every rank (advance_round).
void Coordinator::receive_request(const MPI_Status& st) {
  const int source = st.MPI_SOURCE, tag = st.MPI_TAG;
  if (tag == kTagOff) {
    take_off_notice();  // the waker may have taken it meanwhile
    return;
  }
  std::uint64_t n = 0;
  check(PMPI_Recv(&n, 1, MPI_UINT64_T, source, tag, ctl_.get(), MPI_STATUS_IGNORE), "MPI_Recv (request)");
  if (n != completed_cuts_ + 1 || (tag != kTagAsk && tag != kTagRequest))
    throw Error(PYCKPT_MPI_ESTATE, "pyckpt_mpi: checkpoint request for an unexpected cut number");
  if (tag == kTagAsk) {
    ++asks_received_;
    if (!request_sent_) broadcast_request();
  } else {
    request_received_ = true;
    broadcast_request();
  }
  if (phase_ == Phase::Idle) {
    trace("begins (request from rank %d)", source);
    begin_cut();
  }
}

// REQ to this rank's children in the binomial tree rooted at world rank 0:
// rank r's children are r + 2^k for every 2^k below r's lowest set bit (all
// 2^k < N for the root); ceil(log2 N) rounds reach every rank.
void Coordinator::broadcast_request() {
  const std::uint64_t n = completed_cuts_ + 1;
  const int r = world_rank_;
  const int lowest_bit = r == 0 ? world_size_ : (r & -r);
  for (int step = 1; step < lowest_bit && r + step < world_size_; step <<= 1)
    check(PMPI_Send(&n, 1, MPI_UINT64_T, r + step, kTagRequest, ctl_.get()), "MPI_Send (checkpoint request)");
  request_sent_ = true;
}

// --- checkpoints off ------------------------------------------------------------
// The notice travels like a request: the rank that knows sends it to the
// root (the root's own goes straight down), the root sends it down the
// binomial tree once, every other rank forwards the one it gets from its
// parent. Notices of further ranks that found a reason reach the root and
// are taken there. Plain sends of a short text from whichever thread knows
// (a foreign thread inside its own MPI call, the waker), so the notice
// does not wait for a main thread that computes or blocks.
void Coordinator::switch_off(const std::string& reason) {
  if (off_announced_.exchange(true)) return;
  const std::string notice = "on rank " + std::to_string(world_rank_) + ", " + reason;
  InternalScope internal;
  if (world_rank_ == 0) {
    relay_off(notice);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(off_mutex_);
    if (off_reason_.empty()) off_reason_ = notice;
  }
  off_.store(true, std::memory_order_relaxed);
  PMPI_Send(notice.data(), static_cast<int>(notice.size()), MPI_CHAR, 0, kTagOff, ctl_.get());
}

void Coordinator::relay_off(const std::string& notice) {
  {
    std::lock_guard<std::mutex> lock(off_mutex_);
    if (off_reason_.empty()) off_reason_ = notice;
  }
  off_.store(true, std::memory_order_relaxed);
  if (off_relayed_.exchange(true)) return;
  const int r = world_rank_;
  const int lowest_bit = r == 0 ? world_size_ : (r & -r);
  for (int step = 1; step < lowest_bit && r + step < world_size_; step <<= 1)
    PMPI_Send(notice.data(), static_cast<int>(notice.size()), MPI_CHAR, r + step, kTagOff, ctl_.get());
}

bool Coordinator::take_off_notice() {
  InternalScope internal;
  int flag = 0;
  MPI_Message message;
  MPI_Status st;
  PMPI_Improbe(MPI_ANY_SOURCE, kTagOff, ctl_.get(), &flag, &message, &st);
  if (!flag) return false;
  int n = 0;
  PMPI_Get_count(&st, MPI_CHAR, &n);
  std::string notice(static_cast<std::size_t>(n), '\0');
  PMPI_Mrecv(notice.data(), n, MPI_CHAR, &message, MPI_STATUS_IGNORE);
  relay_off(notice);
  return true;
}

// A checkpoint requested on this rank while checkpoints are off: it fails
// here, at once, without asking the other ranks.
void Coordinator::refuse_request() {
  requested_.store(false, std::memory_order_relaxed);
  last_end_.store(std::chrono::steady_clock::now().time_since_epoch().count());
  report_failure({Severity::Failed, PYCKPT_MPI_EUNSUPPORTED, {}, true});
}

void Coordinator::begin_cut() {
  phase_ = Phase::Agreeing;
  active_.store(true, std::memory_order_relaxed);
  round_.number = 0;
  peer_behind_ = false;
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
void Coordinator::post_round() {
  Round& a = round_;
  const bool below = !a.targets_known() || !at_targets();
  // A window holding an RMA operation in flight (or an exclusive lock): only
  // the application takes the rank to a point where it holds none (see
  // "One-sided communication" in doc/mpi.md).
  const bool unsettled = !windows_.settled();
  const bool ready = !below && !unsettled && !creating_comm_ && !channel_.holds_matched_message() && !off();
  const bool stuck = a.targets_known() && (below || unsettled) && parked_on_ != nullptr &&
                     parked_on_->coll_seq >= parked_on_->coll_target;
  if (stuck)
    trace("parked before collective %llu on comm %016llx@%d, below a target elsewhere: asks for one more",
          ull(parked_on_->coll_seq + 1), ull(parked_on_->id), parked_on_->world_ranks[0]);
  a.out.clear();
  // Operations issued in a fence epoch complete at the next fence: the cut
  // falls after it (one more collective on the window's communicator).
  for (auto& c : comms_.all()) {
    const bool one_more = (stuck && c.get() == parked_on_) || windows_.needs_fence(*c);
    const std::uint64_t want = c->coll_seq + (one_more ? 1 : 0);
    if (want > 0 && !c->world_ranks.empty())
      a.out.insert(a.out.end(), {c->target_key().first, c->target_key().second, want});
  }
  a.mine[0] = static_cast<int>(a.out.size());
  a.mine[1] = ready ? 1 : 0;
  a.mine[2] = initiated_ ? 1 : 0;
  // Behind: only this rank's application can take it to its targets (it is
  // not inside a collective that gets it there). Ranks waiting at a safe
  // point of their own code must then let their application run on.
  a.mine[3] = a.targets_known() && (below || unsettled) && parked_on_ == nullptr ? 1 : 0;
  a.mine[4] = off() ? 1 : 0;
  a.flags.assign(Round::kFlags * static_cast<std::size_t>(world_size_), 0);
  a.stage = Round::Stage::Flags;
  check(PMPI_Iallgather(a.mine, Round::kFlags, MPI_INT, a.flags.data(), Round::kFlags, MPI_INT, ctl_.get(), &a.req),
        "MPI_Iallgather (agreement flags)");
}

void Coordinator::advance_round() {
  Round& a = round_;
  int done = 0;
  PMPI_Test(&a.req, &done, MPI_STATUS_IGNORE);
  if (!done) return;
  if (a.stage == Round::Stage::Flags) {
    bool all_ready = true, some_off = false;
    initiators_ = 0;
    peer_behind_ = false;
    a.counts.resize(static_cast<std::size_t>(world_size_));
    for (std::size_t r = 0; r < a.counts.size(); ++r) {
      const int* f = &a.flags[Round::kFlags * r];
      a.counts[r] = f[0];
      all_ready &= f[1] != 0;
      initiators_ += f[2];
      peer_behind_ |= f[3] != 0;
      some_off |= f[4] != 0;
    }
    if (some_off) {
      // Every rank sees the same flags: the attempt ends everywhere.
      trace("a rank reports checkpoints off: the attempt fails");
      end_attempt();
      return;
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
                           MPI_UINT64_T, ctl_.get(), &a.req),
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
  for (auto& c : comms_.all()) c->coll_target = target_of(*c);
  if (raised && tracing_) {
    std::string line;
    for (auto& c : comms_.all())
      if (c->real != MPI_COMM_NULL && !c->world_ranks.empty())
        line += " " + std::to_string(c->coll_seq) + "/" + std::to_string(c->coll_target);
    trace("round %d: seq/target per comm:%s", a.number, line.c_str());
  }
  ++a.number;
  post_round();
}

std::uint64_t Coordinator::target_of(const CommRec& c) const {
  if (c.world_ranks.empty()) return 0;
  const auto it = targets_.find(c.target_key());
  return it == targets_.end() ? 0 : it->second;
}

bool Coordinator::at_targets() const {
  for (auto& c : comms_.all())
    if (c->real != MPI_COMM_NULL && c->coll_seq < c->coll_target) return false;
  return true;
}

void Coordinator::on_new_comm(CommRec& c) {
  // Made during a cut's agreement: other members may have had it, and used
  // it, before.
  if (phase_ != Phase::Idle) c.coll_target = target_of(c);
}

// Entering a collective on c now would pass the agreed target (or none is
// known yet): waits here, serving the protocol, until the cut is done or the
// target raised.
void Coordinator::park_at(CommRec* c) {
  if (may_count(*c)) return;
  trace("waits before collective %llu on comm %016llx@%d", ull(c->coll_seq + 1), ull(c->id), c->world_ranks[0]);
  parked_on_ = c;
  while (!may_count(*c)) poll_blocked(true);
  parked_on_ = nullptr;
}

void Coordinator::progress_collectives() {
  auto& records = icolls_.records();
  // Communicators with a call not counted yet: later ones on them wait.
  std::vector<const CommRec*> held;
  for (auto it = records.begin(); it != records.end();) {
    IcollRec& r = it->second;
    if (!r.counted) {
      if (!r.arrived) {
        int flag = 0;
        PMPI_Test(&r.arrival, &flag, MPI_STATUS_IGNORE);
        r.arrived = flag != 0 || off();  // off: its barrier is left (switch_off)
      }
      if (!r.arrived || must_wait(*r.comm) || std::find(held.begin(), held.end(), r.comm) != held.end()) {
        held.push_back(r.comm);
        ++it;
        continue;
      }
      r.counted = true;
      ++r.comm->coll_seq;
      ++collectives_;
    }
    if (!r.done) {
      int flag = 1;  // an Ibarrier of the app has no collective besides its barrier
      if (r.real != MPI_REQUEST_NULL) PMPI_Test(&r.real, &flag, MPI_STATUS_IGNORE);
      r.done = flag != 0;
    }
    if (!r.done) {
      ++it;
      continue;
    }
    requests_.collective_done(r.app);
    it = icolls_.finish(it);
  }
}

// Communicator creation has no nonblocking form, so it cannot wait for its
// members in a form a cut can interrupt on every rank alike (a member in the
// blocking creation serves no protocol): the rank counts it on entry and is
// not ready for a cut until it is made. A cut requested meanwhile completes
// once every member arrived (doc/mpi.md, "Collectives across a cut").
void Coordinator::synchronize(CommRec* c, bool creating) {
  poll_before_meeting();
  park_at(c);
  ++c->coll_seq;
  ++collectives_;
  creating_comm_ = creating;
  InternalScope internal;
  // On the app's communicator: every member posts this barrier at the same
  // point of the app's collective order. On an intercommunicator a barrier
  // completes once the *remote* group entered it, while a member of the
  // local group may still be parked before it; a second barrier, posted
  // after the first completed, completes once every remote member has
  // completed its first, i.e. once both groups entered.
  // Checkpoints off: no barrier, or the one under way is left (switch_off).
  for (int barrier = 0; barrier < (c->inter() ? 2 : 1) && !off(); ++barrier) {
    MPI_Request req;
    check(PMPI_Ibarrier(c->real, &req), "MPI_Ibarrier (synchronize)");
    for (int flag = 0; !off();) {
      PMPI_Test(&req, &flag, MPI_STATUS_IGNORE);
      if (flag) break;
      poll_blocked(/*cut_allowed=*/false);
    }
  }
}

// The makers' meeting: on an intercommunicator's local communicator a
// barrier, then its leader's message exchange with the remote leader, then
// a barrier again (the members learn that the leader met); else messages
// with every other maker. Zero-byte messages on a communicator of their
// own, one each way per pair and meeting: the k-th one between two ranks
// belongs to their k-th meeting (they make communicators together in the
// same order, or the program would deadlock without the library too).
//
// Checkpoints off (switch_off): no meeting; one under way is left. Its
// receives are cancelled (or have matched a peer's message of this
// meeting), its zero-byte sends need no receiver to complete; a message of
// a peer that is not received stays unmatched on the private communicator,
// where no meeting takes place any more.
void Coordinator::meet(const Makers& makers) {
  InternalScope internal;
  if (off()) return;
  MPI_Request barrier;
  if (makers.local != MPI_COMM_NULL) {
    check(PMPI_Ibarrier(makers.local, &barrier), "MPI_Ibarrier (makers)");
    if (!wait_for(&barrier, 1)) return;
  }
  constexpr int kTagMakers = 1;
  std::vector<MPI_Request> reqs;
  for (int peer : makers.world_peers) {
    if (peer == world_rank_) continue;
    reqs.resize(reqs.size() + 2);
    check(PMPI_Isend(nullptr, 0, MPI_BYTE, peer, kTagMakers, arrival_.get(), &reqs[reqs.size() - 2]),
          "MPI_Isend (makers)");
    check(PMPI_Irecv(nullptr, 0, MPI_BYTE, peer, kTagMakers, arrival_.get(), &reqs.back()), "MPI_Irecv (makers)");
  }
  if (!wait_for(reqs.data(), static_cast<int>(reqs.size()))) {
    for (std::size_t i = 0; i < reqs.size(); i += 2) {
      if (reqs[i] != MPI_REQUEST_NULL) PMPI_Request_free(&reqs[i]);
      if (reqs[i + 1] == MPI_REQUEST_NULL) continue;
      PMPI_Cancel(&reqs[i + 1]);
      PMPI_Wait(&reqs[i + 1], MPI_STATUS_IGNORE);
    }
    return;
  }
  if (makers.local != MPI_COMM_NULL) {
    check(PMPI_Ibarrier(makers.local, &barrier), "MPI_Ibarrier (makers)");
    wait_for(&barrier, 1);
  }
}

// True once the requests completed; false if checkpoints went off meanwhile
// (the requests are left as they are).
bool Coordinator::wait_for(MPI_Request* reqs, int n) {
  for (int done = 0;;) {
    PMPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
    if (done) return true;
    if (off()) return false;
    poll_blocked(/*cut_allowed=*/true);
  }
}

// Every maker has arrived. A rank whose ready report is pending (or whose
// cut is decided) waits for the round's outcome: either the cut runs here,
// with every maker before the creation (none has met a second time: this
// rank has not), or the next round reports this rank not ready. The second
// meeting then tells every maker that all makers are past that point: no
// round can find all of them ready until they have made the communicator.
void Coordinator::enter_creation(const Makers& makers) {
  creating_comm_ = true;
  while (ready_for_cut()) poll_blocked(/*cut_allowed=*/true);
  meet(makers);
}

// What every peer sent me, per communicator: each rank sends each peer
// (comm id, world rank of the comm's rank 0, count) for the comms it sent
// it messages on, freed ones too, on the control comm (never counted,
// cannot match app receives). Fills expected_ per live comm (live, at
// offsets) and peer.
void Coordinator::exchange_counts(std::vector<CommRec*>& live, std::vector<std::size_t>& offsets) {
  std::vector<std::vector<std::uint64_t>> to(static_cast<std::size_t>(world_size_));
  for (auto& c : comms_.all())
    for (std::size_t p = 0; p < c->sent.size(); ++p)
      if (c->sent[p] > 0) {
        auto& triples = to[static_cast<std::size_t>(c->peers()[p])];
        triples.insert(triples.end(), {c->key().first, c->key().second, c->sent[p]});
      }
  std::vector<int> send_counts(to.size()), send_displs(to.size()), recv_counts(to.size()), recv_displs(to.size());
  std::vector<std::uint64_t> send_buf;
  for (std::size_t q = 0; q < to.size(); ++q) {
    send_counts[q] = static_cast<int>(to[q].size());
    send_displs[q] = static_cast<int>(send_buf.size());
    send_buf.insert(send_buf.end(), to[q].begin(), to[q].end());
  }
  check(PMPI_Alltoall(send_counts.data(), 1, MPI_INT, recv_counts.data(), 1, MPI_INT, ctl_.get()),
        "MPI_Alltoall (message count sizes)");
  std::partial_sum(recv_counts.begin(), recv_counts.end() - 1, recv_displs.begin() + 1);
  std::vector<std::uint64_t> recv_buf(static_cast<std::size_t>(recv_displs.back() + recv_counts.back()));
  check(PMPI_Alltoallv(send_buf.data(), send_counts.data(), send_displs.data(), MPI_UINT64_T, recv_buf.data(),
                       recv_counts.data(), recv_displs.data(), MPI_UINT64_T, ctl_.get()),
        "MPI_Alltoallv (message counts)");
  std::map<CommRec::Key, std::size_t> live_index;
  std::size_t total = 0;
  for (auto& c : comms_.all())
    if (c->real != MPI_COMM_NULL) {
      live_index[c->key()] = live.size();
      live.push_back(c.get());
      offsets.push_back(total);
      total += c->peers().size();
    }
  expected_.assign(total, 0);
  for (std::size_t q = 0; q < to.size(); ++q) {
    const std::uint64_t* triple = recv_buf.data() + recv_displs[q];
    for (const std::uint64_t* end = triple + recv_counts[q]; triple < end; triple += 3) {
      auto it = live_index.find({triple[0], triple[1]});
      if (it == live_index.end()) continue;  // freed here: what was sent on it was received before the free
      const CommRec* c = live[it->second];
      const auto p = std::find(c->peers().begin(), c->peers().end(), static_cast<int>(q)) - c->peers().begin();
      expected_[offsets[it->second] + static_cast<std::size_t>(p)] = triple[2];
    }
  }
}

void Coordinator::drain(const std::vector<CommRec*>& live, const std::vector<std::size_t>& offsets) {
  const BlockingOp& in_call = call_.current();
  for (;;) {
    bool deficit = !requests_.test_receives(in_call.recv, in_call.recv_request);
    for (std::size_t i = 0; i < live.size(); ++i) {
      CommRec* c = live[i];
      bool short_here = false;
      for (std::size_t p = 0; p < c->peers().size(); ++p) short_here |= c->received[p] < expected_[offsets[i] + p];
      if (!short_here) continue;
      deficit = true;
      // Everything unexpected on an app communicator now was sent before the
      // cut: no rank sends app messages until the agreement below.
      channel_.drain_one(*c);
    }
    if (!deficit) return;
  }
}

// Can this rank's state be captured, for a reason of its own? If so, the
// blocking call in progress is recorded for a re-issue.
Coordinator::Verdict Coordinator::local_verdict() {
  // The reasons are not the layer above's: a failure without a capture.
  // (The job reaching MPI_Finalize is reported as unsupported, as always.)
  if (finishing_) return {Severity::Failed, PYCKPT_MPI_EUNSUPPORTED, "the job reached MPI_Finalize"};
  if (!unsupported_.empty())
    return {Severity::Failed, PYCKPT_MPI_EUNSUPPORTED,
            "the job used MPI calls a checkpoint cannot capture: " + unsupported_};
  if (off()) return {Severity::Failed, PYCKPT_MPI_EUNSUPPORTED, {}};  // conclude names the reason
  try {
    call_.record_cut();
  } catch (const Error& e) {
    return {Severity::Failed, e.code, e.what()};
  }
  return {};
}

// The one place that decides a phase's job-wide outcome: (severity, code)
// MAX-reduced over all ranks on the control comm. A failure beats a retry,
// which beats success; among failures the highest code wins, so every rank
// reports the same code. A rank that did not fail itself names the kind of
// the failure elsewhere. phase: "capture" or "write".
Coordinator::Verdict Coordinator::agree(Verdict mine, const char* phase) {
  const bool failed_here = mine.severity == Severity::Failed;
  int v[2] = {static_cast<int>(mine.severity), failed_here ? mine.code : 0};
  const std::string what = std::string("MPI_Allreduce (") + phase + " verdict)";
  check(PMPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, ctl_.get()), what.c_str());
  Verdict job{static_cast<Severity>(v[0]), v[1], std::move(mine.why), failed_here};
  if (job.severity == Severity::Failed && !failed_here)
    job.why = job.code == PYCKPT_MPI_ECALLBACK ? std::string("the ") + phase + " callback failed on another rank"
                                               : "another rank cannot be captured (see its error)";
  return job;
}

// A callback's result as this rank's verdict; a C++ exception escaping it
// is a failure.
Coordinator::Verdict Coordinator::callback_verdict(int (*callback)(void*), const char* name) {
  int rc = 0;
  try {
    rc = callback(callbacks.user);
  } catch (...) {
    rc = -1;
  }
  if (rc == PYCKPT_MPI_OK) return {};
  if (rc == PYCKPT_MPI_EAGAIN) return {Severity::Retry, PYCKPT_MPI_OK, {}};
  return {Severity::Failed, PYCKPT_MPI_ECALLBACK, std::string("the ") + name + " callback failed"};
}

void Coordinator::run_cut() {
  in_cut_ = true;
  struct Leave {
    Coordinator& co;
    ~Leave() { co.in_cut_ = false; }
  } leave{*this};

  // 1. What every peer sent me, per communicator.
  std::vector<CommRec*> live;
  std::vector<std::size_t> offsets;
  exchange_counts(live, offsets);

  // 2. Drain in-flight messages into channel state.
  drain(live, offsets);

  // 3. Take (and forward) the request messages of this attempt still on
  //    their way, so the control comm is empty for the next one: the REQ
  //    from the parent, at the root the ASK of every other initiator.
  take_requests();

  // 3b. The app's files at rest: what was written to them since the last
  //     cut made durable (local). What cannot be captured about them, or
  //     about its RMA windows, is a reason of this rank's own.
  std::string refused = files_.settle(requests_);
  if (refused.empty()) refused = windows_.refusal();

  // 4. This rank's verdict: a reason of its own not to be captured (then no
  //    capture), else the capture callback's result (local, no MPI). Then
  //    ONE agreement on it, which doubles as the barrier that keeps post-cut
  //    messages out of everyone's drain. The blocking call in progress is
  //    recorded for a re-issue (saved by the capture, forgotten after).
  struct ForgetCutCall {
    BlockingCall& c;
    ~ForgetCutCall() { c.forget_cut(); }
  } forget_cut_call{call_};
  Verdict mine =
      refused.empty() ? local_verdict() : Verdict{Severity::Failed, PYCKPT_MPI_EUNSUPPORTED, refused};
  if (mine.severity == Severity::Ok && callbacks.capture) mine = callback_verdict(callbacks.capture, "capture");
  Verdict job = agree(std::move(mine), "capture");

  // 5. Only if every rank captured: the write callback (collective over
  //    world, its MPI calls internal), and the agreement on its outcome.
  if (job.severity == Severity::Ok && callbacks.write) {
    job = agree(callback_verdict(callbacks.write, "write"), "write");
  }

  // 6. The drained messages now belong to channel state: counting restarts.
  for (auto& c : comms_.all()) {
    c->carried_messages = c->carries_messages();
    std::fill(c->sent.begin(), c->sent.end(), 0);
    std::fill(c->received.begin(), c->received.end(), 0);
    c->coll_seq = 0;
  }
  end_attempt(job);
}

void Coordinator::take_requests() {
  const auto all_taken = [&] {
    return world_rank_ == 0 ? request_sent_ && asks_received_ == initiators_ - (initiated_ ? 1 : 0)
                            : request_received_;
  };
  while (!all_taken()) {
    MPI_Status st;
    check(PMPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, ctl_.get(), &st), "MPI_Probe (request)");
    receive_request(st);
  }
}

// The attempt is over on every rank (a cut ran, or a round reported a rank
// off: then its request messages are taken here, as the cut does).
void Coordinator::end_attempt(std::optional<Verdict> cut) {
  if (!cut) take_requests();
  for (auto& c : comms_.all()) c->coll_target = 0;
  targets_.clear();
  initiated_ = request_sent_ = request_received_ = false;
  asks_received_ = initiators_ = 0;
  phase_ = Phase::Idle;
  active_.store(false, std::memory_order_relaxed);
  conclude(cut ? *cut : Verdict{Severity::Failed, PYCKPT_MPI_EUNSUPPORTED, {}, off()});
}

void Coordinator::conclude(const Verdict& outcome) {
  if (outcome.severity == Severity::Retry) {
    trace("cut to be retried: a rank was not at a capturable point");
    return;  // still requested: the next safe point starts a new cut
  }
  requested_.store(false, std::memory_order_relaxed);
  last_end_.store(std::chrono::steady_clock::now().time_since_epoch().count());
  ++ended_cuts_;
  if (outcome.severity == Severity::Failed) {
    report_failure(outcome);
    return;
  }
  trace("cut done: %llu message(s) in channel state", ull(channel_.size()));
  last_result_ = PYCKPT_MPI_OK;
  ++completed_cuts_;
  ++checkpoints_;
}

void Coordinator::report_failure(const Verdict& outcome) {
  {
    std::string why = outcome.why;
    bool here = outcome.here;
    if (off()) {
      // Whatever failed, checkpoints are off here: that is the reason, said
      // once by every rank (the ranks learn it at different times).
      std::lock_guard<std::mutex> lock(off_mutex_);
      why = "checkpoints are off for the rest of the job: " + off_reason_;
      here = !off_said_;
      off_said_ = true;
    } else if (why.empty()) {
      why = "checkpoints are off for the rest of the job on another rank (see its error)";
    }
    trace("cut failed: %s", why.c_str());
    last_result_ = outcome.code;
    last_message_ = "pyckpt_mpi: checkpoint failed on rank " + std::to_string(world_rank_) + " (cut " +
                    std::to_string(completed_cuts_ + 1) + "): " + why;
    // Only a rank that failed for a reason of its own says why, once per
    // cause: every rank printing it, at every retry, buried the reason.
    // At the end (finishing_) nothing is lost.
    if (!finishing_ && here && why != last_printed_) {
      std::fprintf(stderr, "%s\n", last_message_.c_str());
      last_printed_ = why;
    }
  }
}

void Coordinator::finish() {
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
  std::uint64_t target = ended_cuts_ + (phase_ != Phase::Idle ? 1 : 0);
  MPI_Request agree;
  check(PMPI_Iallreduce(MPI_IN_PLACE, &target, 1, MPI_UINT64_T, MPI_MAX, fin_.get(), &agree),
        "MPI_Iallreduce (finish)");
  for (int done = 0;;) {
    PMPI_Test(&agree, &done, MPI_STATUS_IGNORE);
    if (done) break;
    step(true);
  }
  while (ended_cuts_ < target) step(true);
  if (callbacks.progress != nullptr) progress_layer_above(/*finishing=*/true);
}

bool Coordinator::serve_here() {
  if (in_cut_ || finishing_) return false;
  const std::uint64_t ended = ended_cuts_;
  poll_slow(true);
  // At a targets, nothing in progress: like a rank parked at a collective,
  // but a point of its own code where the original program would not wait:
  // it leaves as soon as it or a peer needs the application to run on (a
  // peer may need a message this rank sends later). A rank holding a
  // message matched by MPI_Mprobe is never ready (step 3 of the cut) until
  // its application receives it: the Python lines between `msg =
  // comm.Mprobe()` and `msg.Recv(buf)` are such points, and waiting there
  // deadlocked the job. A rank whose windows hold something in flight (an
  // exclusive lock, an operation not yet flushed) leaves at once, before any
  // round completes: a peer may be waiting inside MPI_Win_lock for its lock,
  // serving no protocol, so no round would complete before its unlock.
  while (phase_ != Phase::Idle && !channel_.holds_matched_message() && windows_.settled() &&
         !(round_.targets_known() && (!at_targets() || peer_behind_))) {
    sched_yield();  // the ranks of a node share its cores with the ones computing
    poll_slow(true);
  }
  return ended_cuts_ != ended;
}

int Coordinator::checkpoint_now() {
  if (in_cut_) {
    last_message_ = "pyckpt_mpi_checkpoint called from inside a checkpoint";
    return PYCKPT_MPI_ESTATE;
  }
  if (off()) {
    refuse_request();
    return last_result_;
  }
  // Collective: without this barrier a rank could be cut (at an earlier
  // safe point) by a peer's call, then start a second cut with its own.
  synchronize(comms_.find(MPI_COMM_WORLD));
  const std::uint64_t before = ended_cuts_;
  if (world_rank_ == 0) request();  // one initiator: the others get REQ down the tree
  while (ended_cuts_ == before) poll_blocked(true);
  return last_result_;
}

}  // namespace pyckpt::mpi
