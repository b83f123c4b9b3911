// A compound call of the application across a cut: one call of the layer
// above made of several MPI operations (mpi4py 3.1's pickled reductions
// comm.allreduce/reduce/scan/exscan, a tree of point-to-point messages on
// mpi4py's private duplicate of the communicator, and lowercase
// comm.sendrecv: an isend, a matched receive, the wait). A rank cut inside
// one cannot resume in the middle of the layer above's C code; it is rolled
// back to the call's start instead, and re-issues the whole call after a
// restart, exactly once in effect (deterministic replay, as message-logging
// protocols do):
//   * every message the call received since its start is logged (packed
//     bytes); at the cut the log goes back to the front of channel state, so
//     the re-issued call receives the same messages in the same order;
//   * every send the call made since its start is recorded (comm, dest,
//     tag); the re-issued call's first sends are checked against the
//     record and suppressed: the peers received them or have them in
//     channel state.
// The replay is exact because the re-issued call makes the same operations
// in the same order: mpi4py's trees depend only on the size, rank and root,
// every receive names its source, and the tag is mpi4py's per-communicator
// counter, which this part keeps a shadow of (MpiPyTags) so that a restart
// can set it back.
#pragma once

#include "channel.hpp"
#include "comm_table.hpp"

#include <pyckpt/codec/bytes.hpp>

#include <mpi.h>

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace pyckpt::mpi {

// A send a compound call made (suppressed when the call is re-issued).
struct CompoundSend {
  std::uint64_t comm = 0;
  std::int32_t dest = 0, tag = 0;
};

// mpi4py's context of a communicator it ran pickled reductions on: its
// private duplicate and the tag of the next reduction (mpi4py's
// PyMPI_Commctx, src/pympicommctx.h: the tag counts the reductions on the
// communicator and wraps at MPI_TAG_UB).
struct MpiPyContext {
  std::uint64_t dup = 0;       // lineage id of the private duplicate (0: not seen yet)
  std::int32_t next_tag = 0;   // mpi4py's counter after the last reduction
};

class CompoundCall {
 public:
  // Kinds, as in pyckpt_mpi.h (PYCKPT_MPI_COMPOUND_*).
  static constexpr int kReduction = 1;
  static constexpr int kSendrecv = 2;

  // --- marks of the layer above ---------------------------------------------
  // first_request: the id the app's next request gets (RequestTable).
  void begin(int kind, std::uint64_t first_request);
  void end();
  // Inside a compound call whose rollback a cut can record.
  bool recordable() const { return depth_ == 1 && !unrecordable_; }
  bool active() const { return depth_ > 0; }

  // --- observations inside a call (one test of depth_ outside) --------------
  // A receive of the call completed: its message, packed.
  void on_receive(ChannelMsg m) {
    if (depth_ > 0) log_.push_back(std::move(m));
  }
  // A send of the call was posted and counted.
  void on_send(const CommRec& c, int dest, int tag) {
    if (depth_ > 0) sends_.push_back({c.id, dest, tag});
  }
  // An operation the log cannot follow (a nonblocking receive completed
  // elsewhere): a cut inside this call is refused, as before rollback existed.
  void on_untracked_operation() {
    if (depth_ > 0) unrecordable_ = true;
  }
  // MPI_Improbe matched a real message on c; its MPI_Mrecv names no
  // communicator (one matched message is held at a time, see Channel).
  void on_match(const CommRec& c) { matched_comm_ = c.id; }
  std::uint64_t matched_comm() const { return matched_comm_; }
  // MPI_Comm_get_attr of the app on c: the first inside a reduction is on
  // the reduction's communicator (mpi4py looks up its lock table there, then
  // its context, which takes the reduction's tag).
  void on_get_attr(const CommRec& c, int tag_ub);
  // MPI_Comm_dup of the app: inside a reduction, right after its lookup, it
  // is mpi4py making its private duplicate.
  void on_dup(const CommRec& parent, const CommRec& made);

  // The re-issued call's send s: true if it was made before the cut (the
  // caller must neither send nor count it). Aborts the job if the re-issued
  // call is not the one cut (its replay would not be exact).
  bool is_replayed_send(const CommRec& c, int dest, int tag) {
    return !replay_.empty() && depth_ == 1 && take_replayed_send(c, dest, tag);
  }

  // Restart: the private duplicate that mpi4py's next MPI_Comm_dup of comm
  // (its context lookup) must get instead of a new one; 0 if none.
  std::uint64_t adopted_dup(std::uint64_t comm) const;
  void forget_adoption(std::uint64_t comm) { adopt_.erase(comm); }
  // (comm id, mpi4py's next tag) of every live communicator with an mpi4py
  // context, for the layer above to set mpi4py's counters again at restart.
  std::vector<std::pair<std::uint64_t, std::int32_t>> contexts(const CommTable& comms) const;

  // A request of the app that the call in progress posted (its isends):
  // rolled back with it, so not saved -- the re-issued call posts it again,
  // or suppresses it as sent (is_replayed_send), and nothing would ever
  // wait for a restored one.
  bool rolled_back_request(std::uint64_t id) const { return depth_ > 0 && id >= first_request_; }
  std::size_t logged_receives() const { return log_.size(); }
  std::size_t recorded_sends() const { return sends_.size() + replay_.size(); }

  // --- the state ----------------------------------------------------------------
  void save(codec::ByteWriter& w, const CommTable& comms) const;
  // Reads what save wrote; the rolled-back messages go to `channel` (front).
  void restore(codec::ByteReader& r, Channel& channel);

 private:
  bool take_replayed_send(const CommRec& c, int dest, int tag);

  int depth_ = 0;
  int kind_ = 0;
  std::uint64_t first_request_ = 0;
  bool unrecordable_ = false;
  std::deque<ChannelMsg> log_;
  std::vector<CompoundSend> sends_;
  // Reduction in progress: its communicator once mpi4py looked it up.
  std::uint64_t reduction_comm_ = 0;
  std::int32_t tag_before_ = 0;  // mpi4py's counter before this reduction
  std::map<std::uint64_t, MpiPyContext> contexts_;  // by communicator id
  std::uint64_t matched_comm_ = 0;
  // Restart.
  int replay_kind_ = 0;                 // kind of the call to re-issue (0: none)
  std::deque<CompoundSend> replay_;     // its sends made before the cut
  std::map<std::uint64_t, std::uint64_t> adopt_;  // comm id -> private dup id
};

}  // namespace pyckpt::mpi
