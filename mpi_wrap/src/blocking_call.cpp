// The blocking application call across a cut: recorded at the cut,
// re-issued after a restart.
#include "blocking_call.hpp"

#include <cstdio>

namespace pyckpt::mpi {

void BlockingCall::record_cut() {
  CutCall call;
  if (const BlockingSend* s = op_.send)
    call.send = ResumedSend{s->comm->id, s->dest, s->tag, s->bytes};
  // Its receive completed in the drain: counted here, its data is in the app
  // buffer. A restarted rank re-issues the call, which must get this message
  // again: it is saved at the front of channel state. (A receive still
  // pending can only match a message sent after its sender's cut: every
  // earlier one is counted and was received or drained.)
  if (const ReqRec* r = op_.recv; r && r->complete)
    call.received = Channel::received_message(r->comm->id, r->status, r->buf, r->type);
  cut_ = std::move(call);
}

bool BlockingCall::take_resumed_send(const BlockingSend& s) {
  const ResumedSend r = *resumed_send_;
  resumed_send_.reset();
  if (r.comm == s.comm->id && r.dest == s.dest && r.tag == s.tag && r.bytes == s.bytes) return true;
  // Not the call that was in flight: the restarted program took another
  // path. Sending normally is the best left to do; say so, since the peer
  // may now get the message twice.
  std::fprintf(stderr,
               "pyckpt_mpi: rank %d: the first blocking send after restart (dest %d, tag %d, %llu bytes) is not "
               "the send in flight at the checkpoint (dest %d, tag %d, %llu bytes); sending it normally\n",
               world_rank_, s.dest, s.tag, static_cast<unsigned long long>(s.bytes), r.dest, r.tag,
               static_cast<unsigned long long>(r.bytes));
  return false;
}

}  // namespace pyckpt::mpi
