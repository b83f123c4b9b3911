// The waker: brings a checkpoint to a rank whose application computes
// without calling MPI. The protocol runs at safe points -- the rank's MPI
// calls, and whatever safe points the layer above has in its own code (a
// Python line) -- but the layer above only stops at its safe points when
// asked. The waker is a thread of this library that asks it (the wake
// callback, pyckpt_mpi_set_wake_callback) when this rank has a checkpoint to
// serve (requested here: a signal, a timer; or a request message from
// another rank) and its main thread made no MPI call and served no protocol
// step for a tick.
//
// It makes MPI calls only if the library was initialised with
// MPI_THREAD_MULTIPLE (what mpi4py asks for by default): one MPI_Iprobe on
// the private control communicator per idle tick, to see a request of
// another rank. Otherwise a request from another rank reaches a computing
// rank at its next MPI call (doc/mpi.md, "Bounded latency").
#pragma once

#include "coordinator.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace pyckpt::mpi {

class Waker {
 public:
  // Starts the thread (after MPI_Init, once a wake callback is registered).
  explicit Waker(const Coordinator& coordinator);
  // Stops and joins it (before MPI_Finalize).
  ~Waker();
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

 private:
  void run();

  const Coordinator& coordinator_;
  bool may_probe_ = false;  // MPI_THREAD_MULTIPLE
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace pyckpt::mpi
