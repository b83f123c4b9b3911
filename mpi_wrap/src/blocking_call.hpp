// The blocking application call across a cut: the operation the call in
// progress drives in its progress loop (drains test its receive), what a
// cut records of it (saved with the state), and, in a restarted job, the
// re-issue of the blocking send that was in flight at the cut.
#pragma once

#include "channel.hpp"
#include "comm_table.hpp"
#include "request_table.hpp"

#include <mpi.h>

#include <cstdint>
#include <optional>

namespace pyckpt::mpi {

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
// received (see BlockingCall::is_resumed_send, BlockingCall::record_cut).
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

class BlockingCall {
 public:
  explicit BlockingCall(int world_rank) : world_rank_(world_rank) {}

  // The operation of the app call in progress (InCall sets it).
  const BlockingOp& current() const { return op_; }

  // --- a cut inside the call ----------------------------------------------
  // Records the call in progress for a re-issue after a restart; throws
  // Error if it cannot be captured.
  void record_cut();
  void forget_cut() { cut_ = CutCall{}; }
  const CutCall& at_cut() const { return cut_; }

  // --- re-issue after a restart ----------------------------------------------
  // A restarted rank re-issuing the blocking send that was in flight at its
  // cut: the message was sent then (received or drained by the peer). True
  // if s is that re-issue: the caller must neither send nor count. One test
  // of an empty optional on the hot path.
  bool is_resumed_send(const BlockingSend& s) { return resumed_send_ && take_resumed_send(s); }
  // The blocking send that was in flight at the cut; set by restore, taken
  // by the re-issued call (the first blocking send of the restarted rank).
  void resume_send(const ResumedSend& s) { resumed_send_ = s; }
  const std::optional<ResumedSend>& resumed_send() const { return resumed_send_; }

 private:
  friend class InCall;
  // Consumes the record either way (a mismatch is reported).
  bool take_resumed_send(const BlockingSend& s);

  int world_rank_;
  BlockingOp op_;
  // The blocking call in progress during the current cut (saved with the state).
  CutCall cut_;
  std::optional<ResumedSend> resumed_send_;
};

// RAII: marks the operation of a blocking call so drains and cuts see it.
class InCall {
 public:
  InCall(BlockingCall& call, BlockingOp op) : call_(call) { call_.op_ = op; }
  ~InCall() { call_.op_ = BlockingOp{}; }
  InCall(const InCall&) = delete;
  InCall& operator=(const InCall&) = delete;

 private:
  BlockingCall& call_;
};

}  // namespace pyckpt::mpi
