// Interposition overhead of libpyckpt_mpi: ping-pong between ranks 0 and 1
// with MPI_Send/MPI_Recv, as an application does it. This program does not
// link the interposer: benchmarks/bench_mpi_overhead.py runs it with and
// without LD_PRELOAD=libpyckpt_mpi.so, interleaved, and prints the ratios.
// Rank 0 runs Google Benchmark; rank 1 echoes every message back.
//   mpirun -np 2 [-x LD_PRELOAD=lib/libpyckpt_mpi.so] bin/mpi_pingpong
// Time is per round trip; the summary at the end gives lat_us = half a round
// trip (one-way latency) and GB/s = 2 * bytes per round trip / its time.
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr int kCmdTag = 99, kDataTag = 1;

// 8 B .. 4 MiB. 1 KiB is the interposer's eager limit (PYCKPT_MPI_EAGER_BYTES):
// larger sends go through Isend + a progress loop, smaller ones straight on.
constexpr int kSizes[] = {8, 64, 1024, 4096, 65536, 1 << 20, 4 << 20};

void pingpong(benchmark::State& state, int bytes) {
  std::vector<char> buf(static_cast<std::size_t>(bytes), 'x');
  std::int64_t cmd[2] = {bytes, static_cast<std::int64_t>(state.max_iterations)};
  MPI_Send(cmd, 2, MPI_INT64_T, 1, kCmdTag, MPI_COMM_WORLD);
  for (auto _ : state) {
    MPI_Send(buf.data(), bytes, MPI_BYTE, 1, kDataTag, MPI_COMM_WORLD);
    MPI_Recv(buf.data(), bytes, MPI_BYTE, 1, kDataTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  // Per real second (UseRealTime): bytes moved, both directions.
  state.counters["bytes"] = benchmark::Counter(2.0 * bytes * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void echo() {
  std::vector<char> buf;
  for (;;) {
    std::int64_t cmd[2];
    MPI_Recv(cmd, 2, MPI_INT64_T, 0, kCmdTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (cmd[0] < 0) return;
    const int bytes = static_cast<int>(cmd[0]);
    buf.resize(static_cast<std::size_t>(bytes));
    for (std::int64_t i = 0; i < cmd[1]; ++i) {
      MPI_Recv(buf.data(), bytes, MPI_BYTE, 0, kDataTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), bytes, MPI_BYTE, 0, kDataTag, MPI_COMM_WORLD);
    }
  }
}

// Keeps each run's time per round trip for the summary table.
class Recorder : public benchmark::ConsoleReporter {
 public:
  std::vector<std::pair<std::string, double>> ns;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (!r.error_occurred) ns.emplace_back(r.run_name.function_name, r.GetAdjustedRealTime());
    ConsoleReporter::ReportRuns(runs);
  }
};

std::string label(int bytes) {
  if (bytes >= (1 << 20)) return std::to_string(bytes >> 20) + "MiB";
  if (bytes >= 1024) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size < 2) {
    std::fprintf(stderr, "mpi_pingpong: needs 2 ranks\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (rank == 1) echo();
  if (rank == 0) {
    const bool preloaded = dlsym(RTLD_DEFAULT, "pyckpt_mpi_get_stats") != nullptr;
    benchmark::AddCustomContext("interposer", preloaded ? "preloaded" : "absent");
    for (int bytes : kSizes)
      benchmark::RegisterBenchmark(("pingpong/" + label(bytes)).c_str(),
                                   [bytes](benchmark::State& s) { pingpong(s, bytes); })
          ->UseRealTime()
          ->MinWarmUpTime(0.05);  // --benchmark_min_time (0.5 s) per size
    benchmark::Initialize(&argc, argv);
    Recorder rec;
    benchmark::RunSpecifiedBenchmarks(&rec);
    std::printf("\n%-16s %12s %10s\n", "", "lat_us", "GB/s");
    for (const auto& [name, ns] : rec.ns)
      for (int bytes : kSizes)
        if (name == "pingpong/" + label(bytes))
          std::printf("%-16s %12.3f %10.3f\n", name.c_str(), ns / 2e3, 2.0 * bytes / ns);
    std::int64_t stop[2] = {-1, 0};
    MPI_Send(stop, 2, MPI_INT64_T, 1, kCmdTag, MPI_COMM_WORLD);
  }
  MPI_Finalize();
  return 0;
}
