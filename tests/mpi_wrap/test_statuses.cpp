// The interposer must be invisible to correct MPI programs: statuses, return
// codes and corner cases as MPI 3.1 specifies them. Run twice by CTest, once
// plain (the expectations hold for Open MPI itself) and once with
// libpyckpt_mpi.so preloaded. Needs 2 ranks; rank 0 and 1 work as a pair.
//  - single-completion calls (Recv, Sendrecv, Wait, Test, Request_get_status,
//    Probe/Iprobe, Waitany/Testany) leave status.MPI_ERROR alone;
//  - nothing completed (flag 0): the status is not written at all;
//  - a cancelled Irecv reports Test_cancelled (Open MPI 4.1 cannot cancel
//    sends: a Wait on a cancelled unmatched Issend hangs even without us);
//  - MPI_PROC_NULL peers: source MPI_PROC_NULL, tag MPI_ANY_TAG, count 0;
//  - Sendrecv_replace with count 0; MPI_REQUEST_NULL inputs; empty statuses;
//  - invalid communicators with MPI_ERRORS_RETURN: an error code, no crash.
#include "check.hpp"

#include <cstring>

namespace {

constexpr int kSentinel = -4242;

MPI_Status sentinel_status() {
  MPI_Status st;
  std::memset(&st, 0x5a, sizeof st);
  st.MPI_SOURCE = kSentinel;
  st.MPI_TAG = kSentinel;
  st.MPI_ERROR = kSentinel;
  return st;
}
bool untouched(const MPI_Status& st) {
  const MPI_Status ref = sentinel_status();
  return std::memcmp(&st, &ref, sizeof st) == 0;
}
int count_of(const MPI_Status& st, MPI_Datatype t) {
  int n = -1;
  MPI_Get_count(&st, t, &n);
  return n;
}
bool cancelled(const MPI_Status& st) {
  int c = 0;
  MPI_Test_cancelled(&st, &c);
  return c != 0;
}
bool empty_status(const MPI_Status& st) {
  return st.MPI_SOURCE == MPI_ANY_SOURCE && st.MPI_TAG == MPI_ANY_TAG && count_of(st, MPI_INT) == 0;
}
int handler_calls = 0;
void count_errors(MPI_Comm*, int*, ...) { ++handler_calls; }

bool proc_null_status(const MPI_Status& st) {
  return st.MPI_SOURCE == MPI_PROC_NULL && st.MPI_TAG == MPI_ANY_TAG && count_of(st, MPI_INT) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CHECK(size >= 2);
  const bool pair = rank < 2;
  const int peer = 1 - rank;
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, pair ? 0 : 1, rank, &comm);

  if (pair) {
    // --- nothing completed: Test, Request_get_status, Testany, Iprobe
    // leave the status as it was.
    int buf = -1, flag = 1, index = 7;
    MPI_Request req;
    MPI_Irecv(&buf, 1, MPI_INT, peer, 100, comm, &req);
    MPI_Status st = sentinel_status();
    CHECK(MPI_Test(&req, &flag, &st) == MPI_SUCCESS && flag == 0 && untouched(st));
    flag = 1;
    CHECK(MPI_Request_get_status(req, &flag, &st) == MPI_SUCCESS && flag == 0 && untouched(st));
    flag = 1;
    CHECK(MPI_Testany(1, &req, &index, &flag, &st) == MPI_SUCCESS && flag == 0 && untouched(st));
    flag = 1;
    CHECK(MPI_Iprobe(peer, 101, comm, &flag, &st) == MPI_SUCCESS && flag == 0 && untouched(st));
    flag = 1;
    CHECK(MPI_Test(&req, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag == 0);

    // --- a cancelled receive: Test_cancelled, MPI_ERROR untouched by Wait.
    CHECK(MPI_Cancel(&req) == MPI_SUCCESS);
    st = sentinel_status();
    CHECK(MPI_Wait(&req, &st) == MPI_SUCCESS && req == MPI_REQUEST_NULL);
    CHECK(cancelled(st) && st.MPI_ERROR == kSentinel);

    // --- completed single calls: fields right, MPI_ERROR untouched.
    int out = 10 + rank;
    MPI_Irecv(&buf, 1, MPI_INT, peer, 103, comm, &req);
    MPI_Send(&out, 1, MPI_INT, peer, 103, comm);
    st = sentinel_status();
    flag = 0;
    while (!flag) CHECK(MPI_Request_get_status(req, &flag, &st) == MPI_SUCCESS);
    CHECK(st.MPI_SOURCE == peer && st.MPI_TAG == 103 && st.MPI_ERROR == kSentinel && !cancelled(st));
    st = sentinel_status();
    CHECK(MPI_Wait(&req, &st) == MPI_SUCCESS && buf == 10 + peer);
    CHECK(st.MPI_SOURCE == peer && st.MPI_TAG == 103 && count_of(st, MPI_INT) == 1 && st.MPI_ERROR == kSentinel);

    MPI_Irecv(&buf, 1, MPI_INT, peer, 104, comm, &req);
    MPI_Send(&out, 1, MPI_INT, peer, 104, comm);
    st = sentinel_status();
    flag = 0;
    while (!flag) CHECK(MPI_Test(&req, &flag, &st) == MPI_SUCCESS);
    CHECK(st.MPI_SOURCE == peer && st.MPI_TAG == 104 && st.MPI_ERROR == kSentinel);

    MPI_Send(&out, 1, MPI_INT, peer, 105, comm);
    st = sentinel_status();
    CHECK(MPI_Probe(peer, 105, comm, &st) == MPI_SUCCESS);
    CHECK(st.MPI_SOURCE == peer && st.MPI_TAG == 105 && count_of(st, MPI_INT) == 1 && st.MPI_ERROR == kSentinel);
    st = sentinel_status();
    CHECK(MPI_Recv(&buf, 1, MPI_INT, peer, 105, comm, &st) == MPI_SUCCESS && buf == 10 + peer);
    CHECK(st.MPI_SOURCE == peer && st.MPI_TAG == 105 && count_of(st, MPI_INT) == 1 && st.MPI_ERROR == kSentinel);

    MPI_Send(&out, 1, MPI_INT, peer, 106, comm);
    MPI_Message msg;
    st = sentinel_status();
    flag = 0;
    while (!flag) CHECK(MPI_Improbe(peer, 106, comm, &flag, &msg, &st) == MPI_SUCCESS);
    CHECK(st.MPI_SOURCE == peer && st.MPI_TAG == 106 && st.MPI_ERROR == kSentinel);
    st = sentinel_status();
    CHECK(MPI_Mrecv(&buf, 1, MPI_INT, &msg, &st) == MPI_SUCCESS && buf == 10 + peer);
    CHECK(st.MPI_SOURCE == peer && st.MPI_TAG == 106 && st.MPI_ERROR == kSentinel);

    st = sentinel_status();
    CHECK(MPI_Sendrecv(&out, 1, MPI_INT, peer, 107, &buf, 1, MPI_INT, peer, 107, comm, &st) == MPI_SUCCESS);
    CHECK(buf == 10 + peer && st.MPI_SOURCE == peer && st.MPI_TAG == 107 && st.MPI_ERROR == kSentinel);

    MPI_Irecv(&buf, 1, MPI_INT, peer, 108, comm, &req);
    MPI_Send(&out, 1, MPI_INT, peer, 108, comm);
    MPI_Request reqs[2] = {MPI_REQUEST_NULL, req};
    st = sentinel_status();
    CHECK(MPI_Waitany(2, reqs, &index, &st) == MPI_SUCCESS && index == 1 && reqs[1] == MPI_REQUEST_NULL);
    CHECK(st.MPI_SOURCE == peer && st.MPI_TAG == 108 && st.MPI_ERROR == kSentinel);

    // --- Sendrecv_replace: count 0, and a real one.
    st = sentinel_status();
    CHECK(MPI_Sendrecv_replace(&buf, 0, MPI_INT, peer, 109, peer, 109, comm, &st) == MPI_SUCCESS);
    CHECK(st.MPI_SOURCE == peer && st.MPI_TAG == 109 && count_of(st, MPI_INT) == 0 && st.MPI_ERROR == kSentinel);
    CHECK(MPI_Sendrecv_replace(nullptr, 0, MPI_INT, peer, 110, peer, 110, comm, MPI_STATUS_IGNORE) == MPI_SUCCESS);
    buf = out;
    CHECK(MPI_Sendrecv_replace(&buf, 1, MPI_INT, peer, 111, peer, 111, comm, MPI_STATUS_IGNORE) == MPI_SUCCESS);
    CHECK(buf == 10 + peer);

    // --- zero-count messages.
    CHECK(MPI_Sendrecv(nullptr, 0, MPI_INT, peer, 112, nullptr, 0, MPI_INT, peer, 112, comm, &st) == MPI_SUCCESS);
    CHECK(st.MPI_SOURCE == peer && count_of(st, MPI_INT) == 0);

    // --- multi-completion calls with MPI_STATUSES_IGNORE and statuses.
    int ins[2] = {-1, -1};
    MPI_Request rr[3];
    MPI_Irecv(&ins[0], 1, MPI_INT, peer, 113, comm, &rr[0]);
    MPI_Irecv(&ins[1], 1, MPI_INT, peer, 114, comm, &rr[1]);
    MPI_Isend(&out, 1, MPI_INT, peer, 114, comm, &rr[2]);
    MPI_Send(&out, 1, MPI_INT, peer, 113, comm);
    CHECK(MPI_Waitall(3, rr, MPI_STATUSES_IGNORE) == MPI_SUCCESS);
    CHECK(ins[0] == 10 + peer && ins[1] == 10 + peer);
    MPI_Irecv(&ins[0], 1, MPI_INT, peer, 115, comm, &rr[0]);
    MPI_Isend(&out, 1, MPI_INT, peer, 115, comm, &rr[1]);
    MPI_Status sts[2] = {sentinel_status(), sentinel_status()};
    int outcount = 0, indices[2];
    int done = 0;
    while (done < 2) {
      CHECK(MPI_Testsome(2, rr, &outcount, indices, sts) == MPI_SUCCESS);
      if (outcount != MPI_UNDEFINED) done += outcount;
    }
    CHECK(MPI_Waitsome(2, rr, &outcount, indices, sts) == MPI_SUCCESS && outcount == MPI_UNDEFINED);
    MPI_Irecv(&ins[0], 1, MPI_INT, peer, 116, comm, &rr[0]);
    sts[0] = sts[1] = sentinel_status();
    flag = 1;
    CHECK(MPI_Testall(1, rr, &flag, sts) == MPI_SUCCESS && flag == 0);
    CHECK(untouched(sts[0]));  // nothing written when not all completed
    MPI_Barrier(comm);  // the peer sends only after this Testall
    MPI_Send(&out, 1, MPI_INT, peer, 116, comm);
    CHECK(MPI_Waitall(1, rr, sts) == MPI_SUCCESS && sts[0].MPI_SOURCE == peer && sts[0].MPI_TAG == 116);
  }

  // --- MPI_PROC_NULL peers.
  int x = 5;
  MPI_Status st = sentinel_status();
  CHECK(MPI_Recv(&x, 1, MPI_INT, MPI_PROC_NULL, 1, comm, &st) == MPI_SUCCESS && proc_null_status(st));
  CHECK(x == 5);
  st = sentinel_status();
  CHECK(MPI_Sendrecv(&x, 1, MPI_INT, MPI_PROC_NULL, 1, &x, 1, MPI_INT, MPI_PROC_NULL, 1, comm, &st) == MPI_SUCCESS);
  CHECK(proc_null_status(st));
  st = sentinel_status();
  CHECK(MPI_Sendrecv_replace(&x, 1, MPI_INT, MPI_PROC_NULL, 1, MPI_PROC_NULL, 1, comm, &st) == MPI_SUCCESS);
  CHECK(proc_null_status(st) && x == 5);
  st = sentinel_status();
  CHECK(MPI_Sendrecv_replace(&x, 0, MPI_INT, MPI_PROC_NULL, 1, MPI_PROC_NULL, 1, comm, &st) == MPI_SUCCESS);
  CHECK(proc_null_status(st));
  st = sentinel_status();
  CHECK(MPI_Probe(MPI_PROC_NULL, 1, comm, &st) == MPI_SUCCESS && proc_null_status(st));
  MPI_Request req;
  MPI_Irecv(&x, 1, MPI_INT, MPI_PROC_NULL, 1, comm, &req);
  st = sentinel_status();
  CHECK(MPI_Wait(&req, &st) == MPI_SUCCESS && proc_null_status(st));
  CHECK(MPI_Send(&x, 1, MPI_INT, MPI_PROC_NULL, 1, comm) == MPI_SUCCESS);
  CHECK(MPI_Ssend(&x, 1, MPI_INT, MPI_PROC_NULL, 1, comm) == MPI_SUCCESS);

  // --- MPI_REQUEST_NULL inputs: complete at once with an empty status.
  req = MPI_REQUEST_NULL;
  st = sentinel_status();
  CHECK(MPI_Wait(&req, &st) == MPI_SUCCESS && empty_status(st));
  int flag = 0;
  st = sentinel_status();
  CHECK(MPI_Test(&req, &flag, &st) == MPI_SUCCESS && flag == 1 && empty_status(st));
  MPI_Request nulls[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  int index = 7;
  st = sentinel_status();
  CHECK(MPI_Waitany(2, nulls, &index, &st) == MPI_SUCCESS && index == MPI_UNDEFINED && empty_status(st));
  index = 7;
  flag = 0;
  st = sentinel_status();
  CHECK(MPI_Testany(2, nulls, &index, &flag, &st) == MPI_SUCCESS && flag == 1 && index == MPI_UNDEFINED &&
        empty_status(st));
  CHECK(MPI_Waitall(2, nulls, MPI_STATUSES_IGNORE) == MPI_SUCCESS);
  int outcount = 0, indices[2];
  CHECK(MPI_Waitsome(2, nulls, &outcount, indices, MPI_STATUSES_IGNORE) == MPI_SUCCESS &&
        outcount == MPI_UNDEFINED);

  // --- invalid communicators with MPI_ERRORS_RETURN: an error code comes
  // back (the error class MPI gives), nothing crashes.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  MPI_Group group;
  MPI_Comm_group(comm, &group);
  MPI_Comm made = MPI_COMM_SELF;
  int cls = MPI_SUCCESS;
  int rc = MPI_Comm_create(MPI_COMM_NULL, group, &made);
  MPI_Error_class(rc, &cls);
  CHECK(rc != MPI_SUCCESS && cls == MPI_ERR_COMM);
  // The app's error handler runs once per failed call, as without the
  // interposer (Open MPI reports an invalid communicator on MPI_COMM_WORLD).
  MPI_Errhandler counting;
  MPI_Comm_create_errhandler(count_errors, &counting);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, counting);
  handler_calls = 0;
  CHECK(MPI_Comm_create(MPI_COMM_NULL, group, &made) != MPI_SUCCESS && handler_calls == 1);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Errhandler_free(&counting);
  rc = MPI_Comm_create(comm, MPI_GROUP_NULL, &made);
  MPI_Error_class(rc, &cls);
  CHECK(rc != MPI_SUCCESS && cls == MPI_ERR_GROUP);
  rc = MPI_Comm_dup(MPI_COMM_NULL, &made);
  CHECK(rc != MPI_SUCCESS);
  const int remain[1] = {1};
  rc = MPI_Cart_sub(comm, remain, &made);  // comm has no topology
  MPI_Error_class(rc, &cls);
  CHECK(rc != MPI_SUCCESS && cls == MPI_ERR_TOPOLOGY);
  rc = MPI_Send(&x, 1, MPI_INT, 0, 1, MPI_COMM_NULL);
  MPI_Error_class(rc, &cls);
  CHECK(rc != MPI_SUCCESS && cls == MPI_ERR_COMM);
  rc = MPI_Recv(&x, 1, MPI_INT, size + 5, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  MPI_Error_class(rc, &cls);
  CHECK(rc != MPI_SUCCESS && cls == MPI_ERR_RANK);
  // A valid Comm_create still works (and is recorded) afterwards.
  CHECK(MPI_Comm_create(comm, group, &made) == MPI_SUCCESS);
  if (made != MPI_COMM_NULL) MPI_Comm_free(&made);
  MPI_Group_free(&group);

  MPI_Comm_free(&comm);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) std::printf("test_statuses: all checks passed\n");
  MPI_Finalize();
  return 0;
}
