// When the waker thread may make MPI calls, as far as MPI-IO is concerned.
//
// Open MPI 4.1's MPI-IO (ompio) keeps the process's file requests in one
// list, which every MPI call's progress loop walks without a lock
// (mca_common_ompio_progress; Open MPI 5 added one), and which file routines
// extend and completions shorten. A waker in MPI_Iprobe/Improbe while the
// main thread progressed or changed that list crashed a rank in
// MPI_File_write_all_end (mpi4py's test_io under `pyckpt preload-path`;
// tests/mpi_wrap test_files "waker"). The list holds requests only inside
// a file routine, or while the application holds nonblocking file I/O (a
// request not yet completed, a split collective begun and not ended). So
// the waker makes its MPI calls only outside both: every real file routine
// of the process (the app's, the library's own such as hdf5_io's, the
// reopening at a restart) runs under routine(), which the waker's calls
// hold too, and the app's held file I/O is counted. A file request the app
// frees while pending (MPI_Request_free) stays held for the rest of the
// job: MPI completes it unseen.
#pragma once

#include <atomic>
#include <mutex>

namespace pyckpt::mpi {

class FileIo {
 public:
  // Held around a real MPI file routine (its PMPI call).
  [[nodiscard]] std::unique_lock<std::mutex> routine() { return std::unique_lock<std::mutex>(mutex_); }
  // The app's nonblocking file I/O: held from a successful post (inside
  // routine()) until MPI freed its request (completion) or its split
  // collective ended.
  void held() { held_.fetch_add(1, std::memory_order_relaxed); }
  void released() { held_.fetch_sub(1, std::memory_order_relaxed); }
  // Runs mpi_calls unless a file routine runs or file I/O is held; whether
  // it ran. No file routine starts while they run.
  template <typename Calls>
  bool unless_busy(Calls mpi_calls) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (held_.load(std::memory_order_relaxed) > 0) return false;
    mpi_calls();
    return true;
  }

 private:
  std::mutex mutex_;
  std::atomic<int> held_{0};
};

// Process-wide, like MPI-IO's list: kept from the first file routine,
// whether or not a waker runs yet.
inline FileIo file_io;

}  // namespace pyckpt::mpi
