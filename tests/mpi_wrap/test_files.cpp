// The application's MPI-IO files at a cut, driven by a C++ MPI program
// linked to libpyckpt_mpi (MPI_* resolve to the interposer). One scenario
// per run:
//   test_files <scenario> <dir>    (dir: where the files are made)
//
// The write callback does what hdf5_io does when it writes a checkpoint: an
// internal MPI-IO file written collectively and synced with MPI_File_sync.
// Open MPI's MPI_File_sync fails on a process that holds any nonblocking
// file request, before its barrier, so the other ranks would wait in it
// forever: a checkpoint must never get there while the app holds one.
#include "check.hpp"

#include <pyckpt/mpi/pyckpt_mpi.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

int rank_, size_;
std::string dir;

pyckpt_mpi_stats stats() {
  pyckpt_mpi_stats s{};
  CHECK(pyckpt_mpi_get_stats(&s) == 0);
  return s;
}

// The app's files open at the moment, as the capture sees them.
std::vector<MPI_File> open_files;
struct AtCut {
  std::vector<std::uint64_t> ids;
  std::vector<MPI_Offset> shared;  // shared file pointers, of the files on world
  int writes = 0;
} at_cut;

int capture(void*) {
  void* data = nullptr;
  size_t len = 0;
  if (pyckpt_mpi_state_save(&data, &len) != 0) return 1;
  pyckpt_mpi_free(data);
  at_cut.ids.clear();
  at_cut.shared.clear();
  for (MPI_File f : open_files) {
    at_cut.ids.push_back(pyckpt_mpi_file_id(f));
    MPI_Offset shared = 0;
    MPI_File_get_position_shared(f, &shared);
    at_cut.shared.push_back(shared);
  }
  return 0;
}

// Collective: checks that every rank has the same files open at the cut,
// with the same ids and shared file pointers (the files are all on world),
// then writes and syncs a file of its own as hdf5_io would. Its MPI calls
// are internal.
int write(void*) {
  ++at_cut.writes;
  std::vector<std::uint64_t> mine(at_cut.ids);
  for (MPI_Offset s : at_cut.shared) mine.push_back(static_cast<std::uint64_t>(s));
  int n = static_cast<int>(mine.size()), n0 = n;
  MPI_Bcast(&n0, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (n != n0) return 1;
  std::vector<std::uint64_t> first(mine);
  MPI_Bcast(first.data(), n, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  if (first != mine) return 1;
  for (std::uint64_t id : at_cut.ids)
    if (id == 0) return 1;
  MPI_File own;
  const std::string name = dir + "/checkpoint.bin";
  if (MPI_File_open(MPI_COMM_WORLD, name.c_str(), MPI_MODE_WRONLY | MPI_MODE_CREATE, MPI_INFO_NULL, &own) != 0)
    return 1;
  int rc = MPI_File_write_at_all(own, rank_ * 4, &rank_, 1, MPI_INT, MPI_STATUS_IGNORE);
  rc |= MPI_File_sync(own);
  rc |= MPI_File_close(&own);
  return rc == MPI_SUCCESS ? 0 : 1;
}

bool error_says(const char* what) { return std::strstr(pyckpt_mpi_last_error(), what) != nullptr; }

MPI_File open_file(const std::string& name, int amode, MPI_Comm comm = MPI_COMM_WORLD) {
  MPI_File f;
  CHECK(MPI_File_open(comm, (dir + "/" + name).c_str(), amode, MPI_INFO_NULL, &f) == MPI_SUCCESS);
  return f;
}

// What a checkpoint refuses fails it on every rank, naming the file and
// why, before anything is written; once the app is done with it, the next
// checkpoint succeeds (and writes, with the internal MPI_File_sync).
void refused() {
  const int rw = MPI_MODE_RDWR | MPI_MODE_CREATE;
  MPI_File data = open_file("data.bin", rw);
  open_files = {data};
  CHECK(pyckpt_mpi_checkpoint() == 0 && at_cut.writes == 1);

  // A nonblocking write the app holds (here on one rank only).
  MPI_Request req = MPI_REQUEST_NULL;
  if (rank_ == 0) CHECK(MPI_File_iwrite_at(data, 0, &rank_, 1, MPI_INT, &req) == MPI_SUCCESS);
  CHECK(pyckpt_mpi_checkpoint() == PYCKPT_MPI_EUNSUPPORTED && at_cut.writes == 1);
  CHECK(error_says(rank_ == 0 ? "/data.bin: nonblocking I/O on it is in progress" : "another rank cannot be captured"));
  MPI_Wait(&req, MPI_STATUS_IGNORE);
  CHECK(pyckpt_mpi_checkpoint() == 0 && at_cut.writes == 2);

  // A split collective begun.
  CHECK(MPI_File_write_at_all_begin(data, rank_ * 4, &rank_, 1, MPI_INT) == MPI_SUCCESS);
  CHECK(pyckpt_mpi_checkpoint() == PYCKPT_MPI_EUNSUPPORTED && at_cut.writes == 2);
  CHECK(error_says("/data.bin: a split collective (MPI_File_write_at_all_begin) is open on it"));
  CHECK(MPI_File_write_at_all_end(data, &rank_, MPI_STATUS_IGNORE) == MPI_SUCCESS);
  CHECK(pyckpt_mpi_checkpoint() == 0 && at_cut.writes == 3);

  // A scratch file deleted when it is closed.
  MPI_File scratch = open_file("scratch.bin", rw | MPI_MODE_DELETE_ON_CLOSE);
  open_files = {data, scratch};
  CHECK(pyckpt_mpi_checkpoint() == PYCKPT_MPI_EUNSUPPORTED);
  CHECK(error_says("/scratch.bin: it was opened with MPI_MODE_DELETE_ON_CLOSE"));
  MPI_File_close(&scratch);
  open_files = {data};
  CHECK(pyckpt_mpi_checkpoint() == 0 && at_cut.writes == 4);

  // A file deleted while open (unlink-after-open); once closed, nothing of
  // it is needed any more.
  MPI_File gone = open_file("gone.bin", rw);
  open_files = {data, gone};
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank_ == 0) CHECK(unlink((dir + "/gone.bin").c_str()) == 0);
  MPI_Barrier(MPI_COMM_WORLD);
  CHECK(pyckpt_mpi_checkpoint() == PYCKPT_MPI_EUNSUPPORTED);
  CHECK(error_says("/gone.bin: it is gone"));
  MPI_File_close(&gone);
  open_files = {data};
  CHECK(pyckpt_mpi_checkpoint() == 0 && at_cut.writes == 5);
  MPI_File_close(&data);
}

// A file opened, written collectively and closed again and again on world,
// and one appended to with the shared file pointer on each half of a split,
// while ranks request checkpoints at different iterations and one rank
// lags: no cut hangs, at every cut all ranks hold the same files (the write
// callback checks it), and the data is all there.
void churn() {
  constexpr int kIterations = 60;
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, rank_ % 2, rank_, &half);
  MPI_File log = open_file("log." + std::to_string(rank_ % 2) + ".bin", MPI_MODE_WRONLY | MPI_MODE_CREATE, half);
  MPI_Comm_free(&half);  // the file keeps its own communicator
  for (int i = 0; i < kIterations; ++i) {
    MPI_File f = open_file("churn.bin", MPI_MODE_WRONLY | MPI_MODE_CREATE);
    open_files = {f};
    if (i % 15 == rank_) pyckpt_mpi_request_checkpoint();
    if (rank_ == 0 && i % 5 == 0) usleep(2000);  // lags: the others wait in a collective
    const int value = i * size_ + rank_;
    CHECK(MPI_File_write_at_all(f, static_cast<MPI_Offset>(value) * 4, &value, 1, MPI_INT, MPI_STATUS_IGNORE) == 0);
    CHECK(MPI_File_write_ordered(log, &value, 1, MPI_INT, MPI_STATUS_IGNORE) == 0);
    CHECK(MPI_File_close(&f) == 0);
    open_files.clear();
  }
  CHECK(MPI_File_close(&log) == 0);
  CHECK(pyckpt_mpi_checkpoint() == 0);
  CHECK(stats().checkpoints >= 2 && static_cast<int>(stats().checkpoints) == at_cut.writes);
  MPI_File f = open_file("churn.bin", MPI_MODE_RDONLY);
  std::vector<int> all(static_cast<std::size_t>(kIterations * size_));
  CHECK(MPI_File_read_at(f, 0, all.data(), static_cast<int>(all.size()), MPI_INT, MPI_STATUS_IGNORE) == 0);
  for (std::size_t k = 0; k < all.size(); ++k) CHECK(all[k] == static_cast<int>(k));
  MPI_File_close(&f);
}

// MPI-IO while the library's waker thread runs (started by the triggers, as
// pyckpt's attach starts it; MPI_THREAD_MULTIPLE, which lets it make MPI
// calls). Open MPI 4.1's ompio progresses its pending file requests from
// every MPI call without a lock: a waker probing the control communicator
// meanwhile crashed the rank in MPI_File_write_all_end (mpi4py's test_io
// under `pyckpt preload-path`). Nonblocking and split collective I/O for
// many waker ticks; every value must be written once and read back.
void waker() {
  CHECK(pyckpt_mpi_set_triggers("", 0) == 0);
  // Rounds of a batch of nonblocking writes completed together (each
  // progress pass walks all of them), then a split collective write.
  constexpr int kRounds = 3000, kBatch = 8, kPerRound = kBatch + 1;
  MPI_File f = open_file("waker.bin", MPI_MODE_RDWR | MPI_MODE_CREATE);
  const auto at = [](int value) { return static_cast<MPI_Offset>(value) * 4; };
  std::vector<int> values(kPerRound);
  for (int round = 0; round < kRounds; ++round) {
    for (int j = 0; j < kPerRound; ++j) values[static_cast<std::size_t>(j)] = (round * kPerRound + j) * size_ + rank_;
    MPI_Request reqs[kBatch];
    for (int j = 0; j < kBatch; ++j)
      CHECK(MPI_File_iwrite_at(f, at(values[static_cast<std::size_t>(j)]), &values[static_cast<std::size_t>(j)], 1,
                               MPI_INT, &reqs[j]) == MPI_SUCCESS);
    CHECK(MPI_Waitall(kBatch, reqs, MPI_STATUSES_IGNORE) == MPI_SUCCESS);
    int& last = values[kBatch];
    CHECK(MPI_File_write_at_all_begin(f, at(last), &last, 1, MPI_INT) == MPI_SUCCESS);
    CHECK(MPI_File_write_at_all_end(f, &last, MPI_STATUS_IGNORE) == MPI_SUCCESS);
  }
  CHECK(MPI_File_sync(f) == MPI_SUCCESS);
  MPI_Barrier(MPI_COMM_WORLD);
  std::vector<int> all(static_cast<std::size_t>(kRounds * kPerRound * size_));
  CHECK(MPI_File_read_at(f, 0, all.data(), static_cast<int>(all.size()), MPI_INT, MPI_STATUS_IGNORE) == 0);
  for (std::size_t k = 0; k < all.size(); ++k) CHECK(all[k] == static_cast<int>(k));
  MPI_File_close(&f);
}

}  // namespace

int main(int argc, char** argv) {
  CHECK(argc == 3);
  const std::string scenario = argv[1];
  dir = argv[2];
  CHECK(pyckpt_mpi_set_capture_callbacks(&capture, &write, nullptr) == 0);
  int provided = 0;
  MPI_Init_thread(&argc, &argv, scenario == "waker" ? MPI_THREAD_MULTIPLE : MPI_THREAD_SINGLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (scenario == "refused")
    refused();
  else if (scenario == "churn")
    churn();
  else if (scenario == "waker")
    waker();
  else
    CHECK(!"unknown scenario");
  MPI_Finalize();
  if (rank_ == 0) std::printf("%s: ok\n", scenario.c_str());
  return 0;
}
