// The datatype table: stable ids of the app's committed datatypes, and their
// encoding as MPI_Type_get_contents trees (re-created from it at restart).
#pragma once

#include <pyckpt/codec/bytes.hpp>

#include <mpi.h>

#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

namespace pyckpt::mpi {

inline constexpr std::uint64_t kPredefinedTypeBit = 1ull << 63;

// Predefined datatypes by stable index (their addresses change per process).
const std::vector<MPI_Datatype>& predefined_types();

class TypeTable {
 public:
  std::uint64_t add(MPI_Datatype t);
  void remove(MPI_Datatype t) { types_.erase(t); }
  // Stable ids: derived types by commit order, predefined ones by a fixed
  // index with kPredefinedTypeBit set. 0 / MPI_DATATYPE_NULL if unknown.
  std::uint64_t id(MPI_Datatype t) const;
  MPI_Datatype from_id(std::uint64_t id) const;
  // By id = commit order.
  std::map<std::uint64_t, MPI_Datatype> by_id() const;
  bool empty() const { return types_.empty(); }
  // Restart: t (re-created and committed) gets its saved id.
  void restore(MPI_Datatype t, std::uint64_t id);

  // type-tree: i32 combiner (-1: predefined, then u32 index into
  //            predefined_types()), u32 ni, i32[ni], u32 na, i64[na],
  //            u32 nd, type-tree[nd]
  static void encode(codec::ByteWriter& w, MPI_Datatype t);
  // A new (uncommitted) derived type, or a predefined one.
  static MPI_Datatype decode(codec::ByteReader& r);

 private:
  std::unordered_map<MPI_Datatype, std::uint64_t> types_;
  std::uint64_t next_id_ = 1;
};

}  // namespace pyckpt::mpi
