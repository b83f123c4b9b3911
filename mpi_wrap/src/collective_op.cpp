// A blocking collective's operation: MPI's nonblocking form, or the
// library's point-to-point schedule on the communicator's shadow.
#include "collective_op.hpp"

#include <algorithm>
#include <cstring>

namespace pyckpt::mpi {

CollectiveOp::~CollectiveOp() {
  if (shadow_ == MPI_COMM_NULL) return;
  if (reqs_[1] != MPI_REQUEST_NULL) {
    PMPI_Cancel(&reqs_[1]);
    PMPI_Request_free(&reqs_[1]);
  }
  if (reqs_[0] != MPI_REQUEST_NULL) PMPI_Request_free(&reqs_[0]);
}

void CollectiveOp::use_shadow(const CommRec& c, int tag) {
  shadow_ = c.shadow.get();
  app_ = c.real;
  rank_ = c.rank;
  tag_ = tag;
}

// Dissemination: in round k each rank sends to rank + 2^k and receives from
// rank - 2^k; after ceil(log2 n) rounds every rank has heard, directly or
// not, from every other, so none completes before all entered. The 2^k are
// distinct modulo n, so two ranks exchange at most one message per barrier
// each way, and consecutive barriers' messages keep their order.
int CollectiveOp::start_barrier(const CommRec& c) {
  if (c.shadow.get() == MPI_COMM_NULL) return start_nonblocking([&](MPI_Request* r) { return PMPI_Ibarrier(c.real, r); });
  use_shadow(c, kTagBarrier);
  for (int k = 1; k < c.size; k <<= 1) add({.to = (c.rank + k) % c.size, .from = (c.rank - k + c.size) % c.size});
  return MPI_SUCCESS;
}

bool CollectiveOp::allreduce_on_shadow(const CommRec& c, const void* send, const void* recv, int count,
                                       MPI_Datatype type, MPI_Op op) {
  if (c.shadow.get() == MPI_COMM_NULL || count <= 0 || recv == nullptr || send == recv) return false;
  if (op != MPI_SUM && op != MPI_PROD && op != MPI_MIN && op != MPI_MAX) return false;
  // Open MPI's handles are addresses of its globals: known at run time.
  static const MPI_Datatype numeric[] = {
      MPI_DOUBLE,    MPI_FLOAT,         MPI_LONG,           MPI_INT,          MPI_LONG_LONG,
      MPI_INT64_T,   MPI_INT32_T,       MPI_UNSIGNED_LONG,  MPI_UNSIGNED,     MPI_UINT64_T,
      MPI_UINT32_T,  MPI_UNSIGNED_LONG_LONG, MPI_SHORT,     MPI_UNSIGNED_SHORT, MPI_INT16_T,
      MPI_UINT16_T,  MPI_SIGNED_CHAR,   MPI_UNSIGNED_CHAR,  MPI_INT8_T,       MPI_UINT8_T,
      MPI_LONG_DOUBLE};
  if (std::find(std::begin(numeric), std::end(numeric), type) == std::end(numeric)) return false;
  int size = 0;
  PMPI_Type_size(type, &size);
  return static_cast<std::size_t>(count) <= kMaxShadowBytes / static_cast<std::size_t>(size);
}

// Recursive doubling over the largest power of two p <= n ranks: in round
// k a rank exchanges its partial result with the rank whose index differs
// in bit k and combines the two, the lower rank's operand first on both
// sides, so that both get the same bits (also where an operation does not
// commute exactly: MPI_MIN of a NaN). The first 2(n - p) ranks pair up
// first: the even one of each pair hands its data to the odd one, which
// takes part for both, and gets the result from it at the end (as MPI's
// tuned component does).
int CollectiveOp::start_allreduce(const CommRec& c, const void* send, void* recv, int count, MPI_Datatype type,
                                  MPI_Op op) {
  use_shadow(c, kTagAllreduce);
  count_ = count;
  type_ = type;
  op_ = op;
  int size = 0;  // the size is the extent: a contiguous type of C
  PMPI_Type_size(type, &size);
  bytes_ = static_cast<std::size_t>(count) * static_cast<std::size_t>(size);
  result_ = recv;
  data_ = send == MPI_IN_PLACE ? static_cast<void*>(accumulated_.data()) : recv;
  std::memcpy(data_, send == MPI_IN_PLACE ? recv : send, bytes_);
  int p = 1;
  while (p * 2 <= c.size) p *= 2;
  const int extra = c.size - p, r = c.rank;
  if (r < 2 * extra && r % 2 == 0) {  // hands its data to r + 1, gets the result back
    add({.to = r + 1, .data_out = true});
    add({.from = r + 1, .data_in = true});
    return MPI_SUCCESS;
  }
  if (r < 2 * extra) add({.from = r - 1, .data_in = true, .reduce = true});
  const int index = r < 2 * extra ? r / 2 : r - extra;
  for (int mask = 1; mask < p; mask <<= 1) {
    const int partner = index ^ mask;
    const int peer = partner < extra ? partner * 2 + 1 : partner + extra;
    add({.to = peer, .from = peer, .data_out = true, .data_in = true, .reduce = true});
  }
  if (r < 2 * extra) add({.to = r - 1, .data_out = true});
  return MPI_SUCCESS;
}

bool CollectiveOp::bcast_on_shadow(const CommRec& c, int count, MPI_Datatype type, int root) {
  if (c.shadow.get() == MPI_COMM_NULL || count <= 0 || type == MPI_DATATYPE_NULL || root < 0 || root >= c.size)
    return false;
  int size = 0;
  PMPI_Type_size(type, &size);
  return size > 0 && static_cast<std::size_t>(count) <= kMaxShadowBytes / static_cast<std::size_t>(size);
}

// The dissemination barrier, its messages carrying the data where the
// sender has it: counted from the root (v = rank - root mod n), the ranks
// v < 2^k hold it after round k, so in round k rank v sends it on to
// v + 2^k if v < 2^k (and v + 2^k < n: no wrap), and a rank with
// 2^k <= v < 2^(k+1) receives it; the other messages of the round are empty.
// Both sides know which without asking. Like the barrier, it completes on
// no member before all entered: a synchronizing Bcast.
int CollectiveOp::start_bcast(const CommRec& c, void* buf, int count, MPI_Datatype type, int root) {
  use_shadow(c, kTagBcast);
  data_ = buf;
  count_ = count;
  type_ = type;
  const int n = c.size, v = (c.rank - root + n) % n;
  for (int d = 1; d < n; d <<= 1)
    add({.to = (c.rank + d) % n,
         .from = (c.rank - d + n) % n,
         .data_out = v < d && v + d < n,
         .data_in = d <= v && v < 2 * d});
  return MPI_SUCCESS;
}

int CollectiveOp::post(const Round& round) {
  if (round.from >= 0) {
    // A combining round receives aside; the others into the data.
    void* into = round.reduce ? static_cast<void*>(incoming_.data()) : data_;
    const int rc = round.data_in ? PMPI_Irecv(into, count_, type_, round.from, tag_, shadow_, &reqs_[1])
                                 : PMPI_Irecv(nullptr, 0, MPI_BYTE, round.from, tag_, shadow_, &reqs_[1]);
    if (rc != MPI_SUCCESS) return rc;
  }
  if (round.to >= 0) {
    const int rc = round.data_out ? PMPI_Isend(data_, count_, type_, round.to, tag_, shadow_, &reqs_[0])
                                  : PMPI_Isend(nullptr, 0, MPI_BYTE, round.to, tag_, shadow_, &reqs_[0]);
    if (rc != MPI_SUCCESS) return rc;
  }
  nreqs_ = 2;
  return MPI_SUCCESS;
}

// The data of rank `from` (in incoming_) and this rank's, the lower rank's
// first: MPI_Reduce_local(in, inout) computes inout = in op inout.
int CollectiveOp::combine(int from) {
  if (from < rank_) return PMPI_Reduce_local(incoming_.data(), data_, count_, type_, op_);
  const int rc = PMPI_Reduce_local(data_, incoming_.data(), count_, type_, op_);
  if (rc == MPI_SUCCESS) std::memcpy(data_, incoming_.data(), bytes_);
  return rc;
}

int CollectiveOp::test(int* done) {
  const int rc = advance(done);
  // The shadow returns errors (MPI_ERRORS_RETURN): the app's handler on its
  // communicator runs, as for MPI's own collective.
  if (rc != MPI_SUCCESS && shadow_ != MPI_COMM_NULL) PMPI_Comm_call_errhandler(app_, rc);
  return rc;
}

int CollectiveOp::advance(int* done) {
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
        const int rrc = combine(rounds_[static_cast<std::size_t>(next_ - 1)].from);
        if (rrc != MPI_SUCCESS) return rrc;
      }
    }
    if (next_ == nrounds_) {
      if (result_ && result_ != data_) std::memcpy(result_, data_, bytes_);
      *done = 1;
      return MPI_SUCCESS;
    }
    const int rc = post(rounds_[static_cast<std::size_t>(next_++)]);
    if (rc != MPI_SUCCESS) return rc;
  }
}

}  // namespace pyckpt::mpi
