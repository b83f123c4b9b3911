// Shared helpers of the hdf5_io tests: scratch directories, typed views and
// deterministic test data. Everything works on real files.
#pragma once

#include <pyckpt/h5/container.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace pyckpt::h5::testing {

namespace fs = std::filesystem;

// A fresh directory under $TMPDIR (or /tmp), removed with its content.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/pyckpt-h5-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  explicit ScratchDir(fs::path existing) : path_(std::move(existing)) {}
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// n bytes of a pattern that depends on seed, valid for any element type
// whose bytes are stored verbatim (no conversion on a same-type round trip).
inline std::vector<std::byte> pattern_bytes(std::size_t n, std::uint32_t seed) {
  std::vector<std::byte> out(n);
  std::uint32_t x = seed * 2654435761u + 12345u;
  for (auto& b : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<std::byte>(x);
  }
  return out;
}

inline std::uint64_t count_of(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

inline ArrayView view(const void* data, ElementType type, std::vector<std::uint64_t> shape,
                      std::vector<std::int64_t> strides = {}) {
  return ArrayView{data, std::move(type), std::move(shape), std::move(strides)};
}

inline MutableArrayView dest(void* data, ElementType type, std::vector<std::uint64_t> shape,
                             std::vector<std::int64_t> strides = {}) {
  return MutableArrayView{data, std::move(type), std::move(shape), std::move(strides)};
}

inline std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Contains, for EXPECT_THAT-free message checks.
inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace pyckpt::h5::testing
