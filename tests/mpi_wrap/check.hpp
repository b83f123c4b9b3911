// Minimal assertion for MPI test programs: a failed check names the rank,
// file and line, and aborts the whole job so mpirun (and CTest) fail.
#pragma once
#include <mpi.h>
#include <cstdio>

#define CHECK(cond)                                                                                  \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      int r_ = -1;                                                                                   \
      MPI_Comm_rank(MPI_COMM_WORLD, &r_);                                                            \
      std::fprintf(stderr, "rank %d: CHECK failed at %s:%d: %s\n", r_, __FILE__, __LINE__, #cond);  \
      std::fflush(stderr);                                                                           \
      MPI_Abort(MPI_COMM_WORLD, 1);                                                                  \
    }                                                                                                \
  } while (0)
