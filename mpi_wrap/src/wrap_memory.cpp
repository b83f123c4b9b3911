// MPI_Alloc_mem / MPI_Free_mem of the application, recorded (base -> size)
// so that the layer above can tell memory MPI allocated for the app (captured
// by content, allocated again with MPI_Alloc_mem at restart) from memory of
// any other origin that merely has an address (doc/heap.md, "Memory of
// mmap maps and MPI.Alloc_mem"). Neither call is a safe point: both are
// local and never wait.
#include "internal_scope.hpp"

#include <mpi.h>
#include <pyckpt/mpi/pyckpt_mpi.h>

#include <map>
#include <mutex>

using namespace pyckpt::mpi;

namespace {

// Blocks the app holds. Recorded from any thread (allocating memory does not
// take part in the protocol), hence the mutex.
std::mutex blocks_mutex;
std::map<const void*, MPI_Aint> blocks;

}  // namespace

extern "C" {

int MPI_Alloc_mem(MPI_Aint size, MPI_Info info, void* baseptr) {
  int rc = PMPI_Alloc_mem(size, info, baseptr);
  if (rc == MPI_SUCCESS && internal_depth == 0) {
    std::lock_guard lock(blocks_mutex);
    blocks[*static_cast<void**>(baseptr)] = size;
  }
  return rc;
}

int MPI_Free_mem(void* base) {
  int rc = PMPI_Free_mem(base);
  if (rc == MPI_SUCCESS) {
    std::lock_guard lock(blocks_mutex);
    blocks.erase(base);
  }
  return rc;
}

int pyckpt_mpi_alloc_mem_size(const void* base, MPI_Aint* size) {
  std::lock_guard lock(blocks_mutex);
  auto it = blocks.find(base);
  if (it == blocks.end()) return 0;
  *size = it->second;
  return 1;
}

}  // extern "C"
