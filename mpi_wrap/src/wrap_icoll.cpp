// Interposition of the application's nonblocking collectives: each call is
// posted with an arrival barrier behind it and handed to the app as a
// generalized request that the coordinator completes (IcollTable,
// Coordinator::progress_collectives; doc/mpi.md, "Collectives across a
// cut"). The neighbourhood ones and Ialltoallw pass through and fail the
// next checkpoint naming them.
#include "runtime.hpp"

#include <vector>

using namespace pyckpt::mpi;

namespace {

// The app's call on comm, described by describe(record of comm) -> IcollCall;
// direct() is the plain call for untracked communicators.
template <typename Direct, typename Describe>
int nonblocking_collective(MPI_Comm comm, MPI_Request* request, Direct direct, Describe describe) {
  Runtime* rt = app_call();
  CommRec* c = rt ? rt->comms.find(comm) : nullptr;
  if (!c) return direct();
  rt->coordinator.poll();
  return rt->start_collective(c, describe(*c), rt->requests.reserve_id(), request);
}

// A v form's count or displacement array (one entry per member; on an
// intercommunicator per member of the remote group), copied: the call is
// posted again from the copy after a restart. Null where it is not
// significant (MPI allows it; mpi4py passes NULL there).
std::vector<int> copy_of(const int* values, const CommRec& c) {
  return values ? std::vector<int>(values, values + c.peers().size()) : std::vector<int>{};
}

}  // namespace

extern "C" {

int MPI_Ibarrier(MPI_Comm comm, MPI_Request* request) {
  return nonblocking_collective(
      comm, request, [&] { return PMPI_Ibarrier(comm, request); },
      [&](const CommRec&) { return IcollCall{.kind = IcollKind::Barrier}; });
}

int MPI_Ibcast(void* b, int n, MPI_Datatype t, int root, MPI_Comm comm, MPI_Request* request) {
  return nonblocking_collective(
      comm, request, [&] { return PMPI_Ibcast(b, n, t, root, comm, request); },
      [&](const CommRec&) { return IcollCall{.kind = IcollKind::Bcast, .rbuf = b, .rcount = n, .rtype = t, .root = root}; });
}

// The reductions: one count and datatype for both buffers.
#define PYCKPT_ICOLL_REDUCTION(name, kind_, params, args, root_)                                         \
  int MPI_##name params {                                                                               \
    return nonblocking_collective(                                                                      \
        comm, request, [&] { return PMPI_##name args; }, [&](const CommRec&) {                         \
          return IcollCall{                                                                             \
              .kind = IcollKind::kind_, .sbuf = s, .rbuf = r, .rcount = n, .rtype = t, .op = op, .root = root_}; \
        });                                                                                             \
  }

PYCKPT_ICOLL_REDUCTION(Ireduce, Reduce,
                       (const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, int root, MPI_Comm comm,
                        MPI_Request* request),
                       (s, r, n, t, op, root, comm, request), root)
PYCKPT_ICOLL_REDUCTION(Iallreduce, Allreduce,
                       (const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm comm, MPI_Request* request),
                       (s, r, n, t, op, comm, request), 0)
PYCKPT_ICOLL_REDUCTION(Iscan, Scan,
                       (const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm comm, MPI_Request* request),
                       (s, r, n, t, op, comm, request), 0)
PYCKPT_ICOLL_REDUCTION(Iexscan, Exscan,
                       (const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm comm, MPI_Request* request),
                       (s, r, n, t, op, comm, request), 0)
PYCKPT_ICOLL_REDUCTION(Ireduce_scatter_block, ReduceScatterBlock,
                       (const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm comm, MPI_Request* request),
                       (s, r, n, t, op, comm, request), 0)
#undef PYCKPT_ICOLL_REDUCTION

int MPI_Ireduce_scatter(const void* s, void* r, const int rn[], MPI_Datatype t, MPI_Op op, MPI_Comm comm,
                        MPI_Request* request) {
  return nonblocking_collective(
      comm, request, [&] { return PMPI_Ireduce_scatter(s, r, rn, t, op, comm, request); }, [&](const CommRec& c) {
        return IcollCall{
            .kind = IcollKind::ReduceScatter, .sbuf = s, .rbuf = r, .rcounts = copy_of(rn, c), .rtype = t, .op = op};
      });
}

// Send and receive sides with their own counts and datatypes.
#define PYCKPT_ICOLL_EXCHANGE(name, kind_, params, args, root_)                                           \
  int MPI_##name params {                                                                                \
    return nonblocking_collective(                                                                       \
        comm, request, [&] { return PMPI_##name args; }, [&](const CommRec&) {                          \
          return IcollCall{.kind = IcollKind::kind_, .sbuf = s, .rbuf = r, .scount = sn, .rcount = rn,   \
                           .stype = st, .rtype = rt_, .root = root_};                                    \
        });                                                                                              \
  }

PYCKPT_ICOLL_EXCHANGE(Igather, Gather,
                      (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, int root,
                       MPI_Comm comm, MPI_Request* request),
                      (s, sn, st, r, rn, rt_, root, comm, request), root)
PYCKPT_ICOLL_EXCHANGE(Iscatter, Scatter,
                      (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, int root,
                       MPI_Comm comm, MPI_Request* request),
                      (s, sn, st, r, rn, rt_, root, comm, request), root)
PYCKPT_ICOLL_EXCHANGE(Iallgather, Allgather,
                      (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, MPI_Comm comm,
                       MPI_Request* request),
                      (s, sn, st, r, rn, rt_, comm, request), 0)
PYCKPT_ICOLL_EXCHANGE(Ialltoall, Alltoall,
                      (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, MPI_Comm comm,
                       MPI_Request* request),
                      (s, sn, st, r, rn, rt_, comm, request), 0)
#undef PYCKPT_ICOLL_EXCHANGE

int MPI_Igatherv(const void* s, int sn, MPI_Datatype st, void* r, const int rn[], const int rd[], MPI_Datatype rt_,
                 int root, MPI_Comm comm, MPI_Request* request) {
  return nonblocking_collective(
      comm, request, [&] { return PMPI_Igatherv(s, sn, st, r, rn, rd, rt_, root, comm, request); },
      [&](const CommRec& c) {
        return IcollCall{.kind = IcollKind::Gatherv, .sbuf = s, .rbuf = r, .scount = sn,
                         .rcounts = copy_of(rn, c), .rdispls = copy_of(rd, c), .stype = st, .rtype = rt_,
                         .root = root};
      });
}

int MPI_Iscatterv(const void* s, const int sn[], const int sd[], MPI_Datatype st, void* r, int rn, MPI_Datatype rt_,
                  int root, MPI_Comm comm, MPI_Request* request) {
  return nonblocking_collective(
      comm, request, [&] { return PMPI_Iscatterv(s, sn, sd, st, r, rn, rt_, root, comm, request); },
      [&](const CommRec& c) {
        return IcollCall{.kind = IcollKind::Scatterv, .sbuf = s, .rbuf = r, .rcount = rn,
                         .scounts = copy_of(sn, c), .sdispls = copy_of(sd, c), .stype = st, .rtype = rt_,
                         .root = root};
      });
}

int MPI_Iallgatherv(const void* s, int sn, MPI_Datatype st, void* r, const int rn[], const int rd[],
                    MPI_Datatype rt_, MPI_Comm comm, MPI_Request* request) {
  return nonblocking_collective(
      comm, request, [&] { return PMPI_Iallgatherv(s, sn, st, r, rn, rd, rt_, comm, request); },
      [&](const CommRec& c) {
        return IcollCall{.kind = IcollKind::Allgatherv, .sbuf = s, .rbuf = r, .scount = sn,
                         .rcounts = copy_of(rn, c), .rdispls = copy_of(rd, c), .stype = st, .rtype = rt_};
      });
}

int MPI_Ialltoallv(const void* s, const int sn[], const int sd[], MPI_Datatype st, void* r, const int rn[],
                   const int rd[], MPI_Datatype rt_, MPI_Comm comm, MPI_Request* request) {
  return nonblocking_collective(
      comm, request, [&] { return PMPI_Ialltoallv(s, sn, sd, st, r, rn, rd, rt_, comm, request); },
      [&](const CommRec& c) {
        return IcollCall{.kind = IcollKind::Alltoallv, .sbuf = s, .rbuf = r, .scounts = copy_of(sn, c),
                         .sdispls = copy_of(sd, c), .rcounts = copy_of(rn, c), .rdispls = copy_of(rd, c),
                         .stype = st, .rtype = rt_};
      });
}

// --- not supported yet: pass through; the next checkpoint fails naming them.
#define PYCKPT_ICOLL_UNSUPPORTED(name, params, args)                  \
  int MPI_##name params {                                             \
    if (Runtime* rt = app_call()) rt->mark_unsupported("MPI_" #name); \
    return PMPI_##name args;                                          \
  }

PYCKPT_ICOLL_UNSUPPORTED(Ialltoallw,
                         (const void* s, const int sn[], const int sd[], const MPI_Datatype st[], void* r,
                          const int rn[], const int rd[], const MPI_Datatype rt_[], MPI_Comm comm, MPI_Request* q),
                         (s, sn, sd, st, r, rn, rd, rt_, comm, q))
PYCKPT_ICOLL_UNSUPPORTED(Ineighbor_allgather,
                         (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, MPI_Comm comm,
                          MPI_Request* q),
                         (s, sn, st, r, rn, rt_, comm, q))
PYCKPT_ICOLL_UNSUPPORTED(Ineighbor_allgatherv,
                         (const void* s, int sn, MPI_Datatype st, void* r, const int rn[], const int rd[],
                          MPI_Datatype rt_, MPI_Comm comm, MPI_Request* q),
                         (s, sn, st, r, rn, rd, rt_, comm, q))
PYCKPT_ICOLL_UNSUPPORTED(Ineighbor_alltoall,
                         (const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt_, MPI_Comm comm,
                          MPI_Request* q),
                         (s, sn, st, r, rn, rt_, comm, q))
PYCKPT_ICOLL_UNSUPPORTED(Ineighbor_alltoallv,
                         (const void* s, const int sn[], const int sd[], MPI_Datatype st, void* r, const int rn[],
                          const int rd[], MPI_Datatype rt_, MPI_Comm comm, MPI_Request* q),
                         (s, sn, sd, st, r, rn, rd, rt_, comm, q))
PYCKPT_ICOLL_UNSUPPORTED(Ineighbor_alltoallw,
                         (const void* s, const int sn[], const MPI_Aint sd[], const MPI_Datatype st[], void* r,
                          const int rn[], const MPI_Aint rd[], const MPI_Datatype rt_[], MPI_Comm comm,
                          MPI_Request* q),
                         (s, sn, sd, st, r, rn, rd, rt_, comm, q))
#undef PYCKPT_ICOLL_UNSUPPORTED

}  // extern "C"
