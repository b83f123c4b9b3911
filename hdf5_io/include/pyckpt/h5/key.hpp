// pyckpt::h5::Key -- the secret that authenticates checkpoints.
//
// A checkpoint holds pickled program state, and restarting it runs whatever
// that state says; so every checkpoint carries an HMAC-SHA256, keyed with
// the key of the user who wrote it, over everything a restart trusts
// (doc/format.md, "Header and authentication"). The key never goes into a
// checkpoint. It lives in a file of the user's:
//
//   $PYCKPT_KEY_FILE                    if set (service accounts, tests)
//   $XDG_CONFIG_HOME/pyckpt/key         else, if XDG_CONFIG_HOME is set
//   ~/.config/pyckpt/key                else
//
// A writer creates it on first use: 32 random bytes as 64 hex digits, mode
// 0600, in a directory created with mode 0700. A key file that other users
// may read or write is refused (as ssh refuses such a private key): whoever
// can read the key can forge checkpoints that run code as its owner. All
// ranks of an MPI job read the same file (a shared home directory).
#pragma once

#include <pyckpt/h5/types.hpp>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace pyckpt::h5 {

class Key {
 public:
  static constexpr std::size_t kMinBytes = 32;

  // A key from raw bytes (at least kMinBytes); `origin` names it in messages.
  static Key from_bytes(std::span<const std::byte> bytes, std::filesystem::path origin = {});
  // Where the user's key lives (see above). Does not touch the file.
  static std::filesystem::path default_path();
  // The key in `path`. KeyFileError if it is missing, not a regular file,
  // accessible by other users, or not at least 64 hex digits.
  static Key load(const std::filesystem::path& path);
  // The key in `path`, created first if there is none. Safe against
  // concurrent creators (the ranks of a job starting at once): exactly one
  // key is created and all of them read it.
  static Key load_or_create(const std::filesystem::path& path);

  // Names the key without revealing it: 16 hex digits of an HMAC of a fixed
  // string under the key. Stored in each checkpoint, so that a refusal can
  // say "written with another key".
  std::string id() const;
  std::span<const std::byte> bytes() const { return bytes_; }
  const std::filesystem::path& origin() const { return origin_; }

 private:
  std::vector<std::byte> bytes_;
  std::filesystem::path origin_;
};

}  // namespace pyckpt::h5
