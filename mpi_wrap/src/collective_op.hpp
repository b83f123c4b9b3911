// The operation a blocking collective of the application drives in its
// progress loop (Coordinator::collective, synchronize): MPI's nonblocking
// form of the call, or, for a barrier and a small Allreduce on an
// intracommunicator, the library's own schedule of point-to-point messages
// on the communicator's shadow (CommRec::shadow).
//
// Why a schedule of its own: the loop must serve the protocol while the
// rank waits (doc/mpi.md, "Collectives across a cut"), so the collective
// cannot be MPI's blocking call; and Open MPI's nonblocking forms (libnbc)
// build a schedule per call and advance it one round per progress pass:
// at 2 ranks an Ibarrier took 1.4x a Barrier and an Iallreduce of 8 B 2.1x
// an Allreduce, where Isend/Irecv rounds on a private communicator take
// 0.93x (benchmarks/README.md). The schedules are the textbook ones MPI's
// tuned component uses for small messages: a dissemination barrier, and
// recursive doubling for Allreduce (the ranks beyond the largest power of
// two fold their data into a partner first and get the result from it).
// Both complete on no member before every member entered them, as a
// synchronizing collective must; a rank cut while waiting in one goes on
// with it after the cut (its messages are on the shadow, which no drain
// counts), and a restarted job makes new shadows and runs it again.
#pragma once

#include "comm_table.hpp"

#include <mpi.h>

#include <array>
#include <cstddef>

namespace pyckpt::mpi {

class CollectiveOp {
 public:
  // The largest Allreduce (count x extent) run on the shadow; above it,
  // MPI's own algorithms (pipelined, bandwidth-bound) are as fast through
  // their nonblocking form (1.07x at 64 KiB).
  static constexpr std::size_t kMaxAllreduceBytes = 4096;

  CollectiveOp() = default;
  CollectiveOp(const CollectiveOp&) = delete;
  CollectiveOp& operator=(const CollectiveOp&) = delete;
  // An operation left unfinished (checkpoints went off while the rank
  // waited in a barrier, Coordinator::switch_off): its receives are
  // cancelled and its sends released; a nonblocking collective of MPI is
  // left pending (MPI cannot cancel one).
  ~CollectiveOp();

  // MPI's nonblocking form: post(&request) posts it. MPI's code.
  template <typename Post>
  int start_nonblocking(Post post) {
    const int rc = post(&reqs_[0]);
    nreqs_ = rc == MPI_SUCCESS ? 1 : 0;
    return rc;
  }
  // A barrier on c: on its shadow, or MPI_Ibarrier where it has none (an
  // intercommunicator, a communicator of one rank).
  int start_barrier(const CommRec& c);
  // Whether an Allreduce with these arguments runs on c's shadow. Every
  // member answers alike: the count, datatype and operation must be the
  // same on all (MPI_Allreduce's rule), the communicator is the same one,
  // and in place is all or none. MPI_SUM, MPI_PROD, MPI_MIN or MPI_MAX on
  // an integer or floating-point type of C (contiguous, the operation valid
  // for it and commutative: recursive doubling combines in another order on
  // each rank), at most kMaxAllreduceBytes. Anything else, arguments MPI
  // would refuse included, goes to MPI, which reports the error as without
  // the library.
  static bool runs_on_shadow(const CommRec& c, const void* send, const void* recv, int count, MPI_Datatype type,
                             MPI_Op op);
  // Requires runs_on_shadow. send may be MPI_IN_PLACE: the result is then
  // accumulated aside and written to recv only once the operation completed
  // here, i.e. once every member entered it, so that in place too it is a
  // synchronizing collective (a rank cut before it holds its input as it
  // was). MPI's code.
  int start_allreduce(const CommRec& c, const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op);

  // Advances the operation without blocking: *done once it completed
  // here. MPI's code.
  int test(int* done);

 private:
  // One round of a schedule: a message to a peer and/or from a peer;
  // reduce: combine what came in (into incoming_) with the accumulator.
  struct Round {
    int to = -1, from = -1;
    bool reduce = false;
  };
  static constexpr int kTagBarrier = 1, kTagAllreduce = 2;
  static constexpr int kMaxRounds = 2 + 31;  // fold in, log2 of an int's range, fold out

  void add(Round r) { rounds_[static_cast<std::size_t>(nrounds_++)] = r; }
  int post(const Round& r);

  // The requests of the round in flight (or of MPI's nonblocking form):
  // [0] the send, [1] the receive of a round.
  std::array<MPI_Request, 2> reqs_{MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  int nreqs_ = 0;
  bool on_shadow_ = false;
  MPI_Comm shadow_ = MPI_COMM_NULL;
  int tag_ = 0;
  std::array<Round, kMaxRounds> rounds_{};
  int nrounds_ = 0, next_ = 0;
  // Allreduce: the accumulator (the receive buffer, or accumulated_ in
  // place), where the result goes, and what a round receives to combine
  // with the accumulator.
  void* acc_ = nullptr;
  void* result_ = nullptr;
  std::size_t bytes_ = 0;
  int count_ = 0;
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
  MPI_Op op_ = MPI_OP_NULL;
  alignas(std::max_align_t) std::array<std::byte, kMaxAllreduceBytes> incoming_;
  alignas(std::max_align_t) std::array<std::byte, kMaxAllreduceBytes> accumulated_;
};

}  // namespace pyckpt::mpi
