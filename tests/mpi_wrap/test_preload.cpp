// Issue 2 acceptance: libpyckpt_mpi.so, loaded only through LD_PRELOAD (this
// program does not link it), interposes MPI calls and passes them through.
// The interposer's counters are read through dlsym: without the preload the
// symbol is missing and the test fails; with it, the counts must match the
// traffic below exactly.
#include "check.hpp"

#include <pyckpt/mpi/pyckpt_mpi.h>

#include <dlfcn.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CHECK(size >= 2);
  auto get_stats = reinterpret_cast<decltype(&pyckpt_mpi_get_stats)>(dlsym(RTLD_DEFAULT, "pyckpt_mpi_get_stats"));
  CHECK(get_stats != nullptr);  // not preloaded
  pyckpt_mpi_stats before{}, after{};
  CHECK(get_stats(&before) == 0);

  // A ring: every rank sends one message right and receives one from left.
  const int right = (rank + 1) % size, left = (rank + size - 1) % size;
  int out = rank * 10, in = -1;
  MPI_Sendrecv(&out, 1, MPI_INT, right, 7, &in, 1, MPI_INT, left, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  CHECK(in == left * 10);  // passed through intact
  if (rank == 0) MPI_Send(&out, 1, MPI_INT, 1, 8, MPI_COMM_WORLD);
  if (rank == 1) {
    MPI_Recv(&in, 1, MPI_INT, 0, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    CHECK(in == 0);
  }
  int sum = 0;
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  CHECK(sum == size * (size - 1) / 2);

  CHECK(get_stats(&after) == 0);
  const unsigned extra = rank < 2 ? 1 : 0;
  CHECK(after.sent - before.sent == 1 + (rank == 0 ? extra : 0));
  CHECK(after.received - before.received == 1 + (rank == 1 ? extra : 0));
  CHECK(after.collectives - before.collectives == 1);
  CHECK(after.intercepted - before.intercepted == 2 + extra);  // Sendrecv, Send/Recv, Allreduce
  MPI_Finalize();
  if (rank == 0) std::printf("preload: interposer active, counts match\n");
  return 0;
}
