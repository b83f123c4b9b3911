// The checkpoint header: encoding, decoding (bounded, for untrusted bytes),
// authentication and the integrity of HDF5's metadata, all on plain reads.
#include "header.hpp"

#include "detail.hpp"

#include <pyckpt/codec/bytes.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

namespace fs = std::filesystem;

namespace pyckpt::h5::detail {

namespace {

constexpr std::string_view kMagic{"PYCKPT\0H", 8};
constexpr std::size_t kPrefixBytes = 16;  // magic, manifest length
constexpr std::size_t kMacBytes = 32;
// A manifest is about 100 bytes per dataset; this bounds what an untrusted
// length field can make a reader allocate.
constexpr std::uint64_t kMaxManifestBytes = std::uint64_t{1} << 30;
constexpr std::uint64_t kMaxWorldSize = std::uint64_t{1} << 24;
constexpr std::size_t kKeyIdChars = 16;
// Plain reads go through buffers of at most this size (no larger than needed:
// fresh memory costs page faults, which dominate on small files).
constexpr std::size_t kReadChunk = std::size_t{64} << 10;

std::vector<std::byte> read_buffer(std::uint64_t needed) {
  return std::vector<std::byte>(static_cast<std::size_t>(std::min<std::uint64_t>(needed, kReadChunk)));
}
constexpr std::string_view kHdf5Signature{"\x89HDF\r\n\x1a\n", 8};

std::vector<std::byte> encode_manifest(const CheckpointHeader& h) {
  codec::ByteWriter out;
  out.put<std::uint64_t>(h.format_version);
  out.put<std::uint64_t>(h.epoch);
  out.put<std::uint64_t>(h.world_size);
  out.put_f64(h.created_unix);
  out.put<std::uint64_t>(h.user_block);
  out.put<std::uint64_t>(h.file_size);
  std::string key_id = h.key_id;
  key_id.resize(kKeyIdChars, '0');
  out.put_string(key_id);
  out.put_bytes(h.metadata_sha256.data(), h.metadata_sha256.size());
  out.put<std::uint64_t>(h.datasets.size());
  for (const HeaderEntry& e : h.datasets) {
    out.put_string(e.path);
    out.put<std::uint8_t>(static_cast<std::uint8_t>(e.kind));
    out.put<std::int64_t>(e.rank);
    out.put<std::uint64_t>(e.offset);
    out.put<std::uint64_t>(e.bytes);
    out.put<std::uint64_t>(e.checksum);
    out.put<std::uint8_t>(e.sha256.has_value());
    if (e.sha256) out.put_bytes(e.sha256->data(), e.sha256->size());
  }
  return out.take();
}

// Smallest encoding of one dataset entry: empty path, no SHA-256.
constexpr std::uint64_t kMinEntryBytes = 8 + 1 + 8 + 8 + 8 + 8 + 1;

// Decodes a manifest and checks that it describes a possible file: a
// damaged or forged header must fail here, never later.
CheckpointHeader decode_manifest(std::span<const std::byte> bytes) {
  codec::ByteReader in(bytes, "truncated");
  CheckpointHeader h;
  h.format_version = in.get<std::uint64_t>();
  if (h.format_version != static_cast<std::uint64_t>(kFormatVersion)) {
    throw std::runtime_error("unknown format version " + std::to_string(h.format_version) + " (this reader knows " +
                             std::to_string(kFormatVersion) + ")");
  }
  h.epoch = in.get<std::uint64_t>();
  h.world_size = in.get<std::uint64_t>();
  if (h.world_size == 0 || h.world_size > kMaxWorldSize) {
    throw std::runtime_error("impossible world size " + std::to_string(h.world_size));
  }
  h.created_unix = in.get_f64();
  h.user_block = in.get<std::uint64_t>();
  h.file_size = in.get<std::uint64_t>();
  h.key_id = in.get_string();
  if (h.key_id.size() != kKeyIdChars || h.key_id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    throw std::runtime_error("malformed key id");
  }
  std::memcpy(h.metadata_sha256.data(), in.get_bytes(h.metadata_sha256.size()), h.metadata_sha256.size());
  const auto count = in.get<std::uint64_t>();
  if (count > bytes.size() / kMinEntryBytes) throw std::runtime_error("impossible dataset count");
  h.datasets.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    HeaderEntry e;
    e.path = in.get_string();
    const auto kind = in.get<std::uint8_t>();
    if (kind > static_cast<std::uint8_t>(HeaderEntry::Kind::Global)) throw std::runtime_error("unknown dataset kind");
    e.kind = static_cast<HeaderEntry::Kind>(kind);
    const auto rank = in.get<std::int64_t>();
    const bool global = e.kind == HeaderEntry::Kind::Global;
    if (global ? rank != -1 : rank < 0 || static_cast<std::uint64_t>(rank) >= h.world_size) {
      throw std::runtime_error("dataset " + e.path + " of impossible rank " + std::to_string(rank));
    }
    e.rank = static_cast<int>(rank);
    e.offset = in.get<std::uint64_t>();
    e.bytes = in.get<std::uint64_t>();
    e.checksum = in.get<std::uint64_t>();
    if (in.get<std::uint8_t>() != 0) {
      Sha256Digest sha;
      std::memcpy(sha.data(), in.get_bytes(sha.size()), sha.size());
      e.sha256 = sha;
    }
    h.datasets.push_back(std::move(e));
  }
  if (!in.done()) throw std::runtime_error("trailing bytes");
  // The data ranges lie in the file after the user block, in order, apart.
  std::uint64_t end = h.user_block;
  for (const HeaderEntry& e : h.datasets) {
    if (e.bytes == 0) continue;
    if (e.offset < end || e.bytes > h.file_size || e.offset > h.file_size - e.bytes) {
      throw std::runtime_error("data of " + e.path + " lies outside the file or overlaps another dataset");
    }
    end = e.offset + e.bytes;
  }
  return h;
}

std::uint64_t u64_at(const std::byte* p) {
  codec::ByteReader in(p, 8);
  return in.get<std::uint64_t>();
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

std::size_t header_size(const CheckpointHeader& header) {
  return kPrefixBytes + encode_manifest(header).size() + kMacBytes;
}

std::vector<std::byte> encode_header(const CheckpointHeader& header, const Key& key) {
  const std::vector<std::byte> manifest = encode_manifest(header);
  codec::ByteWriter out;
  out.put_bytes(reinterpret_cast<const std::byte*>(kMagic.data()), kMagic.size());
  out.put<std::uint64_t>(manifest.size());
  out.put_bytes(manifest.data(), manifest.size());
  const Digest mac = hmac_sha256(key.bytes(), out.bytes());
  out.put_bytes(mac.data(), mac.size());
  return out.take();
}

std::uint64_t user_block_for(std::size_t header_bytes, std::uint64_t alignment) {
  return std::max({std::uint64_t{512}, std::bit_ceil(static_cast<std::uint64_t>(header_bytes)), alignment});
}

CheckedFile::CheckedFile(const fs::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    if (err == ENOENT) throw IoError(path.string(), "", "no such file or directory");
    throw IoError(path.string(), "", "cannot open: " + std::string(std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd_);
    throw IoError(path.string(), "", "cannot stat: " + why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw FormatError(path.string(), "", "not a regular file, so not a checkpoint");
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
}

CheckedFile::~CheckedFile() { ::close(fd_); }

void CheckedFile::read(void* out, std::size_t size, std::uint64_t offset) const {
  auto* p = static_cast<char*>(out);
  while (size > 0) {
    const ssize_t n = ::pread(fd_, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw IoError(path_.string(), "", "read failed: " + errno_text());
    if (n == 0) throw FormatError(path_.string(), "", "truncated: the file ends at byte " + std::to_string(offset));
    p += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
}

Sha256Digest metadata_digest(int fd, const std::string& file, const CheckpointHeader& header, std::uint64_t file_size) {
  Sha256 sha;
  std::vector<std::byte> buf = read_buffer(file_size);
  const auto hash_range = [&](std::uint64_t from, std::uint64_t to) {
    while (from < to) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(to - from, buf.size()));
      const ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(from));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw IoError(file, "", "read failed: " + errno_text());
      if (n == 0) return;  // a short file: the size check reports it
      sha.update(buf.data(), static_cast<std::size_t>(n));
      from += static_cast<std::uint64_t>(n);
    }
  };
  std::uint64_t at = header.user_block;
  for (const HeaderEntry& e : header.datasets) {
    if (e.bytes == 0) continue;
    hash_range(at, std::min(e.offset, file_size));
    at = e.offset + e.bytes;
  }
  hash_range(at, file_size);
  return sha.digest();
}

HeaderCheck check_file(const CheckedFile& file, const Key* key, const std::string& no_key_reason) {
  const std::string name = file.path().string();
  const auto damaged = [&](const std::string& why) -> FormatError {
    return FormatError(name, "", "not a readable pyckpt checkpoint: its header is damaged (" + why + ")");
  };
  std::byte prefix[kPrefixBytes];
  if (file.size() < kPrefixBytes) throw FormatError(name, "", "not a pyckpt checkpoint (too short)");
  file.read(prefix, sizeof prefix, 0);
  const std::string_view magic(reinterpret_cast<const char*>(prefix), kMagic.size());
  if (magic == kHdf5Signature) {
    throw FormatError(name, "", "not a pyckpt checkpoint: an HDF5 file without a pyckpt header (written by another "
                                "program, or by a pyckpt older than checkpoint authentication, format 1)");
  }
  if (magic != kMagic) throw FormatError(name, "", "not a pyckpt checkpoint (no pyckpt header)");
  const std::uint64_t manifest_bytes = u64_at(prefix + 8);
  if (manifest_bytes > kMaxManifestBytes || manifest_bytes + kPrefixBytes + kMacBytes > file.size()) {
    throw damaged("impossible length");
  }
  std::vector<std::byte> signed_part(kPrefixBytes + manifest_bytes);
  std::memcpy(signed_part.data(), prefix, kPrefixBytes);
  file.read(signed_part.data() + kPrefixBytes, manifest_bytes, kPrefixBytes);
  Digest mac;
  file.read(mac.data(), mac.size(), signed_part.size());

  HeaderCheck check;
  check.file = file.path();
  try {
    check.header = decode_manifest(std::span(signed_part).subspan(kPrefixBytes));
  } catch (const std::exception& e) {
    throw damaged(e.what());
  }
  const CheckpointHeader& h = check.header;
  const std::uint64_t header_end = signed_part.size() + kMacBytes;
  if (h.user_block < 512 || !std::has_single_bit(h.user_block) || h.user_block < header_end ||
      h.user_block > file.size()) {
    throw damaged("impossible user block size");
  }
  // The rest of the user block is zero: every byte of the file is accounted for.
  std::vector<std::byte> padding = read_buffer(h.user_block - header_end);
  for (std::uint64_t at = header_end; at < h.user_block; at += padding.size()) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(padding.size(), h.user_block - at));
    file.read(padding.data(), n, at);
    if (std::any_of(padding.begin(), padding.begin() + static_cast<std::ptrdiff_t>(n),
                    [](std::byte b) { return b != std::byte{0}; })) {
      throw damaged("non-zero bytes after the header");
    }
  }

  if (key == nullptr) {
    check.authentication = Authentication::NoKey;
    check.authentication_message = "cannot be authenticated: " + no_key_reason;
  } else if (equal_secret(hmac_sha256(key->bytes(), signed_part), mac)) {
    check.authentication = Authentication::Authenticated;
  } else if (key->id() != h.key_id) {
    check.authentication = Authentication::OtherKey;
    check.authentication_message = "written with another key (key id " + h.key_id + "; yours, " +
                                   key->origin().string() + ", has id " + key->id() +
                                   "): someone else's checkpoint, or yours from before a key change; read it with "
                                   "the key that wrote it (PYCKPT_KEY_FILE)";
  } else {
    check.authentication = Authentication::Altered;
    check.authentication_message = "fails authentication: it was altered or damaged after it was written";
  }

  if (file.size() != h.file_size) {
    check.integrity_message = "the file has " + std::to_string(file.size()) + " bytes but was written with " +
                              std::to_string(h.file_size) + " (truncated or extended)";
  } else if (metadata_digest(file.fd(), name, h, file.size()) != h.metadata_sha256) {
    check.integrity_message = "its HDF5 metadata (layout, attributes, checksums) differs from what was written";
  } else {
    check.intact = true;
  }
  return check;
}

std::optional<Key> load_user_key(std::string& why_none) {
  try {
    return Key::load(Key::default_path());
  } catch (const KeyFileError& e) {
    why_none = e.what();
    return std::nullopt;
  }
}

fs::path resolve_checkpoint(const fs::path& file_or_dir) {
  std::error_code ec;
  if (!fs::is_directory(file_or_dir, ec)) return file_or_dir;
  const std::optional<fs::path> latest = CheckpointDir(file_or_dir).latest();
  if (!latest) throw IoError(file_or_dir.string(), "", "no committed checkpoint (no `latest`)");
  return *latest;
}

}  // namespace pyckpt::h5::detail

namespace pyckpt::h5 {

HeaderCheck check_header(const std::filesystem::path& file_or_dir, const Key* key) {
  const detail::CheckedFile file(detail::resolve_checkpoint(file_or_dir));
  return detail::check_file(file, key, "no key given");
}

HeaderCheck check_header(const std::filesystem::path& file_or_dir) {
  const detail::CheckedFile file(detail::resolve_checkpoint(file_or_dir));
  std::string why_none;
  const std::optional<Key> key = detail::load_user_key(why_none);
  return detail::check_file(file, key ? &*key : nullptr, why_none);
}

std::vector<VerifyResult> verify_raw(const HeaderCheck& checked) {
  const detail::CheckedFile file(checked.file);
  std::vector<VerifyResult> out;
  std::vector<std::byte> buf = detail::read_buffer(checked.header.file_size);
  for (const HeaderEntry& e : checked.header.datasets) {
    if (e.kind == HeaderEntry::Kind::Global) continue;  // its slab checksums are in HDF5's metadata
    VerifyResult r{e.path, false, ""};
    try {
      detail::Checksum sum;
      detail::Sha256 sha;
      for (std::uint64_t done = 0; done < e.bytes;) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), e.bytes - done));
        file.read(buf.data(), n, e.offset + done);
        sum.update(buf.data(), n);
        if (e.sha256) sha.update(buf.data(), n);
        done += n;
      }
      if (sum.digest() != e.checksum) {
        r.message = "checksum mismatch";
      } else if (e.sha256 && sha.digest() != *e.sha256) {
        r.message = "SHA-256 mismatch";
      } else {
        r.ok = true;
      }
    } catch (const Error& err) {
      r.message = err.what();
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace pyckpt::h5
