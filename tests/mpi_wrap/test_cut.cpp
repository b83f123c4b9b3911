// The consistent cut of mpi_wrap, driven by C++ MPI programs (linked to
// libpyckpt_mpi, so MPI_* resolve to the interposer). One scenario per run:
//   test_cut <scenario> [dir]
#include "check.hpp"

#include <pyckpt/mpi/pyckpt_mpi.h>

#include <sys/time.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

int rank_, size_;

pyckpt_mpi_stats stats() {
  pyckpt_mpi_stats s{};
  CHECK(pyckpt_mpi_get_stats(&s) == 0);
  return s;
}

// Callbacks of the tests. capture records what the cut looked like and,
// for the restart scenario, takes the mpi_wrap state; write does collective
// MPI traffic of its own (as hdf5_io would) and writes that state to
// <dir>/rank<r>.bin.
struct Capture {
  int calls = 0, writes = 0;
  // Scenario agreement: the rank whose capture fails, or answers EAGAIN
  // (again_left times), or whose write fails; -1: none.
  int fail_capture_on = -1, again_on = -1, again_left = 0, fail_write_on = -1;
  std::uint64_t pending_at_cut = 0;
  std::string dir;
  std::vector<char> state;
  static int capture(void* user) {
    auto* self = static_cast<Capture*>(user);
    ++self->calls;
    if (rank_ == self->fail_capture_on) return PYCKPT_MPI_EINVAL;
    if (rank_ == self->again_on && self->again_left > 0) {
      --self->again_left;
      return PYCKPT_MPI_EAGAIN;
    }
    self->pending_at_cut = stats().channel_pending;
    if (!self->dir.empty()) {
      void* data = nullptr;
      size_t len = 0;
      if (pyckpt_mpi_state_save(&data, &len) != 0) return 1;
      self->state.assign(static_cast<const char*>(data), static_cast<const char*>(data) + len);
      pyckpt_mpi_free(data);
    }
    return 0;
  }
  static int write(void* user) {
    auto* self = static_cast<Capture*>(user);
    ++self->writes;
    const auto before = stats();
    int one = 1, n = 0;
    MPI_Allreduce(&one, &n, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);  // internal: not counted
    if (n != size_ || stats().collectives != before.collectives || stats().intercepted != before.intercepted)
      return 1;
    if (rank_ == self->fail_write_on) return 1;
    if (!self->dir.empty())
      std::ofstream(self->dir + "/rank" + std::to_string(rank_) + ".bin", std::ios::binary)
          .write(self->state.data(), static_cast<std::streamsize>(self->state.size()));
    return 0;
  }
};
Capture capture;
std::string scenario;

// The init callback (at the end of MPI_Init, on every rank): registers the
// capture callbacks and, in the restarted job, restores this layer's state
// from <dir>/rank<r>.bin before the program runs (as the Python layer does).
int init(void*) {
  if (pyckpt_mpi_set_capture_callbacks(&Capture::capture, &Capture::write, &capture) != 0) return 1;
  int rank = -1, size = 0;
  if (pyckpt_mpi_world(&rank, &size) != 0 || rank < 0 || size < 1) return 1;
  if (scenario != "restart_load") return 0;
  std::ifstream in(capture.dir + "/rank" + std::to_string(rank) + ".bin", std::ios::binary);
  if (!in.good()) return 1;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return pyckpt_mpi_state_restore(bytes.data(), bytes.size());
}

// Counting: exact per-(communicator, peer) counts, and their reset at a cut.
void counting() {
  MPI_Comm dup;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  const int peer = (rank_ + 1) % size_, from = (rank_ + size_ - 1) % size_;
  std::vector<MPI_Request> reqs(6);
  int out[3] = {1, 2, 3}, in[3];
  for (int i = 0; i < 3; ++i) MPI_Isend(&out[i], 1, MPI_INT, peer, i, MPI_COMM_WORLD, &reqs[static_cast<size_t>(i)]);
  for (int i = 0; i < 3; ++i) MPI_Irecv(&in[i], 1, MPI_INT, from, i, MPI_COMM_WORLD, &reqs[static_cast<size_t>(3 + i)]);
  MPI_Waitall(6, reqs.data(), MPI_STATUSES_IGNORE);
  MPI_Sendrecv(out, 1, MPI_INT, peer, 0, in, 1, MPI_INT, from, 0, dup, MPI_STATUS_IGNORE);
  std::uint64_t s = 0, r = 0;
  CHECK(pyckpt_mpi_channel_counts(MPI_COMM_WORLD, peer, &s, &r) == 0);
  CHECK(s == 3 && (peer != from || r == 3));
  CHECK(pyckpt_mpi_channel_counts(MPI_COMM_WORLD, from, &s, &r) == 0);
  CHECK(r == 3);
  CHECK(pyckpt_mpi_channel_counts(dup, peer, &s, &r) == 0);
  CHECK(s == 1);
  // Sends MPI refuses (errors returned) are no messages: nothing counted, no
  // write past the per-peer counters (an invalid rank once corrupted the
  // heap), and the cut below does not wait for them.
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  MPI_Request refused;
  CHECK(MPI_Send(out, 1, MPI_INT, size_ + 5, 0, dup) != MPI_SUCCESS);
  CHECK(MPI_Ssend(out, 1, MPI_INT, size_ + 5, 0, dup) != MPI_SUCCESS);
  CHECK(MPI_Isend(out, 1, MPI_INT, size_ + 5, 0, dup, &refused) != MPI_SUCCESS);
  CHECK(MPI_Send(out, 1, MPI_DATATYPE_NULL, peer, 0, dup) != MPI_SUCCESS);
  CHECK(MPI_Sendrecv(out, 1, MPI_INT, size_ + 5, 0, in, 1, MPI_INT, from, 0, dup, MPI_STATUS_IGNORE) !=
        MPI_SUCCESS);
  CHECK(pyckpt_mpi_channel_counts(dup, peer, &s, &r) == 0);
  CHECK(s == 1);
  CHECK(pyckpt_mpi_checkpoint() == 0);
  CHECK(pyckpt_mpi_channel_counts(MPI_COMM_WORLD, peer, &s, &r) == 0);
  CHECK(s == 0 && r == 0);
  CHECK(pyckpt_mpi_comm_id(MPI_COMM_WORLD) == 1 && pyckpt_mpi_comm_id(MPI_COMM_SELF) == 2);
  // Communicator ids agree across ranks; datatype ids map back to handles.
  std::uint64_t id = pyckpt_mpi_comm_id(dup), id0 = id;
  MPI_Bcast(&id0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  CHECK(id > 2 && id == id0 && pyckpt_mpi_comm_from_id(id) == dup);
  MPI_Datatype vec;
  MPI_Type_vector(2, 1, 3, MPI_INT, &vec);
  MPI_Type_commit(&vec);
  CHECK(pyckpt_mpi_type_from_id(pyckpt_mpi_type_id(vec)) == vec);
  CHECK(pyckpt_mpi_type_from_id(pyckpt_mpi_type_id(MPI_DOUBLE)) == MPI_DOUBLE);
  MPI_Type_free(&vec);
  MPI_Comm_free(&dup);
}

// Drain: 100 messages to a slow receiver; 90 are in flight at the cut and
// must come back, in order, from channel state.
void drain() {
  constexpr int kN = 100, kEarly = 10;
  if (rank_ == 0) {
    std::vector<int> data(kN);
    std::vector<MPI_Request> reqs(kN);
    for (int i = 0; i < kN; ++i) {
      data[static_cast<size_t>(i)] = i;
      MPI_Isend(&data[static_cast<size_t>(i)], 1, MPI_INT, 1, 5, MPI_COMM_WORLD, &reqs[static_cast<size_t>(i)]);
    }
    CHECK(pyckpt_mpi_checkpoint() == 0);
    MPI_Waitall(kN, reqs.data(), MPI_STATUSES_IGNORE);
  } else if (rank_ == 1) {
    int v = -1;
    for (int i = 0; i < kEarly; ++i) {
      MPI_Recv(&v, 1, MPI_INT, 0, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      CHECK(v == i);
    }
    MPI_Barrier(MPI_COMM_SELF);  // give the sender time: nothing else to wait for
    CHECK(pyckpt_mpi_checkpoint() == 0);
    CHECK(capture.pending_at_cut == kN - kEarly);
    CHECK(stats().drained == kN - kEarly);
    for (int i = kEarly; i < kN; ++i) {
      MPI_Status st;
      if (i % 3 == 0) {  // probe first: must see the drained message
        MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
        CHECK(st.MPI_SOURCE == 0 && st.MPI_TAG == 5);
        int count = 0;
        MPI_Get_count(&st, MPI_INT, &count);
        CHECK(count == 1);
      }
      if (i % 2 == 0) {
        MPI_Recv(&v, 1, MPI_INT, 0, 5, MPI_COMM_WORLD, &st);
      } else {
        MPI_Request r;
        MPI_Irecv(&v, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &r);
        MPI_Wait(&r, &st);
      }
      CHECK(v == i);  // replayed in send order
      CHECK(st.MPI_SOURCE == 0 && st.MPI_TAG == 5);
    }
    CHECK(stats().channel_pending == 0 && stats().replayed == kN - kEarly);
  } else {
    CHECK(pyckpt_mpi_checkpoint() == 0);
  }
  CHECK(capture.calls == 1 && capture.writes == 1);
}

// ANY_SOURCE/ANY_TAG master-worker: per-source order survives the cut.
void any_source() {
  constexpr int kPer = 8;
  if (rank_ != 0) {
    for (int i = 0; i < kPer; ++i) {
      int msg[2] = {rank_, i};
      MPI_Send(msg, 2, MPI_INT, 0, i % 3, MPI_COMM_WORLD);
    }
    CHECK(pyckpt_mpi_checkpoint() == 0);
  } else {
    std::vector<int> next(static_cast<size_t>(size_), 0);
    auto take = [&] {
      int msg[2];
      MPI_Status st;
      MPI_Recv(msg, 2, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
      CHECK(st.MPI_SOURCE == msg[0] && st.MPI_TAG == msg[1] % 3);
      CHECK(msg[1] == next[static_cast<size_t>(msg[0])]++);
    };
    take();
    take();
    CHECK(pyckpt_mpi_checkpoint() == 0);
    for (int i = 2; i < kPer * (size_ - 1); ++i) take();
    CHECK(stats().channel_pending == 0);
  }
}

// A checkpoint requested asynchronously by one rank while the others are
// blocked in Recv, Wait and a collective: they take part from inside.
void blocked() {
  int v = 0, sum = 0;
  if (rank_ == 0) {
    pyckpt_mpi_request_checkpoint();
    MPI_Allreduce(&rank_, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    // Rank 0 serves safe points until the cut is done; only then does it
    // send what the others are blocked waiting for.
    while (stats().checkpoints == 0) CHECK(pyckpt_mpi_poll() == 0);
    v = 42;
    MPI_Send(&v, 1, MPI_INT, 1, 0, MPI_COMM_WORLD);
    for (int r = 2; r < size_; ++r) MPI_Send(&v, 1, MPI_INT, r, 1, MPI_COMM_WORLD);
  } else if (rank_ == 1) {
    MPI_Allreduce(&rank_, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Recv(&v, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);  // blocked across the cut
    CHECK(v == 42 && stats().checkpoints == 1);
  } else {
    MPI_Request r;
    MPI_Irecv(&v, 1, MPI_INT, 0, 1, MPI_COMM_WORLD, &r);
    MPI_Allreduce(&rank_, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Wait(&r, MPI_STATUS_IGNORE);  // blocked across the cut
    CHECK(v == 42 && stats().checkpoints == 1);
  }
  CHECK(sum == size_ * (size_ - 1) / 2);
  // Lagging ranks: rank 0 got ahead by one collective before requesting.
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank_ == size_ - 1) pyckpt_mpi_request_checkpoint();
  for (int i = 0; i < 3; ++i) MPI_Allreduce(&rank_, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  CHECK(stats().checkpoints == 2);
  CHECK(capture.calls == 2);
}

// Unsupported call: the checkpoint fails with an error naming it.
void unsupported() {
  int buf = 0;
  MPI_Request persistent;
  MPI_Send_init(&buf, 1, MPI_INT, 0, 0, MPI_COMM_SELF, &persistent);
  MPI_Request_free(&persistent);
  CHECK(pyckpt_mpi_checkpoint() == PYCKPT_MPI_EUNSUPPORTED);
  CHECK(std::strstr(pyckpt_mpi_last_error(), "MPI_Send_init") != nullptr);
  CHECK(capture.calls == 0 && capture.writes == 0);
}

// The job-wide agreement on a checkpoint's outcome: a capture failing on one
// rank fails the checkpoint on all, with one code and no write; EAGAIN on
// one rank abandons the cut quietly and keeps the request, so the next safe
// point tries again; a write failing on one rank fails it on all.
void agreement() {
  const auto says = [](const char* what) { return std::strstr(pyckpt_mpi_last_error(), what) != nullptr; };
  capture.fail_capture_on = size_ - 1;
  CHECK(pyckpt_mpi_checkpoint() == PYCKPT_MPI_ECALLBACK);
  CHECK(capture.calls == 1 && capture.writes == 0 && stats().checkpoints == 0);
  CHECK(says(rank_ == size_ - 1 ? "the capture callback failed" : "the capture callback failed on another rank"));
  capture.fail_capture_on = -1;
  capture.again_on = 0;
  capture.again_left = 2;
  CHECK(pyckpt_mpi_checkpoint() == 0);
  CHECK(capture.calls == 1 + 3 && capture.writes == 1 && stats().checkpoints == 1);
  capture.fail_write_on = 0;
  CHECK(pyckpt_mpi_checkpoint() == PYCKPT_MPI_ECALLBACK);
  CHECK(capture.calls == 5 && capture.writes == 2 && stats().checkpoints == 1);
  CHECK(says(rank_ == 0 ? "the write callback failed" : "the write callback failed on another rank"));
  capture.fail_write_on = -1;
  CHECK(pyckpt_mpi_checkpoint() == 0);
  CHECK(stats().checkpoints == 2);
}

// Communicators made and freed while checkpoints are requested at moments
// that differ per rank (a timer signal on every rank): a request reaches
// ranks on different sides of a creation or a free (as with mpi4py, whose
// first lowercase collective on a communicator dups it). Every cut must be
// agreed on by all ranks: no hang, the same number of checkpoints everywhere.
void comm_churn() {
  CHECK(pyckpt_mpi_install_signal_trigger(SIGALRM) == 0);
  itimerval every{};
  every.it_interval.tv_usec = every.it_value.tv_usec = 700 + 350 * rank_;
  CHECK(setitimer(ITIMER_REAL, &every, nullptr) == 0);
  const int peer = (rank_ + 1) % size_, from = (rank_ + size_ - 1) % size_;
  std::vector<MPI_Comm> kept;
  // At least 300 rounds and 20 checkpoints (the timers do not run on a
  // loaded machine as they do on an idle one).
  long long fewest = 0;
  for (int i = 0; i < 300 || fewest < 20; ++i) {
    CHECK(i < 100000);
    MPI_Comm dup, half;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    int v = rank_ == i % size_ ? i : -1, got = -1;
    MPI_Sendrecv(&v, 1, MPI_INT, peer, 0, &got, 1, MPI_INT, from, 0, dup, MPI_STATUS_IGNORE);
    MPI_Bcast(&v, 1, MPI_INT, i % size_, dup);
    CHECK(v == i);
    MPI_Comm_split(dup, rank_ % 2, rank_, &half);
    int one = 1, n = 0;
    MPI_Allreduce(&one, &n, 1, MPI_INT, MPI_SUM, half);
    CHECK(n == (size_ + 1 - rank_ % 2) / 2);
    MPI_Comm_free(&half);
    if (i % 3 == 0) kept.push_back(dup);  // freed later, in another order
    else MPI_Comm_free(&dup);
    if (kept.size() == 4) {
      for (auto it = kept.rbegin(); it != kept.rend(); ++it) MPI_Comm_free(&*it);
      kept.clear();
    }
    const auto mine = static_cast<long long>(stats().checkpoints);
    MPI_Allreduce(&mine, &fewest, 1, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
  }
  every = itimerval{};
  setitimer(ITIMER_REAL, &every, nullptr);
  for (MPI_Comm& c : kept) MPI_Comm_free(&c);
  MPI_Barrier(MPI_COMM_WORLD);
  // Read together: a request still pending can start a checkpoint at any
  // MPI call from here on.
  const auto done = static_cast<long long>(stats().checkpoints);
  const int calls = capture.calls;
  long long lo = 0, hi = 0;
  MPI_Allreduce(&done, &lo, 1, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&done, &hi, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
  if (!(lo == hi && lo >= 20 && calls == done))
    std::fprintf(stderr, "rank %d: checkpoints %lld (min %lld, max %lld), capture callbacks %d\n", rank_, done, lo, hi,
                 calls);
  CHECK(lo == hi && lo >= 20 && calls == done);
}

// Checkpoints while the even ranks are in the middle of a run of
// collectives on their split communicator and the odd ranks already wait in
// the next collective on world: the cut lies beyond collectives on the split
// communicator that none of its members had entered when the checkpoint
// began (the target on world can only be reached through them). Rank 0
// requests each checkpoint late in its run, after its split partner entered
// the next collective, so the members are at different points.
void split_lag() {
  constexpr int kSteps = 5, kRun = 8;
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, rank_ % 2, rank_, &half);
  int half_size = 0;
  MPI_Comm_size(half, &half_size);
  const bool even = rank_ % 2 == 0;
  for (int step = 0; step < kSteps; ++step) {
    int v = step, sum = 0;
    MPI_Allreduce(&v, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    CHECK(sum == step * size_);
    for (int k = 0; k < kRun; ++k) {
      if (even) usleep(1000);
      if (rank_ == 0 && k == 3) {
        usleep(30000);
        pyckpt_mpi_request_checkpoint();
      }
      int x = k + step, y = 0;
      MPI_Allreduce(&x, &y, 1, MPI_INT, MPI_SUM, half);
      CHECK(y == (k + step) * half_size);
    }
  }
  // The last step's cut lies at this barrier (world's target, entered by
  // the odd ranks during the runs); it runs at the next safe point.
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  const auto done = stats().checkpoints;
  if (!(done == kSteps && capture.calls == kSteps))
    std::fprintf(stderr, "rank %d: checkpoints %llu, capture callbacks %d, expected %d\n", rank_,
                 static_cast<unsigned long long>(done), capture.calls, kSteps);
  CHECK(done == kSteps && capture.calls == kSteps);
  MPI_Comm_free(&half);
}

// Restart, part 1: a split communicator and a derived type; messages in
// flight on the split at the cut. State saved to <dir>; the job then ends.
constexpr int kRestartN = 20, kRestartEarly = 5;
void restart_save() {
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, rank_ % 2, -rank_, &half);  // reversed order
  int hr, hs;
  MPI_Comm_rank(half, &hr);
  MPI_Comm_size(half, &hs);
  MPI_Datatype pair;
  MPI_Type_vector(2, 1, 2, MPI_INT, &pair);
  MPI_Type_commit(&pair);
  std::vector<int> data(kRestartN);
  std::vector<MPI_Request> reqs;
  if (hr == 0 && hs > 1)
    for (int i = 0; i < kRestartN; ++i) {
      data[static_cast<size_t>(i)] = 1000 * rank_ + i;
      reqs.emplace_back();
      MPI_Isend(&data[static_cast<size_t>(i)], 1, MPI_INT, 1, i, half, &reqs.back());
    }
  if (hr == 1)
    for (int i = 0; i < kRestartEarly; ++i) {
      int v;
      MPI_Recv(&v, 1, MPI_INT, 0, i, half, MPI_STATUS_IGNORE);
    }
  MPI_Barrier(MPI_COMM_SELF);
  CHECK(pyckpt_mpi_checkpoint() == 0);
  MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
  std::ofstream(capture.dir + "/ids" + std::to_string(rank_))
      << pyckpt_mpi_comm_id(half) << ' ' << pyckpt_mpi_type_id(pair) << '\n';
  // Deliberately no receive of the remaining messages: they live on only
  // in the saved channel state.
}

// Restart, part 2 (a new mpirun): lineage replayed, channel re-delivered.
// The state was restored by the init callback, inside MPI_Init.
void restart_load() {
  std::uint64_t comm_id = 0, type_id = 0;
  std::ifstream(capture.dir + "/ids" + std::to_string(rank_)) >> comm_id >> type_id;
  MPI_Comm half = pyckpt_mpi_comm_from_id(comm_id);
  CHECK(half != MPI_COMM_NULL);
  int hr, hs;
  MPI_Comm_rank(half, &hr);
  MPI_Comm_size(half, &hs);
  CHECK(hs == (size_ + 1 - rank_ % 2) / 2);
  // key = -rank: the highest world rank of each colour is rank 0 of half.
  int first = rank_ % 2;
  while (first + 2 < size_) first += 2;
  CHECK(hr == (first - rank_) / 2);
  MPI_Datatype pair = pyckpt_mpi_type_from_id(type_id);
  CHECK(pair != MPI_DATATYPE_NULL);
  int tsize = 0;
  MPI_Aint lb, extent;
  MPI_Type_size(pair, &tsize);
  MPI_Type_get_extent(pair, &lb, &extent);
  CHECK(tsize == 2 * static_cast<int>(sizeof(int)) && extent == 3 * static_cast<MPI_Aint>(sizeof(int)));
  if (hr == 1) {
    CHECK(stats().channel_pending == kRestartN - kRestartEarly);
    for (int i = kRestartEarly; i < kRestartN; ++i) {
      int v = -1;
      MPI_Recv(&v, 1, MPI_INT, 0, i, half, MPI_STATUS_IGNORE);
      CHECK(v == 1000 * first + i);
    }
  }
  CHECK(stats().channel_pending == 0);
  // The restored communicator carries new traffic normally.
  int sum = 0;
  MPI_Allreduce(&hr, &sum, 1, MPI_INT, MPI_SUM, half);
  CHECK(sum == hs * (hs - 1) / 2);
}

}  // namespace

int main(int argc, char** argv) {
  CHECK(argc >= 2);
  scenario = argv[1];
  if (argc >= 3) capture.dir = argv[2];
  CHECK(pyckpt_mpi_set_init_callback(&init, nullptr) == 0);
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  int wr = -1, ws = 0;
  CHECK(pyckpt_mpi_world(&wr, &ws) == 0 && wr == rank_ && ws == size_);
  const std::string& what = scenario;
  if (what == "counting") counting();
  else if (what == "drain") drain();
  else if (what == "any_source") any_source();
  else if (what == "blocked") blocked();
  else if (what == "unsupported") unsupported();
  else if (what == "agreement") agreement();
  else if (what == "comm_churn") comm_churn();
  else if (what == "split_lag") split_lag();
  else if (what == "restart_save") restart_save();
  else if (what == "restart_load") restart_load();
  else CHECK(!"unknown scenario");
  MPI_Finalize();
  if (rank_ == 0) std::printf("%s: ok\n", what.c_str());
  return 0;
}
