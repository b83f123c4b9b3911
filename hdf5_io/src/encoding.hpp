// Internal: a byte encoding for what ranks exchange during commit (dataset
// descriptors, errors). Only ever decoded by the same build of this library
// within one job, so it is a plain little-endian length-prefixed format,
// built on the shared byte codec (pyckpt/codec/bytes.hpp).
#pragma once

#include <pyckpt/codec/bytes.hpp>
#include <pyckpt/h5/container.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace pyckpt::h5::detail {

class Encoder {
 public:
  void u64(std::uint64_t v) { out_.put(v); }
  void i64(std::int64_t v) { out_.put(v); }
  void f64(double v) { out_.put_f64(v); }
  void str(const std::string& s) { out_.put_string(s); }
  template <class T, class Fn>
  void list(const std::vector<T>& v, Fn&& each) {
    u64(v.size());
    for (const T& x : v) each(x);
  }
  void dims(const std::vector<std::uint64_t>& v) {
    list(v, [this](std::uint64_t x) { u64(x); });
  }
  void type(const ElementType& t) {
    u64(static_cast<std::uint64_t>(t.kind));
    u64(t.size);
    u64(static_cast<std::uint64_t>(t.order));
    list(t.fields, [this](const ElementType::Field& f) {
      str(f.name);
      u64(f.offset);
      type(f.type);
      dims(f.shape);
    });
  }
  void attrs(const AttrMap& m) {
    u64(m.size());
    for (const auto& [name, value] : m) {
      str(name);
      u64(value.index());
      std::visit(
          [this](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::int64_t>) i64(v);
            else if constexpr (std::is_same_v<V, double>) f64(v);
            else if constexpr (std::is_same_v<V, std::string>) str(v);
            else if constexpr (std::is_same_v<V, std::vector<std::int64_t>>) list(v, [this](std::int64_t x) { i64(x); });
            else if constexpr (std::is_same_v<V, std::vector<double>>) list(v, [this](double x) { f64(x); });
            else list(v, [this](const std::string& x) { str(x); });
          },
          value);
    }
  }
  std::vector<std::byte>& bytes() { return out_.bytes(); }

 private:
  codec::ByteWriter out_;
};

class Decoder {
 public:
  explicit Decoder(const std::vector<std::byte>& in) : in_(in, "pyckpt::h5: truncated descriptor message") {}
  std::uint64_t u64() { return in_.get<std::uint64_t>(); }
  std::int64_t i64() { return in_.get<std::int64_t>(); }
  double f64() { return in_.get_f64(); }
  std::string str() { return in_.get_string(); }
  template <class Fn>
  auto list(Fn&& each) {
    std::vector<decltype(each())> v(u64());
    for (auto& x : v) x = each();
    return v;
  }
  std::vector<std::uint64_t> dims() {
    return list([this] { return u64(); });
  }
  ElementType type() {
    ElementType t;
    t.kind = static_cast<ElementType::Kind>(u64());
    t.size = u64();
    t.order = static_cast<ByteOrder>(u64());
    t.fields = list([this] {
      ElementType::Field f;
      f.name = str();
      f.offset = u64();
      f.type = type();
      f.shape = dims();
      return f;
    });
    return t;
  }
  AttrMap attrs() {
    AttrMap m;
    for (std::uint64_t n = u64(); n > 0; --n) {
      std::string name = str();
      switch (u64()) {
        case 0: m.emplace(name, i64()); break;
        case 1: m.emplace(name, f64()); break;
        case 2: m.emplace(name, str()); break;
        case 3: m.emplace(name, list([this] { return i64(); })); break;
        case 4: m.emplace(name, list([this] { return f64(); })); break;
        default: m.emplace(name, list([this] { return str(); })); break;
      }
    }
    return m;
  }

 private:
  codec::ByteReader in_;
};

}  // namespace pyckpt::h5::detail
