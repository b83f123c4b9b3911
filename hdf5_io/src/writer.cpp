// CheckpointWriter: the collective commit of one checkpoint file.
//
// commit() runs in phases; after each one every rank learns whether any rank
// failed (detail::agree), so all ranks leave together with the same error and
// no rank is left waiting in a collective HDF5 call:
//   1. exchange: every rank learns every rank's dataset descriptors
//   2. rank 0 creates the directory and probes that it can create the file
//   3. all ranks create the file, then all groups, datasets and attributes
//      (collective in parallel HDF5: every rank makes the same calls)
//   4. every rank writes its own raw data, starts the kernel's write-back of
//      it, computes its checksums while the disk works (staged arrays are
//      checksummed piece by piece as they are staged), and syncs its data
//   5. the checksums (and the blobs' SHA-256s) are exchanged and written as
//      attributes (collective); flush (MPI_File_sync), close
//   6. rank 0 writes the header into the user block HDF5 left free: what
//      the file holds, a digest of HDF5's metadata, its MAC (header.hpp)
//   7. rank 0 fsyncs, renames, repoints `latest`, fsyncs the directory,
//      applies retention
// The file and the directory are private to the user (0600, 0700) whatever
// the umask.
#include "detail.hpp"
#include "encoding.hpp"
#include "header.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <condition_variable>
#include <mutex>
#include <sys/mman.h>

namespace fs = std::filesystem;

namespace pyckpt::h5 {

using namespace detail;

namespace {

// Zero-copy writes go in pieces of at most this size: MPI-IO counts are ints.
constexpr std::size_t kPieceBytes = std::size_t{1} << 30;
// Datasets of at least kAlignThreshold bytes start on a kAlignment boundary,
// so large transfers are page- and stripe-aligned.
constexpr hsize_t kAlignThreshold = hsize_t{1} << 20;
constexpr hsize_t kAlignment = hsize_t{1} << 20;
// Unit of write, write-back and checksum of per-rank data (RawFile::write).
constexpr std::uint64_t kChunk = std::uint64_t{16} << 20;

enum class EntryKind : std::uint64_t { Blob, Array, Global };

// What every rank must know about one dataset part to create it.
struct Entry {
  EntryKind kind = EntryKind::Array;
  std::string name;
  ElementType type;
  Dims shape;         // logical (caller's) shape; the slab's for Global
  Dims stored;        // dims of this part in the file
  StorageOrder order = StorageOrder::C;
  Dims global_shape;  // Global: logical shape of the whole array
  Dims global_stored; // Global: dims of the whole dataset in the file
  Dims offset;        // Global: stored offset of the slab
  bool staged = false;
  std::uint64_t checksum = 0;
  std::optional<Sha256Digest> sha256;  // blobs: computed by the writing rank
  AttrMap attrs;

  std::size_t elsize() const { return storage_type(type).size; }
  // Bytes of the whole dataset in the file (the whole array for Global).
  std::uint64_t dataset_bytes() const {
    return element_count(kind == EntryKind::Global ? global_stored : stored) * elsize();
  }
  std::uint64_t pieces(std::size_t staging) const {
    return piece_count(stored, elsize(), staged ? staging : kPieceBytes);
  }
};

void encode(Encoder& enc, const Entry& e) {
  enc.u64(static_cast<std::uint64_t>(e.kind));
  enc.str(e.name);
  enc.type(e.type);
  enc.dims(e.shape);
  enc.dims(e.stored);
  enc.u64(static_cast<std::uint64_t>(e.order));
  enc.dims(e.global_shape);
  enc.dims(e.global_stored);
  enc.dims(e.offset);
  enc.u64(e.staged);
  enc.u64(e.checksum);
  enc.attrs(e.attrs);
}

Entry decode_entry(Decoder& dec) {
  Entry e;
  e.kind = static_cast<EntryKind>(dec.u64());
  e.name = dec.str();
  e.type = dec.type();
  e.shape = dec.dims();
  e.stored = dec.dims();
  e.order = static_cast<StorageOrder>(dec.u64());
  e.global_shape = dec.dims();
  e.global_stored = dec.dims();
  e.offset = dec.dims();
  e.staged = dec.u64() != 0;
  e.checksum = dec.u64();
  e.attrs = dec.attrs();
  return e;
}

// One rank's part of the exchange.
struct RankMessage {
  std::string host;
  double created_unix = 0;  // rank 0's is stored
  std::string byte_order;   // rank 0's is stored
  AttrMap root_attrs;       // rank 0's are stored
  AttrMap rank_attrs;
  std::vector<Entry> entries;
};

std::string host_name() {
  char buf[256] = {};
  return ::gethostname(buf, sizeof buf - 1) == 0 ? buf : "unknown";
}

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class Stopwatch {
 public:
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_ = Clock::now();
};

std::string errno_text(int err) { return std::strerror(err); }

// fsync of a file or directory by path.
void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(path.string(), "", "cannot open for fsync: " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError(path.string(), "", "fsync failed: " + errno_text(err));
}

// Removes the partial file when commit fails (rank 0 only); declared before
// the file handle so the file is closed first.
class TmpFileGuard {
 public:
  TmpFileGuard(fs::path path, bool owner) : path_(std::move(path)), owner_(owner) {}
  ~TmpFileGuard() {
    std::error_code ec;
    if (owner_ && armed_) fs::remove(path_, ec);
  }
  void disarm() { armed_ = false; }

 private:
  fs::path path_;
  bool owner_;
  bool armed_ = true;
};

// This rank's own POSIX descriptor of the file being written. The data of
// per-rank datasets goes straight to where HDF5 allocated it (contiguous
// layout, allocated at creation, no conversion), with the same pwrite calls
// a plain writer makes: Open MPI's default MPI-IO (OMPIO) serialises
// independent writes to one file with fcntl locks, which cost up to 4x on
// the benchmark. HDF5 never touches these bytes, so nothing is cached
// behind our back; MPI_File_sync and the fsync after close still follow.
class RawFile {
 public:
  explicit RawFile(const fs::path& path) : name_(path.string()), fd_(::open(path.c_str(), O_WRONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw IoError(name_, "", "cannot open for writing: " + errno_text(errno));
  }
  ~RawFile() { ::close(fd_); }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;

  // Writes in chunks, and after each chunk starts its write-back (without
  // waiting) and checksums it: the disk works while the CPU hashes, and
  // sync() has less left to wait for.
  void write(const std::byte* data, std::uint64_t size, std::uint64_t offset, const std::string& dataset,
             Checksum& sum) {
    while (size > 0) {
      const std::uint64_t chunk = std::min(size, kChunk);
      for (std::uint64_t done = 0; done < chunk;) {
        const ssize_t n = ::pwrite(fd_, data + done, chunk - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw IoError(name_, dataset, "write failed: " + errno_text(n < 0 ? errno : EIO));
        done += static_cast<std::uint64_t>(n);
      }
      // An optimisation only: its errors surface in sync().
      ::sync_file_range(fd_, static_cast<off64_t>(offset), static_cast<off64_t>(chunk), SYNC_FILE_RANGE_WRITE);
      sum.update(data, chunk);
      lo_ = std::min(lo_, offset);
      hi_ = std::max(hi_, offset + chunk);
      data += chunk;
      size -= chunk;
      offset += chunk;
    }
  }
  // Waits until this rank's data is written to the device. Only its own
  // range: ranks do not wait for each other's pages, as they would in
  // concurrent fsyncs of one file. The device cache flush and the file's
  // metadata follow in MPI_File_sync and rank 0's fsync.
  void sync() const {
    if (hi_ <= lo_) return;
    if (::sync_file_range(fd_, static_cast<off64_t>(lo_), static_cast<off64_t>(hi_ - lo_),
                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
      throw IoError(name_, "", "writing back the data failed: " + errno_text(errno));
    }
  }

 private:
  std::string name_;
  int fd_;
  std::uint64_t lo_ = UINT64_MAX, hi_ = 0;  // span of what this rank wrote
};

// Runs fn and returns the exception it threw, for agree().
template <class Fn>
std::exception_ptr attempt(Fn&& fn) {
  try {
    fn();
    return nullptr;
  } catch (...) {
    return std::current_exception();
  }
}

void check_attr_names(const AttrMap& attrs, const std::string& dataset) {
  for (const auto& [name, value] : attrs) {
    if (is_reserved_dataset_attr(name)) throw UsageError("", dataset, "attribute name '" + name + "' is reserved");
  }
}

// The staged pieces of a non-contiguous view: each gathered into buf.
void for_each_staged_piece(const StoredView& v, std::size_t budget, std::vector<std::byte>& buf,
                           const std::function<void(const Dims&, const Dims&)>& fn) {
  // A piece is at most max(budget, one element), and never more than the view.
  buf.resize(std::min<std::uint64_t>(std::max(budget, v.elsize), std::max<std::uint64_t>(v.bytes(), v.elsize)));
  for_each_piece(v.shape, v.elsize, budget, [&](const Dims& off, const Dims& cnt) {
    copy_box(v.data + byte_offset(off, v.strides), v.strides, buf.data(), c_strides(cnt, v.elsize), cnt, v.elsize);
    fn(off, cnt);
  });
}

}  // namespace

struct CheckpointWriter::Impl {
  CheckpointDir dir;
  std::uint64_t epoch;
  Comm comm;
  WriterOptions options;
  AttrMap root_attrs, rank_attrs;
  std::vector<Entry> entries;
  std::vector<StoredView> views;  // parallel to entries
  std::set<std::string> names, global_names;
  bool committed = false;

  std::string path_of(const Entry& e, int rank) const {
    return e.kind == EntryKind::Global ? global_path(e.name)
                                       : dataset_path(rank, e.kind == EntryKind::Blob ? DatasetKind::Blob
                                                                                      : DatasetKind::Array,
                                                      e.name);
  }

  void add(Entry e, const StoredView& v) {
    auto& namespace_ = e.kind == EntryKind::Global ? global_names : names;
    const std::string path = path_of(e, comm.rank());
    if (committed) throw UsageError("", path, "the writer has already committed");
    if (e.name.empty()) throw UsageError("", path, "empty dataset name");
    if (!namespace_.insert(e.name).second) throw UsageError("", path, "dataset name used twice");
    check_attr_names(e.attrs, path);
    e.staged = !v.contiguous;
    entries.push_back(std::move(e));
    views.push_back(v);
  }

  StoredView view_of(const ArrayView& a, const std::string& dataset, bool allow_f) const {
    try {
      if (a.type.kind == ElementType::Kind::Unicode && (a.type.size == 0 || a.type.size % 4 != 0)) {
        throw H5Failure("a UCS-4 string type needs a size that is a positive multiple of 4");
      }
      h5_type_of(storage_type(a.type));  // rejects what cannot be stored, now rather than in commit()
      if (a.data == nullptr && element_count(a.shape) != 0) throw H5Failure("null data for a non-empty array");
      return stored_view(const_cast<void*>(a.data), a.type, a.shape, a.strides, allow_f);
    } catch (const H5Failure& e) {
      throw UsageError("", dataset, e.what());
    }
  }

  // -------------------------------------------------------- commit ---

  std::vector<std::byte> describe() const {
    Encoder enc;
    enc.str(host_name());
    enc.f64(now_unix());
    enc.str(native_byte_order() == ByteOrder::Little ? "little" : "big");
    enc.attrs(comm.rank() == 0 ? root_attrs : AttrMap{});
    enc.attrs(rank_attrs);
    enc.list(entries, [&](const Entry& e) { encode(enc, e); });
    return std::move(enc.bytes());
  }

  static std::vector<RankMessage> decode_all(const std::vector<std::vector<std::byte>>& all) {
    std::vector<RankMessage> out;
    for (const auto& bytes : all) {
      Decoder dec(bytes);
      RankMessage m;
      m.host = dec.str();
      m.created_unix = dec.f64();
      m.byte_order = dec.str();
      m.root_attrs = dec.attrs();
      m.rank_attrs = dec.attrs();
      m.entries = dec.list([&] { return decode_entry(dec); });
      out.push_back(std::move(m));
    }
    return out;
  }

  struct SlabRef {
    int rank;
    const Entry* entry;
  };
  // Global arrays by name, with their slabs by rank. Every rank computes the
  // same result from the same messages, so a UsageError here is thrown by
  // all ranks alike.
  static std::map<std::string, std::vector<SlabRef>> plan_globals(const std::vector<RankMessage>& ranks) {
    std::map<std::string, std::vector<SlabRef>> globals;
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      for (const Entry& e : ranks[r].entries) {
        if (e.kind == EntryKind::Global) globals[e.name].push_back({static_cast<int>(r), &e});
      }
    }
    for (const auto& [name, slabs] : globals) {
      const Entry& first = *slabs.front().entry;
      for (std::size_t i = 0; i < slabs.size(); ++i) {
        const Entry& e = *slabs[i].entry;
        if (!(e.type == first.type) || e.global_shape != first.global_shape) {
          throw UsageError("", global_path(name),
                           "rank " + std::to_string(slabs[i].rank) + " gives type " + e.type.str() +
                               " or a global shape that differs from rank " + std::to_string(slabs.front().rank));
        }
        for (std::size_t j = 0; j < i; ++j) {
          const Entry& o = *slabs[j].entry;
          bool overlap = element_count(e.shape) != 0 && element_count(o.shape) != 0;
          for (std::size_t d = 0; overlap && d < e.shape.size(); ++d) {
            overlap = e.offset[d] < o.offset[d] + o.shape[d] && o.offset[d] < e.offset[d] + e.shape[d];
          }
          if (overlap) {
            throw UsageError("", global_path(name),
                             "slabs of ranks " + std::to_string(slabs[j].rank) + " and " +
                                 std::to_string(slabs[i].rank) + " overlap");
          }
        }
      }
    }
    return globals;
  }

  // user_block: bytes HDF5 leaves free at the start for the header.
  // aligned: some dataset is large enough to start on a kAlignment boundary.
  static Hid create_file(const fs::path& path, const Comm& comm, std::uint64_t user_block, bool aligned) {
    Hid fcpl = plist_id(H5Pcreate(H5P_FILE_CREATE), "H5Pcreate");
    checked_status(H5Pset_userblock(fcpl.get(), user_block), "H5Pset_userblock");
    Hid fapl = plist_id(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate");
    if (comm.is_mpi()) {
      checked_status(H5Pset_fapl_mpio(fapl.get(), comm.get(), MPI_INFO_NULL), "H5Pset_fapl_mpio");
      // Metadata is written by rank 0 in one collective operation at close
      // rather than by every rank in small pieces.
      checked_status(H5Pset_coll_metadata_write(fapl.get(), 1), "H5Pset_coll_metadata_write");
    }
    // The 1.8 object format: readable by any HDF5 >= 1.8, and it lets large
    // attributes (hosts of many ranks, slab tables) move to dense storage.
    checked_status(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18), "H5Pset_libver_bounds");
    if (aligned) checked_status(H5Pset_alignment(fapl.get(), kAlignThreshold, kAlignment), "H5Pset_alignment");
    // Atomic rename gives readers a complete file; locks would only fail on
    // file systems without flock.
    checked_status(H5Pset_file_locking(fapl.get(), 0, 1), "H5Pset_file_locking");
    return file_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), "cannot create the file");
  }

  static Hid create_group(hid_t parent, const std::string& name) {
    return group_id(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2");
  }

  // Creates one dataset (collective) with its format and caller attributes.
  static Hid create_dataset(hid_t file, const std::string& path, const Entry& e, const Dims& dims,
                            hid_t dcpl) {
    Hid type = h5_type_of(storage_type(e.type));
    Hid space = simple_space(dims);
    Hid dset = dataset_id(H5Dcreate2(file, path.c_str(), type.get(), space.get(), H5P_DEFAULT, dcpl, H5P_DEFAULT),
                          "cannot create the dataset");
    if (e.kind != EntryKind::Blob) write_attr(dset.get(), kAttrOrder, std::string(e.order == StorageOrder::F ? "F" : "C"));
    if (e.type.kind == ElementType::Kind::Unicode) {
      write_attr(dset.get(), kAttrUnicode, static_cast<std::int64_t>(e.type.size / 4));
    }
    for (const auto& [name, value] : e.attrs) write_attr(dset.get(), name, value);
    return dset;
  }

  static void write_slab_table(hid_t dset, const std::vector<SlabRef>& slabs) {
    const std::size_t ndim = slabs.front().entry->global_shape.size();
    const std::size_t rec = slab_record_size(ndim);
    std::vector<std::byte> table(rec * slabs.size());
    for (std::size_t i = 0; i < slabs.size(); ++i) {
      std::byte* p = table.data() + i * rec;
      const std::int32_t rank = slabs[i].rank;
      std::memcpy(p, &rank, 4);
      // Logical dims: a 'U' array's character dim is implicit.
      std::memcpy(p + 4, slabs[i].entry->offset.data(), 8 * ndim);
      std::memcpy(p + 4 + 8 * ndim, slabs[i].entry->shape.data(), 8 * ndim);
      std::memcpy(p + 4 + 16 * ndim, &slabs[i].entry->checksum, 8);
    }
    Hid file_type = slab_table_type(ndim, false), mem_type = slab_table_type(ndim, true);
    Hid space = simple_space({slabs.size()});
    Hid attr = attr_id(H5Acreate2(dset, kAttrSlabs, file_type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                       "slabs attribute");
    checked_status(H5Awrite(attr.get(), mem_type.get(), table.data()), "slabs attribute");
  }

  // Writes this rank's part of a dataset in `calls` H5Dwrite calls; a rank
  // with fewer pieces (or none) makes empty calls, as collective transfers
  // need every rank in every call.
  // Staged data is checksummed into `staged_sum` as it passes the buffer.
  void write_data(hid_t dset, const Entry* e, const StoredView* v, hid_t xfer, std::uint64_t calls,
                  std::vector<std::byte>& buf, Checksum* staged_sum) const {
    Hid file_space = space_id(H5Dget_space(dset), "H5Dget_space");
    Hid mem_type = type_id(H5Dget_type(dset), "H5Dget_type");
    std::uint64_t made = 0;
    const auto write = [&](hid_t mem_space, const Dims& off, const Dims& cnt, const void* data) {
      Dims file_off = off;
      for (std::size_t d = 0; d < e->offset.size(); ++d) file_off[d] += e->offset[d];
      Hid file_sel = select_box(file_space.get(), file_off, cnt);
      checked_status(H5Dwrite(dset, mem_type.get(), mem_space, file_sel.get(), xfer, data), "H5Dwrite");
      ++made;
    };
    if (e != nullptr && !e->staged) {
      Hid mem_space = simple_space(v->shape);
      for_each_piece(v->shape, v->elsize, kPieceBytes, [&](const Dims& off, const Dims& cnt) {
        Hid mem_sel = select_box(mem_space.get(), off, cnt);
        write(mem_sel.get(), off, cnt, v->data);
      });
    } else if (e != nullptr) {
      for_each_staged_piece(*v, options.staging_bytes, buf, [&](const Dims& off, const Dims& cnt) {
        Hid mem_space = simple_space(cnt);
        write(mem_space.get(), off, cnt, buf.data());
        staged_sum->update(buf.data(), element_count(cnt) * v->elsize);
      });
    }
    for (; made < calls; ++made) {
      Hid none_file = space_id(H5Scopy(file_space.get()), "H5Scopy");
      Hid none_mem = space_id(H5Scopy(file_space.get()), "H5Scopy");
      checked_status(H5Sselect_none(none_file.get()), "H5Sselect_none");
      checked_status(H5Sselect_none(none_mem.get()), "H5Sselect_none");
      const std::byte dummy{};
      checked_status(H5Dwrite(dset, mem_type.get(), none_mem.get(), none_file.get(), xfer, &dummy), "H5Dwrite");
    }
  }

  void publish(const fs::path& tmp, const fs::path& final_path) const {
    fsync_path(tmp, false);
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
      throw IoError(final_path.string(), "", "cannot rename " + tmp.filename().string() + ": " + errno_text(errno));
    }
    // A new symlink renamed over the old one: `latest` always names a
    // complete checkpoint, the old or the new one.
    const fs::path link = dir.latest_link(), link_tmp = fs::path(link.string() + ".tmp");
    ::unlink(link_tmp.c_str());
    if (::symlink(final_path.filename().c_str(), link_tmp.c_str()) != 0 || ::rename(link_tmp.c_str(), link.c_str()) != 0) {
      throw IoError(link.string(), "", "cannot point `latest` at " + final_path.filename().string() + ": " +
                                           errno_text(errno));
    }
    fsync_path(dir.path(), true);
    retain(final_path);
  }

  // Keeps the newest `keep` checkpoints and the one just committed (which
  // `latest` names), and removes in-flight files of crashed earlier commits.
  void retain(const fs::path& final_path) const {
    std::vector<CheckpointEntry> all = dir.list();
    std::error_code ec;
    const std::size_t keep = static_cast<std::size_t>(dir.keep());
    for (std::size_t i = 0; i + keep < all.size(); ++i) {
      if (all[i].path.filename() != final_path.filename()) fs::remove(all[i].path, ec);
    }
    for (const auto& [stale, path] : dir.in_flight_files()) {
      if (stale < epoch) fs::remove(path, ec);
    }
  }

  // What every rank knows once descriptors are exchanged (phase 1). The
  // global plan points into `ranks`: a Plan is never copied.
  struct Plan {
    std::vector<RankMessage> ranks;
    std::map<std::string, std::vector<SlabRef>> globals;
    CheckpointHeader header;  // outline; rank 0 fills in the values at the end
    bool aligned = false;     // some dataset starts on a kAlignment boundary
    Plan() = default;
    Plan(const Plan&) = delete;
    Plan& operator=(const Plan&) = delete;
  };

  // 1. exchange (collective): every rank derives the same header outline,
  // hence the same user block (H5Fcreate is collective in parallel).
  // local_first: this rank's own preparation, whose failure is agreed on
  // with the descriptors' (one agreement).
  std::unique_ptr<Plan> exchange(CommitInfo& info, const std::function<void()>& local_first = {}) const {
    auto plan = std::make_unique<Plan>();
    std::vector<std::byte> mine;
    agree(comm, attempt([&] {
      if (local_first) local_first();
      mine = describe();
    }));
    plan->ranks = decode_all(allgather_bytes(comm, mine));
    plan->globals = plan_globals(plan->ranks);
    for (std::size_t r = 0; r < plan->ranks.size(); ++r) {
      for (const Entry& e : plan->ranks[r].entries) {
        const std::uint64_t bytes = element_count(e.stored) * e.elsize();
        info.bytes_total += bytes;
        if (static_cast<int>(r) == comm.rank()) info.bytes_written += bytes;
      }
    }
    plan->header = outline_header(plan->ranks, plan->globals);
    for (const RankMessage& m : plan->ranks) {
      for (const Entry& e : m.entries) plan->aligned = plan->aligned || e.dataset_bytes() >= kAlignThreshold;
    }
    plan->header.user_block = user_block_for(header_size(plan->header), plan->aligned ? kAlignment : 0);
    return plan;
  }

  // The open objects of a file being made: datasets by rank and entry (all
  // stay open for the checksum attributes), rank groups (for the timing
  // attributes), global datasets by name.
  struct Layout {
    std::vector<std::vector<Hid>> dsets;
    std::vector<Hid> rank_groups;
    std::map<std::string, Hid> global_dsets;
  };

  // Root attributes, groups and datasets with their caller attributes
  // (collective in parallel HDF5: every rank makes the same calls), then the
  // metadata flushed: if the data phase fails (disk full) closing the file
  // has nothing left to write (in HDF5 1.10 a failed H5Fclose leaves a
  // dangling file ID that crashes the library when it shuts down at exit).
  Layout create_layout(hid_t file, const Plan& plan, std::uint64_t bytes_total, const std::string& tmp_name) const {
    Layout out;
    write_root_attrs(file, plan.ranks, bytes_total);
    Hid dcpl = plist_id(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate");
    checked_status(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), "H5Pset_layout");
    // Every byte gets written; filling first would write it all twice.
    checked_status(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time");
    checked_status(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time");
    Hid ranks_group = create_group(file, "ranks");
    out.dsets.resize(plan.ranks.size());
    out.rank_groups.resize(plan.ranks.size());
    for (std::size_t r = 0; r < plan.ranks.size(); ++r) {
      const int rank = static_cast<int>(r);
      Hid g = create_group(ranks_group.get(), std::to_string(r));
      for (const auto& [name, value] : plan.ranks[r].rank_attrs) write_attr(g.get(), name, value);
      Hid blobs = create_group(g.get(), "blobs"), arrays = create_group(g.get(), "arrays");
      out.rank_groups[r] = std::move(g);
      out.dsets[r].resize(plan.ranks[r].entries.size());
      for (std::size_t i = 0; i < plan.ranks[r].entries.size(); ++i) {
        const Entry& e = plan.ranks[r].entries[i];
        if (e.kind == EntryKind::Global) continue;
        const std::string path = path_of(e, rank);
        out.dsets[r][i] = in_context<IoError>(tmp_name, path, [&] {
          return create_dataset(file, path, e, e.stored, dcpl.get());
        });
      }
    }
    Hid global_group = create_group(file, "global");
    for (const auto& [name, slabs] : plan.globals) {
      const std::string path = global_path(name);
      in_context<IoError>(tmp_name, path, [&] {
        const Entry& first = *slabs.front().entry;
        out.global_dsets.emplace(name, create_dataset(file, path, first, first.global_stored, dcpl.get()));
      });
    }
    checked_status(H5Fflush(file, H5F_SCOPE_GLOBAL), "flushing the file's metadata");
    return out;
  }

  // Every dataset's checksum attribute and every global array's slab table,
  // once all ranks' checksums are known; rank 0 also fills in the header.
  static void write_checksums(Plan& plan, const Layout& layout, bool root) {
    for (std::size_t r = 0; r < plan.ranks.size(); ++r) {
      for (std::size_t i = 0; i < plan.ranks[r].entries.size(); ++i) {
        if (plan.ranks[r].entries[i].kind != EntryKind::Global) {
          write_u64_attr(layout.dsets[r][i].get(), kAttrChecksum, plan.ranks[r].entries[i].checksum);
        }
      }
    }
    for (const auto& [name, slabs] : plan.globals) write_slab_table(layout.global_dsets.at(name).get(), slabs);
    if (root) fill_header(plan.header, plan.ranks, plan.globals, layout.dsets, layout.global_dsets);
  }

  // Every rank's timings (seconds_prepare, seconds_write) on its group, the
  // slowest rank's on the root.
  static void write_timings(hid_t file, Layout& layout, const std::vector<std::array<double, 2>>& timings) {
    double slowest_prepare = 0, slowest_write = 0;
    for (std::size_t r = 0; r < timings.size(); ++r) {
      const auto [prepare, write] = timings[r];
      write_attr(layout.rank_groups[r].get(), "seconds_prepare", prepare);
      write_attr(layout.rank_groups[r].get(), "seconds_write", write);
      slowest_prepare = std::max(slowest_prepare, prepare);
      slowest_write = std::max(slowest_write, write);
    }
    layout.rank_groups.clear();
    write_attr(file, "seconds_prepare", slowest_prepare);
    write_attr(file, "seconds_write", slowest_write);
  }

  // Rank 0: the in-flight file, empty and private before any data lands in
  // it (HDF5 truncates it and keeps its mode); also the probe that the
  // directory takes files.
  void create_in_flight_file(const fs::path& tmp) const {
    const int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) throw IoError(dir.path().string(), "", "cannot create " + tmp.filename().string() + ": " + errno_text(errno));
    ::close(fd);
  }

  // Rank 0: the key it authenticates the file with, and the directory.
  Key prepare_directory() const {
    Key key = options.key ? *options.key : Key::load_or_create(Key::default_path());
    dir.create();
    return key;
  }

  CommitInfo commit() {
    if (committed) throw UsageError(dir.file_for(epoch).string(), "", "commit() called twice");
    committed = true;
    quiet_hdf5();
    CommitInfo info;
    info.epoch = epoch;
    info.path = dir.file_for(epoch);
    const fs::path tmp = dir.in_flight_file_for(epoch);
    const std::string tmp_name = tmp.string();
    const bool root = comm.rank() == 0;

    // 1. exchange
    Stopwatch prepare_clock;
    std::unique_ptr<Plan> plan = exchange(info);
    info.seconds_prepare = prepare_clock.seconds();

    // 3. the key, the directory and a probe of the file
    Stopwatch write_clock;
    std::optional<Key> key;
    agree(comm, attempt([&] {
      if (!root) return;
      key = prepare_directory();
      create_in_flight_file(tmp);
    }));

    TmpFileGuard guard(tmp, root);
    {
      // 4. file, groups, datasets, attributes -- collective
      Hid file;
      agree(comm, attempt([&] {
        file = in_context<IoError>(tmp_name, "", [&] {
          return create_file(tmp, comm, plan->header.user_block, plan->aligned);
        });
      }));
      const bool collective = comm.is_mpi() && options.collective_io;
      Layout layout;
      agree(comm, attempt([&] {
        in_context<IoError>(tmp_name, "", [&] { layout = create_layout(file.get(), *plan, info.bytes_total, tmp_name); });
      }));

      // 4. raw data and checksums
      agree(comm, attempt([&] {
        write_all_data(tmp, plan->ranks, plan->globals, layout.dsets, layout.global_dsets, collective);
      }));

      // 5. checksum attributes, flush, close
      agree(comm, attempt([&] {
        for (std::size_t i = 0; i < entries.size(); ++i) {
          if (entries[i].kind == EntryKind::Blob) entries[i].sha256 = sha256_of(views[i].data, views[i].bytes());
        }
        exchange_checksums(plan->ranks);
        in_context<IoError>(tmp_name, "", [&] { write_checksums(*plan, layout, root); });
      }));
      layout.dsets.clear();
      layout.global_dsets.clear();
      info.seconds_write = write_clock.seconds();
      // Attributes are written collectively: every rank learns them all.
      Encoder my_timings;
      my_timings.f64(info.seconds_prepare);
      my_timings.f64(info.seconds_write);
      std::vector<std::array<double, 2>> timings;
      for (const std::vector<std::byte>& bytes : allgather_bytes(comm, my_timings.bytes())) {
        Decoder dec(bytes);
        const double prepare = dec.f64();
        timings.push_back({prepare, dec.f64()});
      }
      agree(comm, attempt([&] {
        in_context<IoError>(tmp_name, "", [&] {
          write_timings(file.get(), layout, timings);
          // In parallel this is MPI_File_sync: each rank's data reaches storage
          // even when ranks sit on different nodes.
          checked_status(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "flushing the file");
          file.close("closing the file");
        });
      }));
    }

    // 6. header; 7. publish
    Stopwatch commit_clock;
    agree(comm, attempt([&] {
      if (!root) return;
      write_header(tmp, plan->header, *key);
      publish(tmp, info.path);
      guard.disarm();
    }));
    guard.disarm();
    info.seconds_commit = commit_clock.seconds();
    info.seconds_write = write_clock.seconds() - info.seconds_commit;
    return info;
  }

  // Every rank learns every rank's checksums (the attributes are written
  // collectively, by all ranks alike), and rank 0 the blobs' SHA-256s (for
  // the header).
  void exchange_checksums(std::vector<RankMessage>& ranks) const {
    // In the order of the descriptors exchanged before.
    Encoder enc;
    for (const Entry& e : entries) {
      enc.u64(e.checksum);
      enc.str(e.sha256 ? std::string(reinterpret_cast<const char*>(e.sha256->data()), e.sha256->size()) : "");
    }
    const std::vector<std::vector<std::byte>> all = allgather_bytes(comm, enc.bytes());
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      Decoder dec(all[r]);
      for (Entry& e : ranks[r].entries) {
        e.checksum = dec.u64();
        const std::string sha = dec.str();
        e.sha256.reset();
        if (!sha.empty()) std::memcpy(e.sha256.emplace().data(), sha.data(), e.sha256->size());
      }
    }
  }

  // The header's datasets (every per-rank dataset, then every global
  // array) with what is known once descriptors are exchanged: enough to
  // size the user block.
  CheckpointHeader outline_header(const std::vector<RankMessage>& ranks,
                                  const std::map<std::string, std::vector<SlabRef>>& globals) const {
    CheckpointHeader h;
    h.format_version = static_cast<std::uint64_t>(kFormatVersion);
    h.epoch = epoch;
    h.world_size = ranks.size();
    h.created_unix = ranks.front().created_unix;
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      for (const Entry& e : ranks[r].entries) {
        if (e.kind == EntryKind::Global) continue;
        HeaderEntry he;
        he.path = path_of(e, static_cast<int>(r));
        he.kind = e.kind == EntryKind::Blob ? HeaderEntry::Kind::Blob : HeaderEntry::Kind::Array;
        he.rank = static_cast<int>(r);
        he.bytes = e.dataset_bytes();
        if (e.kind == EntryKind::Blob) he.sha256.emplace();
        h.datasets.push_back(std::move(he));
      }
    }
    for (const auto& [name, slabs] : globals) {
      HeaderEntry he;
      he.path = global_path(name);
      he.kind = HeaderEntry::Kind::Global;
      he.bytes = slabs.front().entry->dataset_bytes();
      h.datasets.push_back(std::move(he));
    }
    return h;
  }

  // Rank 0, the datasets still open: where HDF5 put each dataset's data,
  // and the checksums and digests every rank computed; in the order of
  // outline_header, then sorted by offset.
  static void fill_header(CheckpointHeader& h, const std::vector<RankMessage>& ranks,
                          const std::map<std::string, std::vector<SlabRef>>& globals,
                          const std::vector<std::vector<Hid>>& dsets, const std::map<std::string, Hid>& global_dsets) {
    std::size_t k = 0;
    const auto place = [&](HeaderEntry& he, hid_t dset) {
      const haddr_t offset = H5Dget_offset(dset);
      if (offset == HADDR_UNDEF) {
        take_hdf5_message();
        if (he.bytes != 0) throw H5Failure(he.path + ": HDF5 allocated no space for its data");
        he.offset = 0;
      } else {
        he.offset = offset;
      }
    };
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      for (std::size_t i = 0; i < ranks[r].entries.size(); ++i) {
        const Entry& e = ranks[r].entries[i];
        if (e.kind == EntryKind::Global) continue;
        HeaderEntry& he = h.datasets.at(k++);
        place(he, dsets[r][i].get());
        he.checksum = e.checksum;
        he.sha256 = e.sha256;
      }
    }
    for (const auto& [name, slabs] : globals) place(h.datasets.at(k++), global_dsets.at(name).get());
    std::stable_sort(h.datasets.begin(), h.datasets.end(),
                     [](const HeaderEntry& a, const HeaderEntry& b) { return a.offset < b.offset; });
  }

  // Rank 0, after HDF5 closed the file: the header into the user block.
  static void write_header(const fs::path& tmp, CheckpointHeader& header, const Key& key) {
    const int fd = ::open(tmp.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) throw IoError(tmp.string(), "", "cannot open to write its header: " + errno_text(errno));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    // Private whatever the umask, and however MPI-IO created the file.
    if (::fchmod(fd, 0600) != 0 || ::fstat(fd, &st) != 0) {
      throw IoError(tmp.string(), "", "cannot make the file private: " + errno_text(errno));
    }
    header.file_size = static_cast<std::uint64_t>(st.st_size);
    header.key_id = key.id();
    header.metadata_sha256 = metadata_digest(fd, tmp.string(), header, header.file_size);
    const std::vector<std::byte> bytes = encode_header(header, key);
    if (bytes.size() > header.user_block) throw IoError(tmp.string(), "", "the header outgrew its user block");
    for (std::size_t done = 0; done < bytes.size();) {
      const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw IoError(tmp.string(), "", "writing the header failed: " + errno_text(n < 0 ? errno : EIO));
      done += static_cast<std::size_t>(n);
    }
  }

  void write_root_attrs(hid_t file, const std::vector<RankMessage>& ranks, std::uint64_t bytes_total) const {
    std::vector<std::string> hosts;
    for (const RankMessage& m : ranks) hosts.push_back(m.host);
    write_attr(file, "format", std::string(kFormatName));
    write_attr(file, "format_version", kFormatVersion);
    write_attr(file, "epoch", static_cast<std::int64_t>(epoch));
    write_attr(file, "world_size", static_cast<std::int64_t>(ranks.size()));
    write_attr(file, "hosts", hosts);
    write_attr(file, "created_unix", ranks.front().created_unix);
    write_attr(file, "byte_order", ranks.front().byte_order);
    write_attr(file, "bytes_total", static_cast<std::int64_t>(bytes_total));
    for (const auto& [name, value] : ranks.front().root_attrs) write_attr(file, name, value);
  }

  // One dataset part of this rank through the RawFile: a per-rank dataset
  // (file_dims = its own dims, file_off = 0), or a global slab whose box is
  // one contiguous run of the global dataset (slab_is_contiguous_run). Staged
  // pieces are contiguous runs of the part's C order, hence of the file's,
  // so each is one pwrite.
  void write_posix(RawFile& raw, hid_t dset, Entry& e, const StoredView& v, const std::string& path,
                   std::vector<std::byte>& buf, const Dims& file_dims, const Dims& file_off) const {
    Checksum sum;
    if (v.bytes() != 0) {
      const haddr_t base = H5Dget_offset(dset);
      if (base == HADDR_UNDEF) throw_h5("H5Dget_offset");
      const Strides file_strides = c_strides(file_dims, v.elsize);
      const auto at = [&](const Dims& off) {
        Dims in_file = off;
        for (std::size_t d = 0; d < in_file.size(); ++d) in_file[d] += file_off[d];
        return base + static_cast<std::uint64_t>(byte_offset(in_file, file_strides));
      };
      if (!e.staged) {
        raw.write(v.data, v.bytes(), at(Dims(v.shape.size(), 0)), path, sum);
      } else {
        for_each_staged_piece(v, options.staging_bytes, buf, [&](const Dims& off, const Dims& cnt) {
          raw.write(buf.data(), element_count(cnt) * v.elsize, at(off), path, sum);
        });
      }
    }
    e.checksum = sum.digest();
  }

  // Whether a box of `count` elements lies in a C-order array of `dims` as
  // one contiguous run of bytes: full in every dimension after some k, and 1
  // in every dimension before it (row blocks of a global array are).
  static bool slab_is_contiguous_run(const Dims& dims, const Dims& count) {
    std::size_t k = dims.size();
    while (k > 0 && count[k - 1] == dims[k - 1]) --k;
    for (std::size_t d = 0; d + 1 < k; ++d) {
      if (count[d] != 1) return false;
    }
    return true;
  }

  void write_all_data(const fs::path& tmp, const std::vector<RankMessage>& ranks,
                      const std::map<std::string, std::vector<SlabRef>>& globals,
                      const std::vector<std::vector<Hid>>& dsets, const std::map<std::string, Hid>& global_dsets,
                      bool collective) {
    const std::string file_name = tmp.string();
    Hid xfer = plist_id(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate");
    if (comm.is_mpi()) {
      checked_status(H5Pset_dxpl_mpio(xfer.get(), collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT),
                     "H5Pset_dxpl_mpio");
    }
    std::vector<std::byte> buf;
    const auto write_one = [&](hid_t dset, const std::string& path, Entry* e, const StoredView* v,
                               std::uint64_t calls) {
      Checksum staged_sum;
      in_context<IoError>(file_name, path, [&] { write_data(dset, e, v, xfer.get(), calls, buf, &staged_sum); });
      if (e != nullptr && e->staged) e->checksum = staged_sum.digest();
    };
    // Per-rank datasets: independently, one's own through POSIX;
    // collectively, every rank joins every MPI-IO write, in the same order.
    std::optional<RawFile> raw;
    if (!collective) {
      raw.emplace(tmp);
      const auto me = static_cast<std::size_t>(comm.rank());
      for (std::size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].kind == EntryKind::Global) continue;
        const std::string path = path_of(entries[i], comm.rank());
        in_context<IoError>(file_name, path, [&] {
          write_posix(*raw, dsets[me][i].get(), entries[i], views[i], path, buf, views[i].shape,
                      Dims(views[i].shape.size(), 0));
        });
      }
    }
    for (std::size_t r = 0; collective && r < ranks.size(); ++r) {
      const bool mine = static_cast<int>(r) == comm.rank();
      for (std::size_t i = 0; i < ranks[r].entries.size(); ++i) {
        const Entry& e = ranks[r].entries[i];
        if (e.kind == EntryKind::Global) continue;
        // Another rank's dataset: take part in its calls with empty selections.
        write_one(dsets[r][i].get(), path_of(e, static_cast<int>(r)), mine ? &entries[i] : nullptr,
                  mine ? &views[i] : nullptr, e.pieces(options.staging_bytes));
      }
    }
    std::set<const Entry*> posix_globals;
    for (const auto& [name, slabs] : globals) {
      std::uint64_t calls = 0;
      for (const SlabRef& s : slabs) calls = std::max(calls, s.entry->pieces(options.staging_bytes));
      Entry* mine = nullptr;
      const StoredView* view = nullptr;
      for (std::size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].kind == EntryKind::Global && entries[i].name == name) {
          mine = &entries[i];
          view = &views[i];
        }
      }
      if (mine == nullptr && !collective) continue;
      // Independently, a slab that is one contiguous run of the dataset (a
      // block of rows) goes through POSIX like per-rank data, avoiding
      // OMPIO's locks; other boxes need MPI-IO's strided file views.
      if (!collective && slab_is_contiguous_run(mine->global_stored, mine->stored)) {
        const std::string path = global_path(name);
        in_context<IoError>(file_name, path, [&] {
          write_posix(*raw, global_dsets.at(name).get(), *mine, *view, path, buf, mine->global_stored, mine->offset);
        });
        posix_globals.insert(mine);
        continue;
      }
      write_one(global_dsets.at(name).get(), global_path(name), mine, view, collective ? calls : 0);
    }
    // What went through MPI-IO unstaged is checksummed now; RawFile::write
    // checksummed the rest on the way.
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (posix_globals.count(&entries[i]) != 0) continue;
      if (!entries[i].staged && (collective || entries[i].kind == EntryKind::Global)) {
        entries[i].checksum = checksum_of(views[i].data, views[i].bytes());
      }
    }
    if (raw) raw->sync();
  }
};

// ------------------------------------------------------ asynchronous commit ---
//
// commit_async, on every rank: the descriptor exchange (phase 1) and a copy
// of the rank's data into the staging buffer; the program goes on. Then:
//   a. rank 0 creates the file alone, in commit_async (serial HDF5: the
//      same layout a collective creation makes), and learns every
//      dataset's offset;
//   b. rank 0 sends every rank its offsets (Iscatterv);
//   c. every rank's thread writes its copy with pwrite (RawFile, as the
//      synchronous commit does), checksums it and syncs it;
//   d. every rank sends rank 0 its outcome, checksums and timings (Igatherv);
//   e. rank 0, in the progress() that sees every report in, opens the file
//      again, writes the checksums and timings, closes it, writes the
//      header and publishes -- or, if any rank failed, removes the file.
// b and d are nonblocking collectives on a private duplicate of the
// communicator, posted and tested by progress() on the caller's thread: the
// thread makes no MPI call and no HDF5 call: libhdf5 is not thread-safe, and
// the program (h5py) goes on calling it while the data drains. (A version
// whose rank-0 thread made a and e crashed in H5Pcreate, 2 runs in 5 of
// hdf5_io.mpi.np4, while the caller opened a checkpoint.)

namespace {

// The failure text a rank reports to rank 0 (longer ones are cut).
constexpr std::size_t kReportText = 512;

// Bytes of a rank's report to rank 0 with n datasets: outcome, two timings,
// the failure text, then per dataset its checksum and SHA-256.
std::size_t report_bytes(std::size_t n) { return 3 * 8 + kReportText + n * (8 + 32); }

// The communicator of asynchronous commits over `comm`: a duplicate, made
// (collectively) by the first one and kept for the process's life, so that
// later commits pay no MPI_Comm_dup in the program's pause. Commits over
// one communicator are never pending together (one at a time), and nothing
// else uses the duplicate. (A communicator freed and another made with the
// same handle would find the old one's duplicate: pyckpt's write
// communicator lives as long as the job.)
MPI_Comm private_duplicate(MPI_Comm comm) {
  static std::mutex mutex;
  static std::map<MPI_Comm, MPI_Comm> duplicates;
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, made] = duplicates.emplace(comm, MPI_COMM_NULL);
  if (made) MPI_Comm_dup(comm, &it->second);
  return it->second;
}

std::string error_text(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

StagingBuffer::~StagingBuffer() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

std::byte* StagingBuffer::reserve(std::size_t bytes) {
  if (bytes <= size_ && data_ != nullptr) return data_;
  // A quarter more than asked, whole MiBs: the pickles of the next commit
  // are a few bytes longer. mremap keeps the pages already touched.
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  const std::size_t size = (bytes + bytes / 4 + kMiB - 1) / kMiB * kMiB;
  void* p = data_ == nullptr ? ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                             : ::mremap(data_, size_, size, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) {
    throw IoError("", "", "cannot allocate " + std::to_string(size) + " bytes to copy the checkpoint's data into: " +
                              errno_text(errno));
  }
  // Transparent huge pages where the kernel has them: the first copy into
  // the new memory faults once per 2 MiB instead of once per 4 KiB (on the
  // benchmark's VM 64 MiB took 0.04-0.27 s instead of 0.7-0.9 s). A hint.
  ::madvise(p, size, MADV_HUGEPAGE);
  data_ = static_cast<std::byte*>(p);
  size_ = size;
  return data_;
}

struct PendingCommit::Impl {
  using Writer = CheckpointWriter::Impl;
  explicit Impl(const Writer& writer) : w(writer) {}
  Writer w;  // its views are over the staging copies
  std::unique_ptr<Writer::Plan> plan;
  CommitInfo info;
  std::optional<Key> key;  // rank 0
  fs::path tmp;
  bool root = false;
  MPI_Comm comm = MPI_COMM_NULL;  // private_duplicate(): the exchanges b and d

  // The caller's thread only.
  enum class Step { Scatter, ScatterWait, Gather, GatherWait, Finishing, Over };
  Step step = Step::Scatter;
  std::vector<int> offset_counts, offset_displs, report_counts, report_displs;  // rank 0
  std::vector<std::uint64_t> all_offsets;  // rank 0: per rank [status, offset per dataset]
  std::vector<std::byte> report, reports;
  MPI_Request request = MPI_REQUEST_NULL;

  // Shared with the thread, under m.
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::uint64_t> offsets;  // this rank's [status, offset per dataset]
  bool offsets_known = false;
  bool drained = false;        // this rank's data written (or failed): drain_error
  bool abandoned = false;
  std::string drain_error, failure;
  std::thread thread;

  bool mpi() const { return w.comm.is_mpi(); }
  int size() const { return w.comm.size(); }

  // a. Rank 0, on the calling thread before the drain thread starts: the
  // file and every dataset's offset, or why not. Every HDF5 call of an
  // asynchronous commit (here and in finish()) runs on the thread that
  // calls commit_async/progress/wait: libhdf5 is not thread-safe, and the
  // program (h5py) or pyckpt may call it there while the data drains.
  void create() {
    const auto& ranks = plan->ranks;
    std::vector<std::uint64_t> all;
    try {
      w.create_in_flight_file(tmp);
      Hid file = in_context<IoError>(tmp.string(), "", [&] {
        return Writer::create_file(tmp, Comm::serial(), plan->header.user_block, plan->aligned);
      });
      Writer::Layout layout;
      in_context<IoError>(tmp.string(), "", [&] {
        layout = w.create_layout(file.get(), *plan, info.bytes_total, tmp.string());
      });
      for (std::size_t r = 0; r < ranks.size(); ++r) {
        all.push_back(0);  // created
        for (std::size_t i = 0; i < ranks[r].entries.size(); ++i) {
          const Entry& e = ranks[r].entries[i];
          const hid_t dset = e.kind == EntryKind::Global ? layout.global_dsets.at(e.name).get() : layout.dsets[r][i].get();
          const haddr_t base = H5Dget_offset(dset);
          std::uint64_t at = 0;
          if (base != HADDR_UNDEF) {
            at = base;
            if (e.kind == EntryKind::Global) {
              at += static_cast<std::uint64_t>(byte_offset(e.offset, c_strides(e.global_stored, e.elsize())));
            }
          } else {
            take_hdf5_message();
          }
          all.push_back(at);
        }
      }
      layout = {};
      in_context<IoError>(tmp.string(), "", [&] { file.close("closing the file"); });
    } catch (...) {
      // Every rank is told (status 1) and writes nothing; its report says so.
      failure = error_text(std::current_exception());
      all.clear();
      for (std::size_t r = 0; r < ranks.size(); ++r) {
        all.push_back(1);
        all.insert(all.end(), ranks[r].entries.size(), 0);
      }
    }
    std::lock_guard<std::mutex> lock(m);
    all_offsets = std::move(all);
    offsets.assign(all_offsets.begin(), all_offsets.begin() + 1 + static_cast<long>(ranks[0].entries.size()));
    offsets_known = true;
    cv.notify_all();
  }

  // c. This rank's copy into the file: checksums, blob digests, sync.
  void drain() {
    Stopwatch clock;
    std::string error;
    try {
      if (offsets[0] != 0) throw IoError(tmp.string(), "", "rank 0 could not create the file");
      RawFile raw(tmp);
      for (std::size_t i = 0; i < w.entries.size(); ++i) {
        Entry& e = w.entries[i];
        const StoredView& v = w.views[i];
        const std::string path = w.path_of(e, w.comm.rank());
        Checksum sum;
        if (v.bytes() != 0) raw.write(v.data, v.bytes(), offsets[1 + i], path, sum);
        e.checksum = sum.digest();
        if (e.kind == EntryKind::Blob) e.sha256 = sha256_of(v.data, v.bytes());
      }
      raw.sync();
    } catch (...) {
      error = error_text(std::current_exception());
    }
    std::lock_guard<std::mutex> lock(m);
    info.seconds_write = clock.seconds();
    drain_error = std::move(error);
    drained = true;
    cv.notify_all();
  }

  // e. Rank 0, in progress() once every report is in: commit, or remove the file.
  void finish() {
    std::error_code ec;
    if (!failure.empty()) {  // create() failed: nobody wrote
      fs::remove(tmp, ec);
      return;
    }
    std::vector<std::array<double, 2>> timings;
    std::string why;
    for (std::size_t r = 0, at = 0; r < plan->ranks.size(); ++r) {
      codec::ByteReader dec(reports.data() + at, static_cast<std::size_t>(report_counts[r]));
      at += static_cast<std::size_t>(report_counts[r]);
      const auto failed = dec.get<std::uint64_t>();
      const double prepare = dec.get_f64(), write = dec.get_f64();
      timings.push_back({prepare, write});
      const std::string text(reinterpret_cast<const char*>(dec.get_bytes(kReportText)), kReportText);
      if (failed != 0 && why.empty()) why = "rank " + std::to_string(r) + ": " + text.substr(0, text.find('\0'));
      for (Entry& e : plan->ranks[r].entries) {
        e.checksum = dec.get<std::uint64_t>();
        const std::byte* digest = dec.get_bytes(32);
        if (e.kind == EntryKind::Blob) std::memcpy(e.sha256.emplace().data(), digest, 32);
      }
    }
    try {
      if (!why.empty()) throw IoError(w.dir.path().string(), "", "checkpoint " + std::to_string(w.epoch) + " failed on " + why);
      in_context<IoError>(tmp.string(), "", [&] {
        Hid fapl = plist_id(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate");
        checked_status(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18), "H5Pset_libver_bounds");
        checked_status(H5Pset_file_locking(fapl.get(), 0, 1), "H5Pset_file_locking");
        Hid file = file_id(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, fapl.get()), "cannot open the file again");
        Writer::Layout layout;
        layout.dsets.resize(plan->ranks.size());
        for (std::size_t r = 0; r < plan->ranks.size(); ++r) {
          layout.rank_groups.push_back(group_id(H5Gopen2(file.get(), rank_path(static_cast<int>(r)).c_str(), H5P_DEFAULT),
                                                "H5Gopen2"));
          for (const Entry& e : plan->ranks[r].entries) {
            const std::string path = w.path_of(e, static_cast<int>(r));
            if (e.kind == EntryKind::Global) {
              layout.dsets[r].emplace_back();
              if (layout.global_dsets.count(e.name) == 0) {
                layout.global_dsets.emplace(e.name, dataset_id(H5Dopen2(file.get(), path.c_str(), H5P_DEFAULT), "H5Dopen2"));
              }
            } else {
              layout.dsets[r].push_back(dataset_id(H5Dopen2(file.get(), path.c_str(), H5P_DEFAULT), "H5Dopen2"));
            }
          }
        }
        Writer::write_checksums(*plan, layout, true);
        layout.dsets.clear();
        layout.global_dsets.clear();
        Writer::write_timings(file.get(), layout, timings);
        file.close("closing the file");
      });
      Writer::write_header(tmp, plan->header, *key);
      w.publish(tmp, info.path);
    } catch (...) {
      fs::remove(tmp, ec);
      failure = error_text(std::current_exception());
    }
  }

  // test_delay: after the file exists, before the data is written (a test
  // sees the in-flight file and acts while the commit is pending).
  void run(double test_delay) {
    {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return offsets_known || abandoned; });
      if (abandoned) return;
    }
    if (test_delay > 0) std::this_thread::sleep_for(std::chrono::duration<double>(test_delay));
    drain();
  }

  // This rank's report to rank 0 (d), once drained.
  void encode_report() {
    codec::ByteWriter enc;
    enc.put<std::uint64_t>(drain_error.empty() ? 0 : 1);
    enc.put_f64(info.seconds_prepare);
    enc.put_f64(info.seconds_write);
    std::string text = drain_error.substr(0, kReportText - 1);
    text.resize(kReportText, '\0');
    enc.put_bytes(reinterpret_cast<const std::byte*>(text.data()), text.size());
    for (const Entry& e : w.entries) {
      enc.put<std::uint64_t>(e.checksum);
      const Sha256Digest digest = e.sha256 ? *e.sha256 : Sha256Digest{};
      enc.put_bytes(digest.data(), digest.size());
    }
    report = enc.take();
  }

  // The pending exchange (request) is complete; always, without MPI.
  bool exchanged() {
    if (!mpi()) return true;
    int done = 0;
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    return done != 0;
  }

  bool progress() {
    if (step == Step::Scatter) {
      if (mpi()) {
        const int mine = static_cast<int>(1 + w.entries.size());
        if (!root) offsets.resize(static_cast<std::size_t>(mine));
        MPI_Iscatterv(root ? all_offsets.data() : nullptr, root ? offset_counts.data() : nullptr,
                      root ? offset_displs.data() : nullptr, MPI_UINT64_T, root ? MPI_IN_PLACE : offsets.data(),
                      mine, MPI_UINT64_T, 0, comm, &request);
      }
      step = Step::ScatterWait;
    }
    if (step == Step::ScatterWait) {
      if (!exchanged()) return false;
      if (!root) {
        std::lock_guard<std::mutex> lock(m);
        offsets_known = true;
        cv.notify_all();
      }
      step = Step::Gather;
    }
    if (step == Step::Gather) {
      {
        std::lock_guard<std::mutex> lock(m);
        if (!drained) return false;
        encode_report();
      }
      if (root) reports.resize(static_cast<std::size_t>(report_displs.back() + report_counts.back()));
      if (mpi()) {
        MPI_Igatherv(report.data(), static_cast<int>(report.size()), MPI_BYTE, root ? reports.data() : nullptr,
                     root ? report_counts.data() : nullptr, root ? report_displs.data() : nullptr, MPI_BYTE, 0, comm,
                     &request);
      } else {
        reports = report;
      }
      step = Step::GatherWait;
    }
    if (step == Step::GatherWait) {
      if (!exchanged()) return false;
      step = root ? Step::Finishing : Step::Over;
    }
    if (step == Step::Finishing) {
      finish();  // every rank has drained (the gather needs their reports)
      step = Step::Over;
    }
    if (thread.joinable()) thread.join();
    return true;
  }

  ~Impl() {
    if (thread.joinable()) {
      {
        std::lock_guard<std::mutex> lock(m);
        abandoned = true;
        cv.notify_all();
      }
      thread.join();
    }
  }
};

PendingCommit::PendingCommit(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PendingCommit::~PendingCommit() = default;
std::uint64_t PendingCommit::epoch() const { return impl_->w.epoch; }
bool PendingCommit::progress() { return impl_->progress(); }

CommitInfo PendingCommit::wait() {
  Impl& p = *impl_;
  while (!p.progress()) {
    std::unique_lock<std::mutex> lock(p.m);
    p.cv.wait_for(lock, std::chrono::microseconds(200));
  }
  const std::string& error = p.root ? p.failure : p.drain_error;
  if (!error.empty()) throw IoError(p.w.dir.path().string(), "", error);
  return p.info;
}

std::unique_ptr<PendingCommit> CheckpointWriter::commit_async(StagingBuffer& staging, double test_delay_seconds) {
  Impl& w = *impl_;
  if (w.committed) throw UsageError(w.dir.file_for(w.epoch).string(), "", "commit() called twice");
  w.committed = true;
  quiet_hdf5();
  Stopwatch clock;
  auto p = std::make_unique<PendingCommit::Impl>(w);
  p->info.epoch = w.epoch;
  p->info.path = w.dir.file_for(w.epoch);
  p->tmp = w.dir.in_flight_file_for(w.epoch);
  p->root = w.comm.rank() == 0;
  std::byte* at = nullptr;
  // The pause has few collective rounds: this rank's checks and
  // preparation are agreed on with the descriptors.
  p->plan = w.exchange(p->info, [&] {
    if (w.options.collective_io) {
      throw UsageError(w.dir.path().string(), "", "an asynchronous commit writes with pwrite, not collective MPI-IO");
    }
    for (const Entry& e : w.entries) {
      if (e.kind == EntryKind::Global && !Impl::slab_is_contiguous_run(e.global_stored, e.stored)) {
        throw UsageError(w.dir.path().string(), global_path(e.name),
                         "an asynchronous commit writes only slabs that are one contiguous run of the array "
                         "(blocks of rows)");
      }
    }
    std::uint64_t total = 0;
    for (const StoredView& v : w.views) total += v.bytes();
    at = staging.reserve(total);
    if (p->root) p->key = w.prepare_directory();
  });
  // The copy: from here on the program may change its memory.
  for (StoredView& v : p->w.views) {
    const Strides packed = c_strides(v.shape, v.elsize);
    if (v.contiguous) {
      std::memcpy(at, v.data, v.bytes());
    } else if (v.bytes() != 0) {
      copy_box(v.data, v.strides, at, packed, v.shape, v.elsize);
    }
    v.data = at;
    v.strides = packed;
    v.contiguous = true;
    at += v.bytes();
  }
  if (w.comm.is_mpi()) p->comm = private_duplicate(w.comm.get());
  if (p->root) {
    for (const RankMessage& m : p->plan->ranks) {
      const auto prev = [](const std::vector<int>& displs, const std::vector<int>& counts) {
        return displs.empty() ? 0 : displs.back() + counts.back();
      };
      p->offset_displs.push_back(prev(p->offset_displs, p->offset_counts));
      p->offset_counts.push_back(static_cast<int>(1 + m.entries.size()));
      p->report_displs.push_back(prev(p->report_displs, p->report_counts));
      p->report_counts.push_back(static_cast<int>(report_bytes(m.entries.size())));
    }
  }
  p->info.seconds_prepare = clock.seconds();
  if (p->root) p->create();
  PendingCommit::Impl* raw = p.get();
  p->thread = std::thread([raw, test_delay_seconds] { raw->run(test_delay_seconds); });
  raw->progress();
  return std::unique_ptr<PendingCommit>(new PendingCommit(std::move(p)));
}

CheckpointWriter::CheckpointWriter(const CheckpointDir& dir, std::uint64_t epoch, Comm comm, WriterOptions options)
    : impl_(std::make_unique<Impl>(Impl{dir, epoch, comm, options, {}, {}, {}, {}, {}, {}, false})) {}

CheckpointWriter::CheckpointWriter(const CheckpointDir& dir, Comm comm, WriterOptions options)
    : CheckpointWriter(dir, dir.next_epoch(comm), comm, options) {}

std::uint64_t CheckpointWriter::epoch() const { return impl_->epoch; }

CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::set_attribute(const std::string& name, AttrValue value) {
  if (is_reserved_root_attr(name)) throw UsageError("", "/", "attribute name '" + name + "' is reserved");
  impl_->root_attrs[name] = std::move(value);
}

void CheckpointWriter::set_rank_attribute(const std::string& name, AttrValue value) {
  if (is_reserved_rank_attr(name)) {
    throw UsageError("", rank_path(impl_->comm.rank()), "attribute name '" + name + "' is reserved");
  }
  impl_->rank_attrs[name] = std::move(value);
}

void CheckpointWriter::add_blob(const std::string& name, std::span<const std::byte> bytes, AttrMap attrs) {
  Entry e;
  e.kind = EntryKind::Blob;
  e.name = name;
  e.type = ElementType::unsigned_integer(1);
  e.shape = e.stored = {bytes.size()};
  e.attrs = std::move(attrs);
  const StoredView v = stored_view(const_cast<std::byte*>(bytes.data()), e.type, e.shape, {}, false);
  impl_->add(std::move(e), v);
}

void CheckpointWriter::add_array(const std::string& name, const ArrayView& array, AttrMap attrs) {
  const std::string path = dataset_path(impl_->comm.rank(), DatasetKind::Array, name);
  const StoredView v = impl_->view_of(array, path, true);
  Entry e;
  e.kind = EntryKind::Array;
  e.name = name;
  e.type = array.type;
  e.shape = array.shape;
  e.stored = v.shape;
  e.order = v.order;
  e.attrs = std::move(attrs);
  impl_->add(std::move(e), v);
}

void CheckpointWriter::add_global_slab(const std::string& name, const std::vector<std::uint64_t>& global_shape,
                                       const std::vector<std::uint64_t>& offset, const ArrayView& slab,
                                       AttrMap attrs) {
  const std::string path = global_path(name);
  if (global_shape.empty()) throw UsageError("", path, "a global array needs at least one dimension");
  if (offset.size() != global_shape.size() || slab.shape.size() != global_shape.size()) {
    throw UsageError("", path, "global shape, offset and slab shape differ in rank");
  }
  for (std::size_t d = 0; d < global_shape.size(); ++d) {
    if (offset[d] > global_shape[d] || slab.shape[d] > global_shape[d] - offset[d]) {
      throw UsageError("", path, "slab exceeds the global shape in dimension " + std::to_string(d));
    }
  }
  const StoredView v = impl_->view_of(slab, path, false);
  Entry e;
  e.kind = EntryKind::Global;
  e.name = name;
  e.type = slab.type;
  e.shape = slab.shape;
  e.stored = v.shape;
  e.global_shape = global_shape;
  e.global_stored = global_shape;
  e.offset = offset;
  if (slab.type.kind == ElementType::Kind::Unicode) {
    e.global_stored.push_back(slab.type.size / 4);
    e.offset.push_back(0);
  }
  e.attrs = std::move(attrs);
  impl_->add(std::move(e), v);
}

CommitInfo CheckpointWriter::commit() { return impl_->commit(); }

}  // namespace pyckpt::h5
