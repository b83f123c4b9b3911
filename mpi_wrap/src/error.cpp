// Error plumbing: MPI return codes checked into exceptions, the per-thread
// last error of the C ABI.
#include "error.hpp"

namespace pyckpt::mpi {

namespace {
thread_local std::string last_error;
}

void set_last_error(const std::string& msg) { last_error = msg; }
const char* last_error_cstr() { return last_error.c_str(); }

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  PMPI_Error_string(rc, text, &len);
  throw Error(PYCKPT_MPI_EMPI, std::string("pyckpt_mpi: ") + what + " failed: " + std::string(text, len), rc);
}

}  // namespace pyckpt::mpi
