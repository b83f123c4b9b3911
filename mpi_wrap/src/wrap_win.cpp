// Interposition of one-sided communication (doc/mpi.md, "One-sided
// communication"): window creation recorded in the WinTable (entered like
// communicator creation), MPI_Win_fence and MPI_Win_free counted as
// collectives on the window's own communicator and entered together, the RMA
// operations and passive target synchronization tracked so that a cut falls
// only where no operation is in flight, general active target
// synchronization (post/start) marking the window as refused.
#include "callbacks.hpp"
#include "runtime.hpp"

using namespace pyckpt::mpi;

namespace {

// Window creation is collective over comm with no nonblocking form: entered
// like communicator creation (Coordinator::synchronize; the rank is not
// ready for a cut until it is done). The window's own communicator is made
// first (Runtime::make_own_comm), then the creation, on the app's
// communicator as the app asked. make(): the real call; base(): this rank's
// memory once it succeeded.
template <typename Make, typename Base>
int create_window(MPI_Comm comm, WinFlavor flavor, MPI_Aint size, int disp_unit, MPI_Info info, MPI_Win* win,
                  Make make, Base base) {
  Runtime* rt = app_call();
  CommRec* parent = rt ? rt->comms.find(comm) : nullptr;
  if (!parent) return make();
  std::string origin = app_site();
  rt->coordinator.synchronize(parent, /*creating=*/true);
  int rc;
  {
    InternalScope internal;
    if (CommRec* own = rt->make_own_comm(*parent, comm, &rc)) {
      rc = make();
      if (rc == MPI_SUCCESS)
        rt->windows.add(*own, *win, flavor, size, disp_unit, FileTable::hints_of(info), base(), std::move(origin));
      else
        rt->comms.free(own->real);
    }
  }
  rt->coordinator.end_creation();
  return rc;
}

// An RMA operation on target. A safe point at its entry; but if this rank
// already reported itself ready for a cut, the operation waits for the
// round's outcome: issued, it would be in flight until a fence, flush or
// unlock, and the rank no longer ready (Coordinator::before_unsettling).
template <typename Op>
int rma_operation(MPI_Win win, int target, Op op) {
  Runtime* rt = app_call();
  WinRec* w = rt ? rt->windows.find(win) : nullptr;
  if (!w) return op();
  if (w->flavor == WinFlavor::Dynamic || w->refused_call)
    rt->coordinator.poll();  // a cut fails on this window anyway
  else
    rt->coordinator.before_unsettling();
  const int rc = op();
  if (rc == MPI_SUCCESS) WinTable::issued(*w, target);
  return rc;
}

// A synchronization call that is not collective: a safe point at its
// entry; done(w) records its effect once it succeeded.
template <typename Call, typename Done>
int win_sync(MPI_Win win, Call call, Done done) {
  Runtime* rt = app_call();
  WinRec* w = rt ? rt->windows.find(win) : nullptr;
  if (!w) return call();
  rt->coordinator.poll();
  const int rc = call();
  if (rc == MPI_SUCCESS) done(*w);
  return rc;
}

}  // namespace

extern "C" {

// --- creation ----------------------------------------------------------------

int MPI_Win_create(void* base, MPI_Aint size, int disp_unit, MPI_Info info, MPI_Comm comm, MPI_Win* win) {
  return create_window(
      comm, WinFlavor::Create, size, disp_unit, info, win,
      [&] { return PMPI_Win_create(base, size, disp_unit, info, comm, win); }, [&] { return base; });
}
int MPI_Win_allocate(MPI_Aint size, int disp_unit, MPI_Info info, MPI_Comm comm, void* baseptr, MPI_Win* win) {
  return create_window(
      comm, WinFlavor::Allocate, size, disp_unit, info, win,
      [&] { return PMPI_Win_allocate(size, disp_unit, info, comm, baseptr, win); },
      [&] { return *static_cast<void**>(baseptr); });
}
int MPI_Win_allocate_shared(MPI_Aint size, int disp_unit, MPI_Info info, MPI_Comm comm, void* baseptr,
                            MPI_Win* win) {
  return create_window(
      comm, WinFlavor::Shared, size, disp_unit, info, win,
      [&] { return PMPI_Win_allocate_shared(size, disp_unit, info, comm, baseptr, win); },
      [&] { return *static_cast<void**>(baseptr); });
}
// Recorded so that a checkpoint, while the window exists, fails naming it.
int MPI_Win_create_dynamic(MPI_Info info, MPI_Comm comm, MPI_Win* win) {
  return create_window(
      comm, WinFlavor::Dynamic, 0, 1, info, win, [&] { return PMPI_Win_create_dynamic(info, comm, win); },
      [] { return static_cast<void*>(nullptr); });
}

// Collective over the window, with no nonblocking form: counted on the
// window's communicator and entered by its members together (like a fence);
// its own communicator is freed with it (its record stays in lineage).
int MPI_Win_free(MPI_Win* win) {
  Runtime* rt = app_call();
  WinRec* w = rt ? rt->windows.find(*win) : nullptr;
  if (!w) return PMPI_Win_free(win);
  rt->coordinator.synchronize(w->comm);
  InternalScope internal;
  rt->windows.retire(*w);
  const MPI_Win freeing = *win;
  const int rc = PMPI_Win_free(win);
  if (rc != MPI_SUCCESS) return rc;
  const MPI_Comm own = w->comm->real;
  rt->windows.forget(freeing);
  rt->comms.free(own);
  return rc;
}

// Hints given later replace those of the creation: a restarted job creates
// the window with all of them.
int MPI_Win_set_info(MPI_Win win, MPI_Info info) {
  return win_sync(
      win, [&] { return PMPI_Win_set_info(win, info); },
      [&](WinRec& w) { FileTable::merge(w.hints, FileTable::hints_of(info)); });
}

// --- fence epochs ----------------------------------------------------------------

// Collective over the window, with no nonblocking form: counted on the
// window's communicator (parked at its entry while a cut's target says so:
// the cut may fall before it, and the rank fences again after a restart)
// and entered by its members together, after an Ibarrier that serves the
// protocol (Coordinator::synchronize): the fence then completes every
// operation of the epoch it closes without application code. A rank must
// not wait for a round once it is past that barrier: its peers are already
// inside the blocking fence, serving no protocol.
int MPI_Win_fence(int assert_flags, MPI_Win win) {
  Runtime* rt = app_call();
  WinRec* w = rt ? rt->windows.find(win) : nullptr;
  if (!w) return PMPI_Win_fence(assert_flags, win);
  rt->coordinator.synchronize(w->comm);
  int rc;
  {
    InternalScope internal;
    rc = PMPI_Win_fence(assert_flags, win);
  }
  if (rc == MPI_SUCCESS) WinTable::fenced(*w, assert_flags);
  return rc;
}

// --- passive target -------------------------------------------------------------

// An exclusive lock is held across no cut (a restarted job could not take
// it again without waiting for peers in their restore); shared ones are
// carried across.
int MPI_Win_lock(int lock_type, int rank, int assert_flags, MPI_Win win) {
  Runtime* rt = app_call();
  WinRec* w = rt ? rt->windows.find(win) : nullptr;
  if (!w) return PMPI_Win_lock(lock_type, rank, assert_flags, win);
  if (lock_type == MPI_LOCK_EXCLUSIVE && w->flavor != WinFlavor::Dynamic && !w->refused_call)
    rt->coordinator.before_unsettling();
  else
    rt->coordinator.poll();
  const int rc = PMPI_Win_lock(lock_type, rank, assert_flags, win);
  if (rc == MPI_SUCCESS) WinTable::locked(*w, lock_type, rank);
  return rc;
}
int MPI_Win_unlock(int rank, MPI_Win win) {
  return win_sync(win, [&] { return PMPI_Win_unlock(rank, win); }, [&](WinRec& w) { WinTable::unlocked(w, rank); });
}
int MPI_Win_lock_all(int assert_flags, MPI_Win win) {
  return win_sync(win, [&] { return PMPI_Win_lock_all(assert_flags, win); }, [](WinRec& w) { w.lock_all = true; });
}
int MPI_Win_unlock_all(MPI_Win win) {
  return win_sync(win, [&] { return PMPI_Win_unlock_all(win); }, [](WinRec& w) {
    w.lock_all = false;
    WinTable::flushed_all(w);
  });
}
int MPI_Win_flush(int rank, MPI_Win win) {
  return win_sync(win, [&] { return PMPI_Win_flush(rank, win); }, [&](WinRec& w) { WinTable::flushed(w, rank); });
}
int MPI_Win_flush_all(MPI_Win win) {
  return win_sync(win, [&] { return PMPI_Win_flush_all(win); }, [](WinRec& w) { WinTable::flushed_all(w); });
}

// --- general active target: not supported; a checkpoint fails naming the
// window and the first such call.
int MPI_Win_post(MPI_Group group, int assert_flags, MPI_Win win) {
  return win_sync(win, [&] { return PMPI_Win_post(group, assert_flags, win); },
                  [](WinRec& w) { w.refused_call = w.refused_call ? w.refused_call : "MPI_Win_post"; });
}
int MPI_Win_start(MPI_Group group, int assert_flags, MPI_Win win) {
  return win_sync(win, [&] { return PMPI_Win_start(group, assert_flags, win); },
                  [](WinRec& w) { w.refused_call = w.refused_call ? w.refused_call : "MPI_Win_start"; });
}

// --- RMA operations ----------------------------------------------------------------

int MPI_Put(const void* o, int on, MPI_Datatype ot, int target, MPI_Aint disp, int tn, MPI_Datatype tt, MPI_Win win) {
  return rma_operation(win, target, [&] { return PMPI_Put(o, on, ot, target, disp, tn, tt, win); });
}
int MPI_Get(void* o, int on, MPI_Datatype ot, int target, MPI_Aint disp, int tn, MPI_Datatype tt, MPI_Win win) {
  return rma_operation(win, target, [&] { return PMPI_Get(o, on, ot, target, disp, tn, tt, win); });
}
int MPI_Accumulate(const void* o, int on, MPI_Datatype ot, int target, MPI_Aint disp, int tn, MPI_Datatype tt,
                   MPI_Op op, MPI_Win win) {
  return rma_operation(win, target, [&] { return PMPI_Accumulate(o, on, ot, target, disp, tn, tt, op, win); });
}
int MPI_Get_accumulate(const void* o, int on, MPI_Datatype ot, void* r, int rn, MPI_Datatype rt_, int target,
                       MPI_Aint disp, int tn, MPI_Datatype tt, MPI_Op op, MPI_Win win) {
  return rma_operation(
      win, target, [&] { return PMPI_Get_accumulate(o, on, ot, r, rn, rt_, target, disp, tn, tt, op, win); });
}
int MPI_Fetch_and_op(const void* o, void* r, MPI_Datatype t, int target, MPI_Aint disp, MPI_Op op, MPI_Win win) {
  return rma_operation(win, target, [&] { return PMPI_Fetch_and_op(o, r, t, target, disp, op, win); });
}
int MPI_Compare_and_swap(const void* o, const void* c, void* r, MPI_Datatype t, int target, MPI_Aint disp,
                         MPI_Win win) {
  return rma_operation(win, target, [&] { return PMPI_Compare_and_swap(o, c, r, t, target, disp, win); });
}
// Request-based operations (passive target only): in flight like the others
// until a flush or unlock; their requests are not tracked (one the program
// still holds at a cut cannot be captured).
int MPI_Rput(const void* o, int on, MPI_Datatype ot, int target, MPI_Aint disp, int tn, MPI_Datatype tt, MPI_Win win,
             MPI_Request* req) {
  return rma_operation(win, target, [&] { return PMPI_Rput(o, on, ot, target, disp, tn, tt, win, req); });
}
int MPI_Rget(void* o, int on, MPI_Datatype ot, int target, MPI_Aint disp, int tn, MPI_Datatype tt, MPI_Win win,
             MPI_Request* req) {
  return rma_operation(win, target, [&] { return PMPI_Rget(o, on, ot, target, disp, tn, tt, win, req); });
}
int MPI_Raccumulate(const void* o, int on, MPI_Datatype ot, int target, MPI_Aint disp, int tn, MPI_Datatype tt,
                    MPI_Op op, MPI_Win win, MPI_Request* req) {
  return rma_operation(win, target,
                       [&] { return PMPI_Raccumulate(o, on, ot, target, disp, tn, tt, op, win, req); });
}
int MPI_Rget_accumulate(const void* o, int on, MPI_Datatype ot, void* r, int rn, MPI_Datatype rt_, int target,
                        MPI_Aint disp, int tn, MPI_Datatype tt, MPI_Op op, MPI_Win win, MPI_Request* req) {
  return rma_operation(win, target, [&] {
    return PMPI_Rget_accumulate(o, on, ot, r, rn, rt_, target, disp, tn, tt, op, win, req);
  });
}

}  // extern "C"
