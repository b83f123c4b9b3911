// The operation a blocking collective of the application drives in its
// progress loop (Coordinator::collective, synchronize): MPI's nonblocking
// form of the call, or, for a barrier, a small Allreduce or a small Bcast
// on an intracommunicator, the library's own schedule of point-to-point
// messages on the communicator's shadow (CommRec::shadow).
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
// two fold their data into a partner first and get the result from it);
// a Bcast is the dissemination barrier carrying the data. All complete on
// no member before every member entered them, as a synchronizing
// collective must; a rank cut while waiting in one goes on
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
  // The largest Allreduce or Bcast (count x size) run on the shadow. Above
  // it, MPI's own algorithms (pipelined, bandwidth-bound) are as fast
  // through their nonblocking form (1.07x at 64 KiB).
  static constexpr std::size_t kMaxShadowBytes = 4096;

  CollectiveOp() = default;
  CollectiveOp(const CollectiveOp&) = delete;
  CollectiveOp& operator=(const CollectiveOp&) = delete;
  // An operation left unfinished (checkpoints went off while the rank
  // waited in a barrier, Coordinator::switch_off): its receive is cancelled
  // and its send released; a nonblocking collective of MPI is left pending
  // (MPI cannot cancel one).
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

  // Whether a collective with these arguments runs on c's shadow. Every
  // member answers alike, from arguments MPI requires to agree (and the
  // same communicator); anything else, arguments MPI would refuse included,
  // goes to MPI, which reports the error as without the library.
  //   Allreduce: the count, datatype and operation are the same on all
  //   members, in place is all or none. MPI_SUM, MPI_PROD, MPI_MIN or
  //   MPI_MAX (valid for the type, and commutative: recursive doubling
  //   combines the ranks' data in another order than rank order) on an
  //   integer or floating-point type of C (contiguous), at most
  //   kMaxShadowBytes.
  static bool allreduce_on_shadow(const CommRec& c, const void* send, const void* recv, int count,
                                  MPI_Datatype type, MPI_Op op);
  //   Bcast: the root, and the type signature (so its size in bytes; count
  //   and datatype may differ between members) are the same on all; at
  //   most kMaxShadowBytes, any datatype (the messages use each rank's own).
  static bool bcast_on_shadow(const CommRec& c, int count, MPI_Datatype type, int root);
  // Require *_on_shadow. Allreduce: send may be MPI_IN_PLACE; the result is
  // then accumulated aside and written to recv only once the operation
  // completed here, i.e. once every member entered it, so that in place
  // too it is a synchronizing collective (a rank cut before it holds its
  // input as it was). MPI's code.
  int start_allreduce(const CommRec& c, const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op);
  int start_bcast(const CommRec& c, void* buf, int count, MPI_Datatype type, int root);

  // Advances the operation without blocking: *done once it completed
  // here. MPI's code; on the shadow, an error also runs the error handler
  // of the application's communicator, as MPI's collective would.
  int test(int* done);

 private:
  // One round of a schedule: a message to a peer and/or from a peer, with
  // the data (data_out/data_in) or empty; reduce: what came in (into
  // incoming_) is combined into the data.
  struct Round {
    int to = -1, from = -1;
    bool data_out = false, data_in = false, reduce = false;
  };
  static constexpr int kTagBarrier = 1, kTagAllreduce = 2, kTagBcast = 3;
  static constexpr int kMaxRounds = 2 + 31;  // fold in, log2 of an int's range, fold out

  void use_shadow(const CommRec& c, int tag);
  void add(Round r) { rounds_[static_cast<std::size_t>(nrounds_++)] = r; }
  int post(const Round& r);
  int combine(int from);
  int advance(int* done);

  // The requests of the round in flight (or of MPI's nonblocking form):
  // [0] the send, [1] the receive of a round.
  std::array<MPI_Request, 2> reqs_{MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  int nreqs_ = 0;
  MPI_Comm shadow_ = MPI_COMM_NULL;  // on the shadow: its communicator
  MPI_Comm app_ = MPI_COMM_NULL;     // and the application's
  int rank_ = 0, tag_ = 0;
  std::array<Round, kMaxRounds> rounds_;
  int nrounds_ = 0, next_ = 0;
  // What the messages carry: the Bcast buffer, or the Allreduce's
  // accumulator (its receive buffer, or accumulated_ in place, then copied
  // to result_ at the end); what a round receives to combine with it.
  void* data_ = nullptr;
  int count_ = 0;
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
  MPI_Op op_ = MPI_OP_NULL;
  void* result_ = nullptr;
  std::size_t bytes_ = 0;
  alignas(std::max_align_t) std::array<std::byte, kMaxShadowBytes> incoming_;
  alignas(std::max_align_t) std::array<std::byte, kMaxShadowBytes> accumulated_;
};

}  // namespace pyckpt::mpi
