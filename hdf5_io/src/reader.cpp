// CheckpointReader: read-only, independent access to one committed file,
// authenticated (header.hpp) before HDF5 opens it.
#include "detail.hpp"
#include "header.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace fs = std::filesystem;

namespace pyckpt::h5 {

using namespace detail;

namespace {

// Reads go through a buffer of this size when they cannot go straight into
// the caller's memory (conversion, another layout, a box of a global array).
constexpr std::size_t kReadBudget = std::size_t{32} << 20;

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

// An open dataset with what the format records about it.
struct Stored {
  Hid dset;
  Hid file_type;
  std::size_t file_elsize = 0;
  Dims dims;  // as in the file
  ElementType type;
  StorageOrder order = StorageOrder::C;
  std::string path;
};

Stored open_stored(hid_t file, const std::string& path) {
  Stored s;
  s.path = path;
  s.dset = dataset_id(H5Dopen2(file, path.c_str(), H5P_DEFAULT), "cannot open the dataset");
  s.file_type = type_id(H5Dget_type(s.dset.get()), "H5Dget_type");
  s.file_elsize = H5Tget_size(s.file_type.get());
  Hid space = space_id(H5Dget_space(s.dset.get()), "H5Dget_space");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) throw_h5("H5Sget_simple_extent_ndims");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  checked(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "H5Sget_simple_extent_dims");
  s.dims.assign(dims.begin(), dims.end());
  s.type = element_type_of(s.file_type.get());
  if (has_attr(s.dset.get(), kAttrOrder) && std::get<std::string>(read_attr(s.dset.get(), kAttrOrder)) == "F") {
    s.order = StorageOrder::F;
  }
  if (has_attr(s.dset.get(), kAttrUnicode)) {
    const auto chars = static_cast<std::uint64_t>(std::get<std::int64_t>(read_attr(s.dset.get(), kAttrUnicode)));
    if (s.type.kind != ElementType::Kind::UInt || s.type.size != 4 || s.dims.empty() || s.dims.back() != chars) {
      throw H5Failure("'unicode' attribute does not match the stored uint32 data");
    }
    s.type = ElementType::unicode(chars, s.type.order == ByteOrder::NotApplicable ? native_byte_order() : s.type.order);
  }
  return s;
}

// The logical shape: without a 'U' char dim, F order un-reversed.
Dims logical_shape(const Stored& s) {
  Dims shape = s.dims;
  if (s.type.kind == ElementType::Kind::Unicode) shape.pop_back();
  if (s.order == StorageOrder::F) std::reverse(shape.begin(), shape.end());
  return shape;
}

// How a destination is filled from the stored type.
struct Conversion {
  Hid mem_type;           // the destination's element type
  std::size_t elsize = 0; // destination bytes per stored element
  bool needed = false;
};

Conversion conversion_to(const Stored& s, const ElementType& dest) {
  if ((s.type.kind == ElementType::Kind::Unicode) != (dest.kind == ElementType::Kind::Unicode) ||
      (dest.kind == ElementType::Kind::Unicode && dest.size != s.type.size)) {
    throw H5Failure("cannot read " + s.type.str() + " into " + dest.str());
  }
  Conversion c;
  c.mem_type = h5_type_of(storage_type(dest));
  c.elsize = storage_type(dest).size;
  c.needed = H5Tequal(c.mem_type.get(), s.file_type.get()) <= 0;
  H5T_cdata_t* cdata = nullptr;
  if (c.needed && H5Tfind(s.file_type.get(), c.mem_type.get(), &cdata) == nullptr) {
    take_hdf5_message();
    throw H5Failure("cannot convert " + s.type.str() + " to " + dest.str());
  }
  return c;
}

// Reads box [offset, offset + count) of a dataset (stored dims) in C order,
// piece by piece through a bounded buffer, checksumming the bytes as stored
// (and hashing them into `sha` if given). Each piece is converted if conv
// says so and handed to fn(offset in box, count, data). Returns the checksum.
std::uint64_t stream_box(const Stored& s, const Dims& offset, const Dims& count, const Conversion* conv,
                         const std::function<void(const Dims&, const Dims&, const std::byte*)>& fn,
                         Sha256* sha = nullptr) {
  Checksum sum;
  const bool convert = conv != nullptr && conv->needed;
  const std::size_t unit = std::max(s.file_elsize, convert ? conv->elsize : 0);
  std::vector<std::byte> buf, background;
  Hid file_space = space_id(H5Dget_space(s.dset.get()), "H5Dget_space");
  for_each_piece(count, unit, kReadBudget, [&](const Dims& off, const Dims& cnt) {
    const std::uint64_t n = element_count(cnt);
    buf.resize(n * unit);
    Dims at = off;
    for (std::size_t d = 0; d < at.size(); ++d) at[d] += offset[d];
    Hid file_sel = select_box(file_space.get(), at, cnt);
    Hid mem_space = simple_space(cnt);
    checked_status(H5Dread(s.dset.get(), s.file_type.get(), mem_space.get(), file_sel.get(), H5P_DEFAULT, buf.data()),
                   "H5Dread");
    sum.update(buf.data(), n * s.file_elsize);
    if (sha != nullptr) sha->update(buf.data(), n * s.file_elsize);
    if (convert) {
      background.assign(n * conv->elsize, std::byte{0});
      checked_status(H5Tconvert(s.file_type.get(), conv->mem_type.get(), n, buf.data(), background.data(), H5P_DEFAULT),
                     "H5Tconvert");
    }
    if (fn) fn(off, cnt, buf.data());
  });
  return sum.digest();
}

void check_sum(const std::string& file, const std::string& dataset, std::uint64_t stored, std::uint64_t computed) {
  if (stored != computed) {
    throw ChecksumError(file, dataset, "checksum mismatch: stored " + hex(stored) + ", data has " + hex(computed));
  }
}

std::vector<std::string> link_names(hid_t file, const std::string& group) {
  Hid g = group_id(H5Gopen2(file, group.c_str(), H5P_DEFAULT), ("cannot open group " + group).c_str());
  std::vector<std::string> names;
  checked_status(H5Literate(
                     g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
                     [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
                       static_cast<std::vector<std::string>*>(out)->emplace_back(name);
                       return 0;
                     },
                     &names),
                 ("cannot list group " + group).c_str());
  return names;
}

bool skip_no_attr(std::string_view) { return false; }

}  // namespace

struct CheckpointReader::Impl {
  fs::path file;
  HeaderCheck header;
  Hid fid;
  AttrMap attrs;
  std::uint64_t epoch = 0;
  int world_size = 0;

  std::string name() const { return file.string(); }

  template <class Fn>
  auto guarded(const std::string& dataset, Fn&& fn) const {
    return in_context<FormatError>(name(), dataset, std::forward<Fn>(fn));
  }

  void check_rank(int rank) const {
    if (rank < 0 || rank >= world_size) {
      throw UsageError(name(), "", "rank " + std::to_string(rank) + " not in [0, " + std::to_string(world_size) + ")");
    }
  }

  // The blob or array `name` of `rank`.
  std::pair<std::string, DatasetKind> locate(int rank, const std::string& dataset) const {
    check_rank(rank);
    for (DatasetKind kind : {DatasetKind::Blob, DatasetKind::Array}) {
      const std::string path = dataset_path(rank, kind, dataset);
      if (H5Lexists(fid.get(), path.c_str(), H5P_DEFAULT) > 0) return {path, kind};
    }
    take_hdf5_message();
    throw FormatError(name(), dataset_path(rank, DatasetKind::Array, dataset), "no such blob or array");
  }

  DatasetInfo info_of(const Stored& s, const std::string& dataset, DatasetKind kind) const {
    DatasetInfo info;
    info.name = dataset;
    info.kind = kind;
    info.type = s.type;
    info.shape = logical_shape(s);
    info.order = s.order;
    info.bytes = element_count(s.dims) * s.file_elsize;
    info.checksum = read_u64_attr(s.dset.get(), kAttrChecksum);
    info.attrs = read_attrs(s.dset.get(), [](std::string_view n) { return is_reserved_dataset_attr(n); });
    return info;
  }

  GlobalArrayInfo global_info(const Stored& s, const std::string& array) const {
    GlobalArrayInfo g;
    g.name = array;
    g.type = s.type;
    g.shape = logical_shape(s);
    g.attrs = read_attrs(s.dset.get(), [](std::string_view n) { return is_reserved_dataset_attr(n); });
    const std::size_t ndim = g.shape.size();
    Hid attr = attr_id(H5Aopen(s.dset.get(), kAttrSlabs, H5P_DEFAULT), "slabs attribute");
    Hid space = space_id(H5Aget_space(attr.get()), "slabs attribute");
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    if (n < 0) throw_h5("slabs attribute");
    const std::size_t rec = slab_record_size(ndim);
    std::vector<std::byte> table(static_cast<std::size_t>(n) * rec);
    Hid mem_type = slab_table_type(ndim, true);
    checked_status(H5Aread(attr.get(), mem_type.get(), table.data()), "slabs attribute");
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
      const std::byte* p = table.data() + i * rec;
      SlabInfo slab;
      std::int32_t rank = 0;
      std::memcpy(&rank, p, 4);
      slab.rank = rank;
      slab.offset.resize(ndim);
      slab.count.resize(ndim);
      std::memcpy(slab.offset.data(), p + 4, 8 * ndim);
      std::memcpy(slab.count.data(), p + 4 + 8 * ndim, 8 * ndim);
      std::memcpy(&slab.checksum, p + 4 + 16 * ndim, 8);
      for (std::size_t d = 0; d < ndim; ++d) {
        if (slab.offset[d] > g.shape[d] || slab.count[d] > g.shape[d] - slab.offset[d]) {
          throw H5Failure("slab of rank " + std::to_string(rank) + " lies outside the array");
        }
      }
      g.slabs.push_back(std::move(slab));
    }
    return g;
  }

  // Stored box of a logical box of a global array ('U': whole char dim).
  static std::pair<Dims, Dims> stored_box(const Stored& s, Dims offset, Dims count) {
    if (s.type.kind == ElementType::Kind::Unicode) {
      offset.push_back(0);
      count.push_back(s.dims.back());
    }
    return {offset, count};
  }

  // The SHA-256 the header records for the blob at `path`.
  const Sha256Digest& blob_sha256(const std::string& path) const {
    for (const HeaderEntry& e : header.header.datasets) {
      if (e.path == path && e.kind == HeaderEntry::Kind::Blob && e.sha256) return *e.sha256;
    }
    throw FormatError(name(), path, "blob not listed in the file's header");
  }

  void check_sha256(const std::string& path, const Sha256Digest& computed) const {
    if (computed != blob_sha256(path)) {
      throw ChecksumError(name(), path, "SHA-256 mismatch: the blob differs from what was written");
    }
  }

  void verify_dataset(const std::string& path, DatasetKind kind) const {
    Stored s = open_stored(fid.get(), path);
    Sha256 sha;
    const std::uint64_t computed = stream_box(s, Dims(s.dims.size(), 0), s.dims, nullptr, {}, &sha);
    check_sum(name(), path, read_u64_attr(s.dset.get(), kAttrChecksum), computed);
    if (kind == DatasetKind::Blob) check_sha256(path, sha.digest());
  }

  // Whether to go on with a file as its header checked; throws if not. The
  // header's MAC covers the digest of HDF5's metadata, so metadata that
  // does not match it fails authentication too (and trust cannot help: HDF5
  // must not parse it).
  void accept(const ReaderOptions& options) const {
    if (!header.authenticated() && !options.trust) {
      std::string why = header.authentication_message;
      if (!header.intact) why += "; moreover " + header.integrity_message;
      throw AuthenticationError(name(), "", why);
    }
    if (!header.intact) {
      throw AuthenticationError(name(), "", "fails authentication: it was altered or damaged after it was written (" +
                                                header.integrity_message + ")");
    }
  }
};

CheckpointReader::CheckpointReader(const fs::path& file_or_dir, ReaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  quiet_hdf5();
  impl_->file = resolve_checkpoint(file_or_dir);
  const CheckedFile checked(impl_->file);
  std::string no_key_reason;
  if (!options.key) options.key = load_user_key(no_key_reason);
  impl_->header = check_file(checked, options.key ? &*options.key : nullptr, no_key_reason);
  impl_->accept(options);
  impl_->guarded("", [&] {
    Hid fapl = plist_id(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate");
    checked_status(H5Pset_fapl_sec2(fapl.get()), "H5Pset_fapl_sec2");
    // File locking stays at HDF5's default (HDF5_USE_FILE_LOCKING): HDF5
    // refuses to open a file twice in one process with different locking
    // settings, and h5py in the same process uses the default.
    // The file just checked, by its descriptor: not whatever its name may
    // point to by now.
    impl_->fid = file_id(H5Fopen(checked.proc_path().c_str(), H5F_ACC_RDONLY, fapl.get()), "not a readable HDF5 file");
    const hid_t f = impl_->fid.get();
    if (!has_attr(f, "format") || read_attr(f, "format") != AttrValue(std::string(kFormatName))) {
      throw H5Failure(std::string("not a pyckpt checkpoint (no format attribute \"") + kFormatName + "\")");
    }
    const AttrValue version = read_attr(f, "format_version");
    if (version != AttrValue(kFormatVersion)) {
      const auto* v = std::get_if<std::int64_t>(&version);
      throw H5Failure("unknown format version " + (v ? std::to_string(*v) : std::string("?")) +
                      " (this reader knows version " + std::to_string(kFormatVersion) + ")");
    }
    impl_->attrs = read_attrs(f, skip_no_attr);
    impl_->epoch = static_cast<std::uint64_t>(std::get<std::int64_t>(impl_->attrs.at("epoch")));
    impl_->world_size = static_cast<int>(std::get<std::int64_t>(impl_->attrs.at("world_size")));
    const CheckpointHeader& h = impl_->header.header;
    if (impl_->epoch != h.epoch || static_cast<std::uint64_t>(impl_->world_size) != h.world_size) {
      throw H5Failure("epoch or world size differ between the header and the attributes");
    }
  });
}

CheckpointReader::~CheckpointReader() = default;
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;
CheckpointReader& CheckpointReader::operator=(CheckpointReader&&) noexcept = default;

const fs::path& CheckpointReader::file() const { return impl_->file; }
const HeaderCheck& CheckpointReader::header() const { return impl_->header; }
std::uint64_t CheckpointReader::epoch() const { return impl_->epoch; }
int CheckpointReader::world_size() const { return impl_->world_size; }
const AttrMap& CheckpointReader::attributes() const { return impl_->attrs; }

AttrMap CheckpointReader::rank_attributes(int rank) const {
  impl_->check_rank(rank);
  const std::string path = rank_path(rank);
  return impl_->guarded(path, [&] {
    Hid g = group_id(H5Gopen2(impl_->fid.get(), path.c_str(), H5P_DEFAULT), "cannot open the group");
    return read_attrs(g.get(), skip_no_attr);
  });
}

std::vector<DatasetInfo> CheckpointReader::datasets(int rank) const {
  impl_->check_rank(rank);
  std::vector<DatasetInfo> out;
  for (DatasetKind kind : {DatasetKind::Blob, DatasetKind::Array}) {
    const std::string group = rank_path(rank) + (kind == DatasetKind::Blob ? "/blobs" : "/arrays");
    for (const std::string& link : impl_->guarded(group, [&] { return link_names(impl_->fid.get(), group); })) {
      const std::string dataset = unescape_name(link);
      const std::string path = dataset_path(rank, kind, dataset);
      out.push_back(impl_->guarded(path, [&] {
        return impl_->info_of(open_stored(impl_->fid.get(), path), dataset, kind);
      }));
    }
  }
  return out;
}

DatasetInfo CheckpointReader::dataset(int rank, const std::string& name) const {
  const auto [path, kind] = impl_->locate(rank, name);
  return impl_->guarded(path, [&] { return impl_->info_of(open_stored(impl_->fid.get(), path), name, kind); });
}

bool CheckpointReader::has_dataset(int rank, const std::string& name) const {
  try {
    impl_->locate(rank, name);
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::vector<std::byte> CheckpointReader::read_blob(int rank, const std::string& name) const {
  const std::string path = impl_->locate(rank, name).first;
  const DatasetInfo info = dataset(rank, name);
  if (info.kind != DatasetKind::Blob) throw UsageError(impl_->name(), path, "not a blob");
  std::vector<std::byte> out(info.bytes);
  read_array(rank, name, MutableArrayView{out.data(), ElementType::unsigned_integer(1), info.shape, {}});
  impl_->check_sha256(path, sha256_of(out.data(), out.size()));
  return out;
}

void CheckpointReader::read_array(int rank, const std::string& name, const MutableArrayView& dest) const {
  const std::string path = impl_->locate(rank, name).first;
  const std::string& file = impl_->name();
  Stored s = impl_->guarded(path, [&] { return open_stored(impl_->fid.get(), path); });
  if (dest.shape != logical_shape(s)) throw UsageError(file, path, "destination shape differs from the stored shape");
  if (dest.data == nullptr && element_count(dest.shape) != 0) throw UsageError(file, path, "null destination");
  const Conversion conv = in_context<UsageError>(file, path, [&] { return conversion_to(s, dest.type); });
  const StoredView dv = in_context<UsageError>(file, path, [&] {
    return view_in_order(dest.data, dest.type, dest.shape, dest.strides, s.order);
  });
  const std::uint64_t stored_sum = impl_->guarded(path, [&] { return read_u64_attr(s.dset.get(), kAttrChecksum); });
  const std::uint64_t computed = impl_->guarded(path, [&] {
    if (!conv.needed && dv.contiguous) {
      if (dv.bytes() != 0) {
        checked_status(H5Dread(s.dset.get(), s.file_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, dv.data), "H5Dread");
      }
      return checksum_of(dv.data, dv.bytes());
    }
    return stream_box(s, Dims(s.dims.size(), 0), s.dims, &conv, [&](const Dims& off, const Dims& cnt, const std::byte* buf) {
      copy_box(buf, c_strides(cnt, conv.elsize), dv.data + byte_offset(off, dv.strides), dv.strides, cnt, conv.elsize);
    });
  });
  check_sum(file, path, stored_sum, computed);
}

std::vector<GlobalArrayInfo> CheckpointReader::global_arrays() const {
  std::vector<GlobalArrayInfo> out;
  for (const std::string& link : impl_->guarded("/global", [&] { return link_names(impl_->fid.get(), "/global"); })) {
    out.push_back(global_array(unescape_name(link)));
  }
  return out;
}

GlobalArrayInfo CheckpointReader::global_array(const std::string& name) const {
  const std::string path = global_path(name);
  return impl_->guarded(path, [&] { return impl_->global_info(open_stored(impl_->fid.get(), path), name); });
}

void CheckpointReader::read_global_slab(const std::string& name, const std::vector<std::uint64_t>& offset,
                                        const std::vector<std::uint64_t>& count, const MutableArrayView& dest) const {
  const std::string path = global_path(name);
  const std::string& file = impl_->name();
  Stored s = impl_->guarded(path, [&] { return open_stored(impl_->fid.get(), path); });
  const GlobalArrayInfo g = impl_->guarded(path, [&] { return impl_->global_info(s, name); });
  if (offset.size() != g.shape.size() || count.size() != g.shape.size() || dest.shape != count) {
    throw UsageError(file, path, "offset, count and destination shape must match the array's rank");
  }
  for (std::size_t d = 0; d < g.shape.size(); ++d) {
    if (offset[d] > g.shape[d] || count[d] > g.shape[d] - offset[d]) {
      throw UsageError(file, path, "box exceeds the array in dimension " + std::to_string(d));
    }
  }
  if (dest.data == nullptr && element_count(count) != 0) throw UsageError(file, path, "null destination");
  const Conversion conv = in_context<UsageError>(file, path, [&] { return conversion_to(s, dest.type); });
  const StoredView dv = in_context<UsageError>(file, path, [&] {
    return view_in_order(dest.data, dest.type, dest.shape, dest.strides, StorageOrder::C);
  });
  const auto [box_off, box_cnt] = Impl::stored_box(s, offset, count);
  if (element_count(box_cnt) == 0) return;

  // Parts of the box no rank wrote read as zero bytes.
  std::uint64_t covered = 0;
  for (const SlabInfo& slab : g.slabs) {
    std::uint64_t overlap = 1;
    for (std::size_t d = 0; d < count.size(); ++d) {
      const std::uint64_t lo = std::max(offset[d], slab.offset[d]);
      const std::uint64_t hi = std::min(offset[d] + count[d], slab.offset[d] + slab.count[d]);
      overlap *= hi > lo ? hi - lo : 0;
    }
    covered += overlap;
  }
  if (covered < element_count(count)) {
    const std::vector<std::byte> zeros(std::min<std::uint64_t>(kReadBudget, dv.bytes()));
    for_each_piece(dv.shape, dv.elsize, kReadBudget, [&](const Dims& off, const Dims& cnt) {
      copy_box(zeros.data(), c_strides(cnt, dv.elsize), dv.data + byte_offset(off, dv.strides), dv.strides, cnt,
               dv.elsize);
    });
  }

  // Every written slab the box overlaps is read whole, to verify its
  // checksum; the overlapping part of each piece is copied to dest.
  for (const SlabInfo& slab : g.slabs) {
    const auto [slab_off, slab_cnt] = Impl::stored_box(s, slab.offset, slab.count);
    bool overlaps = element_count(slab_cnt) != 0;
    for (std::size_t d = 0; overlaps && d < box_off.size(); ++d) {
      overlaps = slab_off[d] < box_off[d] + box_cnt[d] && box_off[d] < slab_off[d] + slab_cnt[d];
    }
    if (!overlaps) continue;
    const std::string where = path + " (slab of rank " + std::to_string(slab.rank) + ")";
    const std::uint64_t computed = impl_->guarded(where, [&] {
      return stream_box(s, slab_off, slab_cnt, &conv, [&](const Dims& off, const Dims& cnt, const std::byte* buf) {
        Dims lo(cnt.size()), n(cnt.size());
        for (std::size_t d = 0; d < cnt.size(); ++d) {
          const std::uint64_t piece_lo = slab_off[d] + off[d];
          lo[d] = std::max(piece_lo, box_off[d]);
          const std::uint64_t hi = std::min(piece_lo + cnt[d], box_off[d] + box_cnt[d]);
          if (hi <= lo[d]) return;
          n[d] = hi - lo[d];
        }
        Dims in_piece(cnt.size()), in_box(cnt.size());
        for (std::size_t d = 0; d < cnt.size(); ++d) {
          in_piece[d] = lo[d] - slab_off[d] - off[d];
          in_box[d] = lo[d] - box_off[d];
        }
        const Strides piece_strides = c_strides(cnt, conv.elsize);
        copy_box(buf + byte_offset(in_piece, piece_strides), piece_strides, dv.data + byte_offset(in_box, dv.strides),
                 dv.strides, n, conv.elsize);
      });
    });
    check_sum(file, where, slab.checksum, computed);
  }
}

std::vector<VerifyResult> CheckpointReader::verify() const {
  std::vector<VerifyResult> out;
  const auto record = [&](const std::string& dataset, const auto& check) {
    VerifyResult r{dataset, false, ""};
    try {
      check();
      r.ok = true;
    } catch (const Error& e) {
      r.message = e.what();
    } catch (const H5Failure& e) {
      r.message = e.what();
    }
    out.push_back(std::move(r));
  };
  for (int rank = 0; rank < impl_->world_size; ++rank) {
    for (DatasetKind kind : {DatasetKind::Blob, DatasetKind::Array}) {
      const std::string group = rank_path(rank) + (kind == DatasetKind::Blob ? "/blobs" : "/arrays");
      std::vector<std::string> links;
      record(group, [&] { links = impl_->guarded(group, [&] { return link_names(impl_->fid.get(), group); }); });
      if (!out.back().ok) continue;
      out.pop_back();
      for (const std::string& link : links) {
        const std::string path = dataset_path(rank, kind, unescape_name(link));
        record(path, [&] { impl_->guarded(path, [&] { impl_->verify_dataset(path, kind); }); });
      }
    }
  }
  std::vector<std::string> links;
  record("/global", [&] { links = impl_->guarded("/global", [&] { return link_names(impl_->fid.get(), "/global"); }); });
  if (out.back().ok) out.pop_back();
  for (const std::string& link : links) {
    const std::string path = "/global/" + link;
    record(path, [&] {
      impl_->guarded(path, [&] {
        Stored s = open_stored(impl_->fid.get(), path);
        const GlobalArrayInfo g = impl_->global_info(s, unescape_name(link));
        for (const SlabInfo& slab : g.slabs) {
          const auto [off, cnt] = Impl::stored_box(s, slab.offset, slab.count);
          check_sum(impl_->name(), path + " (slab of rank " + std::to_string(slab.rank) + ")", slab.checksum,
                    stream_box(s, off, cnt, nullptr, {}));
        }
      });
    });
  }
  return out;
}

}  // namespace pyckpt::h5
