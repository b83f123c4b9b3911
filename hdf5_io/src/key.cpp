// Key: the user's checkpoint key file (where it lives, creating it, refusing
// unsafe ones) and the key id.
#include <pyckpt/h5/key.hpp>

#include "crypto.hpp"
#include "detail.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace fs = std::filesystem;

namespace pyckpt::h5 {

using namespace detail;

namespace {

constexpr std::size_t kMaxKeyFileBytes = 4096;
constexpr const char* kKeyIdContext = "pyckpt checkpoint key id";

[[noreturn]] void refuse(const fs::path& path, const std::string& message) {
  throw KeyFileError(path.string(), "", message);
}

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// The key's bytes from the file's text: hex digits, surrounding white space
// ignored.
std::vector<std::byte> parse_key_text(const fs::path& path, std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<std::byte> bytes;
  bool valid = text.size() % 2 == 0;
  for (std::size_t i = 0; valid && i < text.size(); i += 2) {
    const int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    valid = hi >= 0 && lo >= 0;
    bytes.push_back(static_cast<std::byte>(hi * 16 + lo));
  }
  if (!valid || bytes.size() < Key::kMinBytes) {
    refuse(path, "not a pyckpt key: expected at least " + std::to_string(2 * Key::kMinBytes) +
                     " hex digits (a new key is created where none exists)");
  }
  return bytes;
}

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

}  // namespace

Key Key::from_bytes(std::span<const std::byte> bytes, fs::path origin) {
  if (bytes.size() < kMinBytes) {
    throw KeyFileError(origin.string(), "", "a key needs at least " + std::to_string(kMinBytes) + " bytes");
  }
  Key key;
  key.bytes_.assign(bytes.begin(), bytes.end());
  key.origin_ = std::move(origin);
  return key;
}

fs::path Key::default_path() {
  if (const auto file = env("PYCKPT_KEY_FILE")) return *file;
  if (const auto config = env("XDG_CONFIG_HOME")) return fs::path(*config) / "pyckpt" / "key";
  if (const auto home = env("HOME")) return fs::path(*home) / ".config" / "pyckpt" / "key";
  throw KeyFileError("", "", "cannot tell where the checkpoint key lives: neither PYCKPT_KEY_FILE, XDG_CONFIG_HOME "
                             "nor HOME is set");
}

Key Key::load(const fs::path& path) {
  // O_NONBLOCK: a FIFO put in the key's place must not hang the reader.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) refuse(path, "no checkpoint key here");
    refuse(path, std::string("cannot read the checkpoint key: ") + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) refuse(path, "the checkpoint key is not a regular file");
  if ((st.st_mode & 077) != 0) {
    refuse(path, "the checkpoint key is accessible by other users (mode " + mode_text(st.st_mode) +
                     "); anyone who can read it can forge checkpoints: run `chmod 600 " + path.string() + "`");
  }
  if (st.st_size > static_cast<off_t>(kMaxKeyFileBytes)) refuse(path, "not a pyckpt key: the file is too large");
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) refuse(path, "cannot read the checkpoint key");
    done += static_cast<std::size_t>(n);
  }
  return from_bytes(parse_key_text(path, text), path);
}

Key Key::load_or_create(const fs::path& path) {
  std::error_code ec;
  if (fs::exists(path, ec)) return load(path);
  if (path.has_parent_path()) create_private_directories(path.parent_path());
  // Written whole under a unique name, then linked into place: link() fails
  // if another process created the key meanwhile, and that key wins.
  std::array<std::byte, kMinBytes> secret;
  random_bytes(secret);
  const std::string text = hex_of(secret) + "\n";
  std::array<std::byte, 8> nonce;
  random_bytes(nonce);
  const fs::path staged = path.string() + "." + hex_of(nonce) + ".new";
  const int fd = ::open(staged.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) refuse(path, std::string("cannot create the checkpoint key: ") + std::strerror(errno));
  bool written = ::fchmod(fd, 0600) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                 ::fsync(fd) == 0;
  const int write_errno = errno;
  ::close(fd);
  const bool linked = written && ::link(staged.c_str(), path.c_str()) == 0;
  const int link_errno = errno;
  ::unlink(staged.c_str());
  if (!written) refuse(path, std::string("cannot write the checkpoint key: ") + std::strerror(write_errno));
  if (!linked && link_errno != EEXIST) {
    refuse(path, std::string("cannot create the checkpoint key: ") + std::strerror(link_errno));
  }
  return load(path);
}

std::string Key::id() const {
  const std::string_view context(kKeyIdContext);
  const Digest mac = hmac_sha256(bytes_, std::as_bytes(std::span(context.data(), context.size())));
  return hex_of(std::span(mac).first(8));
}

}  // namespace pyckpt::h5
