// Owning wrappers for the MPI groups, communicators, infos, datatypes and
// error handlers the library makes or is handed (rank translation, lineage
// replay at restart, its private control communicators, a file's view or a
// window's error handler read at a cut): freed on
// scope exit, also when a check throws in between. Handles of the
// application are never owned here.
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

struct InfoTraits {
  using Handle = MPI_Info;
  static Handle null() { return MPI_INFO_NULL; }
  static void free(Handle* h) { PMPI_Info_free(h); }
};
// An error handler MPI_Win_get_errhandler hands out: a reference to free.
struct ErrhandlerTraits {
  using Handle = MPI_Errhandler;
  static Handle null() { return MPI_ERRHANDLER_NULL; }
  static void free(Handle* h) { PMPI_Errhandler_free(h); }
};
// Datatypes MPI hands out (MPI_Type_get_contents, MPI_File_get_view) or the
// library rebuilds: a derived one is a handle of its own to free, a
// predefined one must not be freed.
struct TypeTraits {
  using Handle = MPI_Datatype;
  static Handle null() { return MPI_DATATYPE_NULL; }
  static bool predefined(Handle h) {
    int ni, na, nd, combiner = MPI_COMBINER_NAMED;
    PMPI_Type_get_envelope(h, &ni, &na, &nd, &combiner);
    // MPI_Type_create_f90_*'s results are predefined too: never freed.
    return combiner == MPI_COMBINER_NAMED || combiner == MPI_COMBINER_F90_REAL ||
           combiner == MPI_COMBINER_F90_COMPLEX || combiner == MPI_COMBINER_F90_INTEGER;
  }
  static void free(Handle* h) {
    if (!predefined(*h)) PMPI_Type_free(h);
  }
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
using OwnedInfo = Owned<InfoTraits>;
using OwnedType = Owned<TypeTraits>;
using OwnedErrhandler = Owned<ErrhandlerTraits>;

}  // namespace pyckpt::mpi
