// The waker: the job's triggers and the bringing of a checkpoint to a rank
// whose application computes without calling MPI. A thread of this
// library, so neither depends on the application: no Python thread (which
// a rank computing in Python can starve of the GIL for seconds), no MPI
// call of the application.
//
// Each tick (20 ms) it
//   * asks for a checkpoint (Coordinator::request) when the request file
//     appeared (it removes it) or the interval passed since the end of the
//     previous checkpoint (pyckpt_mpi_set_triggers; a signal handler asks
//     directly);
//   * if this rank has a checkpoint to serve -- requested here, under way,
//     or a request message of another rank on the control communicator --
//     and its main thread made no MPI call and served no protocol step
//     during the tick (it computes), calls the layer above's wake callback,
//     which stops the application at its next safe point to serve it
//     (pyckpt_mpi_poll).
// It makes MPI calls only if the library was initialised with
// MPI_THREAD_MULTIPLE (what mpi4py asks for by default), and only while the
// process has no MPI file open (open_files.hpp: Open MPI's MPI-IO is not
// safe against a second thread in MPI): one MPI_Iprobe on the private
// control communicator per idle tick, and one MPI_Improbe per tick for a
// notice that checkpoints are off, which it passes on
// (Coordinator::switch_off). Otherwise a request from another rank reaches
// a computing rank at its next MPI call (doc/mpi.md, "Bounded latency").
#pragma once

#include "coordinator.hpp"
#include "open_files.hpp"

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace pyckpt::mpi {

class Waker {
 public:
  // Starts the thread (after MPI_Init).
  explicit Waker(Coordinator& coordinator);
  // Stops and joins it (before MPI_Finalize).
  ~Waker();
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  // request_file: empty for none; interval: seconds, <= 0 for none.
  void set_triggers(std::string request_file, double interval);
  // Replaces the wake callback (null: none); returns once a call of the
  // previous one in progress has returned.
  void set_wake(pyckpt_mpi_wake_fn wake, void* user);

 private:
  void run();
  bool triggered();  // with mutex_ held

  Coordinator& coordinator_;
  bool may_probe_ = false;  // MPI_THREAD_MULTIPLE
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::string request_file_;
  double interval_ = 0;
  pyckpt_mpi_wake_fn wake_ = nullptr;
  void* wake_user_ = nullptr;
  std::chrono::steady_clock::time_point interval_from_;  // set_triggers, or the end of a checkpoint
  std::thread thread_;
};

}  // namespace pyckpt::mpi
