#include "waker.hpp"

#include <unistd.h>

#include <chrono>

namespace pyckpt::mpi {

namespace {
// Also the longest a trigger waits for a computing rank, plus the time to
// its next safe point; short enough for checkpoints within a second, long
// enough that an idle thread costs nothing measurable.
constexpr std::chrono::milliseconds kTick{20};
}  // namespace

Waker::Waker(Coordinator& coordinator) : coordinator_(coordinator) {
  int provided = MPI_THREAD_SINGLE;
  PMPI_Query_thread(&provided);
  may_probe_ = provided == MPI_THREAD_MULTIPLE;
  interval_from_ = std::chrono::steady_clock::now();
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

void Waker::set_wake(pyckpt_mpi_wake_fn wake, void* user) {
  std::lock_guard<std::mutex> lock(mutex_);
  wake_ = wake;
  wake_user_ = user;
}

void Waker::set_triggers(std::string request_file, double interval) {
  std::lock_guard<std::mutex> lock(mutex_);
  request_file_ = std::move(request_file);
  interval_ = interval;
  interval_from_ = std::chrono::steady_clock::now();
}

bool Waker::triggered() {
  // The file is removed by whoever takes it first (a restart, another
  // watcher): only a successful unlink counts.
  if (!request_file_.empty() && ::unlink(request_file_.c_str()) == 0) return true;
  if (interval_ <= 0) return false;
  const auto ended = coordinator_.last_cut_end();
  if (ended > interval_from_) interval_from_ = ended;
  return std::chrono::steady_clock::now() - interval_from_ >= std::chrono::duration<double>(interval_);
}

void Waker::run() {
  std::uint64_t seen = coordinator_.activity();
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_cv_.wait_for(lock, kTick, [this] { return stopping_; })) {
    if (!coordinator_.pending() && triggered()) Coordinator::request();
    const std::uint64_t now = coordinator_.activity();
    const bool computing = now == seen;
    seen = now;
    bool due = false;
    if (may_probe_) {
      open_files.unless_open([&] {
        // An OFF notice travels on from here too, whatever the main thread
        // does (it may wait in a call that serves no protocol;
        // Coordinator::switch_off).
        coordinator_.take_off_notice();
        if (!computing || wake_ == nullptr || coordinator_.pending()) return;
        int flag = 0;
        PMPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, coordinator_.control(), &flag, MPI_STATUS_IGNORE);
        due = flag != 0;
      });
    }
    if (!computing || wake_ == nullptr) continue;
    if (due || coordinator_.pending()) wake_(wake_user_);  // with mutex_ held: set_wake waits for it
  }
}

}  // namespace pyckpt::mpi
