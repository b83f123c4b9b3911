// N-d boxes, strided copies, dataspaces and checksums.
#include "detail.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace pyckpt::h5::detail {

std::uint64_t element_count(const Dims& shape) {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) n *= d;
  return n;
}

Strides c_strides(const Dims& shape, std::size_t elsize) {
  Strides s(shape.size());
  auto step = static_cast<std::int64_t>(elsize);
  for (std::size_t d = shape.size(); d-- > 0;) {
    s[d] = step;
    step *= static_cast<std::int64_t>(std::max<std::uint64_t>(shape[d], 1));
  }
  return s;
}

std::int64_t byte_offset(const Dims& at, const Strides& strides) {
  std::int64_t off = 0;
  for (std::size_t d = 0; d < at.size(); ++d) off += static_cast<std::int64_t>(at[d]) * strides[d];
  return off;
}

namespace {

// NumPy's rule: extents of 1 do not constrain their stride; an empty array
// is contiguous.
bool is_c_contiguous(const Dims& shape, const Strides& strides, std::size_t elsize) {
  if (element_count(shape) == 0) return true;
  auto expected = static_cast<std::int64_t>(elsize);
  for (std::size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && strides[d] != expected) return false;
    expected *= static_cast<std::int64_t>(shape[d]);
  }
  return true;
}

template <class V>
V reversed(V v) {
  std::reverse(v.begin(), v.end());
  return v;
}

}  // namespace

StoredView view_in_order(void* data, const ElementType& type, const Dims& shape, const Strides& strides,
                         StorageOrder order) {
  StoredView v;
  v.data = static_cast<std::byte*>(data);
  v.elsize = type.size;
  v.shape = shape;
  v.strides = strides.empty() ? c_strides(shape, type.size) : strides;
  if (v.strides.size() != shape.size()) throw H5Failure("strides do not match the shape");
  v.order = order;
  if (order == StorageOrder::F) {
    v.shape = reversed(v.shape);
    v.strides = reversed(v.strides);
  }
  if (type.kind == ElementType::Kind::Unicode) {
    v.shape.push_back(type.size / 4);
    v.strides.push_back(4);
    v.elsize = 4;
  }
  v.contiguous = is_c_contiguous(v.shape, v.strides, v.elsize);
  return v;
}

StoredView stored_view(void* data, const ElementType& type, const Dims& shape, const Strides& strides,
                       bool allow_f) {
  StoredView c = view_in_order(data, type, shape, strides, StorageOrder::C);
  if (!allow_f || c.contiguous) return c;
  StoredView f = view_in_order(data, type, shape, strides, StorageOrder::F);
  return f.contiguous ? f : c;
}

namespace {

// The dimension pieces are cut along and how many of its rows go in one.
struct Split {
  std::size_t dim = 0;
  std::uint64_t rows = 1;
};

Split split_of(const Dims& count, std::size_t elsize, std::size_t budget) {
  // inner = bytes of one index step in dimension d (all later dims whole).
  std::vector<std::uint64_t> inner(count.size());
  std::uint64_t step = elsize;
  for (std::size_t d = count.size(); d-- > 0;) {
    inner[d] = step;
    step *= count[d];
  }
  Split s{count.size() - 1, 1};
  for (std::size_t d = 0; d < count.size(); ++d) {
    if (inner[d] <= budget) {
      s.dim = d;
      break;
    }
  }
  s.rows = std::clamp<std::uint64_t>(budget / inner[s.dim], 1, count[s.dim]);
  return s;
}

}  // namespace

void for_each_piece(const Dims& count, std::size_t elsize, std::size_t budget,
                    const std::function<void(const Dims&, const Dims&)>& fn) {
  if (count.empty()) {
    fn({}, {});
    return;
  }
  if (element_count(count) == 0) return;
  const Split s = split_of(count, elsize, budget);
  Dims off(count.size(), 0), cnt = count;
  std::fill(cnt.begin(), cnt.begin() + static_cast<std::ptrdiff_t>(s.dim), 1);
  for (;;) {
    for (std::uint64_t start = 0; start < count[s.dim]; start += s.rows) {
      off[s.dim] = start;
      cnt[s.dim] = std::min(s.rows, count[s.dim] - start);
      fn(off, cnt);
    }
    off[s.dim] = 0;
    // Next index of the dimensions before the split one (odometer).
    std::size_t d = s.dim;
    while (d > 0) {
      --d;
      if (++off[d] < count[d]) break;
      off[d] = 0;
      if (d == 0) return;
    }
    if (s.dim == 0) return;
  }
}

std::uint64_t piece_count(const Dims& count, std::size_t elsize, std::size_t budget) {
  if (count.empty()) return 1;
  if (element_count(count) == 0) return 0;
  const Split s = split_of(count, elsize, budget);
  std::uint64_t n = (count[s.dim] + s.rows - 1) / s.rows;
  for (std::size_t d = 0; d < s.dim; ++d) n *= count[d];
  return n;
}

namespace {

struct CopyDim {
  std::uint64_t n;
  std::int64_t src, dst;
};

void copy_elements(const std::byte* src, std::int64_t src_step, std::byte* dst, std::int64_t dst_step, std::uint64_t n,
                   std::size_t elsize) {
  for (std::uint64_t i = 0; i < n; ++i, src += src_step, dst += dst_step) std::memcpy(dst, src, elsize);
}

void copy_dims(const std::byte* src, std::byte* dst, const std::vector<CopyDim>& dims, std::size_t d,
               std::size_t elsize) {
  const CopyDim& dim = dims[d];
  if (d + 1 == dims.size()) {
    const auto e = static_cast<std::int64_t>(elsize);
    if (dim.src == e && dim.dst == e) {
      std::memcpy(dst, src, dim.n * elsize);
    } else {
      copy_elements(src, dim.src, dst, dim.dst, dim.n, elsize);
    }
    return;
  }
  for (std::uint64_t i = 0; i < dim.n; ++i, src += dim.src, dst += dim.dst) copy_dims(src, dst, dims, d + 1, elsize);
}

}  // namespace

void copy_box(const std::byte* src, const Strides& src_strides, std::byte* dst, const Strides& dst_strides,
              const Dims& count, std::size_t elsize) {
  // Drop extents of 1 and merge neighbouring dims that are contiguous in both
  // layouts, so that e.g. a C-contiguous box becomes one memcpy.
  std::vector<CopyDim> dims;
  for (std::size_t d = 0; d < count.size(); ++d) {
    if (count[d] == 0) return;
    if (count[d] == 1) continue;
    if (!dims.empty() && dims.back().src == src_strides[d] * static_cast<std::int64_t>(count[d]) &&
        dims.back().dst == dst_strides[d] * static_cast<std::int64_t>(count[d])) {
      dims.back() = {dims.back().n * count[d], src_strides[d], dst_strides[d]};
    } else {
      dims.push_back({count[d], src_strides[d], dst_strides[d]});
    }
  }
  if (dims.empty()) {
    std::memcpy(dst, src, elsize);
    return;
  }
  copy_dims(src, dst, dims, 0, elsize);
}

Hid simple_space(const Dims& shape) {
  if (shape.empty()) return space_id(H5Screate(H5S_SCALAR), "H5Screate");
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  return space_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple");
}

Hid select_box(hid_t space, const Dims& offset, const Dims& count) {
  Hid s = space_id(H5Scopy(space), "H5Scopy");
  if (!offset.empty()) {
    const std::vector<hsize_t> start(offset.begin(), offset.end()), n(count.begin(), count.end());
    checked_status(H5Sselect_hyperslab(s.get(), H5S_SELECT_SET, start.data(), nullptr, n.data(), nullptr),
                   "H5Sselect_hyperslab");
  }
  return s;
}

Checksum::Checksum() : state_(XXH3_createState()) {
  if (state_ == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}
Checksum::~Checksum() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void Checksum::update(const void* data, std::size_t size) {
  if (size > 0) XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}
std::uint64_t Checksum::digest() const { return XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_)); }

std::uint64_t checksum_of(const void* data, std::size_t size) {
  static const std::byte empty{};
  return XXH3_64bits(size > 0 ? data : &empty, size);
}

}  // namespace pyckpt::h5::detail
