// The trigger engine of a serial program under `pyckpt run`/`restart`: when
// to checkpoint (pyckpt.triggers is its Python face; doc/process.md).
//
// A thread of this module, not of Python: it never takes the GIL, so a
// program computing in Python pays nothing for it between checkpoints (a
// Python thread polling the clock cost 5-10% of a CPU-bound program: each
// wake-up took the GIL from the main thread). It sleeps in poll() until the
// interval's deadline, a wake-up of its eventfd (signal, reconfiguration,
// stop) or the next look at the request file (every kRequestFileTick: a file
// that `pyckpt request` may drop from another node, which inotify would not
// see on a shared file system). When a checkpoint is due it "trips" the wake
// signal number (PyErr_SetInterruptEx: async-signal-safe, no GIL, and unlike
// Py_AddPendingCall it interrupts the main thread's eval loop from any
// thread), whose Python handler asks for a safe point in the main thread
// (after claim()). The trigger signal's C handler trips it directly.
//
// Pacing, so that checkpoints cannot starve the program:
//   * the interval counts from the end of the previous checkpoint: the end
//     of the program's pause (done()), or, for a checkpoint committed by a
//     forked writer, the writer's exit;
//   * it stretches to kPauseFactor x the program's last pause when shorter,
//     so checkpoints never take more than 1/(kPauseFactor+1) of the run;
//   * nothing is asked while a request is on its way, a checkpoint is being
//     taken or a forked writer is alive; a request (signal, request file)
//     arriving meanwhile is remembered once and served right after;
//   * the first time the interval is shorter than a checkpoint takes, a
//     notice says so (take_notice(), printed once by pyckpt.triggers).
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "errors.hpp"
#include "module.hpp"

namespace pyckpt::core {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// How often the request file is looked for: one failed unlink() per tick,
// without the GIL (unmeasurable), and a `pyckpt request` answered within it.
constexpr std::chrono::milliseconds kRequestFileTick{20};
// The interval stretches to this many times the program's last pause.
constexpr double kPauseFactor = 4.0;

// Set by the signal handler (async-signal-safe), taken by claim() or the thread.
std::atomic<bool> g_signalled{false};
// The wake signal number, for the signal handler.
std::atomic<int> g_wake_signum{0};
// The thread's eventfd: the signal handler and the Python-facing functions
// write to it to wake the thread at once.
std::atomic<int> g_wake_fd{-1};

void wake_thread() {
  const int fd = g_wake_fd.load();
  if (fd < 0) return;
  const std::uint64_t one = 1;
  const int saved = errno;  // also called from the signal handler
  [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);
  errno = saved;
}

// Trips the wake signal at once, as the thread does (both async-signal-safe):
// the main thread's handler then claims the request (claim()) at its next
// bytecode, as fast as a Python-level signal handler would run.
extern "C" void on_trigger_signal(int) {
  g_signalled = true;
  if (const int wake = g_wake_signum.load()) PyErr_SetInterruptEx(wake);
}

class Engine {
 public:
  // (Re)configures and starts the thread if it is not running.
  void start(std::string request_file, double interval, int wake_signum) {
    std::lock_guard<std::mutex> lock(mutex_);
    request_file_ = std::move(request_file);
    interval_ = interval;
    g_wake_signum = wake_signum;
    interval_from_ = Clock::now();
    stopping_ = false;
    if (owner_ != ::getpid()) {
      // First start, or in a forked child: there the parent's thread does
      // not exist (its handle is left alone: joining or destroying it would
      // fail) and the parent's eventfd is shared with the parent.
      const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (fd < 0) raise(PyExc_OSError, std::string("pyckpt triggers: eventfd: ") + std::strerror(errno));
      g_wake_fd = fd;  // never closed: the signal handler may write to it any time
      owner_ = ::getpid();
      thread_ = nullptr;
    }
    if (thread_ == nullptr)
      thread_ = new std::thread([this] { run(); });
    else
      wake_thread();  // the deadline moved
  }

  // No more requests; joins the thread (it never waits for the GIL). The
  // signal's handler stays installed but trips nothing any more: the
  // signal is ignored, also while the interpreter is finalised (where
  // PyErr_SetInterruptEx would touch freed state).
  void stop() {
    g_wake_signum = 0;
    std::thread* thread = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      if (owner_ == ::getpid()) thread = std::exchange(thread_, nullptr);
    }
    if (thread == nullptr) return;
    wake_thread();
    thread->join();
    delete thread;
  }

  // The wake signal's handler runs in the main thread: whether it should
  // ask for a safe point (the thread asked, or a signal came and no
  // checkpoint is under way; else the signal is served after it).
  bool claim() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (g_signalled.exchange(false)) explicit_ = true;
    if (stopping_ || taking_ || writer_alive(Clock::now())) return false;
    if (requested_) return true;
    if (!explicit_) return false;
    explicit_ = false;
    requested_ = true;
    return true;
  }

  // The program reached a safe point and the checkpoint starts.
  void begin() {
    std::lock_guard<std::mutex> lock(mutex_);
    requested_ = false;
    taking_ = true;
    began_ = Clock::now();
  }

  // The program goes on: the checkpoint was handed off (writer_pid: the
  // forked writer committing it, 0 if committed already), or it could not
  // be taken now (postponed: taken once writer_pid exited).
  void done(pid_t writer_pid, bool postponed) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = Clock::now();
    requested_ = false;
    taking_ = false;
    interval_from_ = now;
    writer_ = writer_pid;
    wake_thread();  // to serve a signal or request that came meanwhile
    if (postponed) {
      explicit_ = true;
      return;
    }
    const double pause = Seconds(now - began_).count();
    stretched_interval_ = std::max(interval_, kPauseFactor * pause);
    if (interval_ > 0 && stretched_interval_ > interval_)
      add_notice("a checkpoint stops this program for " + format_seconds(pause) + ", so they are taken " +
                 format_seconds(stretched_interval_) + " apart rather than every " + format_seconds(interval_) +
                 " (--interval): checkpoints take at most a fifth of the run");
  }

  // The first notice about the pacing, once per process (empty: none).
  std::string take_notice() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(notice_, std::string());
  }

 private:
  static std::string format_seconds(double s) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2g s", s);
    return text;
  }

  void add_notice(std::string text) {
    if (noticed_) return;
    noticed_ = true;
    notice_ = "pyckpt: " + std::move(text);
  }

  // A checkpoint committed by a forked writer took `seconds` from its start
  // to its commit (a synchronous one that took longer than the interval
  // stretched it: done()).
  void check_duration(double seconds) {
    if (interval_ > 0 && seconds > interval_)
      add_notice("a checkpoint takes " + format_seconds(seconds) + ", longer than the interval (--interval " +
                 format_seconds(interval_) + "): the next one is taken " + format_seconds(stretched_interval_) +
                 " after the previous one is written");
  }

  // Whether the forked writer still runs; records its end. With mutex_ held.
  bool writer_alive(Clock::time_point now) {
    if (writer_ == 0) return false;
    siginfo_t info;
    info.si_pid = 0;
    // WNOWAIT: pyckpt.commit reaps it and reads its status.
    if (::waitid(P_PID, writer_, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0) return true;
    writer_ = 0;  // exited (or reaped already: ECHILD)
    interval_from_ = now;
    check_duration(Seconds(now - began_).count());
    return false;
  }

  // With mutex_ held.
  bool due(Clock::time_point now) {
    if (!request_file_.empty() && ::unlink(request_file_.c_str()) == 0) explicit_ = true;
    if (g_signalled.exchange(false)) explicit_ = true;
    if (requested_ || taking_ || writer_alive(now)) return false;
    return explicit_ || (interval_ > 0 && now >= interval_deadline());
  }

  Clock::time_point interval_deadline() const {
    return interval_from_ + std::chrono::duration_cast<Clock::duration>(Seconds(stretched_interval_));
  }

  // How long the thread may sleep, in milliseconds for poll().
  int sleep_ms(Clock::time_point now) const {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(kRequestFileTick);
    if (interval_ > 0 && !requested_ && !taking_ && writer_ == 0) {
      const auto until = std::chrono::ceil<std::chrono::milliseconds>(interval_deadline() - now);
      wait = std::max(std::chrono::milliseconds(0), std::min(wait, until));
    }
    return static_cast<int>(wait.count());
  }

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int fd = g_wake_fd;
    while (!stopping_) {
      const int timeout = sleep_ms(Clock::now());
      lock.unlock();
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, timeout) > 0) {
        std::uint64_t count;
        [[maybe_unused]] const ssize_t n = ::read(fd, &count, sizeof count);
      }
      lock.lock();
      if (stopping_ || !due(Clock::now())) continue;
      explicit_ = false;
      requested_ = true;
      // Under mutex_: stop() returns only after this call, so none comes
      // once the program ended (or the interpreter is finalised).
      PyErr_SetInterruptEx(g_wake_signum);
    }
  }

  std::mutex mutex_;
  std::thread* thread_ = nullptr;  // deliberately leaked in a forked child
  pid_t owner_ = 0;                // the process whose thread thread_ is
  bool stopping_ = false;
  std::string request_file_;
  double interval_ = 0;            // seconds asked for; 0: none
  double stretched_interval_ = 0;  // interval_, or kPauseFactor x the last pause if longer
  Clock::time_point interval_from_;  // end of the previous checkpoint
  Clock::time_point began_;          // start of the last checkpoint
  bool explicit_ = false;   // a signal or the request file asked, not served yet
  bool requested_ = false;  // the wake signal was tripped; no safe point yet
  bool taking_ = false;     // between begin() and done()
  pid_t writer_ = 0;        // forked writer of the last checkpoint, until it exits
  bool noticed_ = false;
  std::string notice_;
};

// Never destroyed: the thread may outlive static destruction in a forked child.
Engine& g_engine = *new Engine;

PyObject* py_start(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"request_file", "interval", "signal", "wake_signal", nullptr};
  const char* request_file;
  PyObject* interval_obj;
  int signum, wake_signum;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sOii:triggers_start", const_cast<char**>(names), &request_file,
                                   &interval_obj, &signum, &wake_signum))
    return nullptr;
  double interval = 0;
  if (interval_obj != Py_None) {
    interval = PyFloat_AsDouble(interval_obj);
    if (interval == -1 && PyErr_Occurred()) return nullptr;
  }
  return guarded([&]() -> PyObject* {
    g_engine.start(request_file, interval, wake_signum);
    if (signum != 0) {
      struct sigaction sa;
      std::memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_trigger_signal;
      sa.sa_flags = SA_RESTART;
      sigemptyset(&sa.sa_mask);
      if (sigaction(signum, &sa, nullptr) != 0)
        raise(PyExc_OSError, "pyckpt: cannot install a handler for signal " + std::to_string(signum));
    }
    Py_RETURN_NONE;
  });
}

PyObject* py_stop(PyObject*, PyObject*) {
  return guarded([]() -> PyObject* {
    Py_BEGIN_ALLOW_THREADS
    g_engine.stop();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
  });
}

PyObject* py_claim(PyObject*, PyObject*) { return PyBool_FromLong(g_engine.claim()); }

PyObject* py_begin(PyObject*, PyObject*) {
  g_engine.begin();
  Py_RETURN_NONE;
}

PyObject* py_done(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"writer_pid", "postponed", nullptr};
  int writer_pid = 0, postponed = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|i$p:triggers_done", const_cast<char**>(names), &writer_pid,
                                   &postponed))
    return nullptr;
  g_engine.done(writer_pid, postponed != 0);
  const std::string notice = g_engine.take_notice();
  if (notice.empty()) Py_RETURN_NONE;
  return PyUnicode_FromStringAndSize(notice.data(), static_cast<Py_ssize_t>(notice.size()));
}

PyMethodDef g_methods[] = {
    {"triggers_start", as_method(py_start), METH_VARARGS | METH_KEYWORDS,
     "triggers_start(request_file, interval, signal, wake_signal): (re)starts the trigger thread. A checkpoint\n"
     "is due when `request_file` appears (it is removed), `signal` arrives (0: none; a C handler is\n"
     "installed) or `interval` seconds (None: none) passed since the end of the previous one; the thread then\n"
     "trips `wake_signal`, whose Python handler must ask for the safe point."},
    {"triggers_stop", py_stop, METH_NOARGS, "triggers_stop(): no more requests; joins the thread."},
    {"triggers_claim", py_claim, METH_NOARGS,
     "triggers_claim() -> bool: in the wake signal's handler, whether to ask for a safe point now."},
    {"triggers_begin", py_begin, METH_NOARGS, "triggers_begin(): a checkpoint starts (its pause is timed)."},
    {"triggers_done", as_method(py_done), METH_VARARGS | METH_KEYWORDS,
     "triggers_done(writer_pid=0, *, postponed=False) -> notice or None: the program goes on; writer_pid: the\n"
     "forked writer committing the checkpoint; postponed: none was taken, take one once that writer exited.\n"
     "Returns, once per process, a notice that the interval is shorter than a checkpoint takes."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int add_triggers_api(PyObject* module) { return PyModule_AddFunctions(module, g_methods); }

}  // namespace pyckpt::core
