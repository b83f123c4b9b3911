// Element types <-> HDF5 types, attributes, reserved and escaped names.
#include "detail.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

namespace pyckpt::h5::detail {

namespace {

[[noreturn]] void unsupported(const std::string& what) { throw H5Failure("unsupported element type: " + what); }

Hid copy_type(hid_t base) { return type_id(H5Tcopy(base), "H5Tcopy"); }

void set_order(hid_t type, ByteOrder order) {
  if (order == ByteOrder::NotApplicable) return;
  checked_status(H5Tset_order(type, order == ByteOrder::Big ? H5T_ORDER_BE : H5T_ORDER_LE), "H5Tset_order");
}

Hid integer_type(bool is_signed, std::size_t size, ByteOrder order) {
  hid_t base = H5I_INVALID_HID;
  switch (size) {
    case 1: base = is_signed ? H5T_STD_I8LE : H5T_STD_U8LE; break;
    case 2: base = is_signed ? H5T_STD_I16LE : H5T_STD_U16LE; break;
    case 4: base = is_signed ? H5T_STD_I32LE : H5T_STD_U32LE; break;
    case 8: base = is_signed ? H5T_STD_I64LE : H5T_STD_U64LE; break;
    default: unsupported((is_signed ? "int of " : "uint of ") + std::to_string(size) + " bytes");
  }
  Hid t = copy_type(base);
  set_order(t.get(), order);
  return t;
}

Hid float_type(std::size_t size, ByteOrder order) {
  Hid t;
  switch (size) {
    case 2:
      // IEEE binary16 built the way h5py builds it, so h5py reads it as float16.
      t = copy_type(H5T_IEEE_F32LE);
      checked_status(H5Tset_fields(t.get(), 15, 10, 5, 0, 10), "H5Tset_fields");
      checked_status(H5Tset_size(t.get(), 2), "H5Tset_size");
      checked_status(H5Tset_ebias(t.get(), 15), "H5Tset_ebias");
      break;
    case 4: t = copy_type(H5T_IEEE_F32LE); break;
    case 8: t = copy_type(H5T_IEEE_F64LE); break;
    case 16: t = copy_type(H5T_NATIVE_LDOUBLE); break;  // x87 extended, padded to 16 bytes
    default: unsupported("float of " + std::to_string(size) + " bytes");
  }
  set_order(t.get(), order);
  return t;
}

ElementType::Kind integer_kind(hid_t type) {
  return H5Tget_sign(type) == H5T_SGN_NONE ? ElementType::Kind::UInt : ElementType::Kind::Int;
}

std::string member_name(hid_t type, unsigned i) {
  char* raw = H5Tget_member_name(type, i);
  if (raw == nullptr) throw_h5("H5Tget_member_name");
  std::string name(raw);
  H5free_memory(raw);
  return name;
}

// h5py's convention: a compound {r, i} of two equal floats is a complex number.
bool is_complex(hid_t type) {
  if (H5Tget_nmembers(type) != 2 || member_name(type, 0) != "r" || member_name(type, 1) != "i") return false;
  Hid r = type_id(H5Tget_member_type(type, 0), "H5Tget_member_type");
  Hid i = type_id(H5Tget_member_type(type, 1), "H5Tget_member_type");
  const std::size_t half = H5Tget_size(r.get());
  return H5Tget_class(r.get()) == H5T_FLOAT && H5Tequal(r.get(), i.get()) > 0 &&
         H5Tget_member_offset(type, 0) == 0 && H5Tget_member_offset(type, 1) == half &&
         H5Tget_size(type) == 2 * half;
}

bool is_h5py_bool(hid_t type) {
  if (H5Tget_nmembers(type) != 2 || H5Tget_size(type) != 1) return false;
  std::int8_t false_value = -1, true_value = -1;
  return member_name(type, 0) == "FALSE" && member_name(type, 1) == "TRUE" &&
         H5Tget_member_value(type, 0, &false_value) >= 0 && H5Tget_member_value(type, 1, &true_value) >= 0 &&
         false_value == 0 && true_value == 1;
}

}  // namespace

ByteOrder byte_order_of(H5T_order_t order) {
  switch (order) {
    case H5T_ORDER_LE: return ByteOrder::Little;
    case H5T_ORDER_BE: return ByteOrder::Big;
    default: return ByteOrder::NotApplicable;
  }
}

ElementType storage_type(const ElementType& type) {
  return type.kind == ElementType::Kind::Unicode ? ElementType::unsigned_integer(4, type.order) : type;
}

Hid h5_type_of(const ElementType& type) {
  using K = ElementType::Kind;
  if (type.size == 0) unsupported(type.str() + " (zero size)");
  switch (type.kind) {
    case K::Bool: {
      Hid t = type_id(H5Tenum_create(H5T_NATIVE_INT8), "H5Tenum_create");
      const std::int8_t f = 0, tr = 1;
      checked_status(H5Tenum_insert(t.get(), "FALSE", &f), "H5Tenum_insert");
      checked_status(H5Tenum_insert(t.get(), "TRUE", &tr), "H5Tenum_insert");
      return t;
    }
    case K::Int: return integer_type(true, type.size, type.order);
    case K::UInt: return integer_type(false, type.size, type.order);
    case K::Float: return float_type(type.size, type.order);
    case K::Complex: {
      if (type.size % 2 != 0) unsupported(type.str());
      Hid part = float_type(type.size / 2, type.order);
      Hid t = type_id(H5Tcreate(H5T_COMPOUND, type.size), "H5Tcreate");
      checked_status(H5Tinsert(t.get(), "r", 0, part.get()), "H5Tinsert");
      checked_status(H5Tinsert(t.get(), "i", type.size / 2, part.get()), "H5Tinsert");
      return t;
    }
    case K::Bytes: {
      Hid t = copy_type(H5T_C_S1);
      checked_status(H5Tset_size(t.get(), type.size), "H5Tset_size");
      checked_status(H5Tset_strpad(t.get(), H5T_STR_NULLPAD), "H5Tset_strpad");
      return t;
    }
    case K::Unicode: unsupported(type.str() + " inside a compound type");
    case K::Opaque: return type_id(H5Tcreate(H5T_OPAQUE, type.size), "H5Tcreate");
    case K::Compound: {
      Hid t = type_id(H5Tcreate(H5T_COMPOUND, type.size), "H5Tcreate");
      for (const ElementType::Field& f : type.fields) {
        Hid member = h5_type_of(f.type);
        if (!f.shape.empty()) {
          std::vector<hsize_t> dims(f.shape.begin(), f.shape.end());
          member = type_id(H5Tarray_create2(member.get(), static_cast<unsigned>(dims.size()), dims.data()),
                           "H5Tarray_create2");
        }
        checked_status(H5Tinsert(t.get(), f.name.c_str(), f.offset, member.get()),
                       ("field '" + f.name + "' of " + type.str()).c_str());
      }
      return t;
    }
  }
  unsupported(type.str());
}

ElementType element_type_of(hid_t type) {
  const std::size_t size = H5Tget_size(type);
  const auto order = [&] { return byte_order_of(H5Tget_order(type)); };
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: {
      ElementType t{integer_kind(type), size, size == 1 ? ByteOrder::NotApplicable : order(), {}};
      if (size != 1 && size != 2 && size != 4 && size != 8) unsupported("integer of " + std::to_string(size) + " bytes");
      return t;
    }
    case H5T_FLOAT:
      if (size != 2 && size != 4 && size != 8 && size != 16) unsupported("float of " + std::to_string(size) + " bytes");
      return ElementType::floating(size, order());
    case H5T_ENUM: {
      if (is_h5py_bool(type)) return ElementType::boolean();
      Hid base = type_id(H5Tget_super(type), "H5Tget_super");
      return element_type_of(base.get());
    }
    case H5T_STRING:
      if (H5Tis_variable_str(type) > 0) unsupported("variable-length string");
      return ElementType::bytes(size);
    case H5T_OPAQUE: return ElementType::opaque(size);
    case H5T_COMPOUND: {
      if (is_complex(type)) {
        Hid r = type_id(H5Tget_member_type(type, 0), "H5Tget_member_type");
        return ElementType::complex(size, byte_order_of(H5Tget_order(r.get())));
      }
      std::vector<ElementType::Field> fields;
      const int n = H5Tget_nmembers(type);
      for (int i = 0; i < n; ++i) {
        const auto u = static_cast<unsigned>(i);
        ElementType::Field f;
        f.name = member_name(type, u);
        f.offset = H5Tget_member_offset(type, u);
        Hid member = type_id(H5Tget_member_type(type, u), "H5Tget_member_type");
        if (H5Tget_class(member.get()) == H5T_ARRAY) {
          const int rank = H5Tget_array_ndims(member.get());
          std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
          checked(H5Tget_array_dims2(member.get(), dims.data()), "H5Tget_array_dims2");
          f.shape.assign(dims.begin(), dims.end());
          member = type_id(H5Tget_super(member.get()), "H5Tget_super");
        }
        f.type = element_type_of(member.get());
        fields.push_back(std::move(f));
      }
      return ElementType::compound(size, std::move(fields));
    }
    default: unsupported("HDF5 type class " + std::to_string(static_cast<int>(H5Tget_class(type))));
  }
}

// ------------------------------------------------------------ names ---

bool is_reserved_dataset_attr(std::string_view name) {
  return name == kAttrChecksum || name == kAttrOrder || name == kAttrUnicode || name == kAttrSlabs;
}

bool is_reserved_root_attr(std::string_view name) {
  static constexpr std::array<std::string_view, 10> reserved{
      "format", "format_version", "epoch", "world_size", "hosts", "created_unix", "byte_order",
      "bytes_total", "seconds_prepare", "seconds_write"};
  return std::find(reserved.begin(), reserved.end(), name) != reserved.end();
}

bool is_reserved_rank_attr(std::string_view name) {
  return name == "seconds_prepare" || name == "seconds_write";
}

std::string rank_path(int rank) { return "/ranks/" + std::to_string(rank); }


std::string global_path(const std::string& name) { return "/global/" + escape_name(name); }

std::size_t slab_record_size(std::size_t ndim) { return 4 + 16 * ndim + 8; }

Hid slab_table_type(std::size_t ndim, bool native) {
  const hid_t i32 = native ? H5T_NATIVE_INT32 : H5T_STD_I32LE;
  const hid_t u64 = native ? H5T_NATIVE_UINT64 : H5T_STD_U64LE;
  const hsize_t dims[1] = {ndim};
  Hid vec = type_id(H5Tarray_create2(u64, 1, dims), "H5Tarray_create2");
  Hid t = type_id(H5Tcreate(H5T_COMPOUND, slab_record_size(ndim)), "H5Tcreate");
  checked_status(H5Tinsert(t.get(), "rank", 0, i32), "H5Tinsert");
  checked_status(H5Tinsert(t.get(), "offset", 4, vec.get()), "H5Tinsert");
  checked_status(H5Tinsert(t.get(), "count", 4 + 8 * ndim, vec.get()), "H5Tinsert");
  checked_status(H5Tinsert(t.get(), "checksum", 4 + 16 * ndim, u64), "H5Tinsert");
  return t;
}

std::string escape_name(std::string_view name) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(name.size());
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c == '%' || c == '/' || c == '\0' || (i == 0 && c == '.')) {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string unescape_name(std::string_view escaped) {
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    if (escaped[i] == '%' && i + 2 < escaped.size() && nibble(escaped[i + 1]) >= 0 && nibble(escaped[i + 2]) >= 0) {
      out += static_cast<char>(nibble(escaped[i + 1]) * 16 + nibble(escaped[i + 2]));
      i += 2;
    } else {
      out += escaped[i];
    }
  }
  return out;
}

// ------------------------------------------------------- attributes ---

namespace {

Hid utf8_vlen_string() {
  Hid t = copy_type(H5T_C_S1);
  checked_status(H5Tset_size(t.get(), H5T_VARIABLE), "H5Tset_size");
  checked_status(H5Tset_cset(t.get(), H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

void write_raw_attr(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type, const Dims* shape,
                    const void* data) {
  Hid space = shape ? simple_space(*shape) : space_id(H5Screate(H5S_SCALAR), "H5Screate");
  const std::string what = "attribute '" + name + "'";
  Hid attr = attr_id(H5Acreate2(obj, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), what.c_str());
  static const std::int64_t none = 0;  // HDF5 rejects a null buffer even for zero elements
  checked_status(H5Awrite(attr.get(), mem_type, data != nullptr ? data : &none), what.c_str());
}

std::vector<const char*> c_strings(const std::vector<std::string>& v) {
  std::vector<const char*> out;
  for (const std::string& s : v) out.push_back(s.c_str());
  return out;
}

}  // namespace

void write_attr(hid_t obj, const std::string& name, const AttrValue& value) {
  struct Visitor {
    hid_t obj;
    const std::string& name;
    void operator()(std::int64_t v) const { write_raw_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, nullptr, &v); }
    void operator()(double v) const { write_raw_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, nullptr, &v); }
    void operator()(const std::string& v) const {
      Hid t = utf8_vlen_string();
      const char* p = v.c_str();
      write_raw_attr(obj, name, t.get(), t.get(), nullptr, &p);
    }
    void operator()(const std::vector<std::int64_t>& v) const {
      const Dims shape{v.size()};
      write_raw_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &shape, v.data());
    }
    void operator()(const std::vector<double>& v) const {
      const Dims shape{v.size()};
      write_raw_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &shape, v.data());
    }
    void operator()(const std::vector<std::string>& v) const {
      Hid t = utf8_vlen_string();
      const Dims shape{v.size()};
      const std::vector<const char*> ptrs = c_strings(v);
      write_raw_attr(obj, name, t.get(), t.get(), &shape, ptrs.data());
    }
  };
  std::visit(Visitor{obj, name}, value);
}

void write_u64_attr(hid_t obj, const char* name, std::uint64_t value) {
  write_raw_attr(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, nullptr, &value);
}

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

std::uint64_t read_u64_attr(hid_t obj, const char* name) {
  Hid attr = attr_id(H5Aopen(obj, name, H5P_DEFAULT), (std::string("attribute '") + name + "'").c_str());
  std::uint64_t value = 0;
  checked_status(H5Aread(attr.get(), H5T_NATIVE_UINT64, &value), name);
  return value;
}

AttrValue read_attr(hid_t obj, const std::string& name) {
  const std::string what = "attribute '" + name + "'";
  Hid attr = attr_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), what.c_str());
  Hid type = type_id(H5Aget_type(attr.get()), what.c_str());
  Hid space = space_id(H5Aget_space(attr.get()), what.c_str());
  const bool scalar = H5Sget_simple_extent_type(space.get()) == H5S_SCALAR;
  const hssize_t n_signed = H5Sget_simple_extent_npoints(space.get());
  if (n_signed < 0) throw_h5(what);
  const auto n = static_cast<std::size_t>(n_signed);
  // HDF5 rejects a null buffer even for zero elements.
  const auto read = [&](hid_t mem_type, void* buf) {
    if (n > 0) checked_status(H5Aread(attr.get(), mem_type, buf), what.c_str());
  };
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER: {
      std::vector<std::int64_t> v(n);
      read(H5T_NATIVE_INT64, v.data());
      if (scalar) return v.at(0);
      return v;
    }
    case H5T_FLOAT: {
      std::vector<double> v(n);
      read(H5T_NATIVE_DOUBLE, v.data());
      if (scalar) return v.at(0);
      return v;
    }
    case H5T_STRING: {
      std::vector<std::string> v;
      if (H5Tis_variable_str(type.get()) > 0) {
        Hid mem = utf8_vlen_string();
        std::vector<char*> ptrs(n, nullptr);
        read(mem.get(), ptrs.data());
        for (char* p : ptrs) v.emplace_back(p ? p : "");
        if (n > 0) H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
      } else {
        const std::size_t width = H5Tget_size(type.get());
        std::vector<char> buf(n * width);
        read(type.get(), buf.data());
        for (std::size_t i = 0; i < n; ++i) {
          std::string s(buf.data() + i * width, width);
          s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
          v.push_back(std::move(s));
        }
      }
      if (scalar) return v.at(0);
      return v;
    }
    default: throw H5Failure(what + ": type not representable as an attribute value");
  }
}

AttrMap read_attrs(hid_t obj, bool (*skip)(std::string_view)) {
  std::vector<std::string> names;
  checked_status(H5Aiterate2(
                     obj, H5_INDEX_NAME, H5_ITER_INC, nullptr,
                     [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
                       static_cast<std::vector<std::string>*>(out)->emplace_back(name);
                       return 0;
                     },
                     &names),
                 "H5Aiterate2");
  AttrMap attrs;
  for (const std::string& name : names) {
    if (skip != nullptr && skip(name)) continue;
    attrs.emplace(name, read_attr(obj, name));
  }
  return attrs;
}

}  // namespace pyckpt::h5::detail

namespace pyckpt::h5 {

std::string dataset_path(int rank, DatasetKind kind, const std::string& name) {
  return detail::rank_path(rank) + (kind == DatasetKind::Blob ? "/blobs/" : "/arrays/") + detail::escape_name(name);
}

}  // namespace pyckpt::h5
