// What the layer above registered (pyckpt_mpi_set_init_callback,
// pyckpt_mpi_set_capture_callbacks), possibly before MPI_Init: plain
// globals, read by MPI_Init* (init), by the cut (capture, write) and by the
// safe points (progress). The
// wake callback belongs to the waker (waker.hpp).
#pragma once

#include <pyckpt/mpi/pyckpt_mpi.h>

namespace pyckpt::mpi {

struct Callbacks {
  pyckpt_mpi_init_fn init = nullptr;
  void* init_user = nullptr;
  pyckpt_mpi_capture_fn capture = nullptr;
  pyckpt_mpi_write_fn write = nullptr;
  void* user = nullptr;  // of capture and write
  pyckpt_mpi_progress_fn progress = nullptr;  // armed while set (the coordinator clears it when done)
  void* progress_user = nullptr;
  pyckpt_mpi_site_fn site = nullptr;
  void* site_user = nullptr;
};
inline Callbacks callbacks;

}  // namespace pyckpt::mpi
