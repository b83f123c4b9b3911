// Internal: the header in a checkpoint file's HDF5 user block (see
// check_header in container.hpp and doc/format.md, "Header and
// authentication"), written by the writer's rank 0 after HDF5 closed the
// file and read with plain reads before HDF5 opens it.
//
//   [0, 8)            magic "PYCKPT\0H"
//   [8, 16)           u64 n: length of the manifest
//   [16, 16 + n)      manifest (CheckpointHeader, little-endian codec)
//   [16 + n, 48 + n)  HMAC-SHA256 under the writer's key of bytes [0, 16 + n)
//   [48 + n, U)       zero, up to the user block's size U
#pragma once

#include "crypto.hpp"

#include <pyckpt/h5/container.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pyckpt::h5::detail {

// Bytes [0, 48 + n) of the user block for a header (its values need not be
// final: the size depends only on the paths and the number of datasets).
std::size_t header_size(const CheckpointHeader& header);
std::vector<std::byte> encode_header(const CheckpointHeader& header, const Key& key);

// The user block for a header of header_bytes: a power of two of at least
// 512 bytes (HDF5's rule), and at least `alignment` when the file's datasets
// are aligned (HDF5 refuses a smaller one; a multiple keeps data aligned on
// disk, not only in HDF5's address space).
std::uint64_t user_block_for(std::size_t header_bytes, std::uint64_t alignment);

// A checkpoint file opened read-only for the header checks. It is a regular
// file (a FIFO or device given as a checkpoint is refused, never waited on).
// HDF5 then opens proc_path(), the very file that was checked, even if its
// name was replaced meanwhile.
class CheckedFile {
 public:
  explicit CheckedFile(const std::filesystem::path& path);
  ~CheckedFile();
  CheckedFile(const CheckedFile&) = delete;
  CheckedFile& operator=(const CheckedFile&) = delete;
  int fd() const { return fd_; }
  std::uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  std::string proc_path() const { return "/proc/self/fd/" + std::to_string(fd_); }
  // Reads exactly size bytes at offset (FormatError if the file ends first).
  void read(void* out, std::size_t size, std::uint64_t offset) const;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// SHA-256 of the file's bytes in [header.user_block, file size) outside the
// header's dataset ranges: every byte HDF5 parses.
Sha256Digest metadata_digest(int fd, const std::string& file, const CheckpointHeader& header, std::uint64_t file_size);

// The user's key (Key::load(Key::default_path())), or none and why not.
std::optional<Key> load_user_key(std::string& why_none);

// check_header on an open file. No key: `no_key_reason` says why.
HeaderCheck check_file(const CheckedFile& file, const Key* key, const std::string& no_key_reason);

// A checkpoint file, or a directory's `latest`.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& file_or_dir);

}  // namespace pyckpt::h5::detail
