// Interposition of MPI_Init*/MPI_Finalize (where the layer above's init
// callback runs), collectives, communicator management and datatype
// commit/free; unsupported entry points.
#include "callbacks.hpp"
#include "runtime.hpp"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <vector>

using namespace pyckpt::mpi;

namespace {

// After PMPI_Init*: the runtime starts, then the layer above attaches (it
// registers its capture callbacks and, in a restarted job, restores). A
// rank that cannot resume must not leave its peers waiting: the job ends.
void after_init() {
  Runtime::start();
  if (!callbacks.init) return;
  const int rc = callbacks.init(callbacks.init_user);
  if (rc == PYCKPT_MPI_OK) return;
  // The layer above reports its own reason (pyckpt prints the Python
  // traceback) before it returns; the library's last error is only set when
  // one of its own calls failed in the callback.
  const char* why = last_error_cstr();
  std::fprintf(stderr, "pyckpt_mpi: rank %d: the init callback failed (code %d)%s%s; ending the job\n",
               Runtime::get()->world_rank(), rc, *why ? ": " : ", see its message above", why);
  PMPI_Abort(MPI_COMM_WORLD, 70);
}

using Kind = Coordinator::CollectiveKind;

// A blocking collective as a nonblocking operation plus a progress loop,
// so a rank waiting in it still serves the protocol; how a cut treats it
// depends on its kind (Coordinator::CollectiveKind, doc/mpi.md).
// synchronizing(): whether this call completes on no member before all
// entered it; every member computes the same answer from arguments MPI
// requires to agree. start(op, c) starts the operation (CollectiveOp).
template <typename Synchronizing, typename Start>
int run_collective(Runtime* rt, CommRec* c, Synchronizing synchronizing, Start start) {
  // On an intercommunicator no collective synchronizes all members: a
  // member completes once the remote group entered (MPI's barrier on an
  // intercommunicator included).
  const bool synchronizes = !c->inter() && synchronizing(*c);
  return rt->coordinator.collective(c, synchronizes ? Kind::Synchronizing : Kind::TwoPhase,
                                    [&](CollectiveOp& op) { return start(op, *c); });
}

template <typename Direct, typename Synchronizing, typename Start>
int collective(MPI_Comm comm, Direct direct, Synchronizing synchronizing, Start start) {
  Runtime* rt = app_call();
  CommRec* c = rt ? rt->comms.find(comm) : nullptr;
  // Checkpoints off: MPI's own blocking call (the other members may call it
  // untracked, e.g. from a thread of their own; Coordinator::switch_off).
  if (!c || rt->coordinator.off()) return direct();
  return run_collective(rt, c, synchronizing, start);
}

// MPI's nonblocking form as the operation: post(&request) posts it.
template <typename Post>
auto nonblocking(Post post) {
  return [post](CollectiveOp& op, const CommRec&) { return op.start_nonblocking(post); };
}

// Open MPI 4.1's nonblocking Bcast and Reduce on an intercommunicator
// (libnbc) leave the communicator unusable for the next nonblocking
// collective (plain mpi4py: `Ibcast(...).Wait()` then `Ibarrier().Wait()`
// on an intercommunicator of two groups of two hangs). So these two run as
// their blocking form, entered like communicator creation (counted, then a
// barrier on the intercommunicator that serves the protocol, then the
// call; Coordinator::synchronize): a rank waiting in one for a peer that
// computes is not cut before it.
template <typename Direct, typename Synchronizing, typename Start>
int rooted_collective(MPI_Comm comm, Direct direct, Synchronizing synchronizing, Start start) {
  Runtime* rt = app_call();
  CommRec* c = rt ? rt->comms.find(comm) : nullptr;
  if (!c || rt->coordinator.off()) return direct();
  if (!c->inter()) return run_collective(rt, c, synchronizing, start);
  rt->coordinator.synchronize(c);
  return direct();
}

// Data from every member reaches every member: the all-to-all collectives
// synchronize unless a count is zero (a member with nothing to get may
// finish early; Open MPI returns at once for a zero count) or the buffer is
// in place (written while the collective runs, it would be captured half
// done by a cut before the collective).
bool all_positive(const int counts[], int n) {
  for (int i = 0; i < n; ++i)
    if (counts[i] <= 0) return false;
  return true;
}

// Communicator creation is collective over the parent but has no
// nonblocking form in MPI 3.1 (see Coordinator::synchronize). The lineage
// arguments (args(), a std::vector<std::int32_t>) are read only once the
// real call succeeded: with invalid arguments MPI reports the error (through
// the error handler the app set) and the library makes no call of its own.
template <typename Make, typename Args>
int create_comm(MPI_Comm parent, MPI_Comm* made, LineageOp op, Args args, Make make) {
  Runtime* rt = app_call();
  CommRec* p = rt ? rt->comms.find(parent) : nullptr;
  if (!p) return make();
  rt->coordinator.synchronize(p, /*creating=*/true);
  int rc = make();
  if (rc == MPI_SUCCESS) rt->add_comm(*p, op, args(), *made);
  rt->coordinator.end_creation();
  return rc;
}

}  // namespace

extern "C" {

int MPI_Init(int* argc, char*** argv) {
  int rc = PMPI_Init(argc, argv);
  if (rc == MPI_SUCCESS) after_init();
  return rc;
}

int MPI_Init_thread(int* argc, char*** argv, int required, int* provided) {
  int rc = PMPI_Init_thread(argc, argv, required, provided);
  if (rc == MPI_SUCCESS) after_init();
  return rc;
}

int MPI_Finalize(void) {
  if (Runtime* rt = Runtime::get(); rt && internal_depth == 0) rt->coordinator.finish();
  Runtime::stop();
  return PMPI_Finalize();
}

// --- blocking collectives become nonblocking + progress (the app's
// nonblocking ones: wrap_icoll.cpp).
#define PYCKPT_COLLECTIVE(name, iname, params, args, synchronizing)                                  \
  int MPI_##name params {                                                                             \
    return collective(                                                                                \
        comm, [&] { return PMPI_##name args; }, [&]([[maybe_unused]] const CommRec& c_) { return synchronizing; },       \
        nonblocking([&](MPI_Request* req_) { return PMPI_##iname(PYCKPT_UNPAREN args, req_); }));     \
  }
#define PYCKPT_UNPAREN(...) __VA_ARGS__

// Barrier, small Allreduces and Bcasts: the library's own schedules on the
// communicator's shadow where it has one (CollectiveOp). They synchronize.
int MPI_Barrier(MPI_Comm comm) {
  return collective(
      comm, [&] { return PMPI_Barrier(comm); }, [](const CommRec&) { return true; },
      [](CollectiveOp& op, const CommRec& c) { return op.start_barrier(c); });
}
// On the shadow an Allreduce in place synchronizes too: the result reaches
// the buffer only once it completed (CollectiveOp::start_allreduce).
int MPI_Allreduce(const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm comm) {
  bool on_shadow = false;  // decided with the kind (never on an intercommunicator: no shadow)
  return collective(
      comm, [&] { return PMPI_Allreduce(s, r, n, t, op, comm); },
      [&](const CommRec& c) {
        on_shadow = CollectiveOp::allreduce_on_shadow(c, s, r, n, t, op);
        return on_shadow || (s != MPI_IN_PLACE && n > 0);
      },
      [&](CollectiveOp& o, const CommRec& c) {
        if (on_shadow) return o.start_allreduce(c, s, r, n, t, op);
        return o.start_nonblocking([&](MPI_Request* req) { return PMPI_Iallreduce(s, r, n, t, op, comm, req); });
      });
}
int MPI_Bcast(void* b, int n, MPI_Datatype t, int root, MPI_Comm comm) {
  bool on_shadow = false;  // decided with the kind (never on an intercommunicator: no shadow)
  return rooted_collective(
      comm, [&] { return PMPI_Bcast(b, n, t, root, comm); },
      [&](const CommRec& c) { return on_shadow = CollectiveOp::bcast_on_shadow(c, n, t, root); },
      [&](CollectiveOp& op, const CommRec& c) {
        if (on_shadow) return op.start_bcast(c, b, n, t, root);
        return op.start_nonblocking([&](MPI_Request* req) { return PMPI_Ibcast(b, n, t, root, comm, req); });
      });
}
int MPI_Reduce(const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, int root, MPI_Comm comm) {
  return rooted_collective(
      comm, [&] { return PMPI_Reduce(s, r, n, t, op, root, comm); }, [](const CommRec&) { return false; },
      nonblocking([&](MPI_Request* req) { return PMPI_Ireduce(s, r, n, t, op, root, comm, req); }));
}
PYCKPT_COLLECTIVE(Scan, Iscan, (const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm comm),
                  (s, r, n, t, op, comm), false)
PYCKPT_COLLECTIVE(Exscan, Iexscan, (const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm comm),
                  (s, r, n, t, op, comm), false)
PYCKPT_COLLECTIVE(Gather, Igather,
                  (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, int root,
                   MPI_Comm comm),
                  (s, sn, st, r, rn, rt_, root, comm), false)
PYCKPT_COLLECTIVE(Gatherv, Igatherv,
                  (const void* s, int sn, MPI_Datatype st, void* r, const int rn[], const int rd[],
                   MPI_Datatype rt_, int root, MPI_Comm comm),
                  (s, sn, st, r, rn, rd, rt_, root, comm), false)
PYCKPT_COLLECTIVE(Scatter, Iscatter,
                  (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, int root,
                   MPI_Comm comm),
                  (s, sn, st, r, rn, rt_, root, comm), false)
PYCKPT_COLLECTIVE(Scatterv, Iscatterv,
                  (const void* s, const int sn[], const int sd[], MPI_Datatype st, void* r, int rn,
                   MPI_Datatype rt_, int root, MPI_Comm comm),
                  (s, sn, sd, st, r, rn, rt_, root, comm), false)
PYCKPT_COLLECTIVE(Allgather, Iallgather,
                  (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, MPI_Comm comm),
                  (s, sn, st, r, rn, rt_, comm), s != MPI_IN_PLACE && rn > 0)
PYCKPT_COLLECTIVE(Allgatherv, Iallgatherv,
                  (const void* s, int sn, MPI_Datatype st, void* r, const int rn[], const int rd[],
                   MPI_Datatype rt_, MPI_Comm comm),
                  (s, sn, st, r, rn, rd, rt_, comm), s != MPI_IN_PLACE && all_positive(rn, c_.size))
PYCKPT_COLLECTIVE(Alltoall, Ialltoall,
                  (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, MPI_Comm comm),
                  (s, sn, st, r, rn, rt_, comm), s != MPI_IN_PLACE && rn > 0)
// The v/w forms: each member knows only its own counts, so the kind could
// differ between members; always two phases.
PYCKPT_COLLECTIVE(Alltoallv, Ialltoallv,
                  (const void* s, const int sn[], const int sd[], MPI_Datatype st, void* r, const int rn[],
                   const int rd[], MPI_Datatype rt_, MPI_Comm comm),
                  (s, sn, sd, st, r, rn, rd, rt_, comm), false)
PYCKPT_COLLECTIVE(Alltoallw, Ialltoallw,
                  (const void* s, const int sn[], const int sd[], const MPI_Datatype st[], void* r,
                   const int rn[], const int rd[], const MPI_Datatype rt_[], MPI_Comm comm),
                  (s, sn, sd, st, r, rn, rd, rt_, comm), false)
PYCKPT_COLLECTIVE(Reduce_scatter, Ireduce_scatter,
                  (const void* s, void* r, const int rn[], MPI_Datatype t, MPI_Op op, MPI_Comm comm),
                  (s, r, rn, t, op, comm), s != MPI_IN_PLACE && all_positive(rn, c_.size))
// Neighbourhood collectives (graph and Cartesian topologies): a member
// completes once its neighbours entered, not all members.
PYCKPT_COLLECTIVE(Neighbor_allgather, Ineighbor_allgather,
                  (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, MPI_Comm comm),
                  (s, sn, st, r, rn, rt_, comm), false)
PYCKPT_COLLECTIVE(Neighbor_allgatherv, Ineighbor_allgatherv,
                  (const void* s, int sn, MPI_Datatype st, void* r, const int rn[], const int rd[],
                   MPI_Datatype rt_, MPI_Comm comm),
                  (s, sn, st, r, rn, rd, rt_, comm), false)
PYCKPT_COLLECTIVE(Neighbor_alltoall, Ineighbor_alltoall,
                  (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, MPI_Comm comm),
                  (s, sn, st, r, rn, rt_, comm), false)
PYCKPT_COLLECTIVE(Neighbor_alltoallv, Ineighbor_alltoallv,
                  (const void* s, const int sn[], const int sd[], MPI_Datatype st, void* r, const int rn[],
                   const int rd[], MPI_Datatype rt_, MPI_Comm comm),
                  (s, sn, sd, st, r, rn, rd, rt_, comm), false)
PYCKPT_COLLECTIVE(Neighbor_alltoallw, Ineighbor_alltoallw,
                  (const void* s, const int sn[], const MPI_Aint sd[], const MPI_Datatype st[], void* r,
                   const int rn[], const MPI_Aint rd[], const MPI_Datatype rt_[], MPI_Comm comm),
                  (s, sn, sd, st, r, rn, rd, rt_, comm), false)
PYCKPT_COLLECTIVE(Reduce_scatter_block, Ireduce_scatter_block,
                  (const void* s, void* r, int rn, MPI_Datatype t, MPI_Op op, MPI_Comm comm),
                  (s, r, rn, t, op, comm), s != MPI_IN_PLACE && rn > 0)

// --- communicator management ------------------------------------------------

int MPI_Comm_dup(MPI_Comm comm, MPI_Comm* newcomm) {
  if (Runtime* rt = Runtime::get(); rt && internal_depth == 0) {
    // A restarted rank: mpi4py making its private duplicate of a
    // communicator again gets the one lineage replay re-created, on which
    // channel state and the rolled-back call's traffic are (CompoundCall).
    if (CommRec* c = rt->comms.find(comm)) {
      if (CommRec* dup = rt->comms.by_id(rt->compound.adopted_dup(c->id))) {
        rt->compound.forget_adoption(c->id);
        *newcomm = dup->real;
        return MPI_SUCCESS;
      }
    }
  }
  const int rc = create_comm(comm, newcomm, LineageOp::Dup, [] { return std::vector<std::int32_t>{}; },
                             [&] { return PMPI_Comm_dup(comm, newcomm); });
  if (Runtime* rt = Runtime::get(); rt && rc == MPI_SUCCESS && internal_depth == 0)
    if (CommRec *c = rt->comms.find(comm), *made = rt->comms.find(*newcomm); c && made) rt->compound.on_dup(*c, *made);
  return rc;
}

int MPI_Comm_get_attr(MPI_Comm comm, int keyval, void* value, int* flag) {
  if (Runtime* rt = Runtime::get(); rt && internal_depth == 0 && rt->compound.active()) {
    if (CommRec* c = rt->comms.find(comm)) {
      // mpi4py's context of an intercommunicator has a merged local
      // communicator too, which a restart does not make again: a cut inside
      // a reduction on one is refused, as before rollback existed.
      int inter = 0;
      PMPI_Comm_test_inter(comm, &inter);
      if (inter) rt->compound.on_untracked_operation();
      else rt->compound.on_get_attr(*c, rt->tag_ub());
    }
  }
  return PMPI_Comm_get_attr(comm, keyval, value, flag);
}
int MPI_Comm_dup_with_info(MPI_Comm comm, MPI_Info info, MPI_Comm* newcomm) {
  return create_comm(comm, newcomm, LineageOp::Dup, [] { return std::vector<std::int32_t>{}; },
                     [&] { return PMPI_Comm_dup_with_info(comm, info, newcomm); });
}
int MPI_Comm_split(MPI_Comm comm, int color, int key, MPI_Comm* newcomm) {
  return create_comm(comm, newcomm, LineageOp::Split, [&] { return std::vector<std::int32_t>{color, key}; },
                     [&] { return PMPI_Comm_split(comm, color, key, newcomm); });
}
int MPI_Comm_split_type(MPI_Comm comm, int type, int key, MPI_Info info, MPI_Comm* newcomm) {
  return create_comm(comm, newcomm, LineageOp::SplitType, [&] { return std::vector<std::int32_t>{type, key}; },
                     [&] { return PMPI_Comm_split_type(comm, type, key, info, newcomm); });
}
int MPI_Comm_create(MPI_Comm comm, MPI_Group group, MPI_Comm* newcomm) {
  // Lineage keeps the group as ranks of the parent: groups are local objects
  // that do not survive a restart.
  // Read after the call succeeded: comm and group are valid, these cannot fail.
  const auto ranks = [&] {
    InternalScope internal;
    OwnedGroup parent_group;
    int n = 0;
    PMPI_Comm_group(comm, parent_group.out());
    PMPI_Group_size(group, &n);
    std::vector<int> in(static_cast<std::size_t>(n)), out(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) in[static_cast<std::size_t>(i)] = i;
    PMPI_Group_translate_ranks(group, n, in.data(), parent_group.get(), out.data());
    return std::vector<std::int32_t>(out.begin(), out.end());
  };
  return create_comm(comm, newcomm, LineageOp::Create, ranks,
                     [&] { return PMPI_Comm_create(comm, group, newcomm); });
}
// Collective over the group only (doc/mpi.md, "Communicators made by some
// ranks"). The makers are known before the call from the group; with a
// group MPI refuses (null, without this rank, not a subgroup of comm's) or
// on an intercommunicator the call goes straight to MPI, which reports it.
int MPI_Comm_create_group(MPI_Comm comm, MPI_Group group, int tag, MPI_Comm* newcomm) {
  Runtime* rt = app_call();
  CommRec* p = rt ? rt->comms.find(comm) : nullptr;
  std::vector<std::int32_t> parent_ranks;  // the group as ranks of comm
  if (p && !p->inter() && group != MPI_GROUP_NULL) {
    InternalScope internal;
    int n = 0, mine = MPI_UNDEFINED;
    PMPI_Group_size(group, &n);
    PMPI_Group_rank(group, &mine);
    OwnedGroup parent_group;
    PMPI_Comm_group(comm, parent_group.out());
    std::vector<int> in(static_cast<std::size_t>(n)), out(in.size());
    std::iota(in.begin(), in.end(), 0);
    PMPI_Group_translate_ranks(group, n, in.data(), parent_group.get(), out.data());
    if (mine != MPI_UNDEFINED && std::find(out.begin(), out.end(), MPI_UNDEFINED) == out.end())
      parent_ranks.assign(out.begin(), out.end());
  }
  if (parent_ranks.empty()) return PMPI_Comm_create_group(comm, group, tag, newcomm);
  Coordinator::Makers makers;
  for (int r : parent_ranks) makers.world_peers.push_back(p->world_ranks[static_cast<std::size_t>(r)]);
  rt->coordinator.arrive(makers);
  rt->coordinator.enter_creation(makers);
  const int rc = PMPI_Comm_create_group(comm, group, tag, newcomm);
  if (rc == MPI_SUCCESS) {
    parent_ranks.push_back(tag);
    rt->add_comm(*p, LineageOp::CreateGroup, std::move(parent_ranks), *newcomm);
  }
  rt->coordinator.end_creation();
  return rc;
}
// Collective over local_comm on each side; the leaders meet on peer_comm.
// Recorded on the local communicator; the remote leader by its world rank,
// so that a restart needs no peer communicator (the leaders meet on a
// private one). With arguments MPI refuses the call goes straight to MPI.
int MPI_Intercomm_create(MPI_Comm local_comm, int local_leader, MPI_Comm peer_comm, int remote_leader, int tag,
                         MPI_Comm* newintercomm) {
  Runtime* rt = app_call();
  CommRec* local = rt ? rt->comms.find(local_comm) : nullptr;
  const auto direct = [&] {
    return PMPI_Intercomm_create(local_comm, local_leader, peer_comm, remote_leader, tag, newintercomm);
  };
  if (!local || local->inter() || local_leader < 0 || local_leader >= local->size) return direct();
  Coordinator::Makers makers{.local = local_comm, .world_peers = {}};
  int remote_leader_world = -1;
  if (local->rank == local_leader) {
    const CommRec* peer = rt->comms.find(peer_comm);
    if (!peer || remote_leader < 0 || remote_leader >= static_cast<int>(peer->peers().size())) return direct();
    remote_leader_world = peer->peers()[static_cast<std::size_t>(remote_leader)];
    makers.world_peers.push_back(remote_leader_world);
  }
  rt->coordinator.arrive(makers);
  rt->coordinator.enter_creation(makers);
  const int rc = direct();
  if (rc == MPI_SUCCESS)
    rt->add_comm(*local, LineageOp::Intercomm, {local_leader, remote_leader_world, tag}, *newintercomm);
  rt->coordinator.end_creation();
  return rc;
}
// Collective over both groups of the intercommunicator, like the other
// constructors on one (Dup, Split, Create).
int MPI_Intercomm_merge(MPI_Comm intercomm, int high, MPI_Comm* newintracomm) {
  return create_comm(intercomm, newintracomm, LineageOp::Merge,
                     [&] { return std::vector<std::int32_t>{high != 0 ? 1 : 0}; },
                     [&] { return PMPI_Intercomm_merge(intercomm, high, newintracomm); });
}
int MPI_Cart_create(MPI_Comm comm, int ndims, const int dims[], const int periods[], int reorder,
                    MPI_Comm* newcomm) {
  const auto args = [&] {
    std::vector<std::int32_t> a{ndims, reorder};
    a.insert(a.end(), dims, dims + ndims);
    a.insert(a.end(), periods, periods + ndims);
    return a;
  };
  return create_comm(comm, newcomm, LineageOp::Cart, args,
                     [&] { return PMPI_Cart_create(comm, ndims, dims, periods, reorder, newcomm); });
}
int MPI_Cart_sub(MPI_Comm comm, const int remain_dims[], MPI_Comm* newcomm) {
  const auto args = [&] {
    int ndims = 0;
    PMPI_Cartdim_get(comm, &ndims);
    return std::vector<std::int32_t>(remain_dims, remain_dims + ndims);
  };
  return create_comm(comm, newcomm, LineageOp::CartSub, args,
                     [&] { return PMPI_Cart_sub(comm, remain_dims, newcomm); });
}
int MPI_Graph_create(MPI_Comm comm, int nnodes, const int index[], const int edges[], int reorder,
                     MPI_Comm* newcomm) {
  const auto args = [&] {
    std::vector<std::int32_t> a{nnodes, reorder};
    a.insert(a.end(), index, index + nnodes);
    if (nnodes > 0) a.insert(a.end(), edges, edges + index[nnodes - 1]);
    return a;
  };
  return create_comm(comm, newcomm, LineageOp::Graph, args,
                     [&] { return PMPI_Graph_create(comm, nnodes, index, edges, reorder, newcomm); });
}
// Distributed graphs: the arguments of this rank (they differ per rank),
// replayed by this rank; the info hints are not kept.
int MPI_Dist_graph_create_adjacent(MPI_Comm comm, int indegree, const int sources[], const int sourceweights[],
                                   int outdegree, const int destinations[], const int destweights[], MPI_Info info,
                                   int reorder, MPI_Comm* newcomm) {
  const auto args = [&] {
    const bool weighted = sourceweights != MPI_UNWEIGHTED && destweights != MPI_UNWEIGHTED &&
                          sourceweights != MPI_WEIGHTS_EMPTY && destweights != MPI_WEIGHTS_EMPTY;
    std::vector<std::int32_t> a{indegree, outdegree, reorder, weighted ? 1 : 0};
    a.insert(a.end(), sources, sources + indegree);
    a.insert(a.end(), destinations, destinations + outdegree);
    if (weighted) {
      a.insert(a.end(), sourceweights, sourceweights + indegree);
      a.insert(a.end(), destweights, destweights + outdegree);
    }
    return a;
  };
  return create_comm(comm, newcomm, LineageOp::DistGraphAdjacent, args, [&] {
    return PMPI_Dist_graph_create_adjacent(comm, indegree, sources, sourceweights, outdegree, destinations,
                                           destweights, info, reorder, newcomm);
  });
}
int MPI_Dist_graph_create(MPI_Comm comm, int n, const int sources[], const int degrees[], const int destinations[],
                          const int weights[], MPI_Info info, int reorder, MPI_Comm* newcomm) {
  const auto args = [&] {
    int m = 0;
    for (int i = 0; i < n; ++i) m += degrees[i];
    const bool weighted = weights != MPI_UNWEIGHTED && weights != MPI_WEIGHTS_EMPTY;
    std::vector<std::int32_t> a{n, reorder, weighted ? 1 : 0};
    a.insert(a.end(), sources, sources + n);
    a.insert(a.end(), degrees, degrees + n);
    a.insert(a.end(), destinations, destinations + m);
    if (weighted) a.insert(a.end(), weights, weights + m);
    return a;
  };
  return create_comm(comm, newcomm, LineageOp::DistGraph, args, [&] {
    return PMPI_Dist_graph_create(comm, n, sources, degrees, destinations, weights, info, reorder, newcomm);
  });
}
int MPI_Comm_free(MPI_Comm* comm) {
  if (Runtime* rt = app_call()) rt->comms.forget_handle(*comm);
  return PMPI_Comm_free(comm);
}

// --- datatypes: committed types get ids; lineage is read back from MPI
// (MPI_Type_get_contents) when the state is saved.
int MPI_Type_commit(MPI_Datatype* type) {
  int rc = PMPI_Type_commit(type);
  if (Runtime* rt = app_call(); rt && rc == MPI_SUCCESS) rt->types.add(*type);
  return rc;
}
int MPI_Type_free(MPI_Datatype* type) {
  if (Runtime* rt = app_call()) rt->types.remove(*type);
  return PMPI_Type_free(type);
}

// --- unsupported: pass through, but a later checkpoint fails naming them.
#define PYCKPT_UNSUPPORTED(name, params, args)                               \
  int MPI_##name params {                                                    \
    if (Runtime* rt = app_call()) rt->mark_unsupported("MPI_" #name);        \
    return PMPI_##name args;                                                 \
  }

PYCKPT_UNSUPPORTED(Comm_spawn,
                   (const char* cmd, char* argv[], int n, MPI_Info i, int root, MPI_Comm c, MPI_Comm* ic,
                    int errs[]),
                   (cmd, argv, n, i, root, c, ic, errs))
PYCKPT_UNSUPPORTED(Comm_spawn_multiple,
                   (int n, char* cmds[], char** argvs[], const int np[], const MPI_Info i[], int root,
                    MPI_Comm c, MPI_Comm* ic, int errs[]),
                   (n, cmds, argvs, np, i, root, c, ic, errs))
PYCKPT_UNSUPPORTED(Comm_connect, (const char* p, MPI_Info i, int root, MPI_Comm c, MPI_Comm* n),
                   (p, i, root, c, n))
PYCKPT_UNSUPPORTED(Comm_accept, (const char* p, MPI_Info i, int root, MPI_Comm c, MPI_Comm* n),
                   (p, i, root, c, n))
PYCKPT_UNSUPPORTED(Comm_join, (int fd, MPI_Comm* n), (fd, n))
PYCKPT_UNSUPPORTED(Comm_idup, (MPI_Comm c, MPI_Comm* n, MPI_Request* r), (c, n, r))
PYCKPT_UNSUPPORTED(Send_init, (const void* b, int n, MPI_Datatype t, int d, int tag, MPI_Comm c, MPI_Request* r),
                   (b, n, t, d, tag, c, r))
PYCKPT_UNSUPPORTED(Ssend_init, (const void* b, int n, MPI_Datatype t, int d, int tag, MPI_Comm c, MPI_Request* r),
                   (b, n, t, d, tag, c, r))
PYCKPT_UNSUPPORTED(Bsend_init, (const void* b, int n, MPI_Datatype t, int d, int tag, MPI_Comm c, MPI_Request* r),
                   (b, n, t, d, tag, c, r))
PYCKPT_UNSUPPORTED(Rsend_init, (const void* b, int n, MPI_Datatype t, int d, int tag, MPI_Comm c, MPI_Request* r),
                   (b, n, t, d, tag, c, r))
PYCKPT_UNSUPPORTED(Recv_init, (void* b, int n, MPI_Datatype t, int s, int tag, MPI_Comm c, MPI_Request* r),
                   (b, n, t, s, tag, c, r))

}  // extern "C"
