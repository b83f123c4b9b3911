// The communicator table: records, lineage ids, handle lookup, and the
// replay of lineage at restart.
#include "comm_table.hpp"

#include "error.hpp"
#include "internal_scope.hpp"

#include <numeric>
#include <tuple>

namespace pyckpt::mpi {

namespace {
// Child communicator ids must be equal on every member without talking: the
// k-th communicator made from a parent is the same object on all members,
// because creation is collective over the parent.
std::uint64_t child_id(std::uint64_t parent, std::uint64_t k) {
  std::uint64_t z = parent * 0x9E3779B97F4A7C15ull + k + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z < 16 ? z + 16 : z;  // never collides with predefined ids
}

// MPI_Comm_create_group is collective over the group only: the parent's
// other members do not see it, so it must not take a child index of the
// parent. Its id derives from the parent, the group and the tag (its
// lineage arguments), and how many communicators this rank made before
// with the same ones: every member of the group makes those in the same
// order (creation is blocking; a different order would deadlock).
std::uint64_t group_child_id(std::uint64_t parent, const std::vector<std::int32_t>& args, std::uint64_t earlier) {
  std::uint64_t h = parent;
  for (std::int32_t a : args) h = child_id(h, static_cast<std::uint32_t>(a));
  return child_id(h, earlier);
}

// An intercommunicator's id: each group takes a child index of its own
// local communicator (Intercomm_create is collective over it), and the two
// halves, exchanged over the new intercommunicator, are combined in an
// order both groups agree on.
std::uint64_t intercomm_id(std::uint64_t mine, std::uint64_t theirs) {
  return child_id(std::min(mine, theirs), std::max(mine, theirs));
}

std::vector<int> world_ranks_of(MPI_Group group) {
  OwnedGroup world;
  PMPI_Comm_group(MPI_COMM_WORLD, world.out());
  int n = 0;
  PMPI_Group_size(group, &n);
  std::vector<int> ranks(static_cast<std::size_t>(n)), out(ranks.size());
  std::iota(ranks.begin(), ranks.end(), 0);
  PMPI_Group_translate_ranks(group, n, ranks.data(), world.get(), out.data());
  return out;
}
}  // namespace

void CommTable::add_predefined() {
  for (auto [id, op, handle] : {std::tuple{kWorldId, LineageOp::World, MPI_COMM_WORLD},
                                std::tuple{kSelfId, LineageOp::Self, MPI_COMM_SELF}}) {
    auto rec = std::make_unique<CommRec>();
    rec->id = id;
    rec->op = op;
    rec->real = handle;
    insert(std::move(rec));
  }
}

CommRec& CommTable::insert(std::unique_ptr<CommRec> rec) {
  if (rec->real != MPI_COMM_NULL) {
    PMPI_Comm_rank(rec->real, &rec->rank);
    PMPI_Comm_size(rec->real, &rec->size);
    OwnedGroup group;
    PMPI_Comm_group(rec->real, group.out());  // the local group of an intercommunicator
    rec->world_ranks = world_ranks_of(group.get());
    int inter = 0;
    PMPI_Comm_test_inter(rec->real, &inter);
    if (inter) {
      OwnedGroup remote;
      PMPI_Comm_remote_group(rec->real, remote.out());
      rec->remote_world_ranks = world_ranks_of(remote.get());
    }
    // Collective over the new communicator, whose members are all making
    // it now. A split, not a dup: a dup would run the copy callbacks of the
    // app's attributes.
    // Its errors come back to the library, which runs the app's handler on
    // the app's communicator (CollectiveOp::test).
    if (!inter && rec->size > 1) {
      check(PMPI_Comm_split(rec->real, 0, rec->rank, rec->shadow.out()), "MPI_Comm_split (shadow)");
      PMPI_Comm_set_errhandler(rec->shadow.get(), MPI_ERRORS_RETURN);
    }
    rec->sent.assign(rec->peers().size(), 0);
    rec->received.assign(rec->peers().size(), 0);
    by_handle_[rec->real] = rec.get();
  }
  comms_.push_back(std::move(rec));
  return *comms_.back();
}

std::uint64_t CommRec::members_digest() const {
  std::uint64_t h = 14695981039346656037ull;
  const auto mix = [&h](std::uint32_t v) {
    for (int byte = 0; byte < 4; ++byte) {  // little-endian: the same on every machine
      h ^= (v >> (8 * byte)) & 0xffu;
      h *= 1099511628211ull;
    }
  };
  for (int r : world_ranks) mix(static_cast<std::uint32_t>(r));
  mix(0xffffffffu);  // between the groups: no world rank has this value
  for (int r : remote_world_ranks) mix(static_cast<std::uint32_t>(r));
  return h;
}

CommRec* CommTable::by_id(std::uint64_t id) const {
  for (auto& c : comms_)
    if (c->id == id && c->real != MPI_COMM_NULL) return c.get();
  return nullptr;
}

CommRec* CommTable::record(std::uint64_t id) const {
  CommRec* found = nullptr;
  for (auto& c : comms_)
    if (c->id == id) found = c.get();
  return found;
}

CommRec& CommTable::add(CommRec& parent, LineageOp op, std::vector<std::int32_t> args, MPI_Comm made) {
  InternalScope internal;
  auto rec = std::make_unique<CommRec>();
  if (op == LineageOp::CreateGroup) {
    std::uint64_t earlier = 0;
    for (const auto& c : comms_) earlier += c->op == op && c->parent == parent.id && c->args == args;
    rec->id = group_child_id(parent.id, args, earlier);
  } else {
    rec->id = child_id(parent.id, parent.children++);
  }
  if (op == LineageOp::Intercomm && made != MPI_COMM_NULL) {
    // Every member of the remote group sends its half; all are equal.
    int remote_size = 0;
    PMPI_Comm_remote_size(made, &remote_size);
    std::vector<std::uint64_t> theirs(static_cast<std::size_t>(remote_size));
    check(PMPI_Allgather(&rec->id, 1, MPI_UINT64_T, theirs.data(), 1, MPI_UINT64_T, made),
          "MPI_Allgather (intercommunicator id)");
    rec->id = intercomm_id(rec->id, theirs[0]);
  }
  rec->op = op;
  rec->parent = parent.id;
  rec->args = std::move(args);
  rec->real = made;
  // A member that got MPI_COMM_NULL (split colour MPI_UNDEFINED, not in the
  // group) still took part in the creation: the record keeps it in lineage.
  rec->freed = made == MPI_COMM_NULL;
  rec->placement_dependent = parent.placement_dependent || op == LineageOp::SplitType;
  return insert(std::move(rec));
}

void CommTable::forget_handle(MPI_Comm c) {
  CommRec* rec = find(c);
  if (!rec) return;
  by_handle_.erase(c);
  last_handle_ = MPI_COMM_NULL;
  last_ = nullptr;
  // Messages counted on a freed communicator can no longer be drained; the
  // app must have completed them (MPI requires it before MPI_Comm_free).
  // Its counts stay until the next cut: its peers still exchange them.
  rec->real = MPI_COMM_NULL;
  rec->shadow.reset();
  rec->freed = true;
}

// Lineage arguments per op: Split, SplitType: (colour or type, key);
// Create: the group as ranks of the parent; CreateGroup: the same, then the
// tag; Cart: (ndims, reorder, dims[ndims], periods[ndims]); CartSub:
// remain_dims; Intercomm: (local leader, world rank of the remote leader or
// -1 where not the leader, tag); Merge: (high); Dup: none.
OwnedComm CommTable::replay(LineageOp op, MPI_Comm parent, const std::vector<std::int32_t>& args, MPI_Comm bridge) {
  OwnedComm made;
  const auto bad = [] { throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: corrupt communicator lineage"); };
  switch (op) {
    case LineageOp::Dup: check(PMPI_Comm_dup(parent, made.out()), "MPI_Comm_dup (restore)"); break;
    case LineageOp::Split:
      if (args.size() != 2) bad();
      check(PMPI_Comm_split(parent, args[0], args[1], made.out()), "MPI_Comm_split (restore)");
      break;
    case LineageOp::SplitType:
      if (args.size() != 2) bad();
      check(PMPI_Comm_split_type(parent, args[0], args[1], MPI_INFO_NULL, made.out()),
            "MPI_Comm_split_type (restore)");
      break;
    case LineageOp::Create: {
      OwnedGroup pg, g;
      check(PMPI_Comm_group(parent, pg.out()), "MPI_Comm_group (restore)");
      check(PMPI_Group_incl(pg.get(), static_cast<int>(args.size()), args.data(), g.out()),
            "MPI_Group_incl (restore)");
      check(PMPI_Comm_create(parent, g.get(), made.out()), "MPI_Comm_create (restore)");
      break;
    }
    case LineageOp::CreateGroup: {
      if (args.empty()) bad();
      OwnedGroup pg, g;
      check(PMPI_Comm_group(parent, pg.out()), "MPI_Comm_group (restore)");
      check(PMPI_Group_incl(pg.get(), static_cast<int>(args.size() - 1), args.data(), g.out()),
            "MPI_Group_incl (restore)");
      check(PMPI_Comm_create_group(parent, g.get(), args.back(), made.out()), "MPI_Comm_create_group (restore)");
      break;
    }
    case LineageOp::Intercomm:
      if (args.size() != 3) bad();
      // The remote leader is significant at the local leader only.
      check(PMPI_Intercomm_create(parent, args[0], bridge, std::max(args[1], 0), args[2], made.out()),
            "MPI_Intercomm_create (restore)");
      break;
    case LineageOp::Merge:
      if (args.size() != 1) bad();
      check(PMPI_Intercomm_merge(parent, args[0], made.out()), "MPI_Intercomm_merge (restore)");
      break;
    case LineageOp::Cart: {
      if (args.size() < 2 || args.size() != 2 + 2 * static_cast<std::size_t>(args[0])) bad();
      const int nd = args[0];
      check(PMPI_Cart_create(parent, nd, &args[2], &args[2 + static_cast<std::size_t>(nd)], args[1], made.out()),
            "MPI_Cart_create (restore)");
      break;
    }
    case LineageOp::CartSub: check(PMPI_Cart_sub(parent, args.data(), made.out()), "MPI_Cart_sub (restore)"); break;
    case LineageOp::Graph: {  // nnodes, reorder, index[nnodes], edges[index[nnodes-1]]
      if (args.size() < 2 || args[0] < 0 || args.size() < 2 + static_cast<std::size_t>(args[0])) bad();
      const std::size_t n = static_cast<std::size_t>(args[0]);
      if (args.size() != 2 + n + (n > 0 ? static_cast<std::size_t>(args[1 + n]) : 0)) bad();
      check(PMPI_Graph_create(parent, args[0], &args[2], &args[2 + n], args[1], made.out()),
            "MPI_Graph_create (restore)");
      break;
    }
    case LineageOp::DistGraphAdjacent: {  // indegree, outdegree, reorder, weighted, sources, dests[, weights]
      if (args.size() < 4) bad();
      const std::size_t in = static_cast<std::size_t>(args[0]), out = static_cast<std::size_t>(args[1]);
      const bool weighted = args[3] != 0;
      if (args.size() != 4 + (in + out) * (weighted ? 2 : 1)) bad();
      const int* p = &args[4];
      check(PMPI_Dist_graph_create_adjacent(parent, args[0], p, weighted ? p + in + out : MPI_UNWEIGHTED, args[1],
                                            p + in, weighted ? p + 2 * in + out : MPI_UNWEIGHTED, MPI_INFO_NULL,
                                            args[2], made.out()),
            "MPI_Dist_graph_create_adjacent (restore)");
      break;
    }
    case LineageOp::DistGraph: {  // n, reorder, weighted, sources[n], degrees[n], dests[m][, weights[m]]
      if (args.size() < 3 || args[0] < 0 || args.size() < 3 + 2 * static_cast<std::size_t>(args[0])) bad();
      const std::size_t n = static_cast<std::size_t>(args[0]);
      std::size_t m = 0;
      for (std::size_t i = 0; i < n; ++i) m += static_cast<std::size_t>(args[3 + n + i]);
      const bool weighted = args[2] != 0;
      if (args.size() != 3 + 2 * n + m * (weighted ? 2 : 1)) bad();
      const int* p = &args[3];
      check(PMPI_Dist_graph_create(parent, args[0], p, p + n, p + 2 * n, weighted ? p + 2 * n + m : MPI_UNWEIGHTED,
                                   MPI_INFO_NULL, args[1], made.out()),
            "MPI_Dist_graph_create (restore)");
      break;
    }
    default: bad();
  }
  return made;
}

}  // namespace pyckpt::mpi
