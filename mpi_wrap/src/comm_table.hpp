// The communicator table: a record per communicator the application made
// (with its lineage: how it was made from its parent), the map from the
// app's handles to records (with a one-entry cache for the hot path), and
// the replay of lineage that re-creates communicators in a restarted job.
#pragma once

#include "mpi_handles.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pyckpt::mpi {

// How a communicator was made from its parent; replayed at restart.
// New ops go at the end: the values are saved in checkpoints.
enum class LineageOp : std::int32_t {
  World, Self, Dup, Split, SplitType, Create, Cart, CartSub, Graph, DistGraphAdjacent, DistGraph,
  CreateGroup,  // MPI_Comm_create_group: collective over the group only, not the parent
  Intercomm,    // MPI_Intercomm_create: the parent is the local communicator
  Merge,        // MPI_Intercomm_merge: the parent is the intercommunicator
};

inline constexpr std::uint64_t kWorldId = 1;
inline constexpr std::uint64_t kSelfId = 2;

struct CommRec {
  std::uint64_t id = 0;  // same on every member, derived from lineage
  LineageOp op = LineageOp::World;
  std::uint64_t parent = 0;
  std::vector<std::int32_t> args;  // op arguments (see CommTable::replay)
  MPI_Comm real = MPI_COMM_NULL;  // app-visible handle in this incarnation
  int rank = 0, size = 0;
  // Comm rank -> world rank. The coordinator's traffic about this comm runs
  // on the world control comm; world_ranks[0] also tells apart the comms of
  // one split, which share their lineage id (see key()).
  std::vector<int> world_ranks;
  // An intercommunicator's remote group, rank -> world rank (empty for an
  // intracommunicator). Its point-to-point peers and the roots of its
  // collectives are ranks of the remote group.
  std::vector<int> remote_world_ranks;
  bool inter() const { return !remote_world_ranks.empty(); }
  // Which world ranks its groups hold, as one number (FNV-1a over both
  // lists): a restart on another placement can give a node-local
  // communicator other members with the same rank and size, e.g. ranks
  // {0,1},{2,3} per node before and {0,2},{1,3} after (Runtime::restore).
  std::uint64_t members_digest() const;
  // World rank of each rank a message on this communicator goes to or comes
  // from: the remote group of an intercommunicator, else the members.
  const std::vector<int>& peers() const { return inter() ? remote_world_ranks : world_ranks; }
  std::vector<std::uint64_t> sent, received;  // per peer (peers()), since last cut (Channel)
  std::uint64_t coll_seq = 0;     // collectives entered since last cut (kept when freed)
  std::uint64_t coll_target = 0;  // agreed cut point during a snapshot (Coordinator)
  std::uint64_t children = 0;     // comms created from this one (for child ids)
  // The library's private copy of an intracommunicator of two or more ranks
  // (made with it, freed with its handle): small blocking collectives run
  // on it as the library's own point-to-point schedules (CollectiveOp).
  // Only the library sends on it, so its traffic never meets the app's.
  OwnedComm shadow;
  bool freed = false;             // kept while it is an ancestor in lineage
  // Made by Split_type (or from such a communicator): its members depend on
  // where the ranks run, so a restart on another placement re-creates it
  // with other members (Runtime::restore).
  bool placement_dependent = false;
  // Point-to-point messages were sent or received on it since its creation
  // (by cuts before the last one; the counts above hold the rest). A cut
  // aligns only collectives across nodes (target_key), so a restart on
  // another placement refuses such a node-local communicator.
  bool carried_messages = false;
  bool carries_messages() const {
    const auto any = [](const std::vector<std::uint64_t>& counts) {
      for (auto n : counts)
        if (n) return true;
      return false;
    };
    return carried_messages || any(sent) || any(received);
  }

  // The same on every member, and unique among the comms of a job: (lineage
  // id, world rank of its rank 0; of an intercommunicator, the lower of its
  // two groups' rank 0, so that both groups name it alike). Only for comms
  // that had a handle here.
  using Key = std::pair<std::uint64_t, std::uint64_t>;
  Key key() const {
    const int first = inter() ? std::min(world_ranks[0], remote_world_ranks[0]) : world_ranks[0];
    return {id, static_cast<std::uint64_t>(first)};
  }
  // The key of the collective target a cut agrees for it. The communicators
  // of one Split_type (one per node), and those made alike from them, share
  // their lineage id and get one target: a restart on another placement
  // regroups their members, who must then all have passed as many
  // collectives on them (doc/mpi.md, "Another placement").
  static constexpr std::uint64_t kEveryNode = ~std::uint64_t{0};
  Key target_key() const { return placement_dependent ? Key{id, kEveryNode} : key(); }
};

class CommTable {
 public:
  // After PMPI_Init*: the records of MPI_COMM_WORLD and MPI_COMM_SELF.
  void add_predefined();

  // The record of an app handle, null if unknown. Hot path: every
  // intercepted call on a communicator; one compare while the app keeps
  // using the same one.
  CommRec* find(MPI_Comm c) {
    if (c == last_handle_) return last_;
    auto it = by_handle_.find(c);
    if (it == by_handle_.end()) return nullptr;
    last_handle_ = c;
    last_ = it->second;
    return last_;
  }
  // A live communicator by id (null if unknown or freed).
  CommRec* by_id(std::uint64_t id) const;
  // Any record by id, freed ones too (lineage parents at restart).
  CommRec* record(std::uint64_t id) const;

  // Record a communicator made by `op` on `parent` (collective on parent;
  // called on every member, also where the result is MPI_COMM_NULL; for
  // CreateGroup, on the members of the group). Its id (see child ids in
  // comm_table.cpp) is equal on every member; for an intercommunicator the
  // two groups exchange their halves of it over the new communicator (an
  // internal collective on it, before the app can use it).
  CommRec& add(CommRec& parent, LineageOp op, std::vector<std::int32_t> args, MPI_Comm made);
  // The app frees c: the record stays (lineage, counts), the handle goes.
  void forget_handle(MPI_Comm c);
  // The library frees c itself (a file's or a window's own communicator, a
  // re-created one the app had freed): forget_handle, then MPI_Comm_free.
  void free(MPI_Comm c) {
    forget_handle(c);
    PMPI_Comm_free(&c);
  }

  // Creation order = lineage order.
  const std::vector<std::unique_ptr<CommRec>>& all() const { return comms_; }
  bool only_predefined() const { return comms_.size() == 2; }

  // Restart: re-creates a communicator by replaying `op` on parent. bridge:
  // a private duplicate of world on which the leaders of an
  // intercommunicator's two groups meet (its lineage names the remote
  // leader by world rank).
  static OwnedComm replay(LineageOp op, MPI_Comm parent, const std::vector<std::int32_t>& args, MPI_Comm bridge);

 private:
  CommRec& insert(std::unique_ptr<CommRec> rec);

  std::vector<std::unique_ptr<CommRec>> comms_;  // creation order = lineage order
  std::unordered_map<MPI_Comm, CommRec*> by_handle_;
  MPI_Comm last_handle_ = MPI_COMM_NULL;
  CommRec* last_ = nullptr;
};

}  // namespace pyckpt::mpi
