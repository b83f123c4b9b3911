// Internal state of the interposer: communicator table with lineage,
// per-(communicator, peer) message counts, request table, channel state
// (drained messages awaiting re-delivery) and the snapshot coordinator.
//
// Threading: the bookkeeping assumes application MPI calls come from one
// thread at a time (MPI_THREAD_SINGLE/FUNNELED/SERIALIZED, what mpi4py apps
// use); MPI_THREAD_MULTIPLE is recorded as unsupported for checkpoints.
#pragma once

#include <pyckpt/mpi/pyckpt_mpi.h>

#include <mpi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pyckpt::mpi {

// Thrown inside the library; the C ABI turns it into an error code.
struct Error : std::runtime_error {
  int code;
  Error(int c, const std::string& what) : std::runtime_error(what), code(c) {}
};

// While > 0 on a thread, its MPI calls pass straight through: the library's
// own protocol traffic, callbacks, and hdf5_io writing a checkpoint.
// initial-exec: read on every intercepted call; the default model for a
// shared library costs a __tls_get_addr call per access. The library is
// preloaded or linked, so its TLS is in the static block (a dlopen would use
// glibc's static TLS surplus, which an int fits in).
[[gnu::tls_model("initial-exec")]] inline thread_local int internal_depth = 0;
class InternalScope {
 public:
  InternalScope() { ++internal_depth; }
  ~InternalScope() { --internal_depth; }
  InternalScope(const InternalScope&) = delete;
  InternalScope& operator=(const InternalScope&) = delete;
};

// How a communicator was made from its parent; replayed at restart.
enum class LineageOp : std::int32_t { World, Self, Dup, Split, SplitType, Create, Cart, CartSub };

inline constexpr std::uint64_t kWorldId = 1;
inline constexpr std::uint64_t kSelfId = 2;
inline constexpr std::uint64_t kPredefinedTypeBit = 1ull << 63;

struct CommRec {
  std::uint64_t id = 0;  // same on every member, derived from lineage
  LineageOp op = LineageOp::World;
  std::uint64_t parent = 0;
  std::vector<std::int32_t> args;  // op arguments (see lineage.cpp)
  MPI_Comm real = MPI_COMM_NULL;  // app-visible handle in this incarnation
  int rank = 0, size = 0;
  // Comm rank -> world rank. The coordinator's traffic about this comm runs
  // on the world control comm; world_ranks[0] also tells apart the comms of
  // one split, which share their lineage id (see key()).
  std::vector<int> world_ranks;
  std::vector<std::uint64_t> sent, received;  // per peer rank, since last cut
  std::uint64_t coll_seq = 0;     // collectives entered since last cut (kept when freed)
  std::uint64_t coll_target = 0;  // agreed cut point during a snapshot
  std::uint64_t children = 0;     // comms created from this one (for child ids)
  bool freed = false;             // kept while it is an ancestor in lineage

  // The same on every member, and unique among the comms of a job: (lineage
  // id, world rank of its rank 0). Only for comms that had a handle here.
  using Key = std::pair<std::uint64_t, std::uint64_t>;
  Key key() const { return {id, static_cast<std::uint64_t>(world_ranks[0])}; }
};

struct ChannelMsg {
  std::uint64_t comm = 0;
  std::int32_t source = 0, tag = 0;  // source is a rank of comm
  std::vector<std::byte> data;       // native packed bytes (homogeneous job)
};

// What a receive got, as MPI_Wait reports it (kept so that a request that
// completed before a cut can complete again, identically, after a restart).
struct RecvStatus {
  std::int32_t source = MPI_ANY_SOURCE, tag = MPI_ANY_TAG;
  std::int64_t bytes = 0;
};

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
};

// The send of a blocking call (MPI_Send beyond the eager size, MPI_Ssend,
// MPI_Sendrecv): posted and counted before its progress loop starts.
struct BlockingSend {
  CommRec* comm = nullptr;
  int dest = 0, tag = 0;
  std::uint64_t bytes = 0;
};

// The operation a blocking application call drives in its progress loop:
// drains test its receive, and a cut inside the loop records it so that the
// call, re-issued by a restarted rank, neither sends twice nor loses what it
// received (see Runtime::resumed_send, Runtime::cut_call).
struct BlockingOp {
  const BlockingSend* send = nullptr;  // its send, if any
  ReqRec* recv = nullptr;              // its receive, if any
  MPI_Request* recv_request = nullptr;
};

// A blocking send that was in flight at the cut the job restarted from: the
// re-issued call must complete at once, neither sending nor counting (the
// peer received the message before its cut or has it in channel state).
struct ResumedSend {
  std::uint64_t comm = 0;
  std::int32_t dest = 0, tag = 0;
  std::uint64_t bytes = 0;
};

// The blocking call in progress when a cut ran, as saved with the state.
struct CutCall {
  std::optional<ResumedSend> send;
  std::optional<ChannelMsg> received;  // what its receive got in the drain
};

// Registered by the upper layer, possibly before MPI_Init.
struct Callbacks {
  pyckpt_mpi_capture_fn capture = nullptr;
  pyckpt_mpi_restore_fn restore = nullptr;
  void* user = nullptr;
};
inline Callbacks callbacks;

struct Stats {
  std::uint64_t intercepted = 0, sent = 0, received = 0, collectives = 0, checkpoints = 0,
                drained = 0, replayed = 0;
};

class Runtime {
 public:
  // --- lifetime ------------------------------------------------------------
  static void start();   // after PMPI_Init*: world/self records, private comms
  static void stop();    // before PMPI_Finalize
  static Runtime* get() { return instance_.get(); }

  // --- communicators -------------------------------------------------------
  CommRec* comm(MPI_Comm c) {
    if (c == last_comm_handle_) return last_comm_;
    auto it = comms_by_handle_.find(c);
    if (it == comms_by_handle_.end()) return nullptr;
    last_comm_handle_ = c;
    last_comm_ = it->second;
    return last_comm_;
  }
  CommRec* comm_by_id(std::uint64_t id);
  // Record a communicator made by `op` on `parent` (collective on parent;
  // called on every member, also where the result is MPI_COMM_NULL).
  void add_comm(CommRec* parent, LineageOp op, std::vector<std::int32_t> args, MPI_Comm made);
  void free_comm(MPI_Comm c);
  const std::vector<std::unique_ptr<CommRec>>& comms() const { return comms_; }

  // --- datatypes -----------------------------------------------------------
  std::uint64_t add_type(MPI_Datatype t);
  void free_type(MPI_Datatype t);
  // Stable ids: derived types by commit order, predefined ones by a fixed
  // index with kPredefinedTypeBit set. 0 / MPI_DATATYPE_NULL if unknown.
  std::uint64_t type_id(MPI_Datatype t) const;
  MPI_Datatype type_from_id(std::uint64_t id) const;

  // --- requests ------------------------------------------------------------
  // Tracks r; assigns the next id unless rec.id is set (restored requests).
  ReqRec& add_request(MPI_Request r, ReqRec rec);
  // A request completed (or was freed) in the app's view: count it.
  // release: the handle is gone (Wait/Test); else only observed complete
  // (MPI_Request_get_status), counted once either way.
  void on_complete(MPI_Request r, const MPI_Status& st, bool release = true);
  // The library saw receive rec complete with st: count it (once), keep st.
  void record_completion(ReqRec& rec, const MPI_Status& st);
  // The app freed a request it will never complete through us.
  void forget_request(MPI_Request r);
  std::uint64_t request_id(MPI_Request r) const;
  MPI_Request request_from_id(std::uint64_t id) const;
  // Inside a cut: the app's requests not yet completed in its view, by id
  // (= posting order). Valid until the next call.
  const std::vector<pyckpt_mpi_request_info>& pending_requests();
  // After restore: re-post receive id (pending at the cut) into buf, from
  // channel state if a drained message matches. Returns the new handle.
  MPI_Request repost(std::uint64_t id, void* buf);
  // The blocking operation of the app call in progress (drains test it).
  BlockingOp in_call;

  // --- re-issue after a restart ----------------------------------------------
  // The blocking send that was in flight at the cut; set by restore, taken
  // by the re-issued call (the first blocking send of the restarted rank).
  std::optional<ResumedSend> resumed_send;
  // True if s is the re-issue of resumed_send: the caller must neither send
  // nor count. Consumes the record either way (a mismatch is reported).
  bool take_resumed_send(const BlockingSend& s);

  // --- counting ------------------------------------------------------------
  void count_send(CommRec* c, int dest) {
    if (c && dest >= 0) { ++c->sent[dest]; ++stats.sent; }
  }
  void count_recv(CommRec* c, int source) {
    if (c && source >= 0) { ++c->received[source]; ++stats.received; }
  }

  // --- channel state (drained messages) ------------------------------------
  bool channel_empty() const { return channel_.empty(); }
  // First drained message matching (comm, source, tag), honouring
  // MPI_ANY_SOURCE/MPI_ANY_TAG; channel_.end() if none.
  std::deque<ChannelMsg>::iterator channel_match(std::uint64_t comm, int source, int tag);
  // Deliver it into (buf, count, type); fills status; erases it.
  int channel_deliver(std::deque<ChannelMsg>::iterator m, void* buf, int count, MPI_Datatype type,
                      MPI_Status* status);
  void fill_status(const ChannelMsg& m, MPI_Status* status) const;
  std::deque<ChannelMsg>& channel() { return channel_; }

  // --- checkpoint coordination (coordinator.cpp) ---------------------------
  // Safe point: cheap unless a checkpoint is pending. May run a whole cut.
  void poll() {
    if (requested_.load(std::memory_order_relaxed) || phase_ != Phase::Idle ||
        (++poll_tick_ & 63) == 0)
      poll_slow(true);
  }
  // Safe point inside a progress loop (blocked rank): polls more eagerly.
  // cut_allowed is false inside a collective that is still in flight: the
  // cut never splits a collective (see doc/mpi.md).
  void poll_blocked(bool cut_allowed = true) { poll_slow(cut_allowed); }
  // Safe point in the spin loop of a blocking app call (its request is not
  // complete yet). While no checkpoint is pending it looks for requests of
  // other ranks (an Iprobe on the control comm, ~3x the cost of the Testall
  // that drives the operation) only every 16th round, so the loop runs about
  // as fast as MPI's own wait loop; detecting a REQ takes at most 15 more
  // rounds (< 1 us). Pending or in progress: every round, as poll_blocked.
  void poll_spin() {
    if (requested_.load(std::memory_order_relaxed) || phase_ != Phase::Idle || (++spin_tick_ & 15) == 0)
      poll_slow(true);
  }
  // At entry of a collective on c: waits while entering it would pass the
  // cut point agreed for c. Then counts it.
  void enter_collective(CommRec* c);
  // Enter a blocking collective on c that has no nonblocking form: counts it
  // and waits, serving the protocol, in an Ibarrier on c until all members
  // arrived, so the blocking call that follows cannot wait for a rank parked
  // in the protocol. creating: it makes a communicator; until end_creation()
  // the rank is not ready for a cut (see coordinator.cpp).
  void synchronize(CommRec* c, bool creating = false);
  void end_creation() { creating_comm_ = false; }
  // Async-signal-safe: a lock-free atomic store, usable before MPI_Init.
  static void request() { requested_.store(true, std::memory_order_relaxed); }
  int checkpoint_now();
  // At MPI_Finalize (every rank): completes a checkpoint that is under way
  // on some ranks, without a capture, so that no protocol message or
  // nonblocking collective is pending when PMPI_Finalize runs.
  void finish();
  const std::string& last_message() const { return last_message_; }
  // PYCKPT_MPI_TRACE=1: the rank reports the protocol's steps on stderr
  // (epochs, agreed targets, parking at a collective, cuts), to find out
  // why a checkpoint does not complete. Off: one branch per step.
  void trace(const char* format, ...) const __attribute__((format(printf, 2, 3)));

  // Unsupported features the job used; a checkpoint fails naming them.
  void mark_unsupported(const char* call);
  const std::string& unsupported() const { return unsupported_; }

  Stats stats;
  std::uint64_t epoch = 0;       // last completed checkpoint epoch
  int outstanding_messages = 0;  // matched by Mprobe/Improbe, not yet received
  // Drained messages matched by MPI_Mprobe/MPI_Improbe, under fake handles
  // that are non-canonical addresses (never a real Open MPI message).
  std::unordered_map<MPI_Message, ChannelMsg> matched;
  std::uint64_t next_fake_message = 1;
  // The app holds a matched message (real or from channel state): a cut now
  // could not capture it, so this rank is not ready for a cut, nor runs one.
  bool holds_matched_message() const { return outstanding_messages > 0 || !matched.empty(); }
  // This rank reported itself ready for a cut (or the cut is decided): it
  // must not match a message (MPI_Improbe) until the round's outcome or the
  // cut, or the cut would wait for its receive.
  bool ready_for_cut() const { return phase_ != Phase::Idle && round_.reported_ready(); }

  // --- restart (lineage.cpp) -----------------------------------------------
  std::vector<std::byte> save() const;
  void restore(const std::byte* data, std::size_t len);

  int world_rank = 0, world_size = 1;

 private:
  // Agreeing: rounds run until every rank is at its targets in one of them;
  // Decided: that happened, the cut runs at the next safe point outside a
  // collective (see coordinator.cpp).
  enum class Phase { Idle, Agreeing, Decided };
  void poll_slow(bool cut_allowed);
  void step(bool cut_allowed);
  void begin_epoch();
  void post_round();
  void advance_round();
  std::uint64_t target_of(const CommRec& c) const;
  bool at_targets() const;
  void run_cut();
  void drain(const std::vector<CommRec*>& live, const std::vector<std::size_t>& offsets);
  // Counts receives that completed; false while a receive of a message
  // matched by MPI_Improbe/Mprobe is still incomplete (the drain waits for it).
  bool test_pending_receives();
  CutCall record_cut_call() const;
  CommRec* insert_comm(std::unique_ptr<CommRec> rec);

  static std::unique_ptr<Runtime> instance_;
  static std::atomic<bool> requested_;

  std::vector<std::unique_ptr<CommRec>> comms_;  // creation order = lineage order
  std::unordered_map<MPI_Comm, CommRec*> comms_by_handle_;
  MPI_Comm last_comm_handle_ = MPI_COMM_NULL;
  CommRec* last_comm_ = nullptr;

  std::unordered_map<MPI_Datatype, std::uint64_t> types_;
  std::uint64_t next_type_id_ = 1;

  std::unordered_map<MPI_Request, ReqRec> requests_;
  std::uint64_t next_request_id_ = 1;
  std::vector<pyckpt_mpi_request_info> pending_view_;  // what pending_requests() hands out
  // Restored receives that were pending at the cut, waiting for repost().
  std::map<std::uint64_t, ReqRec> awaiting_repost_;
  // The blocking call in progress during the current cut (saved with the state).
  CutCall cut_call_;

  std::deque<ChannelMsg> channel_;

  MPI_Comm ctl_ = MPI_COMM_NULL;  // private dup of world: checkpoint requests
  MPI_Comm fin_ = MPI_COMM_NULL;  // private dup of world: agreement in finish()
  bool finishing_ = false;        // in finish(): a cut captures nothing
  bool tracing_ = false;          // PYCKPT_MPI_TRACE
  Phase phase_ = Phase::Idle;
  std::uint64_t poll_tick_ = 0;
  std::uint32_t spin_tick_ = 0;
  int req_received_ = 0;  // REQ messages of the current epoch consumed
  // One round of the epoch's agreement on collective sequence numbers, on
  // ctl_: an Iallgather of (entry count, ready flag) per rank, then, unless
  // every rank is ready, an Iallgatherv of (comm id, world rank of its rank
  // 0, wanted seq) triples.
  struct Round {
    enum class Stage { Flags, Triples } stage = Stage::Flags;
    MPI_Request req = MPI_REQUEST_NULL;
    int number = 0;               // rounds of this epoch that set targets
    int mine[2] = {0, 0};         // entries, ready
    std::vector<int> flags;       // (entries, ready) per rank
    std::vector<int> counts, displs;
    std::vector<std::uint64_t> out, in;
    bool targets_known() const { return number > 0; }
    // In the round under way, or in the one that decided the cut.
    bool reported_ready() const { return mine[1] != 0; }
  } round_;
  // Agreed targets by (id, world rank of its rank 0), also of comms this
  // rank has not made yet; they only grow during an epoch (see advance_round).
  std::map<CommRec::Key, std::uint64_t> targets_;
  CommRec* parked_on_ = nullptr;  // enter_collective waits at this comm's target
  bool creating_comm_ = false;    // between synchronize(c, true) and end_creation()
  std::uint64_t cuts_done_ = 0;   // attempted cuts, failed ones too
  bool in_cut_ = false;
  int last_result_ = PYCKPT_MPI_OK;
  std::string last_message_;
  std::vector<std::uint64_t> expected_;  // flattened per comm, per peer
  std::string unsupported_;
};

// RAII: marks the operation of a blocking call so drains and cuts see it.
class InCall {
 public:
  InCall(Runtime& rt, BlockingOp op) : rt_(rt) { rt_.in_call = op; }
  ~InCall() { rt_.in_call = BlockingOp{}; }
  InCall(const InCall&) = delete;
  InCall& operator=(const InCall&) = delete;

 private:
  Runtime& rt_;
};

// The runtime if this call is the application's (to be tracked), else null.
inline Runtime* app_call() {
  Runtime* rt = Runtime::get();
  if (!rt || internal_depth > 0) return nullptr;
  ++rt->stats.intercepted;
  return rt;
}

void set_last_error(const std::string& msg);
const char* last_error_cstr();
const std::vector<MPI_Datatype>& predefined_types();
void check(int rc, const char* what);  // throws Error(PYCKPT_MPI_EMPI) on failure
// A generalized request that is already complete and reports st (with
// MPI_ERROR = error): for receives served from channel state and for
// requests restored complete after a restart. MPI_Wait/Test work unchanged.
int start_completed_request(const RecvStatus& st, int error, MPI_Request* request);
RecvStatus recv_status(const MPI_Status& st);

}  // namespace pyckpt::mpi
