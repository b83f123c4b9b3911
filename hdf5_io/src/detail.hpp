// Internal helpers shared by the writer and the reader: the names and
// constants of the on-disk format (doc/format.md), element type <-> HDF5 type
// mapping, attributes, dataset name escaping, N-d boxes and strided copies,
// checksums and the few collectives commit() needs.
#pragma once

#include "hid.hpp"

#include <pyckpt/h5/container.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pyckpt::h5::detail {

// ------------------------------------------------------------- format ---

inline constexpr const char* kFormatName = "pyckpt-checkpoint";
// 2: the header in the user block authenticates the file (format 1 had none).
inline constexpr std::int64_t kFormatVersion = 2;

// Dataset attributes the format itself uses; callers may not use these names.
inline constexpr const char* kAttrChecksum = "checksum";  // uint64, XXH3-64
inline constexpr const char* kAttrOrder = "order";        // "C" or "F" (arrays)
inline constexpr const char* kAttrUnicode = "unicode";    // int64 chars per 'U' element
inline constexpr const char* kAttrSlabs = "slabs";        // global arrays: layout table
bool is_reserved_dataset_attr(std::string_view name);
// Paths of the groups and datasets (names escaped; dataset_path is public,
// container.hpp).
std::string rank_path(int rank);
std::string global_path(const std::string& name);
// The compound type of a global array's "slabs" table for ndim dimensions:
// {rank: int32, offset: uint64[ndim], count: uint64[ndim], checksum: uint64},
// packed; native=true gives the in-memory variant.
Hid slab_table_type(std::size_t ndim, bool native);
std::size_t slab_record_size(std::size_t ndim);
bool is_reserved_root_attr(std::string_view name);
bool is_reserved_rank_attr(std::string_view name);

// HDF5 link names cannot hold '/' or NUL, and "." names the group itself.
// Percent-escapes '%', '/', NUL and a leading '.'; everything else is kept.
std::string escape_name(std::string_view name);
std::string unescape_name(std::string_view escaped);

// ---------------------------------------------------------- types -------

// The HDF5 type an element type is stored as (see doc/format.md). Unicode is
// not mapped here: a 'U<n>' array is stored as uint32 with a trailing
// dimension n (storage_type()).
Hid h5_type_of(const ElementType& type);
// Inverse of h5_type_of for a type found in a file. Throws H5Failure for a
// type this format never writes.
ElementType element_type_of(hid_t type);
// What one stored element is: the type itself, or uint32 for Unicode.
ElementType storage_type(const ElementType& type);

ByteOrder byte_order_of(H5T_order_t order);

// ------------------------------------------------------ attributes ------

void write_attr(hid_t obj, const std::string& name, const AttrValue& value);
AttrValue read_attr(hid_t obj, const std::string& name);
// Every attribute of obj except those `skip` selects, by name order.
AttrMap read_attrs(hid_t obj, bool (*skip)(std::string_view));
void write_u64_attr(hid_t obj, const char* name, std::uint64_t value);
std::uint64_t read_u64_attr(hid_t obj, const char* name);
bool has_attr(hid_t obj, const char* name);

// ------------------------------------------------------- N-d boxes ------

using Dims = std::vector<std::uint64_t>;
using Strides = std::vector<std::int64_t>;

std::uint64_t element_count(const Dims& shape);
Strides c_strides(const Dims& shape, std::size_t elsize);
// Byte offset of index `at` in a view with the given strides.
std::int64_t byte_offset(const Dims& at, const Strides& strides);

// Caller memory as a view over the dimensions the data is stored with.
struct StoredView {
  std::byte* data = nullptr;
  std::size_t elsize = 0;
  Dims shape;        // stored dims (F order reversed, 'U' char dim appended)
  Strides strides;   // bytes, over the stored dims
  StorageOrder order = StorageOrder::C;
  bool contiguous = false;  // C-contiguous over the stored dims: zero-copy
  std::uint64_t bytes() const { return element_count(shape) * elsize; }
};
// allow_f: an F-contiguous array may be stored with reversed dims. Global
// slabs are always stored in the global array's C order, so they pass false.
StoredView view_in_order(void* data, const ElementType& type, const Dims& shape, const Strides& strides,
                         StorageOrder order);
StoredView stored_view(void* data, const ElementType& type, const Dims& shape, const Strides& strides,
                       bool allow_f);

// Splits a box of `count` elements (C order) into sub-boxes that are each
// contiguous in C order and at most `budget` bytes (at least one element), and
// calls fn(offset, count) for each, relative to the box, in C order. A 0-d box
// is one piece; a box with a zero extent has none.
void for_each_piece(const Dims& count, std::size_t elsize, std::size_t budget,
                    const std::function<void(const Dims&, const Dims&)>& fn);
std::uint64_t piece_count(const Dims& count, std::size_t elsize, std::size_t budget);

// Copies a box of `count` elements between two strided layouts.
void copy_box(const std::byte* src, const Strides& src_strides, std::byte* dst, const Strides& dst_strides,
              const Dims& count, std::size_t elsize);

// A hyperslab selection of [offset, offset + count) in a copy of `space`.
Hid select_box(hid_t space, const Dims& offset, const Dims& count);
Hid simple_space(const Dims& shape);  // scalar for an empty shape

// ------------------------------------------------------- checksums ------

// XXH3-64 (seed 0) over a byte stream.
class Checksum {
 public:
  Checksum();
  ~Checksum();
  Checksum(const Checksum&) = delete;
  Checksum& operator=(const Checksum&) = delete;
  void update(const void* data, std::size_t size);
  std::uint64_t digest() const;

 private:
  void* state_;
};
std::uint64_t checksum_of(const void* data, std::size_t size);

// ------------------------------------------------------ file system -----

// Creates `dir` and its missing parents with mode 0700 whatever the umask;
// existing directories are left as they are. IoError naming `dir`.
void create_private_directories(const std::filesystem::path& dir);

// ----------------------------------------------------- collectives ------

// Every rank passes the exception it caught (or null). If any rank failed,
// every rank throws the lowest failing rank's error (same class, file and
// dataset; message prefixed with that rank when there are several ranks).
void agree(const Comm& comm, std::exception_ptr local);
std::vector<std::vector<std::byte>> allgather_bytes(const Comm& comm, const std::vector<std::byte>& mine);

// Runs fn; an H5Failure becomes E naming file and dataset.
template <class E, class Fn>
auto in_context(const std::string& file, const std::string& dataset, Fn&& fn) {
  try {
    return fn();
  } catch (const H5Failure& e) {
    throw E(file, dataset, e.what());
  }
}

}  // namespace pyckpt::h5::detail
