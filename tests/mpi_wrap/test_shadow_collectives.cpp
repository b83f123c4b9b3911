// The small collectives the interposer runs as its own point-to-point
// schedules on a communicator's shadow (mpi_wrap/src/collective_op.hpp):
// Barrier, Allreduce of <= 4 KiB (SUM/PROD/MIN/MAX on C numeric types, in
// place too), Bcast of <= 4 KiB. Their results must be MPI's, on every
// member, on communicators of every size (run at 2, 3 and 5 ranks: the
// recursive doubling folds the ranks beyond a power of two), on both sides
// of the 4 KiB limit; every member must get the same bits; a Bcast whose
// members describe the same signature with different datatypes (which MPI
// allows) must not make them take different paths (that would hang).
#include "check.hpp"

#include <pyckpt/mpi/pyckpt_mpi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

int rank_of(MPI_Comm c) {
  int r = 0;
  MPI_Comm_rank(c, &r);
  return r;
}
int size_of(MPI_Comm c) {
  int n = 0;
  MPI_Comm_size(c, &n);
  return n;
}

// Integer Allreduce of every operation the shadow takes, out of place and in
// place, against the value computed locally; n elements (n * 8 bytes).
void check_allreduce_int(MPI_Comm c, int n) {
  const int r = rank_of(c), size = size_of(c);
  std::vector<std::int64_t> in(static_cast<std::size_t>(n)), out(in.size());
  for (int i = 0; i < n; ++i) in[static_cast<std::size_t>(i)] = (i % 5) + r + 1;
  const MPI_Op ops[] = {MPI_SUM, MPI_PROD, MPI_MIN, MPI_MAX};
  for (MPI_Op op : ops) {
    for (const bool in_place : {false, true}) {
      if (in_place) {
        out = in;
        CHECK(MPI_Allreduce(MPI_IN_PLACE, out.data(), n, MPI_INT64_T, op, c) == MPI_SUCCESS);
      } else {
        CHECK(MPI_Allreduce(in.data(), out.data(), n, MPI_INT64_T, op, c) == MPI_SUCCESS);
      }
      for (int i = 0; i < n; ++i) {
        std::int64_t want = op == MPI_PROD ? 1 : op == MPI_SUM ? 0 : (i % 5) + 1;
        for (int q = 0; q < size; ++q) {
          const std::int64_t v = (i % 5) + q + 1;
          if (op == MPI_SUM) want += v;
          if (op == MPI_PROD) want *= v;
          if (op == MPI_MIN) want = std::min(want, v);
          if (op == MPI_MAX) want = std::max(want, v);
        }
        CHECK(out[static_cast<std::size_t>(i)] == want);
      }
    }
  }
}

// Every member ends with the same bits, also where the operation does not
// commute exactly (MIN with a NaN from one rank).
void check_same_bits(MPI_Comm c) {
  const int r = rank_of(c), size = size_of(c);
  std::vector<double> in(64), out(64);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = 1.0 / static_cast<double>(3 + i + 7 * r);
  if (r == size - 1) in[5] = std::numeric_limits<double>::quiet_NaN();
  for (MPI_Op op : {MPI_SUM, MPI_MIN, MPI_MAX}) {
    CHECK(MPI_Allreduce(in.data(), out.data(), 64, MPI_DOUBLE, op, c) == MPI_SUCCESS);
    std::vector<double> all(64 * static_cast<std::size_t>(size));
    CHECK(MPI_Allgather(out.data(), 64, MPI_DOUBLE, all.data(), 64, MPI_DOUBLE, c) == MPI_SUCCESS);
    for (int q = 1; q < size; ++q) CHECK(std::memcmp(all.data(), all.data() + 64 * q, 64 * sizeof(double)) == 0);
  }
}

// Bcast from every root: the root sends n doubles as MPI_DOUBLE, the others
// receive them as n/2 elements of a derived type of 2 doubles spread with a
// gap (same signature). n * 8 bytes.
void check_bcast(MPI_Comm c, int n) {
  const int r = rank_of(c), size = size_of(c);
  MPI_Datatype pair;  // 2 doubles, then a gap of one
  MPI_Datatype two;
  MPI_Type_contiguous(2, MPI_DOUBLE, &two);
  MPI_Type_create_resized(two, 0, 3 * sizeof(double), &pair);
  MPI_Type_commit(&pair);
  for (int root = 0; root < size; ++root) {
    std::vector<double> buf(static_cast<std::size_t>(n) * 3 / 2 + 2, -1.0);
    if (r == root) {
      for (int i = 0; i < n; ++i) buf[static_cast<std::size_t>(i)] = 100.0 * root + i;
      CHECK(MPI_Bcast(buf.data(), n, MPI_DOUBLE, root, c) == MPI_SUCCESS);
    } else {
      CHECK(MPI_Bcast(buf.data(), n / 2, pair, root, c) == MPI_SUCCESS);
      for (int i = 0; i < n; ++i) CHECK(buf[static_cast<std::size_t>(i / 2 * 3 + i % 2)] == 100.0 * root + i);
      for (int k = 0; k < n / 2; ++k) CHECK(buf[static_cast<std::size_t>(3 * k + 2)] == -1.0);  // the gaps
    }
  }
  MPI_Type_free(&pair);
  MPI_Type_free(&two);
}

void check_communicator(MPI_Comm c) {
  for (int i = 0; i < 100; ++i) CHECK(MPI_Barrier(c) == MPI_SUCCESS);
  check_allreduce_int(c, 1);
  check_allreduce_int(c, 512);  // 4 KiB: the largest on the shadow
  check_allreduce_int(c, 513);  // MPI's Iallreduce
  check_same_bits(c);
  check_bcast(c, 2);
  check_bcast(c, 512);
  check_bcast(c, 514);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int rank = rank_of(MPI_COMM_WORLD);
  pyckpt_mpi_stats before{}, after{};
  CHECK(pyckpt_mpi_get_stats(&before) == 0);
  check_communicator(MPI_COMM_WORLD);
  MPI_Comm half, dup;
  MPI_Comm_split(MPI_COMM_WORLD, rank % 2, -rank, &half);  // reversed order: ranks differ from world's
  check_communicator(half);
  MPI_Comm_dup(half, &dup);
  check_communicator(dup);
  MPI_Comm_free(&dup);
  MPI_Comm_free(&half);
  CHECK(MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS);
  // Each of them is an application collective the cut counts.
  CHECK(pyckpt_mpi_get_stats(&after) == 0);
  CHECK(after.collectives > before.collectives + 3 * 100);
  MPI_Finalize();
  if (rank == 0) std::printf("shadow collectives: results as MPI's\n");
  return 0;
}
