// Error plumbing: MPI return codes checked into exceptions, the per-thread
// last error of the C ABI.
#include "error.hpp"

namespace pyckpt::mpi {

namespace {
thread_local std::string last_error;
}

void set_last_error(const std::string& msg) { last_error = msg; }
const char* last_error_cstr() { return last_error.c_str(); }

std::string mpi_error_text(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  PMPI_Error_string(rc, text, &len);
  return std::string(text, static_cast<std::size_t>(len));
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  throw Error(PYCKPT_MPI_EMPI, std::string("pyckpt_mpi: ") + what + " failed: " + mpi_error_text(rc), rc);
}

}  // namespace pyckpt::mpi
