// Re-issue and pending requests across a real restart: a checkpoint taken
// while calls are in flight, the job killed, a new job restored from the
// files, and the result must be exactly that of an uninterrupted run.
//
//   test_reissue <scenario> <mode> <dir>
//   mode: plain    no checkpoint (the reference run)
//         continue checkpoint, then keep running (the job that survives it)
//         save     checkpoint, then every rank is SIGKILLed inside it
//         restart  restore from <dir> and run to the end
//
// The program models what the Python layer does: its "frames" are the steps
// below, each making ONE application MPI call; State::pc is the step in
// progress when the capture callback runs, and a restarted rank re-runs that
// step, i.e. re-issues the very call it was in. Everything the steps need
// lives in State, saved whole (with the receive buffers of pending requests)
// next to pyckpt_mpi_state_save's bytes, in one file per rank.
#include "check.hpp"

#include <pyckpt/mpi/pyckpt_mpi.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

int rank_, size_;
enum class Mode { Plain, Continue, Save, Restart } mode;
std::string dir;

constexpr int kBig = 1 << 18;  // doubles: 2 MiB, beyond every eager limit
constexpr int kReqs = 8;
constexpr int kMessages = 200;  // mprobe scenario

// Everything a rank's program needs to resume: its "frames".
struct State {
  int pc = 0;          // step in progress (re-issued after a restart)
  int ckpt_done = 0;   // set by the capture callback, saved set; 1 in the reference run
  int holding = 0;     // between MPI_Mprobe and MPI_Mrecv
  int next_message = 0;
  MPI_Request reqs[kReqs];  // raw handles: meaningless after a restart
  std::uint64_t req_ids[kReqs];
  std::uint64_t ids_at_first_ckpt[kReqs];
  int small[kReqs];
  double big_out[kBig], big_in[kBig];
};
State& s = *new State();  // static lifetime, never destroyed: MPI may hold pointers into it

double value(int sender, int series, int i) { return 1e6 * sender + 1e3 * series + i; }

void fill(double* buf, int sender, int series) {
  for (int i = 0; i < kBig; ++i) buf[i] = value(sender, series, i);
}
void expect(const double* buf, int sender, int series) {
  for (int i = 0; i < kBig; ++i)
    if (buf[i] != value(sender, series, i)) {
      std::fprintf(stderr, "rank %d: element %d of series %d from %d is %g\n", rank_, i, series, sender, buf[i]);
      CHECK(!"received data differ from an uninterrupted run");
    }
}

pyckpt_mpi_stats stats() {
  pyckpt_mpi_stats st{};
  CHECK(pyckpt_mpi_get_stats(&st) == 0);
  return st;
}

// --- steps shared by scenarios -----------------------------------------------

// The rank that triggers the checkpoint; re-running it after a restart (or
// in the reference run) must not trigger another one.
void request_and_wait_for_checkpoint() {
  if (s.ckpt_done) return;
  pyckpt_mpi_request_checkpoint();
  while (!s.ckpt_done) CHECK(pyckpt_mpi_poll() == 0);
}
void wait_for_checkpoint() {
  while (!s.ckpt_done) CHECK(pyckpt_mpi_poll() == 0);
}
void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void send_notice(int to) {
  int one = 1;
  MPI_Send(&one, 1, MPI_INT, to, 1, MPI_COMM_WORLD);
}
void recv_notice(int from) {
  int v = 0;
  MPI_Recv(&v, 1, MPI_INT, from, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  CHECK(v == 1);
}
void recv_big(int from, int tag, int series) {
  MPI_Status st;
  MPI_Recv(s.big_in, kBig, MPI_DOUBLE, from, tag, MPI_COMM_WORLD, &st);
  int n = 0;
  MPI_Get_count(&st, MPI_DOUBLE, &n);
  CHECK(n == kBig && st.MPI_SOURCE == from && st.MPI_TAG == tag);
  expect(s.big_in, from, series);
}

using Steps = std::vector<std::function<void()>>;
// A rank that only takes part in the checkpoint.
Steps bystander() { return {wait_for_checkpoint}; }

// --- scenarios -----------------------------------------------------------------

// A blocking send whose message left before the cut: rank 0 is inside
// MPI_Ssend (or an MPI_Send beyond the eager size) when rank 1, which has
// not posted the receive, triggers the checkpoint. The message is drained
// into rank 1's channel state; the re-issued send must not send it again.
Steps blocking_send(bool synchronous) {
  if (rank_ == 0)
    return {[] { send_notice(1); },
            [synchronous] {
              fill(s.big_out, 0, 1);
              (synchronous ? MPI_Ssend : MPI_Send)(s.big_out, kBig, MPI_DOUBLE, 1, 2, MPI_COMM_WORLD);
              if (mode == Mode::Restart) CHECK(stats().sent == 0);  // re-issued: neither sent nor counted
            },
            [] {
              fill(s.big_out, 0, 2);  // a duplicate of series 1 would be received instead of this
              MPI_Send(s.big_out, kBig, MPI_DOUBLE, 1, 2, MPI_COMM_WORLD);
            }};
  if (rank_ == 1)
    return {[] { recv_notice(0); },
            [] {
              if (!s.ckpt_done) sleep_ms(300);  // rank 0 is in its send's progress loop by now
              request_and_wait_for_checkpoint();
            },
            [] { recv_big(0, 2, 1); }, [] { recv_big(0, 2, 2); }};
  return bystander();
}

// MPI_Sendrecv across the cut: its send drained by the peer, its receive
// still pending. Re-issued: the send is skipped, the receive posted again.
Steps sendrecv() {
  if (rank_ == 0)
    return {[] { send_notice(1); },
            [] {
              fill(s.big_out, 0, 1);
              MPI_Status st;
              MPI_Sendrecv(s.big_out, kBig, MPI_DOUBLE, 1, 2, s.big_in, kBig, MPI_DOUBLE, 1, 3, MPI_COMM_WORLD, &st);
              CHECK(st.MPI_SOURCE == 1 && st.MPI_TAG == 3);
              expect(s.big_in, 1, 1);
            },
            [] {
              fill(s.big_out, 0, 2);
              MPI_Send(s.big_out, kBig, MPI_DOUBLE, 1, 2, MPI_COMM_WORLD);
            }};
  if (rank_ == 1)
    return {[] { recv_notice(0); },
            [] {
              if (!s.ckpt_done) sleep_ms(300);
              request_and_wait_for_checkpoint();
            },
            [] {
              fill(s.big_out, 1, 1);
              MPI_Status st;
              MPI_Sendrecv(s.big_out, kBig, MPI_DOUBLE, 0, 3, s.big_in, kBig, MPI_DOUBLE, 0, 2, MPI_COMM_WORLD, &st);
              CHECK(st.MPI_SOURCE == 0 && st.MPI_TAG == 2);
              expect(s.big_in, 0, 1);
            },
            [] { recv_big(0, 2, 2); }};
  return bystander();
}

// A blocking receive whose message arrives while the cut runs: rank 1 is in
// MPI_Recv of a message large enough that its transfer outlasts the cut's
// agreement (the sender does not progress it before it triggers the
// checkpoint), so the data lands during the drain. The running job returns
// it from MPI_Recv; a restarted rank gets it again when it re-issues the
// receive. Its buffers are not in State: the re-issued receive refills
// them, and the sender's request is restored complete. (Open MPI's shared
// memory transport without single-copy makes the sender push every
// fragment, see main.)
constexpr int kHuge = 1 << 23;  // doubles: 64 MiB
std::vector<double>& huge() {
  static std::vector<double> v(kHuge);
  return v;
}
Steps recv_completed_in_drain() {
  if (rank_ == 0)
    return {[] {
              for (int i = 0; i < kHuge; ++i) huge()[static_cast<std::size_t>(i)] = value(0, 1, i);
              MPI_Isend(huge().data(), kHuge, MPI_DOUBLE, 1, 2, MPI_COMM_WORLD, &s.reqs[0]);
            },
            [] {
              if (!s.ckpt_done) sleep_ms(300);  // no MPI progress: the data stays here
              request_and_wait_for_checkpoint();
            },
            [] { MPI_Wait(&s.reqs[0], MPI_STATUS_IGNORE); },
            [] {
              s.small[0] = 77;
              MPI_Send(&s.small[0], 1, MPI_INT, 1, 3, MPI_COMM_WORLD);
            }};
  if (rank_ == 1)
    return {[] {
              MPI_Status st;
              MPI_Recv(huge().data(), kHuge, MPI_DOUBLE, 0, 2, MPI_COMM_WORLD, &st);
              int n = 0;
              MPI_Get_count(&st, MPI_DOUBLE, &n);
              CHECK(n == kHuge && st.MPI_SOURCE == 0 && st.MPI_TAG == 2);
              for (int i = 0; i < kHuge; ++i) CHECK(huge()[static_cast<std::size_t>(i)] == value(0, 1, i));
              // Counted once, in the epoch before the cut (which fell inside
              // this call, unless this is the reference run).
              std::uint64_t sent = 0, received = 0;
              CHECK(pyckpt_mpi_channel_counts(MPI_COMM_WORLD, 0, &sent, &received) == 0);
              CHECK(received == (mode == Mode::Plain ? 1u : 0u));
              CHECK(mode != Mode::Restart || stats().replayed == 1);
            },
            [] {
              int v = 0;
              MPI_Recv(&v, 1, MPI_INT, 0, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
              CHECK(v == 77);
            }};
  return bystander();
}

// Application requests pending at the cut, completed by MPI_Waitall after
// it: rank 0 holds a receive completed before the cut (A), one still
// pending (B, re-posted after a restart), a large send drained by the peer
// (C) and a small one already received (D), and is blocked in MPI_Recv (E,
// sent after the cut) when the checkpoint is taken. A second checkpoint
// follows while B is still held, to check ids and counts after a restart.
enum { kA, kB, kC, kD };
// Checked by the capture callback: what pending_requests reports at the
// first and at the second checkpoint, per slot of State::reqs (-1: any).
int expected_completed[2][kReqs] = {{-1, -1, -1, -1, -1, -1, -1, -1}, {-1, -1, -1, -1, -1, -1, -1, -1}};
Steps requests() {
  if (rank_ == 0)
    for (int k = 0; k < 2; ++k) {
      expected_completed[k][kA] = 1;  // its message was sent before the sender's cut
      expected_completed[k][kB] = k;  // sent after the first cut: pending at it
      expected_completed[k][kC] = expected_completed[k][kD] = 1;  // sends always are
    }
  auto second_checkpoint = [] {
    if (mode == Mode::Plain) return;
    CHECK(pyckpt_mpi_checkpoint() == 0);
  };
  if (rank_ == 0)
    return {[] { MPI_Irecv(&s.small[kA], 1, MPI_INT, 1, 10, MPI_COMM_WORLD, &s.reqs[kA]); },
            [] { MPI_Irecv(&s.small[kB], 1, MPI_INT, MPI_ANY_SOURCE, 11, MPI_COMM_WORLD, &s.reqs[kB]); },
            [] {
              fill(s.big_out, 0, 1);
              MPI_Isend(s.big_out, kBig, MPI_DOUBLE, 1, 12, MPI_COMM_WORLD, &s.reqs[kC]);
            },
            [] {
              s.small[kD] = 13;
              MPI_Isend(&s.small[kD], 1, MPI_INT, 1, 13, MPI_COMM_WORLD, &s.reqs[kD]);
            },
            [] {
              int v = 0;
              MPI_Recv(&v, 1, MPI_INT, 1, 14, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
              CHECK(v == 14);
            },
            second_checkpoint,
            [] {
              MPI_Status st[4];
              MPI_Waitall(4, s.reqs, st);
              CHECK(s.small[kA] == 10 && st[kA].MPI_SOURCE == 1 && st[kA].MPI_TAG == 10);
              CHECK(s.small[kB] == 11 && st[kB].MPI_SOURCE == 1 && st[kB].MPI_TAG == 11);
              int n = 0;
              MPI_Get_count(&st[kA], MPI_INT, &n);
              CHECK(n == 1);
              MPI_Get_count(&st[kB], MPI_INT, &n);
              CHECK(n == 1);
            }};
  if (rank_ == 1)
    return {[] {
              s.small[0] = 10;
              MPI_Send(&s.small[0], 1, MPI_INT, 0, 10, MPI_COMM_WORLD);
            },
            [] {
              int v = 0;
              MPI_Recv(&v, 1, MPI_INT, 0, 13, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
              CHECK(v == 13);
            },
            [] {
              if (!s.ckpt_done) sleep_ms(100);  // rank 0 reaches its MPI_Recv
              request_and_wait_for_checkpoint();
            },
            [] {
              s.small[1] = 14;
              MPI_Send(&s.small[1], 1, MPI_INT, 0, 14, MPI_COMM_WORLD);
            },
            [] {
              s.small[2] = 11;
              MPI_Send(&s.small[2], 1, MPI_INT, 0, 11, MPI_COMM_WORLD);
            },
            second_checkpoint, [] { recv_big(0, 12, 1); }};
  return {wait_for_checkpoint, second_checkpoint};
}

// Collectives: rank 0 requests the checkpoint and enters an MPI_Allreduce
// that the others (serving safe points meanwhile) enter later, so it is
// parked at that entry when the cut runs, and re-issues it after a restart.
Steps collectives() {
  auto allreduce = [](int k) {
    return [k] {
      int in = rank_ + k, out = 0;
      MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
      CHECK(out == size_ * (size_ - 1) / 2 + size_ * k);
    };
  };
  Steps steps{allreduce(1)};
  if (rank_ == 0 && mode == Mode::Restart) CHECK(s.pc == 2);  // parked at the entry of allreduce(2)
  if (rank_ == 0)
    steps.push_back([] {
      if (!s.ckpt_done) pyckpt_mpi_request_checkpoint();
    });
  else
    steps.push_back([] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      while (!s.ckpt_done && std::chrono::steady_clock::now() < until) CHECK(pyckpt_mpi_poll() == 0);
    });
  steps.push_back(allreduce(2));
  steps.push_back([] {
    int v = rank_ == size_ - 1 ? 42 : 0;
    MPI_Bcast(&v, 1, MPI_INT, size_ - 1, MPI_COMM_WORLD);
    CHECK(v == 42);
  });
  steps.push_back([] { MPI_Barrier(MPI_COMM_WORLD); });
  steps.push_back(allreduce(3));
  steps.push_back([] { CHECK(s.ckpt_done); });
  return steps;
}

// mpi4py's comm.recv(): MPI_Mprobe then MPI_Mrecv, here with an MPI call in
// between (a safe point). Checkpoints requested meanwhile must neither fail
// nor cut while the matched message is held.
Steps mprobe() {
  Steps steps;
  if (rank_ == 0) {
    for (int i = 0; i < kMessages; ++i)
      steps.push_back([i] {
        if (i == kMessages / 2 && !s.ckpt_done) pyckpt_mpi_request_checkpoint();
        s.small[0] = i;
        MPI_Send(&s.small[0], 1, MPI_INT, 1, 7, MPI_COMM_WORLD);
      });
    steps.push_back(wait_for_checkpoint);
  } else if (rank_ == 1) {
    for (int i = 0; i < kMessages; ++i)
      steps.push_back([i] {
        MPI_Message msg;
        MPI_Status st;
        MPI_Mprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &msg, &st);
        s.holding = 1;
        // Safe points while holding; now and then long enough for the
        // checkpoint request to arrive meanwhile.
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(i % 50 == 25 ? 50 : 0);
        do {
          int flag = 0;
          MPI_Iprobe(0, 99, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
        } while (std::chrono::steady_clock::now() < until);
        int v = -1;
        MPI_Mrecv(&v, 1, MPI_INT, &msg, MPI_STATUS_IGNORE);
        s.holding = 0;
        CHECK(v == i && st.MPI_TAG == 7);
      });
    steps.push_back(wait_for_checkpoint);
  } else {
    steps = bystander();
  }
  return steps;
}

// --- checkpoint files ------------------------------------------------------------
// rank<r>.ckpt: State, the mpi_wrap state bytes, the pending requests (id,
// completed, buffer as an offset into State).

std::string path() { return dir + "/rank" + std::to_string(rank_) + ".ckpt"; }

struct File {
  std::FILE* f;
  explicit File(const std::string& p, const char* how) : f(std::fopen(p.c_str(), how)) { CHECK(f != nullptr); }
  ~File() { std::fclose(f); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  void write(const void* p, std::size_t n) { CHECK(std::fwrite(p, 1, n, f) == n); }
  void read(void* p, std::size_t n) { CHECK(std::fread(p, 1, n, f) == n); }
};

std::uint64_t id_of(MPI_Request r) { return r == MPI_REQUEST_NULL ? 0 : pyckpt_mpi_request_id(r); }

struct PendingRecord {
  std::uint64_t id;
  std::int32_t is_recv, completed;
  std::uint64_t offset, bytes;
};

// What the capture callback took, for the write callback to store.
struct Captured {
  void* bytes = nullptr;  // pyckpt_mpi_state_save's
  std::size_t len = 0;
  std::vector<PendingRecord> pending;
} captured;

// Capture: checks what the library reports at the cut and, for the saved
// checkpoint, takes this layer's state bytes and the pending requests (no
// MPI: the write callback stores them).
int capture(void*) {
  // This process's checkpoint being taken (counted from the restart in a
  // restarted job, where `mode == Mode::Restart` decides instead).
  const std::uint64_t nth = stats().checkpoints + 1;
  CHECK(!s.holding);  // never a cut between MPI_Mprobe and MPI_Mrecv
  const pyckpt_mpi_request_info* pending = nullptr;
  std::size_t n = 0;
  CHECK(pyckpt_mpi_pending_requests(&pending, &n) == 0);
  // The app's view and the library's agree: every request it holds is listed.
  int held = 0;
  for (int i = 0; i < kReqs; ++i) {
    s.req_ids[i] = id_of(s.reqs[i]);
    held += s.req_ids[i] != 0;
  }
  CHECK(static_cast<std::size_t>(held) == n);
  for (std::size_t k = 0; k < n; ++k) {
    if (k > 0) CHECK(pending[k].id > pending[k - 1].id);  // posting order
    CHECK(!pending[k].is_recv || pending[k].bytes == sizeof(int));
    for (int i = 0; i < kReqs; ++i)
      if (const int e = expected_completed[mode == Mode::Restart || nth == 2][i];
          s.req_ids[i] == pending[k].id && e >= 0)
        CHECK(pending[k].completed == e);
  }
  if (mode != Mode::Restart)
    std::memcpy(s.ids_at_first_ckpt, s.req_ids, sizeof s.req_ids);
  else  // a second checkpoint after a restart sees the same ids
    for (int i = 0; i < kReqs; ++i) CHECK(s.req_ids[i] == 0 || s.req_ids[i] == s.ids_at_first_ckpt[i]);
  s.ckpt_done = 1;
  if (mode != Mode::Save || nth != 1) return 0;

  CHECK(pyckpt_mpi_state_save(&captured.bytes, &captured.len) == 0);
  for (std::size_t k = 0; k < n; ++k) {
    const auto* base = reinterpret_cast<const char*>(&s);
    const auto* buf = static_cast<const char*>(pending[k].buf);
    CHECK(!pending[k].is_recv || (buf >= base && buf + pending[k].bytes <= base + sizeof s));
    captured.pending.push_back(PendingRecord{pending[k].id, pending[k].is_recv, pending[k].completed,
                                             buf ? static_cast<std::uint64_t>(buf - base) : 0, pending[k].bytes});
  }
  return 0;
}

// Write (collective): for the saved checkpoint, one file per rank, then the
// job dies inside the cut.
int write(void*) {
  if (!captured.bytes) return 0;
  {
    File out(path(), "wb");
    out.write(&s, sizeof s);
    const std::uint64_t len64 = captured.len;
    out.write(&len64, sizeof len64);
    out.write(captured.bytes, captured.len);
    const std::uint64_t n64 = captured.pending.size();
    out.write(&n64, sizeof n64);
    for (const PendingRecord& r : captured.pending) out.write(&r, sizeof r);
    CHECK(std::fflush(out.f) == 0 && fsync(fileno(out.f)) == 0);
  }
  pyckpt_mpi_free(captured.bytes);
  captured.bytes = nullptr;
  // The files of all ranks are on disk: the job dies here, inside the cut.
  MPI_Barrier(MPI_COMM_WORLD);  // internal: the callback's MPI calls pass through
  if (rank_ == 0) {
    std::printf("checkpoint saved by all ranks, killing the job\n");
    std::fflush(stdout);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  std::raise(SIGKILL);
  return 1;
}

// What the Python layer does after MPI_Init: restore the memory, then this
// layer's state, re-post pending receives into the restored buffers and
// rebind the app's request objects by id.
void restore() {
  File in(path(), "rb");
  in.read(&s, sizeof s);
  std::uint64_t len = 0;
  in.read(&len, sizeof len);
  std::vector<char> bytes(len);
  in.read(bytes.data(), len);
  CHECK(pyckpt_mpi_state_restore(bytes.data(), bytes.size()) == 0);
  std::uint64_t n = 0;
  in.read(&n, sizeof n);
  for (std::uint64_t k = 0; k < n; ++k) {
    PendingRecord r{};
    in.read(&r, sizeof r);
    if (r.is_recv && !r.completed)
      CHECK(pyckpt_mpi_request_repost(r.id, reinterpret_cast<char*>(&s) + r.offset) == 0);
  }
  for (int i = 0; i < kReqs; ++i) {
    s.reqs[i] = s.req_ids[i] ? pyckpt_mpi_request_from_id(s.req_ids[i]) : MPI_REQUEST_NULL;
    CHECK(!s.req_ids[i] || s.reqs[i] != MPI_REQUEST_NULL);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CHECK(argc == 4);
  const std::string scenario = argv[1], how = argv[2];
  dir = argv[3];
  mode = how == "plain" ? Mode::Plain : how == "continue" ? Mode::Continue : how == "save" ? Mode::Save : Mode::Restart;
  CHECK(pyckpt_mpi_set_capture_callbacks(&capture, &write, nullptr) == 0);
  // Large messages move only as the sender progresses (no receiver-side
  // single copy): what keeps recv_in_drain's message in flight during a cut.
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  for (auto& r : s.reqs) r = MPI_REQUEST_NULL;
  s.ckpt_done = mode == Mode::Plain;
  if (mode == Mode::Restart) restore();
  const int resumed_at = s.pc;

  Steps steps = scenario == "ssend"            ? blocking_send(true)
                : scenario == "send_large"     ? blocking_send(false)
                : scenario == "sendrecv"       ? sendrecv()
                : scenario == "recv_in_drain"  ? recv_completed_in_drain()
                : scenario == "requests"       ? requests()
                : scenario == "collectives"    ? collectives()
                : scenario == "mprobe"         ? mprobe()
                                               : Steps{};
  CHECK(!steps.empty());
  for (; s.pc < static_cast<int>(steps.size()); ++s.pc) steps[static_cast<std::size_t>(s.pc)]();

  // Nothing lost (all steps received what they expected) and nothing
  // duplicated or left over: no message is waiting anywhere.
  MPI_Barrier(MPI_COMM_WORLD);
  sleep_ms(50);
  int flag = 0;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
  CHECK(!flag && stats().channel_pending == 0);
  if (mode == Mode::Continue) CHECK(stats().checkpoints >= 1);
  MPI_Barrier(MPI_COMM_WORLD);
  std::printf("rank %d: %s %s ok (resumed at step %d)\n", rank_, scenario.c_str(), how.c_str(), resumed_at);
  MPI_Finalize();
  return 0;
}
