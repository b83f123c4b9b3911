// Interposition of MPI-IO on the application's own files (doc/mpi.md,
// "Files"): MPI_File_open/close recorded in the FileTable, every collective
// file routine counted as a collective on the file's own communicator and
// entered by its members together, nonblocking file I/O tracked as
// requests (completed at a cut), the independent routines safe points.
// The real calls run as internal calls: an MPI-IO implementation built on
// the MPI API (ROMIO) makes MPI calls of its own, which are not the app's
// (a communicator it dups must not enter the app's lineage).
#include "open_files.hpp"
#include "runtime.hpp"

using namespace pyckpt::mpi;

namespace {

// What a routine does to the file's record beyond the data it moves.
enum Effect : unsigned {
  kNoEffect = 0,
  kSharedPointer = 1,  // moves the shared file pointer: the cut records it
  kBeginsSplit = 2,    // begins a split collective
  kEndsSplit = 4,      // ends it
  kWrites = 8,         // changes the file: it is made durable at the next cut
};
enum class Kind { Independent, Collective };

// One call of a wrapped routine on a file. A collective routine is counted
// on the file's communicator and entered by all members together, serving
// the protocol until they are (Coordinator::synchronize): a member blocked
// inside the real call could otherwise wait for one parked in the
// protocol, and the cut could fall between members that made the call and
// members that did not (doc/mpi.md). An independent routine is a safe
// point at its entry. request: a nonblocking routine's, tracked.
template <Kind kind, unsigned effects = kNoEffect, typename Call>
int file_call(MPI_File fh, const char* name, MPI_Request* request, Call call) {
  Runtime* rt = app_call();
  if (!rt) return call();
  FileRec* f = rt->files.find(fh);
  if (kind == Kind::Collective && f)
    rt->coordinator.synchronize(f->comm);
  else
    rt->coordinator.poll();
  if (f && (effects & kSharedPointer)) f->uses_shared_pointer = true;
  if (f && (effects & kWrites)) f->written_since_cut = true;
  int rc;
  {
    InternalScope internal;
    rc = call();
  }
  if (rc != MPI_SUCCESS || !f) return rc;
  if (effects & kBeginsSplit) f->open_split = name;
  if (effects & kEndsSplit) f->open_split = nullptr;
  if (request) rt->requests.add(*request, ReqRec{.comm = f->comm, .file = f->id});
  return rc;
}

// The record of a file the app's call (already counted) is about.
FileRec* app_file(MPI_File fh) {
  Runtime* rt = Runtime::get();
  return rt && internal_depth == 0 ? rt->files.find(fh) : nullptr;
}

// The file's own communicator is made first (Runtime::make_own_comm), then
// the open, on the app's communicator as the app asked.
int open_file(Runtime& rt, CommRec& parent, MPI_Comm comm, const char* filename, int amode, MPI_Info info,
              MPI_File* fh) {
  InternalScope internal;
  int rc = MPI_SUCCESS;
  CommRec* own = rt.make_own_comm(parent, comm, &rc);
  if (!own) return rc;
  rc = PMPI_File_open(comm, filename, amode, info, fh);
  if (rc == MPI_SUCCESS)
    rt.files.add(*own, *fh, filename, amode, FileTable::hints_of(info));
  else
    rt.comms.free(own->real);
  return rc;
}

}  // namespace

extern "C" {

// Opening is collective over comm, like communicator creation (and it
// makes one): entered together, and the rank is not ready for a cut until
// it is done.
// Every open and close in the process, the library's own too, is counted
// for the waker (open_files.hpp).
int MPI_File_open(MPI_Comm comm, const char* filename, int amode, MPI_Info info, MPI_File* fh) {
  Runtime* rt = app_call();
  CommRec* parent = rt ? rt->comms.find(comm) : nullptr;
  open_files.opening();
  int rc;
  if (!parent) {
    rc = PMPI_File_open(comm, filename, amode, info, fh);
  } else {
    rt->coordinator.synchronize(parent, /*creating=*/true);
    rc = open_file(*rt, *parent, comm, filename, amode, info, fh);
    rt->coordinator.end_creation();
  }
  if (rc != MPI_SUCCESS) open_files.closed();
  return rc;
}

// Collective over the file: counted on its communicator, which is freed
// with it (its record stays in lineage).
int MPI_File_close(MPI_File* fh) {
  Runtime* rt = app_call();
  FileRec* f = rt ? rt->files.find(*fh) : nullptr;
  if (!f) {
    const int rc = PMPI_File_close(fh);
    if (rc == MPI_SUCCESS) open_files.closed();
    return rc;
  }
  rt->coordinator.synchronize(f->comm);
  InternalScope internal;
  const MPI_File closing = *fh;
  const int rc = PMPI_File_close(fh);
  if (rc != MPI_SUCCESS) return rc;
  open_files.closed();
  const MPI_Comm own = f->comm->real;
  rt->files.forget(closing);
  rt->comms.free(own);
  return rc;
}

// Hints given later replace those of the open: a restarted job opens the
// file with all of them.
int MPI_File_set_info(MPI_File fh, MPI_Info info) {
  const int rc =
      file_call<Kind::Collective>(fh, "MPI_File_set_info", nullptr, [&] { return PMPI_File_set_info(fh, info); });
  if (FileRec* f = app_file(fh); f && rc == MPI_SUCCESS) FileTable::merge(f->hints, FileTable::hints_of(info));
  return rc;
}
int MPI_File_set_view(MPI_File fh, MPI_Offset disp, MPI_Datatype etype, MPI_Datatype filetype, const char* datarep,
                      MPI_Info info) {
  const int rc = file_call<Kind::Collective>(
      fh, "MPI_File_set_view", nullptr, [&] { return PMPI_File_set_view(fh, disp, etype, filetype, datarep, info); });
  if (FileRec* f = app_file(fh); f && rc == MPI_SUCCESS) FileTable::merge(f->hints, FileTable::hints_of(info));
  return rc;
}

#define PYCKPT_FILE(kind, effects, name, params, args, request)                                                   \
  int MPI_File_##name params {                                                                                    \
    return file_call<Kind::kind, effects>(fh, "MPI_File_" #name, request, [&] { return PMPI_File_##name args; }); \
  }
// The data access routines by signature: AT with an explicit offset, PTR at
// a file pointer; I*: nonblocking; BEGIN*, END: split collective halves.
// cv: const for the buffer of a write.
#define PYCKPT_FILE_AT(kind, effects, name, cv)                                                                   \
  PYCKPT_FILE(kind, effects, name, (MPI_File fh, MPI_Offset o, cv void* b, int n, MPI_Datatype t, MPI_Status* s), \
              (fh, o, b, n, t, s), nullptr)
#define PYCKPT_FILE_PTR(kind, effects, name, cv)                                                                      \
  PYCKPT_FILE(kind, effects, name, (MPI_File fh, cv void* b, int n, MPI_Datatype t, MPI_Status* s), (fh, b, n, t, s), \
              nullptr)
#define PYCKPT_FILE_IAT(kind, effects, name, cv)                                                                   \
  PYCKPT_FILE(kind, effects, name, (MPI_File fh, MPI_Offset o, cv void* b, int n, MPI_Datatype t, MPI_Request* r), \
              (fh, o, b, n, t, r), r)
#define PYCKPT_FILE_IPTR(kind, effects, name, cv)                                                                      \
  PYCKPT_FILE(kind, effects, name, (MPI_File fh, cv void* b, int n, MPI_Datatype t, MPI_Request* r), (fh, b, n, t, r), \
              r)
#define PYCKPT_FILE_BEGIN_AT(effects, name, cv)         \
  PYCKPT_FILE(Collective, kBeginsSplit | effects, name, \
              (MPI_File fh, MPI_Offset o, cv void* b, int n, MPI_Datatype t), (fh, o, b, n, t), nullptr)
#define PYCKPT_FILE_BEGIN_PTR(effects, name, cv)                                                          \
  PYCKPT_FILE(Collective, kBeginsSplit | effects, name, (MPI_File fh, cv void* b, int n, MPI_Datatype t), \
              (fh, b, n, t), nullptr)
#define PYCKPT_FILE_END(effects, name, cv) \
  PYCKPT_FILE(Collective, kEndsSplit | effects, name, (MPI_File fh, cv void* b, MPI_Status* s), (fh, b, s), nullptr)

// --- independent: safe points; nonblocking ones tracked ---------------------
PYCKPT_FILE_AT(Independent, kNoEffect, read_at, )
PYCKPT_FILE_AT(Independent, kWrites, write_at, const)
PYCKPT_FILE_PTR(Independent, kNoEffect, read, )
PYCKPT_FILE_PTR(Independent, kWrites, write, const)
PYCKPT_FILE_PTR(Independent, kSharedPointer, read_shared, )
PYCKPT_FILE_PTR(Independent, kSharedPointer | kWrites, write_shared, const)
PYCKPT_FILE_IAT(Independent, kNoEffect, iread_at, )
PYCKPT_FILE_IAT(Independent, kWrites, iwrite_at, const)
PYCKPT_FILE_IPTR(Independent, kNoEffect, iread, )
PYCKPT_FILE_IPTR(Independent, kWrites, iwrite, const)
PYCKPT_FILE_IPTR(Independent, kSharedPointer, iread_shared, )
PYCKPT_FILE_IPTR(Independent, kSharedPointer | kWrites, iwrite_shared, const)
PYCKPT_FILE(Independent, kNoEffect, seek, (MPI_File fh, MPI_Offset o, int whence), (fh, o, whence), nullptr)

// --- collective -----------------------------------------------------------------
PYCKPT_FILE_AT(Collective, kNoEffect, read_at_all, )
PYCKPT_FILE_AT(Collective, kWrites, write_at_all, const)
PYCKPT_FILE_PTR(Collective, kNoEffect, read_all, )
PYCKPT_FILE_PTR(Collective, kWrites, write_all, const)
PYCKPT_FILE_PTR(Collective, kSharedPointer, read_ordered, )
PYCKPT_FILE_PTR(Collective, kSharedPointer | kWrites, write_ordered, const)
// Nonblocking collectives are entered together too: an implementation may
// do the collective part when they are posted.
PYCKPT_FILE_IAT(Collective, kNoEffect, iread_at_all, )
PYCKPT_FILE_IAT(Collective, kWrites, iwrite_at_all, const)
PYCKPT_FILE_IPTR(Collective, kNoEffect, iread_all, )
PYCKPT_FILE_IPTR(Collective, kWrites, iwrite_all, const)
PYCKPT_FILE(Collective, kWrites, set_size, (MPI_File fh, MPI_Offset size), (fh, size), nullptr)
PYCKPT_FILE(Collective, kWrites, preallocate, (MPI_File fh, MPI_Offset size), (fh, size), nullptr)
PYCKPT_FILE(Collective, kNoEffect, sync, (MPI_File fh), (fh), nullptr)
PYCKPT_FILE(Collective, kNoEffect, set_atomicity, (MPI_File fh, int flag), (fh, flag), nullptr)
PYCKPT_FILE(Collective, kSharedPointer, seek_shared, (MPI_File fh, MPI_Offset o, int whence), (fh, o, whence), nullptr)

// --- split collectives: both halves are counted collectives, so every member
// has the same one open at a cut (which then fails, see FileTable::settle).
PYCKPT_FILE_BEGIN_AT(kNoEffect, read_at_all_begin, )
PYCKPT_FILE_BEGIN_AT(kWrites, write_at_all_begin, const)
PYCKPT_FILE_BEGIN_PTR(kNoEffect, read_all_begin, )
PYCKPT_FILE_BEGIN_PTR(kWrites, write_all_begin, const)
PYCKPT_FILE_BEGIN_PTR(kSharedPointer, read_ordered_begin, )
PYCKPT_FILE_BEGIN_PTR(kSharedPointer | kWrites, write_ordered_begin, const)
PYCKPT_FILE_END(kNoEffect, read_at_all_end, )
PYCKPT_FILE_END(kWrites, write_at_all_end, const)
PYCKPT_FILE_END(kNoEffect, read_all_end, )
PYCKPT_FILE_END(kWrites, write_all_end, const)
PYCKPT_FILE_END(kNoEffect, read_ordered_end, )
PYCKPT_FILE_END(kWrites, write_ordered_end, const)

}  // extern "C"
