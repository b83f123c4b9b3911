// pyckpt::h5 -- the checkpoint container.
//
// One HDF5 file per checkpoint epoch, written by all ranks of a communicator
// collectively through MPI-IO, committed atomically into a checkpoint
// directory. This layer knows nothing of Python or of the snapshot protocol:
// callers hand it named byte blobs and typed N-d arrays (by pointer, zero-copy)
// and get them back. doc/format.md specifies the file layout.
//
//   pyckpt::h5::CheckpointDir dir("ckpt", /*keep=*/2);
//   pyckpt::h5::CheckpointWriter w(dir, pyckpt::h5::Comm(MPI_COMM_WORLD));  // next epoch
//   w.add_blob("pickle", bytes);              // memory must stay valid ...
//   w.add_array("u", view);                   // ... until commit() returns
//   w.commit();                               // collective; atomic
//
//   pyckpt::h5::CheckpointReader r("ckpt");   // directory -> its `latest`,
//                                             // authenticated with the user's key
//   r.read_array(rank, "u", dest_view);       // checksum verified
#pragma once

#include <pyckpt/h5/key.hpp>
#include <pyckpt/h5/types.hpp>

#include <mpi.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pyckpt::h5 {

// The communicator a checkpoint is written with. Comm::serial() is for a
// process that has not initialised MPI (a plain Python program): it writes
// through the POSIX driver as rank 0 of 1, in the same format.
class Comm {
 public:
  static Comm serial() { return Comm(); }
  explicit Comm(MPI_Comm comm);
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_mpi() const { return mpi_; }
  MPI_Comm get() const { return comm_; }

 private:
  Comm() = default;
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool mpi_ = false;
  int rank_ = 0;
  int size_ = 1;
};

// A committed checkpoint as listed in a directory.
struct CheckpointEntry {
  std::uint64_t epoch = 0;
  std::filesystem::path path;
  std::int64_t mtime_unix = 0;  // seconds
  std::uint64_t bytes = 0;
  bool is_latest = false;
};

// A checkpoint directory, the one owner of its conventions (doc/format.md,
// "Directory"): committed files are `ckpt.<epoch, 8 digits>.h5`, in-flight
// ones `<same>.tmp`, `latest` is a symlink to the newest committed file,
// `.writing.<epoch>` marks an epoch an asynchronous writer process is still
// writing (it holds the writer's pid), and `.request` asks a running job for a
// checkpoint. Creating the object does not touch the file system; the writer
// creates the directory on first commit.
class CheckpointDir {
 public:
  // The directory a job uses when it names none ($PYCKPT_DIR unset).
  static constexpr const char* kDefaultDirectory = "pyckpt.d";

  explicit CheckpointDir(std::filesystem::path dir, int keep = 2);
  const std::filesystem::path& path() const { return dir_; }
  int keep() const { return keep_; }
  std::filesystem::path file_for(std::uint64_t epoch) const;
  // Where file_for(epoch) is written before its commit renames it.
  std::filesystem::path in_flight_file_for(std::uint64_t epoch) const;
  // The `latest` symlink itself (it may not exist).
  std::filesystem::path latest_link() const;
  // Committed checkpoints, oldest first. Stray *.tmp files are not listed.
  std::vector<CheckpointEntry> list() const;
  // The file `latest` points to, if any. Throws FormatError if `latest`
  // points to a missing file.
  std::optional<std::filesystem::path> latest() const;
  // The epoch after the newest committed one (1 for an empty directory).
  std::uint64_t next_epoch() const;
  // The same, agreed over comm: rank 0 lists the directory and broadcasts
  // (collective for an MPI comm; next_epoch() for Comm::serial()).
  std::uint64_t next_epoch(const Comm& comm) const;

  // The file whose creation asks a running job for a checkpoint.
  std::filesystem::path request_path() const;
  // The marker of an epoch being written by an asynchronous writer.
  std::filesystem::path writing_marker(std::uint64_t epoch) const;
  // The epoch of a writing-marker file name (a name, not a path), if it is one.
  static std::optional<std::uint64_t> parse_writing_marker(std::string_view filename);
  // The writing markers present, by ascending epoch (none if the directory
  // does not exist).
  std::vector<std::pair<std::uint64_t, std::filesystem::path>> writing_markers() const;
  // In-flight files (of commits under way, or of crashed ones), by ascending epoch.
  std::vector<std::pair<std::uint64_t, std::filesystem::path>> in_flight_files() const;
  // Creates the directory (and missing parents) with mode 0700 whatever the
  // umask: a checkpoint holds the program's memory. An existing directory is
  // left as it is.
  void create() const;

 private:
  std::filesystem::path dir_;
  int keep_;
};

// Attribute values stored on the root group, a rank group or a dataset.
using AttrMap = std::map<std::string, AttrValue>;

// What commit() measured, also stored as attributes of the root group.
struct CommitInfo {
  std::filesystem::path path;
  std::uint64_t epoch = 0;
  std::uint64_t bytes_written = 0;  // payload of this rank
  std::uint64_t bytes_total = 0;    // payload of all ranks
  double seconds_prepare = 0;       // descriptor exchange
  double seconds_write = 0;         // file creation, raw data, checksums, sync, close
  double seconds_commit = 0;        // fsync, rename, latest, retention
};

// Tuning of a writer; the defaults suit a parallel file system and a laptop.
struct WriterOptions {
  // Raw data through MPI-IO collective transfers (every rank takes part in
  // every dataset write). By default each rank writes its per-rank datasets,
  // and global-array slabs that are one contiguous run of the dataset (row
  // blocks), with pwrite at their place in the file, and other global-array
  // slabs with independent MPI-IO, which was faster on one node
  // (benchmarks/README.md);
  // collective transfers are for parallel file systems that want them.
  bool collective_io = false;
  // Bound of the buffer non-contiguous arrays are staged through.
  std::size_t staging_bytes = std::size_t{32} << 20;
  // The key rank 0 authenticates the file with; other ranks need none.
  // Unset: the user's key, Key::load_or_create(Key::default_path()).
  std::optional<Key> key;
};

// Memory an asynchronous commit copies the data into (commit_async). Kept,
// resident, from one commit to the next: the copy into memory touched before
// runs at memcpy speed, into fresh memory it pays a page fault per page
// (on the benchmark's VM 10-50x the copy itself; memory handed back with
// MADV_FREE or MADV_DONTNEED faulted again). It grows to the largest
// commit's data and is freed with the object. The first commit (and one
// whose data outgrew it) pays the faults in the program's pause.
class StagingBuffer {
 public:
  StagingBuffer() = default;
  ~StagingBuffer();
  StagingBuffer(const StagingBuffer&) = delete;
  StagingBuffer& operator=(const StagingBuffer&) = delete;
  // At least `bytes` bytes (content undefined), valid until the next call.
  std::byte* reserve(std::size_t bytes);
  std::size_t capacity() const { return size_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// A checkpoint being committed asynchronously (CheckpointWriter::commit_async):
// the data was copied; a thread of this rank writes it to the file with
// pwrite while the program goes on. What still needs MPI -- rank 0 sends
// every rank its file offsets, every rank sends rank 0 its checksums and
// outcome -- are nonblocking collectives on a private communicator, moved
// on by progress() (the program's MPI calls, in pyckpt) or wait(). Rank 0
// creates the file (serial HDF5) in commit_async and, in the progress() that
// sees every rank's report, writes the checksums, the header, and commits:
// the threads make no HDF5 call (libhdf5 is not thread-safe, and the program
// may call it meanwhile). If any rank failed, rank 0
// removes the file and the previous checkpoint stays `latest`. Destroying a
// PendingCommit that is not over abandons it (its file is left in flight).
class PendingCommit {
 public:
  ~PendingCommit();
  PendingCommit(const PendingCommit&) = delete;
  PendingCommit& operator=(const PendingCommit&) = delete;
  std::uint64_t epoch() const;
  // Moves the commit on without blocking (MPI_Test; its MPI calls are the
  // caller's to mark internal). True once it is over on this rank: rank 0
  // committed it or gave up, another rank's part reached rank 0.
  bool progress();
  // Blocks until progress() is true. Rank 0: throws the commit's failure
  // (any rank's); another rank: its own failure. Returns this rank's
  // figures (seconds_write: its drain).
  CommitInfo wait();

 private:
  friend class CheckpointWriter;
  struct Impl;
  explicit PendingCommit(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Collective writer of one checkpoint epoch. Every add_* call records a
// pointer to caller memory; nothing is copied and nothing is written before
// commit(), which all ranks of the communicator must call. Ranks may add
// different sets of blobs and arrays. If commit() fails on any rank it fails
// on all, the partial file is removed, and the previous committed checkpoint
// and `latest` are untouched. Destroying an uncommitted writer discards it.
class CheckpointWriter {
 public:
  // Writes the epoch after the newest committed one, dir.next_epoch(comm)
  // (collective: the constructor already communicates over comm).
  CheckpointWriter(const CheckpointDir& dir, Comm comm, WriterOptions options = {});
  // Writes the given epoch: for callers with their own numbering.
  CheckpointWriter(const CheckpointDir& dir, std::uint64_t epoch, Comm comm, WriterOptions options = {});
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Root-group attributes. Values set by rank 0 are the ones stored.
  void set_attribute(const std::string& name, AttrValue value);
  // Attributes of this rank's group.
  void set_rank_attribute(const std::string& name, AttrValue value);

  // A byte string of this rank (e.g. a pickle stream), a 1-D uint8 dataset.
  void add_blob(const std::string& name, std::span<const std::byte> bytes, AttrMap attrs = {});
  // An N-d array of this rank, stored in its own element type and shape.
  void add_array(const std::string& name, const ArrayView& array, AttrMap attrs = {});
  // This rank's slab of a global distributed array. Every rank that holds a
  // part calls it with the same name, type and global shape; slabs must not
  // overlap. Ranks without a part need not call it.
  void add_global_slab(const std::string& name, const std::vector<std::uint64_t>& global_shape,
                       const std::vector<std::uint64_t>& offset, const ArrayView& slab,
                       AttrMap attrs = {});

  // The epoch this writer writes (also CommitInfo::epoch).
  std::uint64_t epoch() const;

  CommitInfo commit();
  // Collective, like commit(), but returns once this rank's data is copied
  // into `staging` (which must outlive the PendingCommit); the program may
  // then change its memory. Only one pending commit per directory at a
  // time: wait for the previous one first (epochs commit in order). Writes
  // only with pwrite, so it refuses WriterOptions::collective_io and global
  // slabs that are not one contiguous run of their dataset (UsageError on
  // every rank, nothing written). test_delay_seconds: for tests only, the
  // drain waits this long before writing, so that a test can act while a
  // commit is pending.
  std::unique_ptr<PendingCommit> commit_async(StagingBuffer& staging, double test_delay_seconds = 0);

 private:
  friend struct PendingCommit::Impl;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

enum class DatasetKind { Blob, Array };

// The HDF5 path of a rank's blob or array `name` in a checkpoint file, e.g.
// "/ranks/0/arrays/u" (name escaped as doc/format.md, "Names", says).
std::string dataset_path(int rank, DatasetKind kind, const std::string& name);

struct DatasetInfo {
  std::string name;
  DatasetKind kind = DatasetKind::Array;
  ElementType type;
  std::vector<std::uint64_t> shape;  // logical shape (as the caller gave it)
  StorageOrder order = StorageOrder::C;
  std::uint64_t bytes = 0;
  std::uint64_t checksum = 0;
  AttrMap attrs;                     // caller attributes
};

struct SlabInfo {
  int rank = 0;
  std::vector<std::uint64_t> offset;
  std::vector<std::uint64_t> count;
  std::uint64_t checksum = 0;
};

struct GlobalArrayInfo {
  std::string name;
  ElementType type;
  std::vector<std::uint64_t> shape;
  std::vector<SlabInfo> slabs;  // as written, by rank
  AttrMap attrs;
};

struct VerifyResult {
  std::string dataset;  // full HDF5 path
  bool ok = false;
  std::string message;
};

// ----------------------------------------------- header and authentication ---
//
// The first bytes of every checkpoint file (its HDF5 user block) list what
// the file holds and authenticate it: an HMAC-SHA256 under the writer's key
// over the list, which carries a SHA-256 of every byte of the file that is
// not dataset data (all of HDF5's metadata: attributes, checksums, layout),
// a SHA-256 of each blob and the checksum of each array. They are read and
// checked with plain reads before HDF5 parses anything, so a damaged or
// forged file never reaches HDF5's parser (doc/format.md, "Header and
// authentication").

using Sha256Digest = std::array<std::byte, 32>;

struct HeaderEntry {
  enum class Kind { Blob, Array, Global };
  std::string path;             // HDF5 path of the dataset
  Kind kind = Kind::Array;
  int rank = -1;                // the rank that wrote it; -1 for a global array
  std::uint64_t offset = 0;     // of its data in the file (0 if it has none)
  std::uint64_t bytes = 0;      // of its data
  std::uint64_t checksum = 0;   // XXH3-64 of its data (0 for a global array: see its slabs)
  std::optional<Sha256Digest> sha256; // of its data, for blobs
};

struct CheckpointHeader {
  std::uint64_t format_version = 0;
  std::uint64_t epoch = 0;
  std::uint64_t world_size = 0;
  double created_unix = 0;
  std::uint64_t user_block = 0;  // bytes before HDF5's superblock
  std::uint64_t file_size = 0;
  std::string key_id;            // Key::id() of the key that wrote it
  Sha256Digest metadata_sha256{};      // of the bytes of [user_block, file_size) outside `datasets`
  std::vector<HeaderEntry> datasets;  // by offset
};

enum class Authentication {
  Authenticated,  // the header's MAC verifies under the key
  NoKey,          // there was no key to check it with
  OtherKey,       // written with another key (the key ids differ)
  Altered,        // same key id, and the MAC does not verify
};

struct HeaderCheck {
  std::filesystem::path file;
  CheckpointHeader header;
  Authentication authentication = Authentication::NoKey;
  std::string authentication_message;  // why not, unless Authenticated
  bool intact = false;                 // size and metadata digest match the header
  std::string integrity_message;       // what differs, unless intact
  bool authenticated() const { return authentication == Authentication::Authenticated; }
};

// Reads the header of a checkpoint file (or of a directory's `latest`) and
// checks it with `key` (none: not authenticated), and the file's size and
// HDF5 metadata against it -- plain reads, no HDF5. FormatError if the file
// has no readable header (not a checkpoint, or damaged there).
HeaderCheck check_header(const std::filesystem::path& file_or_dir, const Key* key);
// The same with the user's key, if there is one.
HeaderCheck check_header(const std::filesystem::path& file_or_dir);

// Checks the data of every per-rank dataset against the header (blob
// SHA-256s, array checksums) with plain reads: what can be verified of a file
// that HDF5 must not parse because it is not authenticated.
std::vector<VerifyResult> verify_raw(const HeaderCheck& checked);

// How a reader authenticates.
struct ReaderOptions {
  // Unset: the user's key, Key::load(Key::default_path()), if there is one.
  std::optional<Key> key;
  // Read a file that fails authentication anyway (its integrity is still
  // checked): for a user who knows where the file came from. Never for a
  // restart.
  bool trust = false;
};

// Reader of one committed checkpoint file, usable by any number of processes
// at once (each opens the file read-only, independently). Opening checks the
// header (check_header) before HDF5 sees the file and throws
// AuthenticationError unless it is authenticated (or options.trust) and its
// HDF5 metadata is exactly what was written. Every read of a
// dataset verifies its checksum, and a blob its SHA-256, and throws
// ChecksumError on a mismatch: no byte of a blob is returned unverified.
class CheckpointReader {
 public:
  // A file, or a directory (then its `latest`).
  explicit CheckpointReader(const std::filesystem::path& file_or_dir, ReaderOptions options = {});
  ~CheckpointReader();
  CheckpointReader(CheckpointReader&&) noexcept;
  CheckpointReader& operator=(CheckpointReader&&) noexcept;

  const std::filesystem::path& file() const;
  // The header and how it checked (authenticated, or read with trust).
  const HeaderCheck& header() const;
  std::uint64_t epoch() const;
  int world_size() const;
  const AttrMap& attributes() const;
  AttrMap rank_attributes(int rank) const;

  std::vector<DatasetInfo> datasets(int rank) const;
  DatasetInfo dataset(int rank, const std::string& name) const;
  bool has_dataset(int rank, const std::string& name) const;

  std::vector<std::byte> read_blob(int rank, const std::string& name) const;
  // Reads into caller memory; dest must have the stored shape and a type
  // convertible from the stored one, and be contiguous in C or F order.
  void read_array(int rank, const std::string& name, const MutableArrayView& dest) const;

  std::vector<GlobalArrayInfo> global_arrays() const;
  GlobalArrayInfo global_array(const std::string& name) const;
  // Any box of a global array, e.g. this rank's slab under a new rank count.
  // The written slabs it overlaps are checksum-verified.
  void read_global_slab(const std::string& name, const std::vector<std::uint64_t>& offset,
                        const std::vector<std::uint64_t>& count, const MutableArrayView& dest) const;

  // Verifies every dataset's checksum (and blob SHA-256); does not throw on a
  // mismatch.
  std::vector<VerifyResult> verify() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pyckpt::h5
