// The snapshot coordinator: the phases of a checkpoint (agreement rounds on
// per-communicator collective targets, the decided cut), the cut itself
// (count exchange, drain, the job-wide agreement on its outcome around the
// capture and write callbacks), and the end of the protocol at
// MPI_Finalize. doc/mpi.md describes the protocol.
//
// Threading: the bookkeeping assumes application MPI calls come from one
// thread at a time (MPI_THREAD_SINGLE/FUNNELED/SERIALIZED, what mpi4py apps
// use); MPI_THREAD_MULTIPLE is recorded as unsupported for checkpoints.
#pragma once

#include "blocking_call.hpp"
#include "callbacks.hpp"
#include "channel.hpp"
#include "collective_op.hpp"
#include "comm_table.hpp"
#include "file_table.hpp"
#include "icoll_table.hpp"
#include "mpi_handles.hpp"
#include "request_table.hpp"
#include "win_table.hpp"

#include <pyckpt/mpi/pyckpt_mpi.h>

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace pyckpt::mpi {

class Coordinator {
 public:
  // After PMPI_Init*: makes the private control communicators. unsupported:
  // the calls the job made that a cut cannot capture (read at each cut).
  Coordinator(int world_rank, int world_size, CommTable& comms, RequestTable& requests, IcollTable& icolls,
              Channel& channel, BlockingCall& call, FileTable& files, WinTable& windows,
              const std::string& unsupported);
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // --- safe points -----------------------------------------------------------
  // Safe point: cheap unless a checkpoint is pending. May run a whole cut.
  void poll() {
    if (callbacks.progress != nullptr) progress_layer_above();
    if (!icolls_.empty()) progress_collectives();
    if (requested_.load(std::memory_order_relaxed) || phase_ != Phase::Idle || (++poll_tick_ & 63) == 0)
      poll_slow(true);
  }
  // Safe point inside a progress loop (blocked rank): polls more eagerly.
  // cut_allowed is false inside a collective that is still in flight: the
  // cut never splits a collective (see doc/mpi.md).
  void poll_blocked(bool cut_allowed = true) { poll_slow(cut_allowed); }
  // The last safe point before the rank posts a meeting of its own (a
  // barrier, makers' messages): looks for an OFF notice whatever the poll
  // tick, so that a rank told checkpoints are off does not post one.
  void poll_before_meeting() { poll_slow(true); }
  // Safe point in the spin loop of a blocking app call (its operation is
  // not complete yet): point-to-point calls and collectives. While no
  // checkpoint is pending it looks for requests of other ranks (an Iprobe
  // on the control comm, ~3x the cost of the Testall that drives the
  // operation) only every 16th round, so the loop runs about as fast as
  // MPI's own wait loop; detecting a REQ takes at most 15 more rounds
  // (< 1 us). Pending or in progress: every round, as poll_blocked.
  void poll_spin(bool cut_allowed = true) {
    if (callbacks.progress != nullptr) progress_layer_above();
    if (!icolls_.empty()) progress_collectives();
    if (requested_.load(std::memory_order_relaxed) || phase_ != Phase::Idle || (++spin_tick_ & 15) == 0)
      poll_slow(cut_allowed);
  }

  // --- collectives and communicator creation -----------------------------
  // How a blocking collective is cut (doc/mpi.md, "Collectives across a
  // cut"): the cut falls before a collective that completed on no member,
  // and after one that completed on some member.
  //   Synchronizing: no member can complete it before every member entered
  //     it (Barrier; Allreduce, Allgather(v), Alltoall, Reduce_scatter(_block)
  //     with data on every rank, out of place, on an intracommunicator). It
  //     runs as its nonblocking form at once; a member that has not seen it
  //     complete can be cut before it, and while a cut is being agreed it
  //     does not return from it (holds the completion) unless the target
  //     lets it pass.
  //   TwoPhase: any other (rooted ones complete early at the root or the
  //     leaves, zero counts, in place buffers are written while it runs,
  //     intercommunicators). An Ibarrier on its communicator first, during
  //     which the member can be cut before it; the collective itself is
  //     posted once every member arrived, and then completes without any
  //     member's application code.
  enum class CollectiveKind { Synchronizing, TwoPhase };
  // Runs an application's blocking collective on c: start(op) starts its
  // operation (a CollectiveOp: MPI's nonblocking form, or a schedule of the
  // library's own on c's shadow) and returns MPI's code. Returns MPI's code
  // of the collective.
  template <typename Start>
  int collective(CommRec* c, CollectiveKind kind, Start start);
  // Enter a blocking collective on c that has no nonblocking form: counts it
  // and waits, serving the protocol, in an MPI_Ibarrier on c until all
  // members arrived, so the blocking call that follows cannot wait for a
  // rank parked in the protocol. Not the shadow's barrier: with its faster
  // fences, cuts of a fence loop were rarely agreed (doc/mpi.md, "Small
  // collectives on the shadow"). creating: it makes a communicator; until
  // end_creation() the rank is not ready for a cut (see coordinator.cpp).
  void synchronize(CommRec* c, bool creating = false);
  // The app's nonblocking collectives (IcollTable): each one posted (the
  // collective, then an Ibarrier on its communicator) counts as entered
  // once its barrier completed (every member posted it) and the target
  // lets it pass, in posting order per communicator, like a two-phase
  // blocking one; its request completes once counted and done. Until
  // counted the rank is before it: a cut records it and a restarted rank
  // posts it again. A counted one completes before the cut runs.
  void progress_collectives();
  void end_creation() { creating_comm_ = false; }
  // Communicators some ranks make without their parent's other members
  // (MPI_Comm_create_group: the group's members; MPI_Intercomm_create: two
  // groups whose leaders meet on a peer communicator). No collective on an
  // existing communicator spans their makers; they meet in two rounds of
  // messages (meet()), each serving the protocol while it waits:
  //   1. arrive(): every maker is here. Until then the rank is before the
  //      creation: a cut may fall there, and a restarted rank makes the
  //      call again. Not counted anywhere (the parent's other members do
  //      not take part).
  //   2. enter_creation(): the rank reports itself not ready for a cut
  //      (creating) once its pending ready report, if any, is settled (the
  //      cut may run here, before the creation), then meets the makers
  //      again: after that no maker can be cut before the creation, so the
  //      blocking call, in which a maker serves no protocol, cannot hold up
  //      a cut that another maker waits for (doc/mpi.md, "Communicators
  //      made by some ranks").
  // end_creation() once the call returned.
  struct Makers {
    MPI_Comm local = MPI_COMM_NULL;  // intercomm: the local communicator, whose members meet by a barrier
    std::vector<int> world_peers;    // world ranks this rank exchanges a message with
  };
  void arrive(const Makers& makers) {
    poll_before_meeting();
    meet(makers);
  }
  void enter_creation(const Makers& makers);
  // A communicator was made: during a checkpoint other members may have had
  // it, and used it, before; it gets the target agreed for it.
  void on_new_comm(CommRec& c);
  // This rank reported itself ready for a cut (or the cut is decided): it
  // must not match a message (MPI_Improbe) until the round's outcome or the
  // cut, or the cut would wait for its receive.
  bool ready_for_cut() const { return phase_ != Phase::Idle && round_.reported_ready(); }
  // A safe point before a call that would make this rank unready for a cut
  // (an RMA operation or an exclusive lock: its window would hold
  // something in flight). If the rank reported itself ready, it waits here,
  // serving the protocol, until the round's outcome (or runs the cut here).
  void before_unsettling() {
    poll();
    while (ready_for_cut()) poll_blocked(true);
  }

  // --- safe points in the application's own code ---------------------------
  // The application is at a point where its state can be captured without
  // any MPI call in progress (a Python line): serves a checkpoint pending on
  // this rank there, until it ends, unless this rank (or a peer) needs the
  // application to run on to reach the cut. True if a cut ran (the capture
  // callback was called here).
  bool serve_here();
  // Whether this rank has a checkpoint to serve (requested here, or under
  // way). Any thread.
  bool pending() const {
    return requested_.load(std::memory_order_relaxed) || active_.load(std::memory_order_relaxed);
  }
  // --- checkpoints off for the rest of the job ------------------------------
  // A reason that lasts as long as the job (a thread other than the one that
  // called MPI_Init made MPI calls: its traffic was not counted; a call a
  // cut cannot capture, Runtime::mark_unsupported) makes every later
  // checkpoint fail. Then nothing that needs every rank's cooperation is
  // imposed any more: the rank that knows it tells every rank (switch_off,
  // any thread: an OFF notice down the request tree), and each rank, once it
  // got the notice, stops meeting its peers before collectives and
  // communicator creations (a meeting under way is left; MPI's own
  // operation follows), takes part in no agreement round, and answers each
  // checkpoint request with a failure that names the reason (said once per
  // rank). doc/mpi.md, "Checkpoints off for the rest of the job".
  void switch_off(const std::string& reason);
  // An application MPI call from a thread other than the main one (any
  // thread).
  void refuse_foreign_thread() {
    if (!foreign_thread_.exchange(true, std::memory_order_relaxed))
      switch_off("a thread other than the one that called MPI_Init made MPI calls; pyckpt supports one "
                 "application thread calling MPI (mpi4py.futures' executors call MPI from a thread of their own)");
  }
  // This rank got the OFF notice (or sent it as the root): it imposes nothing.
  bool off() const { return off_.load(std::memory_order_relaxed); }
  // Takes an OFF notice waiting on the control communicator, if any, and
  // passes it on (thread-safe: a matched probe; the waker calls it too, so
  // that the notice travels while a rank's main thread is in a blocking
  // call). True if one was taken.
  bool take_off_notice();
  // How many times the main thread served the protocol or made an MPI call
  // (a relaxed counter the waker reads to see whether the application is
  // computing; see waker.hpp).
  std::uint64_t activity() const { return activity_.load(std::memory_order_relaxed); }
  void note_activity() { activity_.store(activity_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  // When the last checkpoint ended (succeeded or failed), for the interval
  // trigger; the start of the library before the first. Any thread.
  std::chrono::steady_clock::time_point last_cut_end() const {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(last_end_.load()));
  }
  // The control communicator and the tag of checkpoint requests (the waker
  // probes for them).
  MPI_Comm control() const { return ctl_.get(); }
  MPI_Comm write_comm() const { return write_comm_.get(); }
  // The private communicator of the makers' messages (meet); at a restart also
  // where the leaders of an intercommunicator's groups meet again.
  MPI_Comm arrival() const { return arrival_.get(); }
  static constexpr int kTagRequest = 1;  // root -> tree: cut n begins
  static constexpr int kTagAsk = 2;      // initiator -> root: please begin cut n
  static constexpr int kTagOff = 3;      // checkpoints off: reason text, to the root, then down the tree

  // --- checkpoints -----------------------------------------------------------
  // Async-signal-safe: a lock-free atomic store, usable before MPI_Init.
  static void request() { requested_.store(true, std::memory_order_relaxed); }
  // Collective over world: a checkpoint now; its job-wide outcome.
  int checkpoint_now();
  // At MPI_Finalize (every rank): completes a checkpoint that is under way
  // on some ranks, without a capture, so that no protocol message or
  // nonblocking collective is pending when PMPI_Finalize runs.
  void finish();
  const std::string& last_message() const { return last_message_; }

  // --- the cut number (internal to the protocol; not a checkpoint file's
  // epoch, which belongs to the container) ---------------------------------
  // What a saved state records: the cut being taken, inside a cut.
  std::uint64_t saved_cut_number() const { return in_cut_ ? completed_cuts_ + 1 : completed_cuts_; }
  // Restart: the next cut continues the numbering on every rank.
  void restore_cut_number(std::uint64_t n) { completed_cuts_ = n; }

  // Counters (pyckpt_mpi_get_stats).
  std::uint64_t collectives() const { return collectives_; }
  std::uint64_t checkpoints() const { return checkpoints_; }

  // PYCKPT_MPI_TRACE=1: the rank reports the protocol's steps on stderr
  // (cut numbers, agreed targets, parking at a collective, cuts), to find
  // out why a checkpoint does not complete. Off: one branch per step.
  void trace(const char* format, ...) const __attribute__((format(printf, 2, 3)));

 private:
  // Agreeing: rounds run until every rank is at its targets in one of them;
  // Decided: that happened, the cut runs at the next safe point outside a
  // collective (see coordinator.cpp).
  enum class Phase { Idle, Agreeing, Decided };
  // A rank's verdict on a phase of the cut, and the job's (MAX over ranks):
  // the one encoding of a checkpoint's outcome. Failed carries its
  // PYCKPT_MPI_E* code.
  enum class Severity : int { Ok = 0, Retry = 1, Failed = 2 };
  struct Verdict {
    Severity severity = Severity::Ok;
    int code = PYCKPT_MPI_OK;
    std::string why;  // a failure's reason, for the message
    bool here = false;  // the job's verdict: this rank failed (its own reason)
  };

  void poll_slow(bool cut_allowed);
  // The layer above's progress callback, armed (callbacks.hpp), outside a
  // cut; finishing: at MPI_Finalize.
  void progress_layer_above(bool finishing = false);
  void meet(const Makers& makers);
  bool wait_for(MPI_Request* reqs, int n);
  void take_requests();
  void end_attempt(std::optional<Verdict> cut = std::nullopt);
  void step(bool cut_allowed);
  bool must_wait(const CommRec& c) const {
    // Off: no rank waits for this one at its targets, unless it reported
    // itself ready in the round under way (a cut may still be decided).
    return phase_ != Phase::Idle && (!off() || round_.reported_ready()) &&
           (!round_.targets_known() || c.coll_seq >= c.coll_target);
  }
  // A collective on c entered now may be counted: the target lets it pass
  // and the app's nonblocking collectives posted on c before it are counted.
  bool may_count(const CommRec& c) const { return !must_wait(c) && !icolls_.uncounted_on(&c); }
  void park_at(CommRec* c);
  void initiate();
  void receive_request(const MPI_Status& st);
  void receive_off(const MPI_Status& st);
  void relay_off(const std::string& notice);
  void refuse_request();
  void broadcast_request();
  void begin_cut();
  void post_round();
  void advance_round();
  std::uint64_t target_of(const CommRec& c) const;
  bool at_targets() const;
  void run_cut();
  void exchange_counts(std::vector<CommRec*>& live, std::vector<std::size_t>& offsets);
  void drain(const std::vector<CommRec*>& live, const std::vector<std::size_t>& offsets);
  Verdict local_verdict();
  static Verdict callback_verdict(int (*callback)(void*), const char* name);
  Verdict agree(Verdict mine, const char* phase);
  void conclude(const Verdict& outcome);
  void report_failure(const Verdict& outcome);

  static std::atomic<bool> requested_;
  std::atomic<bool> active_{false};  // phase_ != Idle, for other threads
  std::atomic<bool> foreign_thread_{false};  // see refuse_foreign_thread
  // Checkpoints off (switch_off): this rank told the job (at most once), the
  // root sent the notice down the tree (at most once), the notice reached
  // this rank; the reason as the notice says it. Written by any thread.
  std::atomic<bool> off_announced_{false}, off_relayed_{false}, off_{false};
  mutable std::mutex off_mutex_;
  std::string off_reason_;  // under off_mutex_
  bool off_said_ = false;   // main thread: this rank printed why
  std::atomic<std::uint64_t> activity_{0};
  std::atomic<std::chrono::steady_clock::rep> last_end_{std::chrono::steady_clock::now().time_since_epoch().count()};

  int world_rank_, world_size_;
  CommTable& comms_;
  RequestTable& requests_;
  IcollTable& icolls_;
  Channel& channel_;
  BlockingCall& call_;
  FileTable& files_;
  WinTable& windows_;
  const std::string& unsupported_;

  OwnedComm ctl_;  // private dup of world: checkpoint requests, rounds, the cut
  OwnedComm fin_;  // private dup of world: agreement in finish()
  // Private dup of world for the write callback's collective I/O: the cut may
  // fall while an application collective is pending on MPI_COMM_WORLD (before
  // a collective that completed nowhere), and a collective of the write on
  // MPI_COMM_WORLD would match it.
  OwnedComm write_comm_;
  OwnedComm arrival_;  // private dup of world: meet() (never probed with MPI_ANY_TAG, unlike ctl_)
  bool finishing_ = false;  // in finish(): a cut captures nothing
  bool tracing_ = false;    // PYCKPT_MPI_TRACE
  Phase phase_ = Phase::Idle;
  std::uint64_t poll_tick_ = 0;
  std::uint32_t spin_tick_ = 0;
  // Requests travel on a binomial tree rooted at world rank 0 (O(log N)
  // messages per rank): an initiating rank other than the root sends the
  // root one ASK; the root sends REQ to its children once per attempt,
  // every rank forwards the one REQ it gets from its parent. The cut
  // consumes all of them (the initiators are counted in the rounds).
  bool initiated_ = false;       // this rank began the current attempt itself
  bool request_sent_ = false;    // root: REQ sent down the tree this attempt
  bool request_received_ = false;  // non-root: REQ from the parent received
  int asks_received_ = 0;        // root: ASKs of this attempt consumed
  int initiators_ = 0;           // ranks that began this attempt themselves (rounds)
  bool peer_behind_ = false;     // the last round: some rank must run its application on
  // One round of the cut's agreement on collective sequence numbers, on
  // ctl_: an Iallgather of flags per rank, then, unless
  // every rank is ready, an Iallgatherv of (comm id, world rank of its rank
  // 0, wanted seq) triples.
  struct Round {
    enum class Stage { Flags, Triples } stage = Stage::Flags;
    MPI_Request req = MPI_REQUEST_NULL;
    int number = 0;               // rounds of this cut that set targets
    // Per rank: entries, ready, initiated this attempt, behind (below a
    // target and not inside a collective: only its application can get it
    // there), off (checkpoints are off here: the attempt fails on every rank).
    static constexpr int kFlags = 5;
    int mine[kFlags] = {0, 0, 0, 0, 0};
    std::vector<int> flags;       // kFlags per rank
    std::vector<int> counts, displs;
    std::vector<std::uint64_t> out, in;
    bool targets_known() const { return number > 0; }
    // In the round under way, or in the one that decided the cut.
    bool reported_ready() const { return mine[1] != 0; }
  } round_;
  // Agreed targets by CommRec::target_key (lineage id, world rank of its
  // rank 0; node-local ones: one per lineage id), also of comms this
  // rank has not made yet; they only grow during a cut (see advance_round).
  std::map<CommRec::Key, std::uint64_t> targets_;
  CommRec* parked_on_ = nullptr;  // waiting before (or holding) a collective on this comm
  bool creating_comm_ = false;    // between synchronize(c, true) and end_creation()
  // Cuts are numbered alike on every rank. REQs name the cut they ask for
  // (completed_cuts_ + 1); a restarted job continues the numbering.
  std::uint64_t completed_cuts_ = 0;  // cuts that succeeded
  std::uint64_t ended_cuts_ = 0;      // succeeded or failed (a retried cut has not ended)
  bool in_cut_ = false;
  int last_result_ = PYCKPT_MPI_OK;
  std::string last_message_;
  // The last failure reason this rank printed: a checkpoint retried every
  // interval that fails for the same cause says so once.
  std::string last_printed_;
  std::vector<std::uint64_t> expected_;  // flattened per comm, per peer
  std::uint64_t collectives_ = 0;        // application collectives entered
  std::uint64_t checkpoints_ = 0;        // cuts that succeeded in this process
};

// A blocking collective, cut as its kind requires (see CollectiveKind).
template <typename Start>
int Coordinator::collective(CommRec* c, CollectiveKind kind, Start start) {
  poll();
  const bool synchronizing = kind == CollectiveKind::Synchronizing;
  if (!synchronizing && !off()) {
    // Phase 1: every member arrives. The rank is before the collective
    // (cut allowed) until the barrier completed and the target lets it pass
    // (or checkpoints are off: the barrier is left, see switch_off).
    CollectiveOp barrier;
    int rc = barrier.start_barrier(*c);
    if (rc != MPI_SUCCESS) return rc;
    parked_on_ = c;
    for (int arrived = 0;;) {
      if (!arrived) barrier.test(&arrived);
      if ((arrived && may_count(*c)) || off()) break;
      poll_spin(/*cut_allowed=*/true);
    }
    parked_on_ = nullptr;
    ++c->coll_seq;
    ++collectives_;
  }
  CollectiveOp op;
  int rc = start(op);
  if (rc != MPI_SUCCESS) return rc;
  // Synchronizing: counted when it completes in the app's view; until then
  // the rank is before it. TwoPhase: every member is in it, it completes
  // first (no cut inside).
  if (synchronizing) parked_on_ = c;
  for (int done = 0;;) {
    if (!done) {
      rc = op.test(&done);
      if (rc != MPI_SUCCESS) break;
    }
    if (done && !(synchronizing && !may_count(*c))) break;
    poll_spin(/*cut_allowed=*/synchronizing);
  }
  if (synchronizing) {
    parked_on_ = nullptr;
    if (rc == MPI_SUCCESS) {
      ++c->coll_seq;
      ++collectives_;
    }
  }
  return rc;
}

}  // namespace pyckpt::mpi
