#include "waker.hpp"

#include "callbacks.hpp"

#include <chrono>

namespace pyckpt::mpi {

namespace {
// Also the longest a trigger waits for a computing rank, plus the time to
// its next safe point; short enough for checkpoints within a second, long
// enough that an idle thread costs nothing measurable.
constexpr std::chrono::milliseconds kTick{20};
}  // namespace

Waker::Waker(const Coordinator& coordinator) : coordinator_(coordinator) {
  int provided = MPI_THREAD_SINGLE;
  PMPI_Query_thread(&provided);
  may_probe_ = provided == MPI_THREAD_MULTIPLE;
  thread_ = std::thread([this] { run(); });
}

Waker::~Waker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_one();
  thread_.join();
}

void Waker::run() {
  std::uint64_t seen = coordinator_.activity();
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_cv_.wait_for(lock, kTick, [this] { return stopping_; })) {
    const std::uint64_t now = coordinator_.activity();
    const bool computing = now == seen;
    seen = now;
    if (!computing || callbacks.wake == nullptr) continue;
    bool due = coordinator_.pending();
    if (!due && may_probe_) {
      int flag = 0;
      PMPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, coordinator_.control(), &flag, MPI_STATUS_IGNORE);
      due = flag != 0;
    }
    if (due) callbacks.wake(callbacks.wake_user);
  }
}

}  // namespace pyckpt::mpi
