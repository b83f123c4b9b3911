// Which MPI calls are the application's: a per-thread depth counter that the
// library raises around its own MPI traffic (protocol, callbacks, hdf5_io
// writing a checkpoint, pyckpt_mpi_internal_begin/end).
#pragma once

namespace pyckpt::mpi {

// While > 0 on a thread, its MPI calls pass straight through: the library's
// own protocol traffic, callbacks, and hdf5_io writing a checkpoint.
// initial-exec: read on every intercepted call; the default model for a
// shared library costs a __tls_get_addr call per access. The library is
// preloaded or linked, so its TLS is in the static block (a dlopen would use
// glibc's static TLS surplus, which an int fits in).
[[gnu::tls_model("initial-exec")]] inline thread_local int internal_depth = 0;
class InternalScope {
 public:
  InternalScope() { ++internal_depth; }
  ~InternalScope() { --internal_depth; }
  InternalScope(const InternalScope&) = delete;
  InternalScope& operator=(const InternalScope&) = delete;
};

}  // namespace pyckpt::mpi
