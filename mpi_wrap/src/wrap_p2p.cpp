// Point-to-point interposition: counting per (communicator, peer), channel
// state delivered to matching receives first, blocking calls as nonblocking
// operations plus a progress loop that serves checkpoints.
#include "runtime.hpp"

#include <cstdlib>
#include <vector>

using namespace pyckpt::mpi;

namespace {

// Sends of at most this many bytes go to the plain blocking call: they are
// eager in every Open MPI transport (vader/sm 4 KiB, tcp 64 KiB, UCX) and so
// complete without the receiver, i.e. cannot block a rank the cut needs.
// Larger ones use Isend + progress loop. PYCKPT_MPI_EAGER_BYTES overrides.
std::size_t eager_bytes() {
  static const std::size_t v = [] {
    const char* e = std::getenv("PYCKPT_MPI_EAGER_BYTES");
    return e ? static_cast<std::size_t>(std::strtoull(e, nullptr, 10)) : std::size_t{1024};
  }();
  return v;
}

// Buffer arguments MPI refuses before anything is sent: the real call must
// report them, to the communicator's error handler; the wrapper must not
// use them first (MPI_Type_size(MPI_DATATYPE_NULL) raises the error on
// MPI_COMM_WORLD, fatal there even when the app asked for errors returned).
bool refused_buffer(int count, MPI_Datatype type) { return count < 0 || type == MPI_DATATYPE_NULL; }

std::uint64_t message_bytes(int count, MPI_Datatype type) {
  int size = 0;
  PMPI_Type_size(type, &size);
  return static_cast<std::uint64_t>(size) * static_cast<std::uint64_t>(count);
}

// Drives reqs[0..n) to completion, serving checkpoints meanwhile. If op has
// a receive, it is the last request (drains test it; cuts record both).
// statuses[0..n) get what MPI_Testall reports; MPI_ERR_IN_STATUS becomes
// the error of the failed request, as the blocking call of the app returns.
int progress(Runtime& rt, BlockingOp op, MPI_Request* reqs, int n, MPI_Status* statuses) {
  if (op.recv) op.recv_request = &reqs[n - 1];
  InCall in_call(rt.call, op);
  for (;;) {
    int flag = 0;
    int rc = PMPI_Testall(n, reqs, &flag, statuses);
    if (rc == MPI_ERR_IN_STATUS) [[unlikely]] {
      for (int i = 0; i < n; ++i)
        if (statuses[i].MPI_ERROR != MPI_SUCCESS && statuses[i].MPI_ERROR != MPI_ERR_PENDING)
          return statuses[i].MPI_ERROR;
      return rc;
    }
    if (rc != MPI_SUCCESS || flag) return rc;
    rt.coordinator.poll_spin();
  }
}

// A single-completion call's status (MPI_Recv, MPI_Sendrecv): st except
// MPI_ERROR, which such calls leave alone (MPI 3.1 sec. 3.2.5).
void copy_status(MPI_Status* status, const MPI_Status& st) {
  if (status == MPI_STATUS_IGNORE) return;
  const int error = status->MPI_ERROR;
  *status = st;
  status->MPI_ERROR = error;
}

// Where a completion call of the app has MPI write the status the wrapper
// reads too: the app's own, so that MPI's rules on what is written hold
// unchanged (nothing when nothing completed, MPI_ERROR only where MPI sets
// it), or local if the app passed MPI_STATUS_IGNORE.
MPI_Status* status_or(MPI_Status* status, MPI_Status& local) {
  return status == MPI_STATUS_IGNORE ? &local : status;
}

// A completion loop of the app (Wait*, Probe, Mprobe): test until done,
// serving the protocol between tests.
template <typename Test>
int spin(Runtime& rt, Test test) {
  for (;;) {
    bool done = false;
    int rc = test(done);
    if (rc != MPI_SUCCESS || done) return rc;
    rt.coordinator.poll_spin();
  }
}

// A send the app posted and MPI accepted: counted, and recorded by the
// compound call in progress, if any.
void count_send(Runtime& rt, CommRec* c, int dest, int tag) {
  rt.channel.count_send(c, dest);
  rt.compound.on_send(*c, dest, tag);
}

// A receive of the app completed into (buf, type): logged by the compound
// call in progress, if any (rolled back at a cut, it gets it again).
void log_receive(Runtime& rt, const CommRec& c, const MPI_Status& st, const void* buf, MPI_Datatype type) {
  if (rt.compound.active()) rt.compound.on_receive(Channel::received_message(c.id, recv_status(st), buf, type));
}

// Delivers channel-state message m to a receive of the app, logged like any.
int deliver(Runtime& rt, Channel::Iter m, void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  if (rt.compound.active()) rt.compound.on_receive(*m);
  return rt.channel.deliver(m, buf, count, type, status);
}

using SendFn = int (*)(const void*, int, MPI_Datatype, int, int, MPI_Comm);
using PostSendFn = int (*)(const void*, int, MPI_Datatype, int, int, MPI_Comm, MPI_Request*);

template <SendFn Direct, PostSendFn Post, bool MayBeLocal>
int blocking_send(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm) {
  Runtime* rt = app_call();
  if (!rt) return Direct(buf, count, type, dest, tag, comm);
  rt->coordinator.poll();
  CommRec* c = rt->comms.find(comm);
  if (!c || refused_buffer(count, type)) return Direct(buf, count, type, dest, tag, comm);
  const BlockingSend send{c, dest, tag, message_bytes(count, type)};
  if (rt->call.is_resumed_send(send) || rt->compound.is_replayed_send(*c, dest, tag)) [[unlikely]]
    return MPI_SUCCESS;
  // Counted once MPI accepted the send: one it refuses (an invalid rank or
  // datatype under MPI_ERRORS_RETURN) is no message of the channel.
  if (MayBeLocal && send.bytes <= eager_bytes()) {
    int rc = Direct(buf, count, type, dest, tag, comm);
    if (rc == MPI_SUCCESS) count_send(*rt, c, dest, tag);
    return rc;
  }
  MPI_Request req;
  int rc = Post(buf, count, type, dest, tag, comm, &req);
  if (rc != MPI_SUCCESS) return rc;
  count_send(*rt, c, dest, tag);
  MPI_Status st;
  return progress(*rt, BlockingOp{.send = &send}, &req, 1, &st);
}

template <PostSendFn Post>
int nonblocking_send(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm,
                     MPI_Request* request) {
  Runtime* rt = app_call();
  if (!rt) return Post(buf, count, type, dest, tag, comm, request);
  rt->coordinator.poll();
  CommRec* c = rt->comms.find(comm);
  if (!c) return Post(buf, count, type, dest, tag, comm, request);
  if (rt->compound.is_replayed_send(*c, dest, tag)) [[unlikely]] {
    // Sent before the cut the re-issued compound call was rolled back at;
    // the call waits for it (mpi4py's sendrecv): nothing to wait for.
    *request = MPI_REQUEST_NULL;
    return MPI_SUCCESS;
  }
  int rc = Post(buf, count, type, dest, tag, comm, request);
  if (rc != MPI_SUCCESS) return rc;
  count_send(*rt, c, dest, tag);
  rt->requests.add(*request, ReqRec{.comm = c});
  return rc;
}

// Send (optional) + receive as one blocking operation: MPI_Sendrecv and
// MPI_Sendrecv_replace (which sends from a packed copy).
int send_recv(Runtime& rt, CommRec* c, const void* sbuf, int scount, MPI_Datatype stype, int dest, int stag,
              void* rbuf, int rcount, MPI_Datatype rtype, int source, int rtag, MPI_Comm comm, MPI_Status* status) {
  const BlockingSend send{c, dest, stag, message_bytes(scount, stype)};
  MPI_Request reqs[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  MPI_Status sts[2];
  int rc = MPI_SUCCESS;
  if (!rt.call.is_resumed_send(send) && !rt.compound.is_replayed_send(*c, dest, stag)) [[likely]] {
    rc = PMPI_Isend(sbuf, scount, stype, dest, stag, comm, &reqs[0]);
    if (rc != MPI_SUCCESS) return rc;
    count_send(rt, c, dest, stag);
  }
  ReqRec rec{.is_recv = true, .comm = c, .buf = rbuf, .count = rcount, .type = rtype, .source = source, .tag = rtag};
  if (rt.channel.match(c->id, source, rtag)) {
    // The send completes first: a cut while it is in flight then sees the
    // receive not started and its message still in channel state.
    rc = progress(rt, BlockingOp{.send = &send}, reqs, 1, sts);
    if (rc != MPI_SUCCESS) return rc;
    // Still there: nothing consumes channel state meanwhile (a cut appends).
    return deliver(rt, *rt.channel.match(c->id, source, rtag), rbuf, rcount, rtype, status);
  }
  rc = PMPI_Irecv(rbuf, rcount, rtype, source, rtag, comm, &reqs[1]);
  if (rc != MPI_SUCCESS) return rc;
  rc = progress(rt, BlockingOp{.send = &send, .recv = &rec}, reqs, 2, sts);
  if (rc != MPI_SUCCESS) return rc;
  if (!rec.counted) rt.channel.count_recv(c, sts[1].MPI_SOURCE);
  log_receive(rt, *c, sts[1], rbuf, rtype);
  copy_status(status, sts[1]);
  return rc;
}

// After MPI_Waitall/Testall returned rc with every request done: each one
// the app no longer holds counts; with MPI_ERR_IN_STATUS those still
// pending (MPI_ERR_PENDING) stay tracked.
void complete_all(Runtime& rt, int rc, int n, const MPI_Request* orig, const MPI_Status* sts) {
  for (int i = 0; i < n; ++i)
    if (rc != MPI_ERR_IN_STATUS || sts[i].MPI_ERROR != MPI_ERR_PENDING) rt.requests.on_complete(orig[i], sts[i]);
}

template <typename F>
int with_statuses(int n, MPI_Status* given, F f) {
  if (given != MPI_STATUSES_IGNORE) return f(given);
  std::vector<MPI_Status> local(static_cast<std::size_t>(n));
  return f(local.data());
}

}  // namespace

extern "C" {

int MPI_Send(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm) {
  return blocking_send<PMPI_Send, PMPI_Isend, true>(buf, count, type, dest, tag, comm);
}
int MPI_Bsend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm) {
  return blocking_send<PMPI_Bsend, PMPI_Ibsend, true>(buf, count, type, dest, tag, comm);
}
int MPI_Rsend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm) {
  return blocking_send<PMPI_Rsend, PMPI_Irsend, true>(buf, count, type, dest, tag, comm);
}
int MPI_Ssend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm) {
  return blocking_send<PMPI_Ssend, PMPI_Issend, false>(buf, count, type, dest, tag, comm);
}
int MPI_Isend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm, MPI_Request* r) {
  return nonblocking_send<PMPI_Isend>(buf, count, type, dest, tag, comm, r);
}
int MPI_Ibsend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm, MPI_Request* r) {
  return nonblocking_send<PMPI_Ibsend>(buf, count, type, dest, tag, comm, r);
}
int MPI_Irsend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm, MPI_Request* r) {
  return nonblocking_send<PMPI_Irsend>(buf, count, type, dest, tag, comm, r);
}
int MPI_Issend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm, MPI_Request* r) {
  return nonblocking_send<PMPI_Issend>(buf, count, type, dest, tag, comm, r);
}

int MPI_Recv(void* buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm, MPI_Status* status) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Recv(buf, count, type, source, tag, comm, status);
  rt->coordinator.poll();
  CommRec* c = rt->comms.find(comm);
  if (!c) return PMPI_Recv(buf, count, type, source, tag, comm, status);
  if (auto m = rt->channel.match(c->id, source, tag)) return deliver(*rt, *m, buf, count, type, status);
  MPI_Request req;
  int rc = PMPI_Irecv(buf, count, type, source, tag, comm, &req);
  if (rc != MPI_SUCCESS) return rc;
  ReqRec rec{.is_recv = true, .comm = c, .buf = buf, .count = count, .type = type, .source = source, .tag = tag};
  MPI_Status st;
  rc = progress(*rt, BlockingOp{.recv = &rec}, &req, 1, &st);
  if (rc != MPI_SUCCESS) return rc;
  if (!rec.counted) rt->channel.count_recv(c, st.MPI_SOURCE);
  log_receive(*rt, *c, st, buf, type);
  copy_status(status, st);
  return rc;
}

int MPI_Irecv(void* buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm, MPI_Request* request) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Irecv(buf, count, type, source, tag, comm, request);
  rt->coordinator.poll();
  CommRec* c = rt->comms.find(comm);
  if (!c) return PMPI_Irecv(buf, count, type, source, tag, comm, request);
  const ReqRec rec{.is_recv = true, .comm = c, .buf = buf, .count = count, .type = type, .source = source, .tag = tag};
  try {
    if (auto reissued = rt->requests.take_reissue(rec)) {
      *request = *reissued;
      return MPI_SUCCESS;
    }
  } catch (const Error& e) {  // its re-post failed: as the app's own MPI_Irecv would have
    return e.mpi_error != MPI_SUCCESS ? e.mpi_error : MPI_ERR_OTHER;
  }
  rt->compound.on_untracked_operation();  // its completion is not logged
  if (auto m = rt->channel.match(c->id, source, tag)) return rt->channel.deliver_as_request(*m, rec, rt->requests, request);
  int rc = PMPI_Irecv(buf, count, type, source, tag, comm, request);
  if (rc == MPI_SUCCESS) rt->requests.add(*request, rec);
  return rc;
}

int MPI_Sendrecv(const void* sbuf, int scount, MPI_Datatype stype, int dest, int stag, void* rbuf, int rcount,
                 MPI_Datatype rtype, int source, int rtag, MPI_Comm comm, MPI_Status* status) {
  Runtime* rt = app_call();
  CommRec* c = rt ? rt->comms.find(comm) : nullptr;
  if (!c || refused_buffer(scount, stype) || refused_buffer(rcount, rtype))
    return PMPI_Sendrecv(sbuf, scount, stype, dest, stag, rbuf, rcount, rtype, source, rtag, comm, status);
  rt->coordinator.poll();
  return send_recv(*rt, c, sbuf, scount, stype, dest, stag, rbuf, rcount, rtype, source, rtag, comm, status);
}

int MPI_Sendrecv_replace(void* buf, int count, MPI_Datatype type, int dest, int stag, int source, int rtag,
                         MPI_Comm comm, MPI_Status* status) {
  Runtime* rt = app_call();
  CommRec* c = rt ? rt->comms.find(comm) : nullptr;
  if (!c) return PMPI_Sendrecv_replace(buf, count, type, dest, stag, source, rtag, comm, status);
  rt->coordinator.poll();
  int size = 0, pos = 0;
  int rc = PMPI_Pack_size(count, type, comm, &size);
  if (rc != MPI_SUCCESS) return rc;
  std::vector<std::byte> packed(static_cast<std::size_t>(size));
  // Nothing to pack for an empty message (Open MPI rejects a null outbuf).
  if (size > 0) {
    rc = PMPI_Pack(buf, count, type, packed.data(), size, &pos, comm);
    if (rc != MPI_SUCCESS) return rc;
  }
  return send_recv(*rt, c, packed.data(), pos, MPI_PACKED, dest, stag, buf, count, type, source, rtag, comm, status);
}

int MPI_Iprobe(int source, int tag, MPI_Comm comm, int* flag, MPI_Status* status) {
  Runtime* rt = app_call();
  CommRec* c = rt ? rt->comms.find(comm) : nullptr;
  if (!c) return PMPI_Iprobe(source, tag, comm, flag, status);
  rt->coordinator.poll();
  if (auto m = rt->channel.match(c->id, source, tag)) {
    *flag = 1;
    Channel::fill_status(**m, status);
    return MPI_SUCCESS;
  }
  return PMPI_Iprobe(source, tag, comm, flag, status);
}

int MPI_Probe(int source, int tag, MPI_Comm comm, MPI_Status* status) {
  Runtime* rt = app_call();
  CommRec* c = rt ? rt->comms.find(comm) : nullptr;
  if (!c) return PMPI_Probe(source, tag, comm, status);
  rt->coordinator.poll();
  for (;;) {
    // Checked every round: a cut inside poll_spin may drain the message.
    if (auto m = rt->channel.match(c->id, source, tag)) {
      Channel::fill_status(**m, status);
      return MPI_SUCCESS;
    }
    int flag = 0;
    int rc = PMPI_Iprobe(source, tag, comm, &flag, status);
    if (rc != MPI_SUCCESS || flag) return rc;
    rt->coordinator.poll_spin();
  }
}

int MPI_Improbe(int source, int tag, MPI_Comm comm, int* flag, MPI_Message* message, MPI_Status* status) {
  Runtime* rt = app_call();
  CommRec* c = rt ? rt->comms.find(comm) : nullptr;
  if (!c) return PMPI_Improbe(source, tag, comm, flag, message, status);
  rt->coordinator.poll();
  if (rt->coordinator.ready_for_cut()) [[unlikely]] {
    // No match until the cut ran (an MPI_Mprobe waits in its loop): a held
    // message cannot be captured, and this rank cannot defer a cut the
    // others may already be running.
    *flag = 0;
    return MPI_SUCCESS;
  }
  if (auto m = rt->channel.match(c->id, source, tag)) {
    *flag = 1;
    Channel::fill_status(**m, status);
    *message = rt->channel.hold(*m);
    return MPI_SUCCESS;
  }
  MPI_Status local;
  MPI_Status* st = status_or(status, local);
  int rc = PMPI_Improbe(source, tag, comm, flag, message, st);
  if (rc == MPI_SUCCESS && *flag && st->MPI_SOURCE >= 0) {
    // Matched messages leave MPI's matching queue, so a drain cannot see
    // them: they count as received now.
    rt->channel.count_recv(c, st->MPI_SOURCE);
    rt->channel.matched_real();
    rt->compound.on_match(*c);
  }
  return rc;
}

int MPI_Mprobe(int source, int tag, MPI_Comm comm, MPI_Message* message, MPI_Status* status) {
  Runtime* rt = app_call();
  CommRec* c = rt ? rt->comms.find(comm) : nullptr;
  if (!c) return PMPI_Mprobe(source, tag, comm, message, status);
  rt->uncount_call();  // counted again by each MPI_Improbe round
  for (;;) {
    int flag = 0;
    int rc = MPI_Improbe(source, tag, comm, &flag, message, status);
    if (rc != MPI_SUCCESS || flag) return rc;
    rt->coordinator.poll_spin();
  }
}

int MPI_Mrecv(void* buf, int count, MPI_Datatype type, MPI_Message* message, MPI_Status* status) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Mrecv(buf, count, type, message, status);
  if (auto m = rt->channel.unhold(*message)) {
    *message = MPI_MESSAGE_NULL;
    return deliver(*rt, *m, buf, count, type, status);
  }
  if (*message == MPI_MESSAGE_NO_PROC || *message == MPI_MESSAGE_NULL)
    return PMPI_Mrecv(buf, count, type, message, status);
  rt->channel.received_real();
  if (!rt->compound.active()) return PMPI_Mrecv(buf, count, type, message, status);
  // Inside a compound call (mpi4py's sendrecv receives with Mprobe + Mrecv):
  // logged. The message's communicator is the one Mprobe matched on.
  const std::uint64_t comm = rt->compound.matched_comm();
  MPI_Status local;
  MPI_Status* st = status_or(status, local);
  const int rc = PMPI_Mrecv(buf, count, type, message, st);
  if (rc == MPI_SUCCESS) rt->compound.on_receive(Channel::received_message(comm, recv_status(*st), buf, type));
  return rc;
}

int MPI_Imrecv(void* buf, int count, MPI_Datatype type, MPI_Message* message, MPI_Request* request) {
  Runtime* rt = app_call();
  if (rt) {
    rt->compound.on_untracked_operation();  // its completion is not logged
    if (auto m = rt->channel.unhold(*message)) {
      *message = MPI_MESSAGE_NULL;
      return rt->channel.deliver_as_request(
          *m, ReqRec{.is_recv = true, .buf = buf, .count = count, .type = type}, rt->requests, request);
    }
    if (*message != MPI_MESSAGE_NO_PROC && *message != MPI_MESSAGE_NULL) {
      rt->channel.received_real();
      // Counted at the match; a cut waits for its data (test_pending_receives).
      int rc = PMPI_Imrecv(buf, count, type, message, request);
      if (rc == MPI_SUCCESS)
        rt->requests.add(*request, ReqRec{.is_recv = true, .counted = true, .buf = buf, .count = count, .type = type});
      return rc;
    }
  }
  return PMPI_Imrecv(buf, count, type, message, request);
}

// --- completion ------------------------------------------------------------

int MPI_Wait(MPI_Request* request, MPI_Status* status) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Wait(request, status);
  rt->coordinator.poll();
  const MPI_Request orig = *request;
  MPI_Status local;
  MPI_Status* st = status_or(status, local);
  const int rc = spin(*rt, [&](bool& done) {
    int flag = 0;
    const int r = PMPI_Test(request, &flag, st);
    done = flag != 0;
    return r;
  });
  if (rc == MPI_SUCCESS) rt->requests.on_complete(orig, *st);
  return rc;
}

int MPI_Test(MPI_Request* request, int* flag, MPI_Status* status) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Test(request, flag, status);
  rt->coordinator.poll();
  const MPI_Request orig = *request;
  MPI_Status local;
  MPI_Status* st = status_or(status, local);
  int rc = PMPI_Test(request, flag, st);
  if (rc == MPI_SUCCESS && *flag) rt->requests.on_complete(orig, *st);
  return rc;
}

int MPI_Waitall(int n, MPI_Request* requests, MPI_Status* statuses) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Waitall(n, requests, statuses);
  rt->coordinator.poll();
  std::vector<MPI_Request> orig(requests, requests + n);
  return with_statuses(n, statuses, [&](MPI_Status* sts) {
    const int rc = spin(*rt, [&](bool& done) {
      int flag = 0;
      const int r = PMPI_Testall(n, requests, &flag, sts);
      done = flag != 0;
      return r;
    });
    if (rc == MPI_SUCCESS || rc == MPI_ERR_IN_STATUS) complete_all(*rt, rc, n, orig.data(), sts);
    return rc;
  });
}

int MPI_Testall(int n, MPI_Request* requests, int* flag, MPI_Status* statuses) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Testall(n, requests, flag, statuses);
  rt->coordinator.poll();
  std::vector<MPI_Request> orig(requests, requests + n);
  return with_statuses(n, statuses, [&](MPI_Status* sts) {
    int rc = PMPI_Testall(n, requests, flag, sts);
    if (rc == MPI_ERR_IN_STATUS || (rc == MPI_SUCCESS && *flag)) complete_all(*rt, rc, n, orig.data(), sts);
    return rc;
  });
}

int MPI_Waitany(int n, MPI_Request* requests, int* index, MPI_Status* status) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Waitany(n, requests, index, status);
  rt->coordinator.poll();
  std::vector<MPI_Request> orig(requests, requests + n);
  MPI_Status local;
  MPI_Status* st = status_or(status, local);
  const int rc = spin(*rt, [&](bool& done) {
    int flag = 0;
    const int r = PMPI_Testany(n, requests, index, &flag, st);
    done = flag != 0;
    return r;
  });
  if (rc == MPI_SUCCESS && *index != MPI_UNDEFINED)
    rt->requests.on_complete(orig[static_cast<std::size_t>(*index)], *st);
  return rc;
}

int MPI_Testany(int n, MPI_Request* requests, int* index, int* flag, MPI_Status* status) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Testany(n, requests, index, flag, status);
  rt->coordinator.poll();
  std::vector<MPI_Request> orig(requests, requests + n);
  MPI_Status local;
  MPI_Status* st = status_or(status, local);
  int rc = PMPI_Testany(n, requests, index, flag, st);
  if (rc == MPI_SUCCESS && *flag && *index != MPI_UNDEFINED)
    rt->requests.on_complete(orig[static_cast<std::size_t>(*index)], *st);
  return rc;
}

int MPI_Waitsome(int n, MPI_Request* requests, int* outcount, int* indices, MPI_Status* statuses) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Waitsome(n, requests, outcount, indices, statuses);
  rt->coordinator.poll();
  std::vector<MPI_Request> orig(requests, requests + n);
  return with_statuses(n, statuses, [&](MPI_Status* sts) {
    const int rc = spin(*rt, [&](bool& done) {
      const int r = PMPI_Testsome(n, requests, outcount, indices, sts);
      done = *outcount != 0;
      return r;
    });
    if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) return rc;
    for (int i = 0; i < *outcount && *outcount != MPI_UNDEFINED; ++i)
      rt->requests.on_complete(orig[static_cast<std::size_t>(indices[i])], sts[i]);
    return rc;
  });
}

int MPI_Testsome(int n, MPI_Request* requests, int* outcount, int* indices, MPI_Status* statuses) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Testsome(n, requests, outcount, indices, statuses);
  rt->coordinator.poll();
  std::vector<MPI_Request> orig(requests, requests + n);
  return with_statuses(n, statuses, [&](MPI_Status* sts) {
    int rc = PMPI_Testsome(n, requests, outcount, indices, sts);
    if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) return rc;
    for (int i = 0; i < *outcount && *outcount != MPI_UNDEFINED; ++i)
      rt->requests.on_complete(orig[static_cast<std::size_t>(indices[i])], sts[i]);
    return rc;
  });
}

int MPI_Request_get_status(MPI_Request request, int* flag, MPI_Status* status) {
  Runtime* rt = app_call();
  if (!rt) return PMPI_Request_get_status(request, flag, status);
  MPI_Status local;
  MPI_Status* st = status_or(status, local);
  int rc = PMPI_Request_get_status(request, flag, st);
  if (rc == MPI_SUCCESS && *flag) rt->requests.on_complete(request, *st, /*release=*/false);
  return rc;
}

int MPI_Request_free(MPI_Request* request) {
  // A receive freed while pending completes unseen: its count would be
  // missing at the next cut and the drain could not finish.
  if (Runtime* rt = app_call(); rt && rt->requests.forget(*request))
    rt->mark_unsupported("MPI_Request_free of a pending receive");
  return PMPI_Request_free(request);
}

int MPI_Cancel(MPI_Request* request) {
  // A cancelled send would leave a count no receiver can match.
  if (Runtime* rt = app_call()) rt->mark_unsupported("MPI_Cancel");
  return PMPI_Cancel(request);
}

}  // extern "C"
