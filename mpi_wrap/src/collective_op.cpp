// A blocking collective's operation: MPI's nonblocking form, or the
// library's point-to-point schedule on the communicator's shadow.
#include "collective_op.hpp"

#include <cstring>

namespace pyckpt::mpi {

CollectiveOp::~CollectiveOp() {
  if (!on_shadow_) return;
  if (reqs_[1] != MPI_REQUEST_NULL) {
    PMPI_Cancel(&reqs_[1]);
    PMPI_Request_free(&reqs_[1]);
  }
  if (reqs_[0] != MPI_REQUEST_NULL) PMPI_Request_free(&reqs_[0]);
}

// Dissemination: in round k each rank sends to rank + 2^k and receives from
// rank - 2^k; after ceil(log2 n) rounds every rank has heard, directly or
// not, from every other, so none completes before all entered. The 2^k are
// distinct modulo n, so two ranks exchange at most one message per barrier
// each way, and consecutive barriers' messages keep their order.
int CollectiveOp::start_barrier(const CommRec& c) {
  if (c.shadow.get() == MPI_COMM_NULL) return start_nonblocking([&](MPI_Request* r) { return PMPI_Ibarrier(c.real, r); });
  on_shadow_ = true;
  shadow_ = c.shadow.get();
  tag_ = kTagBarrier;
  for (int k = 1; k < c.size; k <<= 1) add({(c.rank + k) % c.size, (c.rank - k + c.size) % c.size, false});
  return MPI_SUCCESS;
}

bool CollectiveOp::runs_on_shadow(const CommRec& c, const void* send, const void* recv, int count,
                                  MPI_Datatype type, MPI_Op op) {
  if (c.shadow.get() == MPI_COMM_NULL || count <= 0 || recv == nullptr || send == recv) return false;
  if (op != MPI_SUM && op != MPI_PROD && op != MPI_MIN && op != MPI_MAX) return false;
  // Open MPI's handles are addresses of its globals: known at run time.
  static const MPI_Datatype numeric[] = {
      MPI_DOUBLE,   MPI_FLOAT,         MPI_LONG,     MPI_INT,      MPI_LONG_LONG, MPI_INT64_T,
      MPI_INT32_T,  MPI_UNSIGNED_LONG, MPI_UNSIGNED, MPI_UINT64_T, MPI_UINT32_T,  MPI_UNSIGNED_LONG_LONG,
      MPI_SHORT,    MPI_UNSIGNED_SHORT, MPI_INT16_T, MPI_UINT16_T, MPI_SIGNED_CHAR, MPI_UNSIGNED_CHAR,
      MPI_INT8_T,   MPI_UINT8_T,       MPI_LONG_DOUBLE};
  bool known = false;
  for (MPI_Datatype t : numeric) known |= t == type;
  if (!known) return false;
  int size = 0;
  PMPI_Type_size(type, &size);
  return static_cast<std::size_t>(count) <= kMaxAllreduceBytes / static_cast<std::size_t>(size);
}

// Recursive doubling over the largest power of two p <= n ranks: in round
// k a rank exchanges its partial result with the rank whose index differs
// in bit k and combines the two (in another order on the two sides: the
// operation commutes). The first 2(n - p) ranks pair up first: the even one
// of each pair hands its data to the odd one, which takes part for both,
// and gets the result from it at the end (as MPI's tuned component does).
int CollectiveOp::start_allreduce(const CommRec& c, const void* send, void* recv, int count, MPI_Datatype type,
                                  MPI_Op op) {
  on_shadow_ = true;
  shadow_ = c.shadow.get();
  tag_ = kTagAllreduce;
  count_ = count;
  type_ = type;
  op_ = op;
  int size = 0;  // the size is the extent: a contiguous type of C
  PMPI_Type_size(type, &size);
  bytes_ = static_cast<std::size_t>(count) * static_cast<std::size_t>(size);
  result_ = recv;
  acc_ = send == MPI_IN_PLACE ? static_cast<void*>(accumulated_.data()) : recv;
  std::memcpy(acc_, send == MPI_IN_PLACE ? recv : send, bytes_);
  int p = 1;
  while (p * 2 <= c.size) p *= 2;
  const int extra = c.size - p, r = c.rank;
  const bool folded = r < 2 * extra && r % 2 == 0;  // hands its data to r + 1
  if (folded) {
    add({r + 1, -1, false});
    add({-1, r + 1, false});  // the result, into the accumulator
    return MPI_SUCCESS;
  }
  if (r < 2 * extra) add({-1, r - 1, true});
  const int index = r < 2 * extra ? r / 2 : r - extra;
  for (int mask = 1; mask < p; mask <<= 1) {
    const int partner = index ^ mask;
    const int peer = partner < extra ? partner * 2 + 1 : partner + extra;
    add({peer, peer, true});
  }
  if (r < 2 * extra) add({r - 1, -1, false});
  return MPI_SUCCESS;
}

int CollectiveOp::post(const Round& round) {
  // An Allreduce round that only receives (the folded rank's result) takes
  // it straight into the accumulator; one that combines receives aside.
  void* into = round.reduce ? static_cast<void*>(incoming_.data()) : acc_;
  const int count = acc_ ? count_ : 0;
  const MPI_Datatype type = acc_ ? type_ : MPI_BYTE;
  if (round.from >= 0) {
    const int rc = PMPI_Irecv(into, count, type, round.from, tag_, shadow_, &reqs_[1]);
    if (rc != MPI_SUCCESS) return rc;
  }
  if (round.to >= 0) {
    const int rc = PMPI_Isend(acc_, count, type, round.to, tag_, shadow_, &reqs_[0]);
    if (rc != MPI_SUCCESS) return rc;
  }
  nreqs_ = 2;
  return MPI_SUCCESS;
}

int CollectiveOp::test(int* done) {
  for (;;) {
    if (nreqs_ > 0) {
      // Null requests (a round without a send or a receive) count as done.
      int flag = 0;
      const int rc = PMPI_Testall(nreqs_, reqs_.data(), &flag, MPI_STATUSES_IGNORE);
      if (rc != MPI_SUCCESS) return rc;
      if (!flag) {
        *done = 0;
        return MPI_SUCCESS;
      }
      nreqs_ = 0;
      if (next_ > 0 && rounds_[static_cast<std::size_t>(next_ - 1)].reduce) {
        const int rrc = PMPI_Reduce_local(incoming_.data(), acc_, count_, type_, op_);
        if (rrc != MPI_SUCCESS) return rrc;
      }
    }
    if (next_ == nrounds_) {
      if (acc_ != result_) std::memcpy(result_, acc_, bytes_);
      *done = 1;
      return MPI_SUCCESS;
    }
    const int rc = post(rounds_[static_cast<std::size_t>(next_++)]);
    if (rc != MPI_SUCCESS) return rc;
  }
}

}  // namespace pyckpt::mpi
