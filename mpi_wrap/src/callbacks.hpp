// What the layer above registered (pyckpt_mpi_set_init_callback,
// pyckpt_mpi_set_capture_callbacks), possibly before MPI_Init: plain
// globals, read by MPI_Init* (init), by the cut (capture, write), by
// messages (site) and by the safe points (progress). The wake callback
// belongs to the waker (waker.hpp).
#pragma once

#include <pyckpt/mpi/pyckpt_mpi.h>

#include <string>

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

// Where the application is in its own code (the layer above's site
// callback, e.g. "app.py:12"; empty without one), for the messages that
// name what the program did: a window's creation, an unsupported call.
inline std::string app_site() {
  if (!callbacks.site) return {};
  char site[512] = {};
  callbacks.site(site, sizeof site, callbacks.site_user);
  site[sizeof site - 1] = '\0';
  return site;
}

}  // namespace pyckpt::mpi
