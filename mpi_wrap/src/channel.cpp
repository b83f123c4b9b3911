// The channel: channel state (drained messages) and its delivery to
// receives, the drain of one message at a cut, messages held by Mprobe.
#include "channel.hpp"

#include "error.hpp"
#include "internal_scope.hpp"

#include <algorithm>

namespace pyckpt::mpi {

namespace {
// Non-canonical x86-64 address: can never be a real MPI_Message.
MPI_Message fake_message(std::uint64_t n) {
  return reinterpret_cast<MPI_Message>(static_cast<std::uintptr_t>(0x5043000000000000ull | n));
}
}  // namespace

std::optional<Channel::Iter> Channel::match_slow(std::uint64_t comm, int source, int tag) {
  // Drained messages are kept in arrival order, so the first match is the
  // one MPI's non-overtaking rule would deliver first.
  auto m = std::find_if(messages_.begin(), messages_.end(), [&](const ChannelMsg& msg) {
    return msg.comm == comm && (source == MPI_ANY_SOURCE || source == msg.source) &&
           (tag == MPI_ANY_TAG || tag == msg.tag);
  });
  if (m == messages_.end()) return std::nullopt;
  return m;
}

void Channel::fill_status(const ChannelMsg& m, MPI_Status* status) {
  if (status == MPI_STATUS_IGNORE) return;
  status->MPI_SOURCE = m.source;
  status->MPI_TAG = m.tag;  // MPI_ERROR untouched: only single-completion calls get here
  PMPI_Status_set_elements_x(status, MPI_BYTE, static_cast<MPI_Count>(m.data.size()));
  PMPI_Status_set_cancelled(status, 0);
}

int Channel::deliver(Iter m, void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  InternalScope internal;
  int type_size = 0;
  PMPI_Type_size(type, &type_size);
  const auto bytes = m->data.size();
  int rc = MPI_SUCCESS;
  if (bytes > static_cast<std::size_t>(type_size) * static_cast<std::size_t>(count)) {
    rc = MPI_ERR_TRUNCATE;
  } else if (bytes > 0) {
    // The bytes are the sender's data in native packed form (received as
    // MPI_BYTE); unpacking lays them out like a direct receive would.
    int pos = 0;
    rc = PMPI_Unpack(m->data.data(), static_cast<int>(bytes), &pos, buf,
                     static_cast<int>(bytes / static_cast<std::size_t>(type_size)), type, MPI_COMM_SELF);
  }
  fill_status(*m, status);
  messages_.erase(m);
  ++replayed_;
  return rc;
}

int Channel::deliver_as_request(Iter m, ReqRec rec, RequestTable& requests, MPI_Request* request) {
  rec.status = RecvStatus{m->source, m->tag, static_cast<std::int64_t>(m->data.size())};
  rec.counted = rec.complete = true;  // counted before the cut, when drained
  const int error = deliver(m, rec.buf, rec.count, rec.type, MPI_STATUS_IGNORE);
  int rc = start_completed_request(rec.status, error, request);
  if (rc == MPI_SUCCESS) requests.add(*request, rec);
  return rc;
}

bool Channel::drain_one(CommRec& c) {
  int flag = 0;
  MPI_Message msg;
  MPI_Status st;
  check(PMPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, c.real, &flag, &msg, &st), "MPI_Improbe (drain)");
  if (!flag) return false;
  int bytes = 0;
  PMPI_Get_count(&st, MPI_BYTE, &bytes);
  ChannelMsg m{c.id, st.MPI_SOURCE, st.MPI_TAG, std::vector<std::byte>(static_cast<std::size_t>(bytes))};
  check(PMPI_Mrecv(m.data.data(), bytes, MPI_BYTE, &msg, MPI_STATUS_IGNORE), "MPI_Mrecv (drain)");
  count_recv(&c, st.MPI_SOURCE);
  messages_.push_back(std::move(m));
  ++drained_;
  return true;
}

ChannelMsg Channel::received_message(std::uint64_t comm, const RecvStatus& status, const void* buf,
                                     MPI_Datatype type) {
  InternalScope internal;
  int type_size = 0;
  PMPI_Type_size(type, &type_size);
  if (status.bytes < 0 || type_size <= 0 || status.bytes % type_size != 0)
    throw Error(PYCKPT_MPI_EUNSUPPORTED,
                "pyckpt_mpi: a received message to deliver again after a restart is not a whole number of "
                "datatype elements");
  const auto bytes = static_cast<int>(status.bytes);
  ChannelMsg m{comm, status.source, status.tag, std::vector<std::byte>(static_cast<std::size_t>(bytes))};
  int pos = 0;
  // A zero-byte message has nothing to pack (and MPI_Pack refuses the null
  // output buffer of an empty vector: osu_latency's 0 B phase).
  if (bytes > 0)
    check(PMPI_Pack(buf, bytes / type_size, type, m.data.data(), bytes, &pos, MPI_COMM_SELF),
          "MPI_Pack (a received message to deliver again)");
  return m;
}

MPI_Message Channel::hold(Iter m) {
  const MPI_Message message = fake_message(next_fake_message_++);
  held_.emplace(message, std::move(*m));
  messages_.erase(m);
  return message;
}

std::optional<Channel::Iter> Channel::unhold(MPI_Message message) {
  auto it = held_.find(message);
  if (it == held_.end()) return std::nullopt;
  messages_.push_front(std::move(it->second));
  held_.erase(it);
  return messages_.begin();
}

}  // namespace pyckpt::mpi
