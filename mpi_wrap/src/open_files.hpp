// The MPI files open in this process -- the application's and the
// library's own (hdf5_io's checkpoint file, files reopened at a restart) --
// and the one lock under which the waker thread may make MPI calls.
//
// Why: Open MPI 4.1's MPI-IO (ompio) progresses its pending file requests
// from every MPI call's progress loop, walking a global list without a lock
// (mca_common_ompio_progress; Open MPI 5 added one). While the process has a
// file open, a waker in MPI_Iprobe/Improbe and the main thread in any MPI
// call can complete one request twice, or walk the list while the other
// frees its entry: mpi4py's test_io crashed in MPI_File_write_all_end under
// `pyckpt preload-path` (tests/mpi_wrap test_files "waker"). So the waker
// makes MPI calls only while no file is open or being opened.
#pragma once

#include <mutex>

namespace pyckpt::mpi {

class OpenFiles {
 public:
  // Before a real MPI_File_open (it waits for the waker's calls to end);
  // closed() after MPI_File_close succeeded, or after the open failed.
  void opening() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++open_;
  }
  void closed() {
    std::lock_guard<std::mutex> lock(mutex_);
    --open_;
  }
  // Runs mpi_calls unless a file is open; whether it ran. No file can be
  // opened while they run.
  template <typename Calls>
  bool unless_open(Calls mpi_calls) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_ > 0) return false;
    mpi_calls();
    return true;
  }

 private:
  std::mutex mutex_;
  int open_ = 0;
};

// Process-wide, like the MPI files themselves: counted from the first open,
// whether or not a waker runs yet.
inline OpenFiles open_files;

}  // namespace pyckpt::mpi
