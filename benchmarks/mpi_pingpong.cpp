// Interposition overhead of libpyckpt_mpi: ping-pong between ranks 0 and 1
// with MPI_Send/MPI_Recv, as an application does it. This program does not
// link the interposer: benchmarks/bench_mpi_overhead.py runs it with and
// without LD_PRELOAD=libpyckpt_mpi.so, interleaved, and prints the ratios.
// Rank 0 runs Google Benchmark; rank 1 echoes every message back.
//   mpirun -np 2 [-x LD_PRELOAD=lib/libpyckpt_mpi.so] bin/mpi_pingpong
// --paired (preloaded only): the noise-robust comparison inside one process.
// For each size, 40 pairs of short blocks (~3 ms) of round trips, one through
// the interposer (MPI_Send/MPI_Recv) and one straight to Open MPI
// (PMPI_Send/PMPI_Recv), the order alternating; prints, per size, the median
// times and the median of the per-pair time ratios as one JSON line
// ("PYCKPT_PAIRED {...}"). A burst of load from other processes then hits
// both members of a pair alike.
// Time is per round trip; the summary at the end gives lat_us = half a round
// trip (one-way latency) and GB/s = 2 * bytes per round trip / its time.
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
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

// --- paired blocks --------------------------------------------------------
using SendFn = int (*)(const void*, int, MPI_Datatype, int, int, MPI_Comm);
using RecvFn = int (*)(void*, int, MPI_Datatype, int, int, MPI_Comm, MPI_Status*);
struct Path {
  SendFn send;
  RecvFn recv;
};
const Path kPaths[2] = {{PMPI_Send, PMPI_Recv}, {MPI_Send, MPI_Recv}};  // 0: without, 1: interposed

double block(int path, int rank, int bytes, long m, std::vector<char>& buf) {
  const Path& p = kPaths[path];
  const double t = PMPI_Wtime();
  for (long i = 0; i < m; ++i) {
    if (rank == 0) {
      p.send(buf.data(), bytes, MPI_BYTE, 1, kDataTag, MPI_COMM_WORLD);
      p.recv(buf.data(), bytes, MPI_BYTE, 1, kDataTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      p.recv(buf.data(), bytes, MPI_BYTE, 0, kDataTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      p.send(buf.data(), bytes, MPI_BYTE, 0, kDataTag, MPI_COMM_WORLD);
    }
  }
  return PMPI_Wtime() - t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void paired(int rank, int pairs, double block_s) {
  std::string json = "{";
  for (int bytes : kSizes) {
    std::vector<char> buf(static_cast<std::size_t>(bytes), 'x');
    long m = 1;  // round trips per block, calibrated on the direct path
    for (;;) {
      double t = block(0, rank, bytes, m, buf);
      PMPI_Bcast(&t, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
      if (t >= block_s / 2 || m >= (1L << 24)) {
        m = std::max(1L, static_cast<long>(static_cast<double>(m) * block_s / t));
        break;
      }
      m *= 2;
    }
    std::vector<double> off, on, ratio;
    for (int i = 0; i < pairs; ++i) {
      double t[2];
      const int first = i % 2;
      t[first] = block(first, rank, bytes, m, buf);
      t[1 - first] = block(1 - first, rank, bytes, m, buf);
      off.push_back(t[0] / static_cast<double>(m));
      on.push_back(t[1] / static_cast<double>(m));
      ratio.push_back(t[1] / t[0]);
    }
    char item[200];
    std::snprintf(item, sizeof item, "%s\"%d\": [%.9g, %.9g, %.6f]", json.size() > 1 ? ", " : "", bytes,
                  median(off), median(on), median(ratio));
    json += item;
  }
  if (rank == 0) std::printf("PYCKPT_PAIRED %s}\n", json.c_str());
}

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
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--paired") {
      if (dlsym(RTLD_DEFAULT, "pyckpt_mpi_get_stats") == nullptr) {
        if (rank == 0) std::fprintf(stderr, "mpi_pingpong --paired: needs LD_PRELOAD=libpyckpt_mpi.so\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
      }
      const int pairs = i + 1 < argc ? std::atoi(argv[i + 1]) : 40;
      paired(rank, pairs > 0 ? pairs : 40, 3e-3);
      MPI_Finalize();
      return 0;
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
