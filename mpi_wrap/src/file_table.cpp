// The file table: records of the app's open files, their rest at a cut
// (what was written made durable, what cannot be captured), their state as
// bytes and their re-opening at restart.
#include "file_table.hpp"

#include "error.hpp"
#include "internal_scope.hpp"
#include "mpi_handles.hpp"
#include "open_files.hpp"
#include "request_table.hpp"
#include "type_table.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pyckpt::mpi {

namespace {

// The name a restarted job reopens: relative names are resolved against the
// working directory at open (a restarted rank may start elsewhere). A name
// with a file-system prefix before its path (ROMIO's "ufs:", "lustre:") is
// kept as given: the prefix is the MPI library's syntax, not a path.
std::string absolute(const char* filename) {
  const std::string name(filename);
  const auto colon = name.find(':'), slash = name.find('/');
  if (name.empty() || name[0] == '/' || (colon != std::string::npos && colon < slash)) return name;
  std::vector<char> cwd(4096);
  while (getcwd(cwd.data(), cwd.size()) == nullptr) {
    if (errno != ERANGE) return name;  // no working directory: MPI resolves it as the app did
    cwd.resize(cwd.size() * 2);
  }
  return std::string(cwd.data()) + "/" + name;
}

// The file system's name of an MPI file name (without a file-system prefix).
std::string os_path(const std::string& name) {
  const auto colon = name.find(':');
  return colon != std::string::npos && colon < name.find('/') ? name.substr(colon + 1) : name;
}

// fsync(2) by name: 0, or the errno of what failed. A file the app made
// write-only for its owner is opened for writing instead.
int fsync_path(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == EACCES && !(flags & O_DIRECTORY)) fd = open(path.c_str(), flags | O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int err = fsync(fd) == 0 ? 0 : errno;
  close(fd);
  return err;
}

// fsync(2) of a file's data and, with directory_too, of its directory (a
// new name): 0, or the errno of what failed.
int make_durable(const std::string& name, bool directory_too) {
  const std::string path = os_path(name);
  if (const int err = fsync_path(path, 0); err != 0 || !directory_too) return err;
  const auto slash = path.rfind('/');
  return fsync_path(slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash), O_DIRECTORY);
}

// 0 if an open file is still there and, when written or created since the
// last cut, durable; else the errno of what failed.
int still_there(const FileRec& f) {
  if (f.written_since_cut || f.created_since_cut) return make_durable(f.path, f.created_since_cut);
  return access(os_path(f.path).c_str(), F_OK) == 0 ? 0 : errno;
}

// A reason of the file's own that a checkpoint cannot capture it, or "".
std::string uncapturable(const FileRec& f) {
  if (f.open_split)
    return std::string("a split collective (") + f.open_split +
           ") is open on it: its outcome is known only at the matching end call";
  if (f.amode & MPI_MODE_DELETE_ON_CLOSE)
    return "it was opened with MPI_MODE_DELETE_ON_CLOSE: it is gone once closed, and a restart could not reopen it";
  if (f.amode & MPI_MODE_SEQUENTIAL)
    return "it was opened with MPI_MODE_SEQUENTIAL: a restarted job cannot reposition its file pointers";
  MPI_Offset disp = 0;
  OwnedType etype, filetype;
  char datarep[MPI_MAX_DATAREP_STRING + 1] = {};
  if (const int rc = PMPI_File_get_view(f.real, &disp, etype.out(), filetype.out(), datarep))
    return "MPI_File_get_view failed: " + mpi_error_text(rc);
  for (const char* known : {"native", "internal", "external32"})
    if (std::strcmp(datarep, known) == 0) return {};
  return std::string("its view uses the data representation \"") + datarep +
         "\", which a restarted job has not registered (MPI_Register_datarep)";
}

// Derived types come back from the state uncommitted; MPI_File_set_view
// needs them committed.
OwnedType decode_committed(codec::ByteReader& r) {
  OwnedType t(TypeTable::decode(r));
  if (!TypeTraits::predefined(t.get())) {
    MPI_Datatype h = t.release();
    const int rc = PMPI_Type_commit(&h);
    t = OwnedType(h);
    check(rc, "MPI_Type_commit (file view)");
  }
  return t;
}

}  // namespace

FileRec& FileTable::add(CommRec& comm, MPI_File fh, const char* filename, int amode, Hints hints) {
  auto rec = std::make_unique<FileRec>();
  rec->id = comm.id;
  rec->comm = &comm;
  rec->real = fh;
  rec->path = absolute(filename);
  rec->amode = amode;
  rec->hints = std::move(hints);
  rec->created_since_cut = (amode & MPI_MODE_CREATE) != 0;
  by_handle_[fh] = rec.get();
  files_.push_back(std::move(rec));
  return *files_.back();
}

FileRec* FileTable::find(MPI_File fh) const {
  const auto it = by_handle_.find(fh);
  return it == by_handle_.end() ? nullptr : it->second;
}

void FileTable::forget(MPI_File fh) {
  const auto it = by_handle_.find(fh);
  if (it == by_handle_.end()) return;
  const FileRec* rec = it->second;
  by_handle_.erase(it);
  if (rec->written_since_cut || rec->created_since_cut) {
    // Once per name: a program may open and close a file at every step.
    auto closed = std::find_if(closed_since_cut_.begin(), closed_since_cut_.end(),
                               [rec](const auto& c) { return c.first == rec->path; });
    if (closed == closed_since_cut_.end())
      closed_since_cut_.emplace_back(rec->path, rec->created_since_cut);
    else
      closed->second = closed->second || rec->created_since_cut;
  }
  files_.erase(std::find_if(files_.begin(), files_.end(), [rec](const auto& f) { return f.get() == rec; }));
}

std::uint64_t FileTable::id(MPI_File fh) const {
  const FileRec* f = find(fh);
  return f ? f->id : 0;
}

MPI_File FileTable::from_id(std::uint64_t id) const {
  for (const auto& f : files_)
    if (f->id == id) return f->real;
  return MPI_FILE_NULL;
}

Hints FileTable::hints_of(MPI_Info info) {
  Hints hints;
  if (info == MPI_INFO_NULL) return hints;
  int n = 0;
  PMPI_Info_get_nkeys(info, &n);
  for (int i = 0; i < n; ++i) {
    char key[MPI_MAX_INFO_KEY + 1] = {};
    int len = 0, flag = 0;
    PMPI_Info_get_nthkey(info, i, key);
    PMPI_Info_get_valuelen(info, key, &len, &flag);
    std::vector<char> value(static_cast<std::size_t>(len) + 1);
    PMPI_Info_get(info, key, len, value.data(), &flag);
    if (flag) hints.emplace_back(key, std::string(value.data(), static_cast<std::size_t>(len)));
  }
  return hints;
}

void FileTable::merge(Hints& into, const Hints& hints) {
  for (const auto& [key, value] : hints) {
    auto it = std::find_if(into.begin(), into.end(), [&](const auto& h) { return h.first == key; });
    if (it == into.end())
      into.emplace_back(key, value);
    else
      it->second = value;
  }
}

std::string FileTable::settle(const RequestTable& requests) {
  InternalScope internal;
  std::string failure;
  const auto fail = [&](const std::string& path, const std::string& why) {
    if (failure.empty()) failure = "MPI file " + path + ": " + why;
  };
  // Not completed here for the app: Open MPI's MPI_File_sync fails while a
  // process holds any nonblocking file request, complete or not, until it
  // is freed (and the checkpoint file is synced), and the app's handle
  // must stay valid for its own MPI_Wait.
  if (const std::uint64_t file = requests.held_file_io()) {
    const auto it = std::find_if(files_.begin(), files_.end(), [file](const auto& f) { return f->id == file; });
    fail(it == files_.end() ? "(closed since)" : (*it)->path,
         "nonblocking I/O on it is in progress (an MPI_File_i* request the program has not completed with "
         "MPI_Wait/Test)");
  }
  // Durability with fsync(2), not MPI_File_sync: that is collective, and
  // erroneous while the app holds a nonblocking request on the file (Open
  // MPI's fails on that rank alone, before its barrier: the others would
  // wait for it forever).
  const auto unsynced = [](int err) { return std::string("fsync failed: ") + std::strerror(err); };
  for (const auto& [path, created] : closed_since_cut_)
    if (const int err = make_durable(path, created); err != 0 && err != ENOENT)  // deleted since: nothing to keep
      fail(path, unsynced(err));
  closed_since_cut_.clear();
  for (const auto& f : files_) {
    if (const std::string why = uncapturable(*f); !why.empty()) fail(f->path, why);
    const int err = still_there(*f);
    if (err == ENOENT)
      fail(f->path, "it is gone (deleted or renamed while open): a restart could not reopen it");
    else if (err != 0)
      fail(f->path, unsynced(err));
    f->written_since_cut = f->created_since_cut = false;
  }
  return failure;
}

// Per file, in open order: u64 id, string path, i32 amode,
//   u32 nhints { string key, string value },
//   i64 disp, type-tree etype, type-tree filetype, string datarep,
//   u8 atomic, i64 position (etype units of the view),
//   u8 shared { i64 shared position }
void FileTable::save(codec::ByteWriter& w) const {
  InternalScope internal;
  w.put<std::uint64_t>(files_.size());
  for (const auto& f : files_) {
    w.put(f->id);
    w.put_string(f->path);
    w.put<std::int32_t>(f->amode);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(f->hints.size()));
    for (const auto& [key, value] : f->hints) {
      w.put_string(key);
      w.put_string(value);
    }
    // The view as MPI has it now, types as trees: the app may have freed the
    // filetype it passed to MPI_File_set_view (a datatype id would be gone).
    MPI_Offset disp = 0;
    OwnedType etype, filetype;
    char datarep[MPI_MAX_DATAREP_STRING + 1] = {};
    check(PMPI_File_get_view(f->real, &disp, etype.out(), filetype.out(), datarep), "MPI_File_get_view");
    w.put<std::int64_t>(disp);
    TypeTable::encode(w, etype.get());
    TypeTable::encode(w, filetype.get());
    w.put_string(datarep);
    int atomic = 0;
    check(PMPI_File_get_atomicity(f->real, &atomic), "MPI_File_get_atomicity");
    w.put<std::uint8_t>(atomic ? 1 : 0);
    MPI_Offset position = 0;
    check(PMPI_File_get_position(f->real, &position), "MPI_File_get_position");
    w.put<std::int64_t>(position);
    w.put<std::uint8_t>(f->uses_shared_pointer ? 1 : 0);
    if (f->uses_shared_pointer) {
      // The same on every member: no rank runs app code while any captures.
      check(PMPI_File_get_position_shared(f->real, &position), "MPI_File_get_position_shared");
      w.put<std::int64_t>(position);
    }
  }
}

void FileTable::restore(codec::ByteReader& r, const CommTable& comms) {
  InternalScope internal;
  const auto n = r.get<std::uint64_t>();
  for (std::uint64_t k = 0; k < n; ++k) {
    const auto id = r.get<std::uint64_t>();
    const std::string path = r.get_string();
    const auto amode = r.get<std::int32_t>();
    Hints hints(r.get<std::uint32_t>());
    for (auto& [key, value] : hints) {
      key = r.get_string();
      value = r.get_string();
    }
    const auto disp = r.get<std::int64_t>();
    const OwnedType etype = decode_committed(r), filetype = decode_committed(r);
    const std::string datarep = r.get_string();
    const bool atomic = r.get<std::uint8_t>() != 0;
    const auto position = r.get<std::int64_t>();
    const bool shared = r.get<std::uint8_t>() != 0;
    const auto shared_position = shared ? r.get<std::int64_t>() : 0;

    CommRec* c = comms.by_id(id);
    if (!c) throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: the communicator of MPI file " + path + " was not re-created");
    const auto failed = [&path](const char* what, int rc) {
      throw Error(PYCKPT_MPI_EMPI,
                  "pyckpt_mpi: MPI file " + path + ", open at the checkpoint: " + what + ": " + mpi_error_text(rc), rc);
    };
    OwnedInfo info;
    if (!hints.empty()) {
      check(PMPI_Info_create(info.out()), "MPI_Info_create (file hints)");
      for (const auto& [key, value] : hints)
        check(PMPI_Info_set(info.get(), key.c_str(), value.c_str()), "MPI_Info_set");
    }
    // The file exists (it was open at the cut): MPI_MODE_EXCL would refuse
    // it, and without MPI_MODE_CREATE a file that is gone is an error
    // instead of a new empty file.
    MPI_File fh = MPI_FILE_NULL;
    open_files.opening();
    if (int rc = PMPI_File_open(c->real, path.c_str(), amode & ~(MPI_MODE_CREATE | MPI_MODE_EXCL), info.get(), &fh)) {
      open_files.closed();
      failed("cannot reopen it", rc);
    }
    FileRec& f = add(*c, fh, path.c_str(), amode, std::move(hints));
    f.uses_shared_pointer = shared;
    f.created_since_cut = false;  // made durable by the cut saved here
    // The view first: MPI_File_set_view resets both file pointers.
    if (int rc = PMPI_File_set_view(fh, disp, etype.get(), filetype.get(), datarep.c_str(), MPI_INFO_NULL))
      failed("MPI_File_set_view", rc);
    if (int rc = PMPI_File_set_atomicity(fh, atomic ? 1 : 0)) failed("MPI_File_set_atomicity", rc);
    if (int rc = PMPI_File_seek(fh, position, MPI_SEEK_SET)) failed("MPI_File_seek", rc);
    if (shared)
      if (int rc = PMPI_File_seek_shared(fh, shared_position, MPI_SEEK_SET)) failed("MPI_File_seek_shared", rc);
  }
}

}  // namespace pyckpt::mpi
