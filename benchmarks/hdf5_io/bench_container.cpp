// Checkpoint write throughput of pyckpt::h5 against a plain-I/O baseline.
//
// Every rank holds PYCKPT_BENCH_MIB MiB (default 256: 1 GiB from 4 ranks) in
// PYCKPT_BENCH_ARRAYS float64 arrays (default 4). Each iteration writes all of
// it, durably, and is timed from a barrier before to a barrier after:
//   baseline       pwrite of each array into one file per rank, fsync
//   container      one checkpoint through CheckpointWriter::commit()
//                  (checksums, parallel HDF5, MPI_File_sync, fsync, rename,
//                  `latest`, directory fsync)
// Variants: per-rank arrays or global-array slabs, independent or
// collective MPI-IO transfers.
// Files go to PYCKPT_BENCH_DIR (default ./bench-data) and are removed between
// iterations, outside the timed region. Rank 0 reports; the summary at the
// end gives each variant's throughput relative to the baseline.
#include <pyckpt/h5/container.hpp>

#include <benchmark/benchmark.h>
#include <mpi.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace h5 = pyckpt::h5;

namespace {

struct Setup {
  int rank = 0, size = 1;
  fs::path dir;
  std::vector<std::vector<double>> arrays;
  std::uint64_t bytes_per_rank = 0;
};
Setup g;

// Per variant: container seconds, baseline seconds, bytes; for the summary.
struct Result {
  double container = 0, baseline = 0, bytes = 0;
};
std::map<std::string, Result> g_results;

std::size_t env_or(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

void clear_dir() {
  MPI_Barrier(MPI_COMM_WORLD);
  if (g.rank == 0) {
    std::error_code ec;
    fs::remove_all(g.dir, ec);
    fs::create_directories(g.dir);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Times fn from a barrier to a barrier; the slowest rank's time counts.
template <class Fn>
double timed(Fn&& fn) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  fn();
  MPI_Barrier(MPI_COMM_WORLD);
  const double mine = MPI_Wtime() - t0;
  double slowest = 0;
  MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

// One durable write of every array with plain POSIX I/O: the baseline.
void write_baseline() {
  const fs::path file = g.dir / ("rank." + std::to_string(g.rank));
  const int fd = ::open(file.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) std::abort();
  off_t off = 0;
  for (const auto& a : g.arrays) {
    const char* p = reinterpret_cast<const char*>(a.data());
    std::size_t left = a.size() * sizeof(double);
    while (left > 0) {
      const ssize_t n = ::pwrite(fd, p, left, off);
      if (n <= 0) std::abort();
      p += n;
      off += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  if (::fsync(fd) != 0) std::abort();
  ::close(fd);
}

// One checkpoint of every array: per-rank arrays or, if global, each array
// as this rank's slab of a global array.
void write_checkpoint(std::uint64_t epoch, const h5::WriterOptions& options, bool global) {
  h5::CheckpointWriter w(h5::CheckpointDir(g.dir), epoch, h5::Comm(MPI_COMM_WORLD), options);
  for (std::size_t i = 0; i < g.arrays.size(); ++i) {
    const auto& a = g.arrays[i];
    const h5::ArrayView v{a.data(), h5::ElementType::floating(8), {a.size()}, {}};
    const std::string name = "a" + std::to_string(i);
    if (global) {
      const auto n = static_cast<std::uint64_t>(a.size());
      w.add_global_slab(name, {n * static_cast<std::uint64_t>(g.size)}, {n * static_cast<std::uint64_t>(g.rank)}, v);
    } else {
      w.add_array(name, v);
    }
  }
  w.commit();
}

// Each iteration times the baseline and the container back to back, in
// alternating order, so both see the same state of the disk (whose speed
// varies a lot on a virtual machine); the container's time is the
// benchmark's, the baseline's goes into counters and the summary.
void container(benchmark::State& state) {
  h5::WriterOptions options;
  options.collective_io = state.range(0) != 0;
  const bool global = state.range(1) != 0;
  const std::string name =
      std::string("container/") + (global ? "global-" : "") + (options.collective_io ? "collective" : "independent");
  double container_sum = 0, baseline_sum = 0;
  std::uint64_t epoch = 0;
  for (auto _ : state) {
    const auto run_container = [&] {
      clear_dir();
      const double t = timed([&] { write_checkpoint(++epoch, options, global); });
      state.SetIterationTime(t);
      container_sum += t;
    };
    const auto run_baseline = [&] {
      clear_dir();
      baseline_sum += timed(write_baseline);
    };
    if (epoch % 2 == 0) {
      run_baseline();
      run_container();
    } else {
      run_container();
      run_baseline();
    }
  }
  const double total = static_cast<double>(g.bytes_per_rank) * g.size * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(total));
  state.counters["GB/s"] = total / container_sum / 1e9;
  state.counters["base_GB/s"] = total / baseline_sum / 1e9;
  state.counters["x_base"] = baseline_sum / container_sum;
  Result& r = g_results[name];  // summed over repetitions
  r.container += container_sum;
  r.baseline += baseline_sum;
  r.bytes += total;
}

class QuietReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

BENCHMARK(container)->Name("container/independent")->Args({0, 0})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(container)->Name("container/collective")->Args({1, 0})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(container)->Name("container/global-independent")->Args({0, 1})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(container)->Name("container/global-collective")->Args({1, 1})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g.size);
  benchmark::Initialize(&argc, argv);
  const char* dir = std::getenv("PYCKPT_BENCH_DIR");
  g.dir = fs::absolute(dir ? dir : "bench-data");
  const std::size_t n_arrays = std::max<std::size_t>(1, env_or("PYCKPT_BENCH_ARRAYS", 4));
  g.bytes_per_rank = env_or("PYCKPT_BENCH_MIB", 256) << 20;
  for (std::size_t i = 0; i < n_arrays; ++i) {
    std::vector<double> a(g.bytes_per_rank / n_arrays / sizeof(double));
    for (std::size_t k = 0; k < a.size(); ++k) a[k] = static_cast<double>(k * (i + 1) + static_cast<std::size_t>(g.rank));
    g.arrays.push_back(std::move(a));
  }
  g.bytes_per_rank = g.arrays.size() * g.arrays[0].size() * sizeof(double);
  if (g.rank == 0) {
    std::printf("%d ranks x %.0f MiB in %zu arrays -> %s\n", g.size, g.bytes_per_rank / 1048576.0, n_arrays,
                g.dir.c_str());
  }
  QuietReporter quiet;
  if (g.rank == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    benchmark::RunSpecifiedBenchmarks(&quiet);
  }
  if (g.rank == 0 && !g_results.empty()) {
    std::printf("\n%-30s %14s %14s %8s\n", "summary (all iterations)", "container GB/s", "baseline GB/s", "ratio");
    for (const auto& [name, r] : g_results) {
      std::printf("%-30s %14.3f %14.3f %8.3f\n", name.c_str(), r.bytes / r.container / 1e9, r.bytes / r.baseline / 1e9,
                  r.baseline / r.container);
    }
  }
  std::error_code ec;
  MPI_Barrier(MPI_COMM_WORLD);
  if (g.rank == 0) fs::remove_all(g.dir, ec);
  benchmark::Shutdown();
  MPI_Finalize();
  return 0;
}
