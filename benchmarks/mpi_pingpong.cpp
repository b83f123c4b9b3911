// Interposition overhead of libpyckpt_mpi: ping-pong between ranks 0 and 1,
// through the interposer (MPI_Send/MPI_Recv) and, as the baseline in the same
// run, straight to the library (PMPI_Send/PMPI_Recv). Rank 0 runs Google
// Benchmark; rank 1 echoes. Prints latency and bandwidth ratios at the end.
//   mpirun -np 2 benchmarks/mpi_pingpong
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace {

constexpr int kCmdTag = 99, kDataTag = 1;
using SendFn = int (*)(const void*, int, MPI_Datatype, int, int, MPI_Comm);
using RecvFn = int (*)(void*, int, MPI_Datatype, int, int, MPI_Comm, MPI_Status*);
struct Path {
  SendFn send;
  RecvFn recv;
};
const Path kPaths[2] = {{PMPI_Send, PMPI_Recv}, {MPI_Send, MPI_Recv}};  // 0: baseline, 1: interposed

void pingpong(benchmark::State& state, int path, int bytes) {
  std::vector<char> buf(static_cast<std::size_t>(bytes));
  std::int64_t cmd[3] = {path, bytes, static_cast<std::int64_t>(state.max_iterations)};
  PMPI_Send(cmd, 3, MPI_INT64_T, 1, kCmdTag, MPI_COMM_WORLD);
  const Path& p = kPaths[path];
  for (auto _ : state) {
    p.send(buf.data(), bytes, MPI_BYTE, 1, kDataTag, MPI_COMM_WORLD);
    p.recv(buf.data(), bytes, MPI_BYTE, 1, kDataTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  state.SetBytesProcessed(2 * static_cast<std::int64_t>(bytes) * static_cast<std::int64_t>(state.iterations()));
}

void echo() {
  std::vector<char> buf;
  for (;;) {
    std::int64_t cmd[3];
    PMPI_Recv(cmd, 3, MPI_INT64_T, 0, kCmdTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (cmd[0] < 0) return;
    const Path& p = kPaths[cmd[0]];
    const int bytes = static_cast<int>(cmd[1]);
    buf.resize(static_cast<std::size_t>(bytes));
    for (std::int64_t i = 0; i < cmd[2]; ++i) {
      p.recv(buf.data(), bytes, MPI_BYTE, 0, kDataTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      p.send(buf.data(), bytes, MPI_BYTE, 0, kDataTag, MPI_COMM_WORLD);
    }
  }
}

// Keeps each run's time per iteration so ratios can be printed at the end.
class Recorder : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> ns;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) ns[r.run_name.function_name] = r.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 1) echo();
  if (rank == 0) {
    const std::pair<const char*, int> sizes[] = {{"8B", 8}, {"1MiB", 1 << 20}};
    for (auto [label, bytes] : sizes)
      for (int path : {0, 1})
        benchmark::RegisterBenchmark((std::string(path ? "interposed/" : "baseline/") + label).c_str(),
                                     [path, bytes](benchmark::State& s) { pingpong(s, path, bytes); })
            ->UseRealTime()
            ->MinTime(1.0);
    benchmark::Initialize(&argc, argv);
    Recorder rec;
    benchmark::RunSpecifiedBenchmarks(&rec);
    std::int64_t stop[3] = {-1, 0, 0};
    PMPI_Send(stop, 3, MPI_INT64_T, 1, kCmdTag, MPI_COMM_WORLD);
    if (rec.ns.count("baseline/8B") && rec.ns.count("interposed/8B"))
      std::printf("small-message latency ratio (interposed/baseline): %.3f (target <= 1.05)\n",
                  rec.ns["interposed/8B"] / rec.ns["baseline/8B"]);
    if (rec.ns.count("baseline/1MiB") && rec.ns.count("interposed/1MiB"))
      std::printf("large-message bandwidth ratio (interposed/baseline): %.3f (target >= 0.98)\n",
                  rec.ns["baseline/1MiB"] / rec.ns["interposed/1MiB"]);
  }
  MPI_Finalize();
  return 0;
}
