// The channel: per-(communicator, peer) message counts, the channel state
// (messages drained at a cut, kept for re-delivery), matching receives and
// probes against it, and the drained messages the app matched with
// MPI_Mprobe/MPI_Improbe.
#pragma once

#include "comm_table.hpp"
#include "request_table.hpp"

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

namespace pyckpt::mpi {

struct ChannelMsg {
  std::uint64_t comm = 0;
  std::int32_t source = 0, tag = 0;  // source is a rank of comm
  std::vector<std::byte> data;       // native packed bytes (homogeneous job)
};

class Channel {
 public:
  using Iter = std::deque<ChannelMsg>::iterator;

  // --- counting (hot path) -----------------------------------------------
  void count_send(CommRec* c, int dest) {
    if (c && dest >= 0) { ++c->sent[dest]; ++sent_; }
  }
  void count_recv(CommRec* c, int source) {
    if (c && source >= 0) { ++c->received[source]; ++received_; }
  }

  // --- channel state -------------------------------------------------------
  // First drained message matching (comm, source, tag), honouring
  // MPI_ANY_SOURCE/MPI_ANY_TAG; none if there is none (one test while the
  // channel state is empty, i.e. almost always).
  std::optional<Iter> match(std::uint64_t comm, int source, int tag) {
    if (messages_.empty()) return std::nullopt;
    return match_slow(comm, source, tag);
  }
  // Deliver it into (buf, count, type); fills status; erases it.
  int deliver(Iter m, void* buf, int count, MPI_Datatype type, MPI_Status* status);
  // A nonblocking receive satisfied from channel state: an already complete
  // request, tracked in requests (counted: the message was counted when
  // drained) so that a cut before the app waits for it can save and
  // restore it.
  int deliver_as_request(Iter m, ReqRec rec, RequestTable& requests, MPI_Request* request);
  static void fill_status(const ChannelMsg& m, MPI_Status* status);
  std::size_t size() const { return messages_.size(); }
  const std::deque<ChannelMsg>& messages() const { return messages_; }
  // Restart: a message of the saved channel state, in delivery order.
  void append(ChannelMsg m) { messages_.push_back(std::move(m)); }
  // Restart: a message a rolled-back call had received, before the rest.
  void prepend(ChannelMsg m) { messages_.push_front(std::move(m)); }
  // The message a completed receive of the app got into (buf, type),
  // packed: to deliver it again to the call re-issued after a restart (the
  // blocking call cut after its receive completed, BlockingCall; a compound
  // call rolled back, CompoundCall). Throws Error if it is not a whole
  // number of elements of type.
  static ChannelMsg received_message(std::uint64_t comm, const RecvStatus& status, const void* buf,
                                     MPI_Datatype type);

  // --- at a cut ----------------------------------------------------------
  // Drains one message waiting on c (received as MPI_BYTE, counted); false
  // if none is there now.
  bool drain_one(CommRec& c);

  // --- messages matched by MPI_Mprobe/MPI_Improbe ------------------------
  // The app matched drained message m: it leaves channel state and is held
  // under a fake handle, returned.
  MPI_Message hold(Iter m);
  // MPI_Mrecv/Imrecv of a held drained message: back at the front of
  // channel state, to be delivered; none if `message` is a real one.
  std::optional<Iter> unhold(MPI_Message message);
  // The app matched (MPI_Improbe) or received (MPI_Mrecv/Imrecv) a real
  // message.
  void matched_real() { ++outstanding_; }
  void received_real() { --outstanding_; }
  // The app holds a matched message (real or from channel state): a cut now
  // could not capture it, so this rank is not ready for a cut, nor runs one.
  bool holds_matched_message() const { return outstanding_ > 0 || !held_.empty(); }

  // Counters (pyckpt_mpi_get_stats).
  std::uint64_t sent() const { return sent_; }
  std::uint64_t received() const { return received_; }
  std::uint64_t drained() const { return drained_; }
  std::uint64_t replayed() const { return replayed_; }

 private:
  std::optional<Iter> match_slow(std::uint64_t comm, int source, int tag);

  std::deque<ChannelMsg> messages_;
  int outstanding_ = 0;  // matched by Mprobe/Improbe, not yet received
  // Drained messages matched by MPI_Mprobe/MPI_Improbe, under fake handles
  // that are non-canonical addresses (never a real Open MPI message).
  std::unordered_map<MPI_Message, ChannelMsg> held_;
  std::uint64_t next_fake_message_ = 1;
  std::uint64_t sent_ = 0, received_ = 0, drained_ = 0, replayed_ = 0;
};

}  // namespace pyckpt::mpi
