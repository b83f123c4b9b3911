// Owning wrappers for the MPI groups and communicators the library makes
// itself (rank translation, lineage replay at restart, its private control
// communicators): freed on scope exit, also when a check throws in between.
// Handles of the application are never owned here.
#pragma once

#include <mpi.h>

#include <utility>

namespace pyckpt::mpi {

// Traits: MPI_GROUP_NULL / MPI_COMM_NULL are addresses of Open MPI globals,
// not constant expressions, so they come from functions.
struct GroupTraits {
  using Handle = MPI_Group;
  static Handle null() { return MPI_GROUP_NULL; }
  static void free(Handle* h) { PMPI_Group_free(h); }
};
struct CommTraits {
  using Handle = MPI_Comm;
  static Handle null() { return MPI_COMM_NULL; }
  static void free(Handle* h) { PMPI_Comm_free(h); }
};

template <typename Traits>
class Owned {
 public:
  using Handle = typename Traits::Handle;
  Owned() = default;
  explicit Owned(Handle h) : h_(h) {}
  ~Owned() { reset(); }
  Owned(Owned&& o) noexcept : h_(o.release()) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = o.release();
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;

  Handle get() const { return h_; }
  // For the MPI call that makes the handle; frees a previous one first.
  Handle* out() {
    reset();
    return &h_;
  }
  // Ownership passes to the caller (e.g. a communicator handed to the app).
  Handle release() { return std::exchange(h_, Traits::null()); }
  void reset() {
    if (h_ != Traits::null()) Traits::free(&h_);
    h_ = Traits::null();
  }

 private:
  Handle h_ = Traits::null();
};

using OwnedGroup = Owned<GroupTraits>;
using OwnedComm = Owned<CommTraits>;

}  // namespace pyckpt::mpi
