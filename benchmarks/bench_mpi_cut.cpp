// Coordination cost of mpi_wrap's consistent cut, without I/O: every rank
// calls pyckpt_mpi_checkpoint() N times; the capture callback only copies
// pyckpt_mpi_state_save()'s bytes into memory. Two variants, alternating:
//   empty    - no application message in flight at the cut;
//   inflight - before each checkpoint every rank MPI_Isends K messages of B
//              bytes to its right neighbour; they are drained into channel
//              state by the cut and received (from it) afterwards.
// Baseline in the same run: PMPI_Barrier on MPI_COMM_WORLD.
//
// Protocol calls are counted per rank and checkpoint: this program defines
// the PMPI_* functions the protocol uses and forwards them (dlsym
// RTLD_NEXT); the interposer's calls bind to them (the executable exports
// them), and only calls made inside pyckpt_mpi_checkpoint() are counted. The
// point-to-point messages a collective is made of are MPI's business and not
// visible here (benchmarks/README.md estimates them).
//
//   mpirun -np 4 bin/bench_mpi_cut [N=40] [K=8] [B=1024] [C=0]
// C: extra communicators (MPI_Comm_dup of world) the app holds; they add
// words to the protocol's messages, not rounds (all on the control comm).
#include <pyckpt/mpi/pyckpt_mpi.h>

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int rank_ = 0, size_ = 1;
bool counting = false;  // inside pyckpt_mpi_checkpoint()

enum Kind { kSend, kRecv, kIprobe, kIallgather, kIallgatherv, kIbarrier, kAlltoall, kAlltoallv, kAllreduce, kMrecv, kKinds };
const char* const kKindNames[kKinds] = {"Send",     "Recv",      "Iprobe",    "Iallgather", "Iallgatherv",
                                        "Ibarrier", "Alltoall",  "Alltoallv", "Allreduce",  "Mrecv(drain)"};
std::array<std::uint64_t, kKinds> calls{};
// Wall time at the first call of a kind in the current checkpoint.
std::array<double, kKinds> first{};

template <typename F>
F next(const char* name) {
  static_assert(sizeof(F) == sizeof(void*));
  void* f = dlsym(RTLD_NEXT, name);
  if (!f) {
    std::fprintf(stderr, "bench_mpi_cut: %s not found\n", name);
    std::abort();
  }
  F out;
  std::memcpy(&out, &f, sizeof f);
  return out;
}

double now();
void note(Kind k) {
  if (!counting) return;
  if (calls[k]++ == 0) first[k] = now();
}

}  // namespace

// --- PMPI forwarders (the interposer's protocol calls bind here) -------------
extern "C" {
int PMPI_Send(const void* b, int c, MPI_Datatype t, int d, int tag, MPI_Comm comm) {
  static auto f = next<decltype(&PMPI_Send)>("PMPI_Send");
  note(kSend);
  return f(b, c, t, d, tag, comm);
}
int PMPI_Recv(void* b, int c, MPI_Datatype t, int s, int tag, MPI_Comm comm, MPI_Status* st) {
  static auto f = next<decltype(&PMPI_Recv)>("PMPI_Recv");
  note(kRecv);
  return f(b, c, t, s, tag, comm, st);
}
int PMPI_Iprobe(int s, int tag, MPI_Comm comm, int* flag, MPI_Status* st) {
  static auto f = next<decltype(&PMPI_Iprobe)>("PMPI_Iprobe");
  note(kIprobe);
  return f(s, tag, comm, flag, st);
}
int PMPI_Iallgather(const void* sb, int sc, MPI_Datatype st, void* rb, int rc, MPI_Datatype rt, MPI_Comm comm,
                    MPI_Request* r) {
  static auto f = next<decltype(&PMPI_Iallgather)>("PMPI_Iallgather");
  note(kIallgather);
  return f(sb, sc, st, rb, rc, rt, comm, r);
}
int PMPI_Iallgatherv(const void* sb, int sc, MPI_Datatype st, void* rb, const int rc[], const int rd[],
                     MPI_Datatype rt, MPI_Comm comm, MPI_Request* r) {
  static auto f = next<decltype(&PMPI_Iallgatherv)>("PMPI_Iallgatherv");
  note(kIallgatherv);
  return f(sb, sc, st, rb, rc, rd, rt, comm, r);
}
int PMPI_Ibarrier(MPI_Comm comm, MPI_Request* r) {
  static auto f = next<decltype(&PMPI_Ibarrier)>("PMPI_Ibarrier");
  note(kIbarrier);
  return f(comm, r);
}
int PMPI_Alltoall(const void* sb, int sc, MPI_Datatype st, void* rb, int rc, MPI_Datatype rt, MPI_Comm comm) {
  static auto f = next<decltype(&PMPI_Alltoall)>("PMPI_Alltoall");
  note(kAlltoall);
  return f(sb, sc, st, rb, rc, rt, comm);
}
int PMPI_Alltoallv(const void* sb, const int sc[], const int sd[], MPI_Datatype st, void* rb, const int rc[],
                   const int rd[], MPI_Datatype rt, MPI_Comm comm) {
  static auto f = next<decltype(&PMPI_Alltoallv)>("PMPI_Alltoallv");
  note(kAlltoallv);
  return f(sb, sc, sd, st, rb, rc, rd, rt, comm);
}
int PMPI_Allreduce(const void* sb, void* rb, int c, MPI_Datatype t, MPI_Op op, MPI_Comm comm) {
  static auto f = next<decltype(&PMPI_Allreduce)>("PMPI_Allreduce");
  note(kAllreduce);
  return f(sb, rb, c, t, op, comm);
}
int PMPI_Mrecv(void* b, int c, MPI_Datatype t, MPI_Message* m, MPI_Status* st) {
  static auto f = next<decltype(&PMPI_Mrecv)>("PMPI_Mrecv");
  note(kMrecv);
  return f(b, c, t, m, st);
}
}  // extern "C"

namespace {

double now() { return PMPI_Wtime(); }

std::vector<char> saved;  // the capture "writes" here
int capture(void*) {
  void* data = nullptr;
  std::size_t len = 0;
  if (pyckpt_mpi_state_save(&data, &len) != 0) return 1;
  saved.assign(static_cast<const char*>(data), static_cast<const char*>(data) + len);
  pyckpt_mpi_free(data);
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Phases of one checkpoint on this rank, from the first protocol call of
// each kind (doc/mpi.md "The cut"): synchronize (Ibarrier on world)
// -> REQ fan-out + agreement rounds (Iallgather of ready flags, Iallgatherv
// of sequence numbers) -> Alltoall(v) of counts, drain -> capture, Allreduce
// (the agreement on the outcome).
struct Sample {
  double total = 0, to_req = 0, agree = 0, drain = 0, finish = 0;
  std::array<std::uint64_t, kKinds> calls{};
};

Sample one_checkpoint(int inflight, int bytes, std::vector<char>& out,
                      std::vector<char>& in) {
  const int right = (rank_ + 1) % size_, left = (rank_ + size_ - 1) % size_;
  std::vector<MPI_Request> sends(static_cast<std::size_t>(inflight));
  for (int i = 0; i < inflight; ++i)
    MPI_Isend(out.data() + static_cast<std::size_t>(i) * bytes, bytes, MPI_BYTE, right, 100 + i, MPI_COMM_WORLD,
              &sends[static_cast<std::size_t>(i)]);
  PMPI_Barrier(MPI_COMM_WORLD);  // messages posted everywhere; not counted, not the app's
  calls.fill(0);
  first.fill(0);
  counting = true;
  const double start = now();
  if (pyckpt_mpi_checkpoint() != 0) {
    std::fprintf(stderr, "rank %d: checkpoint failed: %s\n", rank_, pyckpt_mpi_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const double end = now();
  counting = false;
  Sample s;
  s.calls = calls;
  s.total = end - start;
  // "agree" runs from the first REQ to the Alltoall: the rounds' calls
  // repeat, their first calls do not mark the end.
  const double req = first[kSend] ? first[kSend] : start;
  s.to_req = req - start;
  s.agree = (first[kAlltoall] ? first[kAlltoall] : end) - req;
  s.drain = (first[kAllreduce] ? first[kAllreduce] : end) - (first[kAlltoall] ? first[kAlltoall] : end);
  s.finish = end - (first[kAllreduce] ? first[kAllreduce] : end);
  // The in-flight messages now come from channel state.
  for (int i = 0; i < inflight; ++i)
    MPI_Recv(in.data() + static_cast<std::size_t>(i) * bytes, bytes, MPI_BYTE, left, 100 + i, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
  MPI_Waitall(inflight, sends.data(), MPI_STATUSES_IGNORE);
  for (int i = 0; i < inflight * bytes; ++i)
    if (in[static_cast<std::size_t>(i)] != static_cast<char>(left + i)) {
      std::fprintf(stderr, "rank %d: in-flight message corrupted\n", rank_);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  return s;
}

// Median over checkpoints of the slowest rank's value (times), or of the
// rank-mean (counts); printed by rank 0.
double reduce_max(double v) {
  double m = 0;
  PMPI_Allreduce(&v, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}
double reduce_mean(double v) {
  double m = 0;
  PMPI_Allreduce(&v, &m, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return m / size_;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  const int n = argc > 1 ? std::atoi(argv[1]) : 40;
  const int inflight = argc > 2 ? std::atoi(argv[2]) : 8;
  const int bytes = argc > 3 ? std::atoi(argv[3]) : 1024;  // eager in every transport
  const int extra_comms = argc > 4 ? std::atoi(argv[4]) : 0;
  pyckpt_mpi_set_capture_callbacks(capture, nullptr, nullptr);
  std::vector<MPI_Comm> comms(static_cast<std::size_t>(extra_comms));
  for (MPI_Comm& c : comms) MPI_Comm_dup(MPI_COMM_WORLD, &c);
  std::vector<char> out(static_cast<std::size_t>(inflight) * bytes), in(out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(rank_ + static_cast<int>(i));

  // Warm-up: first checkpoints allocate, libnbc sets up its schedules.
  for (int i = 0; i < 3; ++i) one_checkpoint(inflight, bytes, out, in);

  struct Row {
    const char* name;
    int inflight;
    std::vector<double> total, to_req, agree, drain, finish;
    std::array<double, kKinds> calls{};
  };
  Row rows[2] = {{"empty", 0, {}, {}, {}, {}, {}, {}}, {"inflight", inflight, {}, {}, {}, {}, {}, {}}};
  std::vector<double> barrier;
  for (int it = 0; it < n; ++it) {
    for (int v = 0; v < 2; ++v) {
      Row& r = rows[(it + v) % 2];  // alternate which variant goes first
      Sample s = one_checkpoint(r.inflight, bytes, out, in);
      r.total.push_back(reduce_max(s.total));
      r.to_req.push_back(reduce_max(s.to_req));
      r.agree.push_back(reduce_max(s.agree));
      r.drain.push_back(reduce_max(s.drain));
      r.finish.push_back(reduce_max(s.finish));
      for (int k = 0; k < kKinds; ++k) r.calls[k] += reduce_mean(static_cast<double>(s.calls[k])) / n;
    }
    PMPI_Barrier(MPI_COMM_WORLD);
    const double b0 = now();
    PMPI_Barrier(MPI_COMM_WORLD);
    barrier.push_back(reduce_max(now() - b0));
  }
  if (rank_ == 0) {
    const double bar = median(barrier);
    std::printf("bench_mpi_cut: %d ranks, %d app communicators (world, self, %d dups), %d checkpoints per "
                "variant, capture = state bytes to memory (%zu B)\n",
                size_, 2 + extra_comms, extra_comms, n, saved.size());
    std::printf("baseline PMPI_Barrier(world): %.1f us (median, slowest rank)\n\n", bar * 1e6);
    std::printf("%-9s %10s %8s | %9s %9s %9s %9s  (ms, median of slowest rank)\n", "variant", "ckpt ms", "x barrier",
                "sync", "agree", "drain", "finish");
    for (Row& r : rows)
      std::printf("%-9s %10.3f %8.0f | %9.3f %9.3f %9.3f %9.3f\n", r.name, median(r.total) * 1e3,
                  median(r.total) / bar, median(r.to_req) * 1e3, median(r.agree) * 1e3, median(r.drain) * 1e3,
                  median(r.finish) * 1e3);
    std::printf("\nprotocol calls per rank and checkpoint (mean over ranks):\n%-9s", "variant");
    for (const char* k : kKindNames) std::printf(" %12s", k);
    std::printf("\n");
    for (Row& r : rows) {
      std::printf("%-9s", r.name);
      for (double c : r.calls) std::printf(" %12.1f", c);
      std::printf("\n");
    }
    std::printf("(inflight: %d messages of %d B per rank, drained at the cut; Iprobe: polls of the control "
                "comm, no message)\n", inflight, bytes);
  }
  for (MPI_Comm& c : comms) MPI_Comm_free(&c);
  MPI_Finalize();
  return 0;
}
