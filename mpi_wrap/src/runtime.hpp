// The interposer's state: a small Runtime that owns the parts, each with one
// job --
//   CommTable     communicators: records, lineage, handle lookup, replay
//   TypeTable     datatypes: ids, type trees
//   Channel       per-peer counts, channel state, matching, Mprobe'd messages
//   RequestTable  app requests: ids, completion, pending view, re-post
//   IcollTable    the app's nonblocking collectives: calls, re-post
//   BlockingCall  the blocking app call in progress across a cut, re-issue
//   CompoundCall  a compound call of the layer above (mpi4py's pickled
//                 reductions, sendrecv): logged, rolled back at a cut, replayed
//   FileTable     the app's open files: records, rest at a cut, reopening
//   WinTable      the app's RMA windows: records, epochs, creation at restart
//   Coordinator   phases, rounds, targets, the cut and its agreement, finish
//   Waker         a thread that brings a checkpoint to a computing rank
// -- and the save/restore codec of the whole state (runtime.cpp).
// The wrappers (wrap_*.cpp) and the C ABI (capi.cpp) call the parts' methods.
//
// Threading: the bookkeeping assumes application MPI calls come from one
// thread at a time (MPI_THREAD_SINGLE/FUNNELED/SERIALIZED, what mpi4py apps
// use); MPI_THREAD_MULTIPLE is recorded as unsupported for checkpoints.
#pragma once

#include "blocking_call.hpp"
#include "channel.hpp"
#include "comm_table.hpp"
#include "compound_call.hpp"
#include "coordinator.hpp"
#include "error.hpp"
#include "file_table.hpp"
#include "icoll_table.hpp"
#include "internal_scope.hpp"
#include "request_table.hpp"
#include "type_table.hpp"
#include "waker.hpp"
#include "win_table.hpp"

#include <mpi.h>
#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pyckpt::mpi {

class Runtime {
 public:
  // --- lifetime ------------------------------------------------------------
  static void start();  // after PMPI_Init*: world/self records, private comms
  static void stop();   // before PMPI_Finalize
  static Runtime* get() { return instance_.get(); }
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int world_rank() const { return world_rank_; }
  bool on_main_thread() const { return pthread_equal(pthread_self(), main_thread_) != 0; }
  int world_size() const { return world_size_; }

  // --- the parts (declaration order = construction order) ------------------
 private:
  int world_rank_, world_size_;
  std::string unsupported_;  // read by the coordinator at each cut

 public:
  CommTable comms;
  TypeTable types;
  Channel channel;
  RequestTable requests{channel};
  IcollTable collectives;
  BlockingCall call{world_rank_};
  CompoundCall compound;
  FileTable files;
  WinTable windows;
  Coordinator coordinator;

  // The waker runs once the layer above registered a wake callback or
  // triggers; destroyed before the coordinator's communicators.
  Waker& waker() {
    if (!waker_) waker_ = std::make_unique<Waker>(coordinator);
    return *waker_;
  }

  // Record a communicator made by `op` on `parent` (collective on parent;
  // called on every member, also where the result is MPI_COMM_NULL).
  CommRec& add_comm(CommRec& parent, LineageOp op, std::vector<std::int32_t> args, MPI_Comm made) {
    CommRec& c = comms.add(parent, op, std::move(args), made);
    coordinator.on_new_comm(c);
    return c;
  }

  // The library's own communicator for an object the app makes on `parent`
  // (handle `comm`): a file, a window. Made on every member whatever the
  // object's creation will return (lineage must be the same on all members),
  // by a split rather than a dup: a dup would run the copy callbacks of the
  // app's attributes. Null if MPI refused (its code in *rc); free it with
  // comms.free() if the object is not made after all.
  CommRec* make_own_comm(CommRec& parent, MPI_Comm comm, int* rc) {
    MPI_Comm own = MPI_COMM_NULL;
    *rc = PMPI_Comm_split(comm, 0, parent.rank, &own);
    return *rc == MPI_SUCCESS ? &add_comm(parent, LineageOp::Split, {0, parent.rank}, own) : nullptr;
  }

  // An app's nonblocking collective on c with request id: posted and
  // tracked; the app holds *request. MPI's code. send_copy: see
  // IcollTable::start.
  int start_collective(CommRec* c, IcollCall call, std::uint64_t id, MPI_Request* request,
                       std::vector<std::byte> send_copy = {}) {
    int rc = collectives.start(c, std::move(call), id, request, std::move(send_copy));
    if (rc == MPI_SUCCESS) requests.add(*request, ReqRec{.id = id, .comm = c, .collective = true});
    return rc;
  }

  // MPI_TAG_UB of this MPI library (the bound mpi4py wraps its tags at).
  int tag_ub() const { return tag_ub_; }

  // Unsupported features the job used; a checkpoint fails naming them.
  void mark_unsupported(const char* call);

  // Application MPI calls seen (pyckpt_mpi_get_stats); each one is
  // activity of the main thread for the waker.
  void count_call() {
    ++intercepted_;
    coordinator.note_activity();
  }
  void uncount_call() { --intercepted_; }
  std::uint64_t intercepted() const { return intercepted_; }

  // --- the whole state as portable bytes, and its restoration --------------
  std::vector<std::byte> save() const;
  void restore(const std::byte* data, std::size_t len);

 private:
  Runtime(int world_rank, int world_size);

  static std::unique_ptr<Runtime> instance_;
  std::uint64_t intercepted_ = 0;
  int tag_ub_ = 32767;
  pthread_t main_thread_ = pthread_self();  // the one that called MPI_Init
  std::unique_ptr<Waker> waker_;  // last member: stopped first
};

// The runtime if this call is the application's (to be tracked), else null.
// One application thread calls MPI: the one that called MPI_Init, whose
// stack a checkpoint captures. A call from another thread would run the
// protocol concurrently with it: it passes through untracked, and the next
// checkpoint fails, saying why (its messages were not counted).
inline Runtime* app_call() {
  Runtime* rt = Runtime::get();
  if (!rt || internal_depth > 0) return nullptr;
  if (!rt->on_main_thread()) {
    rt->coordinator.refuse_foreign_thread();
    return nullptr;
  }
  rt->count_call();
  return rt;
}

}  // namespace pyckpt::mpi
