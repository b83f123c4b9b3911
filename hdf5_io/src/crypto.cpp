// SHA-256, HMAC-SHA256 and random bytes through OpenSSL's libcrypto.
#include "crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace pyckpt::h5::detail {

namespace {

[[noreturn]] void throw_openssl(const char* what) {
  char text[256] = "unknown error";
  if (const unsigned long code = ERR_get_error(); code != 0) ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  throw std::runtime_error(std::string("libcrypto: ") + what + " failed: " + text);
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw_openssl("SHA-256 initialisation");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, std::size_t size) {
  if (size != 0 && EVP_DigestUpdate(ctx_, data, size) != 1) throw_openssl("SHA-256");
}

Digest Sha256::digest() {
  Digest out;
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx_, reinterpret_cast<unsigned char*>(out.data()), &n) != 1 || n != out.size()) {
    throw_openssl("SHA-256");
  }
  return out;
}

Digest sha256_of(const void* data, std::size_t size) {
  Sha256 sha;
  sha.update(data, size);
  return sha.digest();
}

Digest hmac_sha256(std::span<const std::byte> key, std::span<const std::byte> message) {
  Digest out;
  unsigned int n = 0;
  // An empty message may come with a null pointer, which HMAC() rejects.
  static const unsigned char empty = 0;
  const auto* data = message.empty() ? &empty : reinterpret_cast<const unsigned char*>(message.data());
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, message.size(),
           reinterpret_cast<unsigned char*>(out.data()), &n) == nullptr ||
      n != out.size()) {
    throw_openssl("HMAC-SHA256");
  }
  return out;
}

bool equal_secret(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void random_bytes(std::span<std::byte> out) {
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) != 1) {
    throw_openssl("random number generation");
  }
}

std::string hex_of(std::span<const std::byte> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (std::byte b : bytes) {
    out += digits[std::to_integer<unsigned>(b) >> 4];
    out += digits[std::to_integer<unsigned>(b) & 15];
  }
  return out;
}

}  // namespace pyckpt::h5::detail
