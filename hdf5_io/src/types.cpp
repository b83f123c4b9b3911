// Element types, byte order and the error hierarchy of pyckpt::h5.
#include <pyckpt/h5/types.hpp>

#include <bit>

namespace pyckpt::h5 {

ByteOrder native_byte_order() {
  return std::endian::native == std::endian::little ? ByteOrder::Little : ByteOrder::Big;
}

ElementType ElementType::boolean() { return {Kind::Bool, 1, ByteOrder::NotApplicable, {}}; }
ElementType ElementType::integer(std::size_t size, ByteOrder order) {
  return {Kind::Int, size, size == 1 ? ByteOrder::NotApplicable : order, {}};
}
ElementType ElementType::unsigned_integer(std::size_t size, ByteOrder order) {
  return {Kind::UInt, size, size == 1 ? ByteOrder::NotApplicable : order, {}};
}
ElementType ElementType::floating(std::size_t size, ByteOrder order) { return {Kind::Float, size, order, {}}; }
ElementType ElementType::complex(std::size_t size, ByteOrder order) { return {Kind::Complex, size, order, {}}; }
ElementType ElementType::bytes(std::size_t size) { return {Kind::Bytes, size, ByteOrder::NotApplicable, {}}; }
ElementType ElementType::unicode(std::size_t chars, ByteOrder order) { return {Kind::Unicode, 4 * chars, order, {}}; }
ElementType ElementType::opaque(std::size_t size) { return {Kind::Opaque, size, ByteOrder::NotApplicable, {}}; }
ElementType ElementType::compound(std::size_t size, std::vector<Field> fields) {
  return {Kind::Compound, size, ByteOrder::NotApplicable, std::move(fields)};
}

bool ElementType::operator==(const ElementType& o) const {
  return kind == o.kind && size == o.size && order == o.order && fields == o.fields;
}

std::string ElementType::str() const {
  const char order_char = order == ByteOrder::Little ? '<' : order == ByteOrder::Big ? '>' : '|';
  const std::string n = std::to_string(size);
  switch (kind) {
    case Kind::Bool: return "|b1";
    case Kind::Int: return order_char + std::string("i") + n;
    case Kind::UInt: return order_char + std::string("u") + n;
    case Kind::Float: return order_char + std::string("f") + n;
    case Kind::Complex: return order_char + std::string("c") + n;
    case Kind::Bytes: return "|S" + n;
    case Kind::Unicode: return order_char + std::string("U") + std::to_string(size / 4);
    case Kind::Opaque: return "|V" + n;
    case Kind::Compound: {
      std::string s = "{";
      for (std::size_t i = 0; i < fields.size(); ++i) {
        const Field& f = fields[i];
        if (i) s += ", ";
        s += f.name + ":" + f.type.str();
        if (!f.shape.empty()) {
          s += "(";
          for (std::size_t d = 0; d < f.shape.size(); ++d) s += (d ? "," : "") + std::to_string(f.shape[d]);
          s += ")";
        }
        s += "@" + std::to_string(f.offset);
      }
      return s + "}";
    }
  }
  return "?";
}

namespace {
std::string join_location(const std::string& file, const std::string& dataset, const std::string& message) {
  std::string s;
  if (!file.empty()) s += file + ": ";
  if (!dataset.empty()) s += dataset + ": ";
  return s + message;
}
}  // namespace

Error::Error(std::string file, std::string dataset, const std::string& message)
    : std::runtime_error(join_location(file, dataset, message)), file_(std::move(file)), dataset_(std::move(dataset)) {}

}  // namespace pyckpt::h5
