// The datatype table: ids, and derived datatypes as trees of
// MPI_Type_get_contents records (saved, and rebuilt at restart).
#include "type_table.hpp"

#include "error.hpp"
#include "mpi_handles.hpp"

#include <algorithm>
#include <string>

namespace pyckpt::mpi {

const std::vector<MPI_Datatype>& predefined_types() {
  static const std::vector<MPI_Datatype> v = {
      MPI_CHAR, MPI_SIGNED_CHAR, MPI_UNSIGNED_CHAR, MPI_BYTE, MPI_SHORT, MPI_UNSIGNED_SHORT, MPI_INT,
      MPI_UNSIGNED, MPI_LONG, MPI_UNSIGNED_LONG, MPI_LONG_LONG, MPI_UNSIGNED_LONG_LONG, MPI_FLOAT, MPI_DOUBLE,
      MPI_LONG_DOUBLE, MPI_C_BOOL, MPI_INT8_T, MPI_INT16_T, MPI_INT32_T, MPI_INT64_T, MPI_UINT8_T,
      MPI_UINT16_T, MPI_UINT32_T, MPI_UINT64_T, MPI_C_FLOAT_COMPLEX, MPI_C_DOUBLE_COMPLEX,
      MPI_C_LONG_DOUBLE_COMPLEX, MPI_WCHAR, MPI_PACKED, MPI_AINT, MPI_OFFSET, MPI_COUNT, MPI_FLOAT_INT,
      MPI_DOUBLE_INT, MPI_LONG_INT, MPI_2INT, MPI_SHORT_INT, MPI_LONG_DOUBLE_INT};
  return v;
}

std::uint64_t TypeTable::add(MPI_Datatype t) {
  auto [it, inserted] = types_.try_emplace(t, next_id_);
  if (inserted) ++next_id_;
  return it->second;
}

std::uint64_t TypeTable::id(MPI_Datatype t) const {
  if (auto it = types_.find(t); it != types_.end()) return it->second;
  int ni, na, nd, combiner = 0;
  if (PMPI_Type_get_envelope(t, &ni, &na, &nd, &combiner) != MPI_SUCCESS || combiner != MPI_COMBINER_NAMED) return 0;
  const auto& pre = predefined_types();
  for (std::size_t i = 0; i < pre.size(); ++i)
    if (pre[i] == t) return kPredefinedTypeBit | i;
  return 0;
}

MPI_Datatype TypeTable::from_id(std::uint64_t id) const {
  if (id & kPredefinedTypeBit) {
    const auto& pre = predefined_types();
    const auto idx = id & ~kPredefinedTypeBit;
    return idx < pre.size() ? pre[idx] : MPI_DATATYPE_NULL;
  }
  for (auto& [h, i] : types_)
    if (i == id) return h;
  return MPI_DATATYPE_NULL;
}

std::map<std::uint64_t, MPI_Datatype> TypeTable::by_id() const {
  std::map<std::uint64_t, MPI_Datatype> types;
  for (auto& [h, id] : types_) types.emplace(id, h);
  return types;
}

void TypeTable::restore(MPI_Datatype t, std::uint64_t id) {
  types_[t] = id;
  next_id_ = std::max(next_id_, id + 1);
}

namespace {

// Frees the derived children made while decoding, whatever happens.
struct TypeList {
  std::vector<MPI_Datatype> v;
  ~TypeList() {
    for (MPI_Datatype& t : v)
      if (t != MPI_DATATYPE_NULL) TypeTraits::free(&t);
  }
};

}  // namespace

void TypeTable::encode(codec::ByteWriter& w, MPI_Datatype t) {
  int ni = 0, na = 0, nd = 0, combiner = 0;
  check(PMPI_Type_get_envelope(t, &ni, &na, &nd, &combiner), "MPI_Type_get_envelope");
  if (combiner == MPI_COMBINER_NAMED) {
    const auto& pre = predefined_types();
    auto it = std::find(pre.begin(), pre.end(), t);
    if (it == pre.end()) {
      char name[MPI_MAX_OBJECT_NAME];
      int len = 0;
      PMPI_Type_get_name(t, name, &len);
      throw Error(PYCKPT_MPI_EUNSUPPORTED, "pyckpt_mpi: predefined datatype " + std::string(name, len) +
                                               " is not in the checkpointable set");
    }
    w.put<std::int32_t>(-1);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(it - pre.begin()));
    return;
  }
  std::vector<int> ints(static_cast<std::size_t>(ni));
  std::vector<MPI_Aint> aints(static_cast<std::size_t>(na));
  // get_contents hands out new handles for derived children only: freed
  // when done, also if encoding one of them throws.
  TypeList children;
  children.v.assign(static_cast<std::size_t>(nd), MPI_DATATYPE_NULL);
  check(PMPI_Type_get_contents(t, ni, na, nd, ints.data(), aints.data(), children.v.data()),
        "MPI_Type_get_contents");
  w.put<std::int32_t>(combiner);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(ni));
  for (int v : ints) w.put<std::int32_t>(v);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(na));
  for (MPI_Aint v : aints) w.put<std::int64_t>(v);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(nd));
  for (MPI_Datatype child : children.v) encode(w, child);
}

MPI_Datatype TypeTable::decode(codec::ByteReader& r) {
  const auto combiner = r.get<std::int32_t>();
  const auto& pre = predefined_types();
  if (combiner == -1) {
    const auto idx = r.get<std::uint32_t>();
    if (idx >= pre.size()) throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: unknown predefined datatype index");
    return pre[idx];
  }
  std::vector<int> i(r.get<std::uint32_t>());
  for (int& v : i) v = r.get<std::int32_t>();
  std::vector<MPI_Aint> a(r.get<std::uint32_t>());
  for (MPI_Aint& v : a) v = r.get<std::int64_t>();
  TypeList children;
  children.v.assign(r.get<std::uint32_t>(), MPI_DATATYPE_NULL);
  for (MPI_Datatype& t : children.v) t = decode(r);
  const auto need = [&](std::size_t ni, std::size_t na, std::size_t nd) {
    if (i.size() < ni || a.size() < na || children.v.size() < nd)
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: corrupt datatype record");
  };
  MPI_Datatype t = MPI_DATATYPE_NULL;
  const int n = i.empty() ? 0 : i[0];
  const auto nn = static_cast<std::size_t>(std::max(n, 0));
  int rc = MPI_SUCCESS;
  switch (combiner) {
    case MPI_COMBINER_DUP: need(0, 0, 1); rc = PMPI_Type_dup(children.v[0], &t); break;
    case MPI_COMBINER_CONTIGUOUS: need(1, 0, 1); rc = PMPI_Type_contiguous(n, children.v[0], &t); break;
    case MPI_COMBINER_VECTOR: need(3, 0, 1); rc = PMPI_Type_vector(n, i[1], i[2], children.v[0], &t); break;
    case MPI_COMBINER_HVECTOR: need(2, 1, 1); rc = PMPI_Type_create_hvector(n, i[1], a[0], children.v[0], &t); break;
    case MPI_COMBINER_INDEXED:
      need(1 + 2 * nn, 0, 1);
      rc = PMPI_Type_indexed(n, &i[1], &i[1 + nn], children.v[0], &t);
      break;
    case MPI_COMBINER_HINDEXED:
      need(1 + nn, nn, 1);
      rc = PMPI_Type_create_hindexed(n, &i[1], a.data(), children.v[0], &t);
      break;
    case MPI_COMBINER_INDEXED_BLOCK:
      need(2 + nn, 0, 1);
      rc = PMPI_Type_create_indexed_block(n, i[1], &i[2], children.v[0], &t);
      break;
    case MPI_COMBINER_HINDEXED_BLOCK:
      need(2, nn, 1);
      rc = PMPI_Type_create_hindexed_block(n, i[1], a.data(), children.v[0], &t);
      break;
    case MPI_COMBINER_STRUCT:
      need(1 + nn, nn, nn);
      rc = PMPI_Type_create_struct(n, &i[1], a.data(), children.v.data(), &t);
      break;
    case MPI_COMBINER_SUBARRAY:
      need(2 + 3 * nn, 0, 1);
      rc = PMPI_Type_create_subarray(n, &i[1], &i[1 + nn], &i[1 + 2 * nn], i[1 + 3 * nn], children.v[0], &t);
      break;
    case MPI_COMBINER_DARRAY: {
      // size, rank, ndims, gsizes[ndims], distribs[ndims], dargs[ndims], psizes[ndims], order
      const auto nd = static_cast<std::size_t>(std::max(i.size() > 2 ? i[2] : 0, 0));
      need(4 + 4 * nd, 0, 1);
      rc = PMPI_Type_create_darray(i[0], i[1], i[2], &i[3], &i[3 + nd], &i[3 + 2 * nd], &i[3 + 3 * nd],
                                   i[3 + 4 * nd], children.v[0], &t);
      break;
    }
    case MPI_COMBINER_RESIZED: need(0, 2, 1); rc = PMPI_Type_create_resized(children.v[0], a[0], a[1], &t); break;
    // Parameterised predefined types (TypeTraits::predefined): made again
    // from their precision and range, never freed.
    case MPI_COMBINER_F90_REAL: need(2, 0, 0); rc = PMPI_Type_create_f90_real(i[0], i[1], &t); break;
    case MPI_COMBINER_F90_COMPLEX: need(2, 0, 0); rc = PMPI_Type_create_f90_complex(i[0], i[1], &t); break;
    case MPI_COMBINER_F90_INTEGER: need(1, 0, 0); rc = PMPI_Type_create_f90_integer(i[0], &t); break;
    default:
      throw Error(PYCKPT_MPI_EUNSUPPORTED,
                  "pyckpt_mpi: datatype combiner " + std::to_string(combiner) + " cannot be restored");
  }
  check(rc, "re-creating a derived datatype");
  return t;
}

}  // namespace pyckpt::mpi
