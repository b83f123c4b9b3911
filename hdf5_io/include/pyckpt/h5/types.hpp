// Value types of the container API: element types, array views, attribute
// values and the exceptions every pyckpt::h5 call may throw.
//
// ElementType describes one array element the way NumPy's dtype does, but
// without NumPy: the Python layer maps dtypes onto it, a C++ program builds it
// directly. It maps onto HDF5 types that h5py reads natively (see
// doc/format.md, "Element types").
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace pyckpt::h5 {

enum class ByteOrder { Little, Big, NotApplicable };

// The byte order of the machine this code runs on.
ByteOrder native_byte_order();

struct ElementType {
  enum class Kind {
    Bool,      // 1 byte, 0 or 1 (h5py's enum convention)
    Int,       // signed, 1/2/4/8 bytes
    UInt,      // unsigned, 1/2/4/8 bytes
    Float,     // IEEE 754, 2/4/8 bytes (and x87 long double, 16 bytes)
    Complex,   // pair of Float, 8/16/32 bytes (h5py's {r, i} compound)
    Bytes,     // fixed-width byte string, NumPy 'S<n>'
    Unicode,   // fixed-width UCS-4 string, NumPy 'U<n>' (size = 4 n)
    Opaque,    // raw bytes, NumPy 'V<n>'
    Compound,  // structured type with named fields at byte offsets
  };
  struct Field;

  Kind kind = Kind::UInt;
  std::size_t size = 1;  // bytes per element, padding included
  ByteOrder order = ByteOrder::NotApplicable;
  std::vector<Field> fields;  // Compound only

  static ElementType boolean();
  static ElementType integer(std::size_t size, ByteOrder order = native_byte_order());
  static ElementType unsigned_integer(std::size_t size, ByteOrder order = native_byte_order());
  static ElementType floating(std::size_t size, ByteOrder order = native_byte_order());
  static ElementType complex(std::size_t size, ByteOrder order = native_byte_order());
  static ElementType bytes(std::size_t size);
  static ElementType unicode(std::size_t chars, ByteOrder order = native_byte_order());
  static ElementType opaque(std::size_t size);
  static ElementType compound(std::size_t size, std::vector<Field> fields);

  // A short description, e.g. "<f8", "|S10", "{x:<f8@0, y:<i4@8}".
  std::string str() const;
  bool operator==(const ElementType&) const;
};

struct ElementType::Field {
  std::string name;
  std::size_t offset = 0;
  ElementType type;
  std::vector<std::uint64_t> shape;  // sub-array field, e.g. ('v', '<f8', (3,)); empty = scalar
  bool operator==(const Field&) const = default;
};

// How a contiguous array lies in memory. An F-order array is stored with its
// dimensions reversed (so it is written zero-copy) and marked order="F".
enum class StorageOrder { C, F };

// Caller memory holding an N-d array, not owned. strides are in bytes and may
// be negative or zero; empty strides mean C-contiguous. A 0-d array has an
// empty shape; an array with a zero extent is empty and data may be null.
struct ArrayView {
  const void* data = nullptr;
  ElementType type;
  std::vector<std::uint64_t> shape;
  std::vector<std::int64_t> strides;
};

struct MutableArrayView {
  void* data = nullptr;
  ElementType type;
  std::vector<std::uint64_t> shape;
  std::vector<std::int64_t> strides;
};

using AttrValue = std::variant<std::int64_t, double, std::string, std::vector<std::int64_t>,
                               std::vector<double>, std::vector<std::string>>;

// Base of every error of this layer. what() names the file and, where there is
// one, the dataset: "ckpt/ckpt.00000003.h5: /ranks/2/arrays/u: checksum mismatch".
class Error : public std::runtime_error {
 public:
  Error(std::string file, std::string dataset, const std::string& message);
  const std::string& file() const { return file_; }
  const std::string& dataset() const { return dataset_; }

 private:
  std::string file_;
  std::string dataset_;
};

// The file system refused: unwritable or missing directory, disk full, ...
class IoError : public Error {
  using Error::Error;
};

// The file is not a readable pyckpt checkpoint: truncated, corrupt, foreign,
// an unknown format version, a missing dataset, a mismatched destination.
class FormatError : public Error {
  using Error::Error;
};

// A dataset's data does not match its recorded checksum.
class ChecksumError : public FormatError {
  using FormatError::FormatError;
};

// The caller passed something this layer cannot store or read into.
class UsageError : public Error {
  using Error::Error;
};

// The file fails authentication: it was written with another key, or altered
// (or damaged) since it was written, or there is no key to check it with.
// Nothing of it that a restart would trust may be used.
class AuthenticationError : public FormatError {
  using FormatError::FormatError;
};

// The checkpoint key file (pyckpt/h5/key.hpp) is missing, unsafe or malformed;
// file() names it.
class KeyFileError : public Error {
  using Error::Error;
};

}  // namespace pyckpt::h5
