// Safe points: a checkpoint requested from anywhere (signal handler, timer
// thread, API) is taken at the next 'line' event of the main thread at which
// every frame can be captured.
//
// Nothing is installed while no request is pending, so the steady state
// costs nothing. A request arms a C trace function (PyEval_SetTrace) on the
// main thread -- directly when made there, through Py_AddPendingCall from
// other threads. The trace function captures at a line event (the only place
// besides a call where CPython saves the stack pointer and the position);
// when a C function sits between two Python frames it keeps waiting.
//
// With `threads`, the other Python threads are parked and captured at the
// same safe point (park_threads, doc/interp.md "Threads"), and released once
// the callback returns. A thread that is not waiting in a re-issuable call
// (it computes, or reads a socket) makes the request wait too: tried again
// every millisecond, for at most kThreadPatience; then the callback gets the
// refusal, which names the thread, and the next request tries anew.
#include <atomic>
#include <chrono>

#include <optional>

#include "interp/errors.hpp"
#include "interp/interp.hpp"

namespace pyckpt::core::interp {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kThreadRetry = std::chrono::milliseconds(1);
constexpr auto kThreadPatience = std::chrono::seconds(1);

// Main-thread state, protected by the GIL.
struct SafePoint {
  Ref callback;
  Ref base;                 // frame object: outermost frame to capture
  bool threads = false;     // park and capture the other threads too
  bool armed = false;
  // Since when a thread keeps the request waiting (unset: none does), and
  // when to try again.
  std::optional<Clock::time_point> threads_refused_since;
  Clock::time_point next_thread_try;
  // While the frame that made the last attempt fail runs, retrying is futile
  // (and a full stack walk per line event would be costly).
  const void* blocked_by = nullptr;
  Py_tracefunc saved_func = nullptr;  // trace function replaced while armed
  Ref saved_obj;
};
// Never destroyed: a static destructor would drop references after the
// interpreter is finalized.
SafePoint& g_sp = *new SafePoint;
std::atomic<bool> g_posted{false};  // a pending call to arm is queued

void disarm() {
  if (!g_sp.armed) return;
  g_sp.armed = false;
  g_sp.blocked_by = nullptr;
  g_sp.threads_refused_since.reset();
  Ref obj = std::move(g_sp.saved_obj);
  PyEval_SetTrace(g_sp.saved_func, obj.get());
  g_sp.saved_func = nullptr;
}

// Hands the callback the captured state, or the error that makes waiting
// pointless (e.g. a coroutine frame on the stack).
int deliver(Ref payload) {
  Ref callback = g_sp.callback;
  if (!callback) return 0;
  Ref result = Ref::steal(PyObject_CallOneArg(callback.get(), payload.get()));
  return result ? 0 : -1;
}

int tracer(PyObject*, PyFrameObject* frame, int what, PyObject* arg) {
  if (g_sp.saved_func != nullptr && g_sp.saved_func(g_sp.saved_obj.get(), frame, what, arg) < 0) return -1;
  if (!g_sp.armed) return 0;
  if (g_sp.blocked_by != nullptr) {
    if (what == PyTrace_RETURN && frame_key(frame) == g_sp.blocked_by) g_sp.blocked_by = nullptr;
    return 0;
  }
  if (what != PyTrace_LINE) return 0;
  if (g_sp.threads_refused_since && Clock::now() < g_sp.next_thread_try) return 0;
  Ref state;
  try {
    state = capture_stack(g_sp.base.get(), CaptureMode::kAtTraceEvent);
    if (g_sp.threads) park_threads();
  } catch (const UnsupportedState& e) {
    if (e.transient && e.blocking_frame == nullptr && g_sp.threads) {  // another thread is not waiting
      const auto now = Clock::now();
      if (!g_sp.threads_refused_since) g_sp.threads_refused_since = now;
      g_sp.next_thread_try = now + kThreadRetry;
      if (now - *g_sp.threads_refused_since < kThreadPatience) return 0;
    } else if (e.transient) {  // not a safe point yet
      g_sp.blocked_by = e.blocking_frame;
      return 0;
    }
    disarm();
    PyErr_SetString(error_classes().unsupported_state_error, e.message.c_str());
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return deliver(Ref::steal(value));
  } catch (...) {
    disarm();
    set_error_from_current_exception();
    return -1;
  }
  disarm();
  const int status = deliver(std::move(state));
  release_threads();  // if the callback has not
  return status;
}

void arm() {
  if (g_sp.armed) return;
  PyThreadState* tstate = PyThreadState_Get();
  g_sp.saved_func = tstate->c_tracefunc;
  g_sp.saved_obj = Ref::borrow(tstate->c_traceobj);
  g_sp.armed = true;
  PyEval_SetTrace(tracer, nullptr);
}

int arm_pending(void*) {
  g_posted = false;
  arm();
  return 0;
}

PyObject* py_request(PyObject*, PyObject*) {
  if (_PyOS_IsMainThread()) {
    arm();
  } else if (!g_posted.exchange(true)) {
    // Runs in the main thread at its next eval-breaker check.
    if (Py_AddPendingCall(arm_pending, nullptr) < 0) {
      g_posted = false;
      PyErr_SetString(PyExc_RuntimeError, "pyckpt: cannot queue the safe-point request");
      return nullptr;
    }
  }
  Py_RETURN_NONE;
}

PyObject* py_cancel(PyObject*, PyObject*) {
  if (!_PyOS_IsMainThread()) {
    PyErr_SetString(PyExc_RuntimeError, "cancel_safe_point() must be called from the main thread");
    return nullptr;
  }
  disarm();
  Py_RETURN_NONE;
}

PyObject* py_pending(PyObject*, PyObject*) { return PyBool_FromLong(g_sp.armed || g_posted); }

PyObject* py_set_callback(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"callback", "base", "threads", nullptr};
  PyObject* callback;
  PyObject* base = Py_None;
  int threads = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$p:set_safe_point_callback", const_cast<char**>(names), &callback,
                                   &base, &threads))
    return nullptr;
  if (callback != Py_None && !PyCallable_Check(callback)) {
    PyErr_SetString(PyExc_TypeError, "set_safe_point_callback(): callback must be callable or None");
    return nullptr;
  }
  if (base != Py_None && !PyFrame_Check(base) && !PyCode_Check(base)) {
    PyErr_SetString(PyExc_TypeError, "set_safe_point_callback(): base must be a frame or code object, or None");
    return nullptr;
  }
  g_sp.callback = callback == Py_None ? Ref() : Ref::borrow(callback);
  g_sp.base = base == Py_None ? Ref() : Ref::borrow(base);
  g_sp.threads = threads != 0;
  Py_RETURN_NONE;
}

PyMethodDef g_methods[] = {
    {"request_safe_point", py_request, METH_NOARGS,
     "request_safe_point(): ask for a capture at the next safe point of the main thread.\n"
     "Callable from any thread and from signal handlers."},
    {"cancel_safe_point", py_cancel, METH_NOARGS, "cancel_safe_point(): drop a pending request (main thread)."},
    {"safe_point_pending", py_pending, METH_NOARGS, "safe_point_pending() -> bool"},
    {"set_safe_point_callback", as_method(py_set_callback), METH_VARARGS | METH_KEYWORDS,
     "set_safe_point_callback(callback, base=None, *, threads=False): callback(state) runs at the safe\n"
     "point with the captured stack (capture_stack format, innermost frame resumes at its instruction),\n"
     "or callback(error) with an UnsupportedStateError if the stack can never be captured. With threads,\n"
     "the other threads are parked meanwhile (park_threads() returns their stacks)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

bool add_safepoint_api(PyObject* module) { return PyModule_AddFunctions(module, g_methods) == 0; }

}  // namespace pyckpt::core::interp
