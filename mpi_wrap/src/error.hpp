// Errors inside the library: exceptions that carry their PYCKPT_MPI_E* code
// (and, for a failed MPI call, the MPI error code) as numbers; the C ABI
// (capi.cpp) turns them into a return code plus pyckpt_mpi_last_error().
#pragma once

#include <pyckpt/mpi/pyckpt_mpi.h>

#include <mpi.h>

#include <stdexcept>
#include <string>

namespace pyckpt::mpi {

// Thrown inside the library; the C ABI turns it into an error code.
struct Error : std::runtime_error {
  int code;                     // PYCKPT_MPI_E*
  int mpi_error = MPI_SUCCESS;  // the failed MPI call's code (PYCKPT_MPI_EMPI)
  Error(int c, const std::string& what, int mpi = MPI_SUCCESS)
      : std::runtime_error(what), code(c), mpi_error(mpi) {}
};

// Throws Error(PYCKPT_MPI_EMPI) naming `what` if rc is not MPI_SUCCESS.
void check(int rc, const char* what);
// MPI's description of an error code.
std::string mpi_error_text(int rc);

// The message pyckpt_mpi_last_error() returns on this thread.
void set_last_error(const std::string& msg);
const char* last_error_cstr();

}  // namespace pyckpt::mpi
