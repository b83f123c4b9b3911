// The file table: the files the application opened with MPI_File_open, what
// a checkpoint records of each (name, access mode, hints, view, atomicity,
// file pointers), bringing them to rest at a cut, and their re-opening in a
// restarted job. doc/mpi.md ("Files") describes the whole design.
//
// Each file has a communicator of its own, a dup the library makes (as an
// internal call) of the one the file was opened on: the file's collective
// routines are counted on it like collectives on a communicator, it stays
// alive while the file is open (the app may free the one it passed), lineage
// replays it at restart and the file is reopened on it. Its lineage id is
// the file's stable id: equal on all members, the same after a restart.
#pragma once

#include "comm_table.hpp"

#include <pyckpt/codec/bytes.hpp>

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pyckpt::mpi {

class RequestTable;

// Info hints as (key, value), in the order the app gave them.
using Hints = std::vector<std::pair<std::string, std::string>>;

struct FileRec {
  std::uint64_t id = 0;     // its communicator's lineage id
  CommRec* comm = nullptr;  // the library's dup of the communicator the file was opened on
  MPI_File real = MPI_FILE_NULL;
  std::string path;  // absolute: resolved against the working directory at open
  int amode = 0;
  Hints hints;  // the app's, from MPI_File_open, MPI_File_set_info and MPI_File_set_view
  // The app moved the shared file pointer (a *_shared, *_ordered or
  // seek_shared call): it is saved and restored. Not read otherwise: a file
  // system may have no shared file pointer support at all.
  bool uses_shared_pointer = false;
  // The begin call of a split collective not yet ended; a cut then fails:
  // its outcome is known only at the end call.
  const char* open_split = nullptr;
  // Since the last cut: written through this handle (by a write routine of
  // this process, or a collective one, whose aggregators write others'
  // data), and opened with MPI_MODE_CREATE (its directory entry may be new).
  bool written_since_cut = false;
  bool created_since_cut = false;
};

class FileTable {
 public:
  // A file the app opened on comm's parent; comm is the file's own
  // communicator (see above). filename as the app gave it.
  FileRec& add(CommRec& comm, MPI_File fh, const char* filename, int amode, Hints hints);
  // The record of an app handle, null if the file is not recorded.
  FileRec* find(MPI_File fh) const;
  // The app closed fh.
  void forget(MPI_File fh);
  std::uint64_t id(MPI_File fh) const;
  MPI_File from_id(std::uint64_t id) const;
  bool empty() const { return files_.empty(); }

  // The hints of an info object (none for MPI_INFO_NULL).
  static Hints hints_of(MPI_Info info);
  // Later hints replace earlier ones with the same key.
  static void merge(Hints& into, const Hints& hints);

  // Inside a cut, on every rank, before the capture (local, no collective):
  // what the app wrote reaches storage (fsync(2) of every file written
  // since the last cut, open or closed since, and of the directories of
  // files created since), so that a checkpoint never outlives the data it
  // relies on; and every open file is still there. Returns why the files cannot be captured at this cut
  // (nonblocking file I/O the app holds, an open split collective, ...),
  // "" if they can.
  std::string settle(const RequestTable& requests);

  // --- the state codec (Runtime::save/restore) -----------------------------
  // Local. Throws Error for a file a restart could not reopen as it is.
  void save(codec::ByteWriter& w) const;
  // Collective over world (every rank reopens its files in open order, each
  // collective over its members): files reopened on their re-created
  // communicators.
  void restore(codec::ByteReader& r, const CommTable& comms);

 private:
  std::vector<std::unique_ptr<FileRec>> files_;  // open order
  std::unordered_map<MPI_File, FileRec*> by_handle_;
  // Files written or created since the last cut and closed since (their
  // data may still be in the page cache), and whether their directory entry
  // may be new.
  std::vector<std::pair<std::string, bool>> closed_since_cut_;
};

}  // namespace pyckpt::mpi
