// pyckpt/codec/bytes.hpp -- little-endian fixed-width byte encoding.
//
// One writer and one reader for every byte format of pyckpt's C++ layers
// (hdf5_io's commit messages, mpi_wrap's saved state). Integers are written
// least significant byte first whatever the host's byte order, with the
// width of their type, so a format built from them depends on neither the
// writer's pointer size nor its byte order. Header-only, no dependencies.
#pragma once

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace pyckpt::codec {

// Integral types the codec writes (bool has no fixed width: write a u8).
template <typename T>
concept FixedInt = std::integral<T> && !std::same_as<T, bool>;

class ByteWriter {
 public:
  template <FixedInt T>
  void put(T v) {
    const auto u = static_cast<std::make_unsigned_t<T>>(v);
    for (std::size_t i = 0; i < sizeof(T); ++i) out_.push_back(static_cast<std::byte>(u >> (8 * i)));
  }
  void put_f64(double v) { put(std::bit_cast<std::uint64_t>(v)); }
  void put_bytes(const std::byte* p, std::size_t n) { out_.insert(out_.end(), p, p + n); }
  // u64 length, then the bytes.
  void put_string(const std::string& s) {
    put<std::uint64_t>(s.size());
    put_bytes(reinterpret_cast<const std::byte*>(s.data()), s.size());
  }
  std::vector<std::byte>& bytes() { return out_; }
  std::vector<std::byte> take() { return std::move(out_); }

 private:
  std::vector<std::byte> out_;
};

// Reads what ByteWriter wrote. Reading past the end throws
// std::length_error with the message given at construction (which names the
// format for the caller's error report).
class ByteReader {
 public:
  ByteReader(const std::byte* p, std::size_t n, std::string truncated_message = "truncated byte string")
      : p_(p), end_(p + n), truncated_(std::move(truncated_message)) {}
  ByteReader(std::span<const std::byte> in, std::string truncated_message = "truncated byte string")
      : ByteReader(in.data(), in.size(), std::move(truncated_message)) {}

  template <FixedInt T>
  T get() {
    const std::byte* p = need(sizeof(T));
    std::make_unsigned_t<T> u = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      u = static_cast<decltype(u)>(u | (static_cast<std::make_unsigned_t<T>>(p[i]) << (8 * i)));
    return static_cast<T>(u);
  }
  double get_f64() { return std::bit_cast<double>(get<std::uint64_t>()); }
  // A view of the next n bytes (valid as long as the input).
  const std::byte* get_bytes(std::size_t n) { return need(n); }
  std::string get_string() {
    const auto n = get<std::uint64_t>();
    const std::byte* p = need(n);
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  bool done() const { return p_ == end_; }

 private:
  const std::byte* need(std::uint64_t n) {
    if (static_cast<std::uint64_t>(end_ - p_) < n) throw std::length_error(truncated_);
    const std::byte* r = p_;
    p_ += n;
    return r;
  }
  const std::byte* p_;
  const std::byte* end_;
  std::string truncated_;
};

}  // namespace pyckpt::codec
