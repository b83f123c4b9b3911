// Internal: the cryptography of checkpoint authentication, all of it from
// OpenSSL's libcrypto (SHA-256, HMAC-SHA256, constant-time comparison, the
// random bytes of new keys). Nothing here is hand-written hashing.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include <openssl/types.h>

namespace pyckpt::h5::detail {

using Digest = std::array<std::byte, 32>;  // SHA-256 and HMAC-SHA256 output

// SHA-256 over a byte stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t size);
  Digest digest();  // once

 private:
  EVP_MD_CTX* ctx_;
};
Digest sha256_of(const void* data, std::size_t size);

Digest hmac_sha256(std::span<const std::byte> key, std::span<const std::byte> message);

// Equality that takes the same time wherever the inputs differ (for MACs).
bool equal_secret(std::span<const std::byte> a, std::span<const std::byte> b);

// Bytes from the operating system's cryptographic random source.
void random_bytes(std::span<std::byte> out);

std::string hex_of(std::span<const std::byte> bytes);

}  // namespace pyckpt::h5::detail
