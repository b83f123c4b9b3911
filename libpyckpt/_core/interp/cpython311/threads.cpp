// The other Python threads at a checkpoint (CPython 3.11): parked where they
// wait in a call that can be re-issued, and captured there.
//
// While the main thread holds the GIL at its safe point, every other thread
// is inside a C call that released the GIL (a lock's acquire, a sleep, a
// read...) or waits for the GIL. A thread blocked in a C call stands with its
// innermost frame at the CALL (or specialised PRECALL) of that function, and
// 3.11 keeps the callable and its arguments on the value stack until the
// call returns; so the frame is captured *inside* the call, which runs again
// on resume (CaptureMode::kReissueCall). Only calls that have had no effect
// until they return may run again: a lock's acquire (it takes the lock when
// it returns, and the lock's Python-visible state -- `locked`, an RLock's
// owner and count -- is set only then, with the GIL) and time.sleep (a wait
// that starts over). A read, a write, a select may have consumed or produced
// data the restarted thread would not see again: refused, naming the thread
// and the function (a request waits, see safepoint.cpp).
//
// A thread that runs Python code (or waits for the GIL to go on running) is
// brought to a safe point of its own: the main thread releases the GIL for
// a moment, and the thread, armed, captures its own stack at its next 'line'
// or opcode event (where 3.11 saves its position and stack pointer, as for
// the main thread's safe points) and parks there; on resume it runs on from
// that instruction. A thread that has not come to a wait or a safe point
// when the main thread takes the GIL back (it waits in os.read...) makes the
// attempt fail: every thread is let go again.
//
// A parked thread must run no Python code until the checkpoint is written
// (the main thread pickles the heap meanwhile, and may release the GIL while
// doing so). Each other thread gets a C trace function (per thread state, as
// 3.12's PyEval_SetTraceAllThreads sets it) and opcode events on its
// innermost frame: when its call returns, the event before the next
// instruction parks it, the GIL released, until release_threads(). Nothing
// of the program's runs in the main thread between arming the threads and
// capturing them (the garbage collector is off meanwhile), so no thread
// slips through.
#include "interp/cpython311/py311.hpp"
#ifdef PYCKPT_INTERP_PY311

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

namespace pyckpt::core::interp::py311 {
namespace {

// Modules/_threadmodule.c's lock objects (3.11), checked by init_threads().
struct LockObject {
  PyObject_HEAD
  PyThread_type_lock lock_lock;
  PyObject* in_weakreflist;
  char locked;
};
struct RLockObject {
  PyObject_HEAD
  PyThread_type_lock rlock_lock;
  unsigned long rlock_owner;
  unsigned long rlock_count;
  PyObject* in_weakreflist;
};

// The C functions a parked thread may be waiting in.
struct Reissuable {
  PyTypeObject* lock_type = nullptr;
  PyTypeObject* rlock_type = nullptr;
  std::vector<PyCFunction> lock_waits;   // _thread.lock: acquire, acquire_lock, __enter__
  std::vector<PyCFunction> rlock_waits;  // _thread.RLock: acquire, __enter__
  PyCFunction lock_exit = nullptr;       // __exit__ of each: on the stack in `with lock:`
  PyCFunction rlock_exit = nullptr;
  PyCFunction sleep = nullptr;           // time.sleep
};
Reissuable g_calls;

// A thread state given the parking trace function, and what it had before.
struct Armed {
  PyThreadState* tstate;
  unsigned long ident;
  Py_tracefunc saved_func;
  PyObject* saved_obj;    // owned
  PyObject* frame;        // owned: its innermost frame object, or null
  char saved_opcodes;
  Ref own;                // the stack it captured at a safe point of its own, if it came to one
};

struct Parking {
  std::vector<Armed> armed;
  Ref captured;  // ((ident, StackState), ...) while the threads are parked
  std::mutex mutex;
  std::condition_variable released;
  uint64_t generation = 0;  // bumped (under mutex) by each release
  // While the main thread waits for running threads to come to safe points
  // of their own (GIL-protected), and how many came (under mutex).
  bool collecting = false;
  std::condition_variable came;
  size_t arrived = 0;
};
// How long the main thread lets running threads go on to a safe point.
constexpr auto kCollectTime = std::chrono::milliseconds(100);
Parking& g_park = *new Parking;  // never destroyed (see safepoint.cpp)

void update_tracing(PyThreadState* t) {
  // _PyThreadState_UpdateTracingState: the flag the evaluator tests before each instruction.
  const bool on = t->tracing == 0 && (t->c_tracefunc != nullptr || t->c_profilefunc != nullptr);
  t->cframe->use_tracing = on ? 255 : 0;
}

// Sets the trace function of another thread state without _PyEval_SetTrace's
// audit event: no Python code may run in between.
void set_trace(PyThreadState* t, Py_tracefunc func, PyObject* obj) {
  PyObject* old = t->c_traceobj;
  t->c_traceobj = Py_XNewRef(obj);
  t->c_tracefunc = func;
  update_tracing(t);
  Py_XDECREF(old);
}

// Captures the calling thread at this trace event, or nothing if it is no
// safe point (a C function between its frames: it runs on to the next event).
Ref capture_self(PyThreadState* t, PyFrameObject* frame) {
  try {
    return capture_frames(t, nullptr, CaptureMode::kAtTraceEvent, frame->f_frame);
  } catch (const UnsupportedState&) {
  } catch (const PythonError&) {
    PyErr_Clear();
  } catch (const std::exception&) {
  }
  return Ref();
}

int park_tracer(PyObject*, PyFrameObject* frame, int what, PyObject* arg) {
  PyThreadState* t = PyThreadState_Get();
  auto it = std::find_if(g_park.armed.begin(), g_park.armed.end(), [&](const Armed& a) { return a.tstate == t; });
  if (it == g_park.armed.end()) return 0;
  if (it->saved_func != nullptr && it->saved_func(it->saved_obj, frame, what, arg) < 0) return -1;
  if (g_park.collecting && !it->own && (what == PyTrace_LINE || what == PyTrace_OPCODE)) {
    it->own = capture_self(t, frame);
    if (!it->own) return 0;
    {
      std::lock_guard lock(g_park.mutex);
      ++g_park.arrived;
    }
    g_park.came.notify_all();
  } else if (!g_park.captured) {
    return 0;
  }
  uint64_t generation;
  {
    std::lock_guard lock(g_park.mutex);
    generation = g_park.generation;
  }
  // The mutex is let go before the GIL is taken back (a thread holding the
  // GIL may be waiting for it).
  Py_BEGIN_ALLOW_THREADS {
    std::unique_lock lock(g_park.mutex);
    g_park.released.wait(lock, [&] { return g_park.generation != generation; });
  }
  Py_END_ALLOW_THREADS
  return 0;  // disarm_all() gave the thread its own trace function back
}

bool alive(const Armed& a) {
  for (PyThreadState* t = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); t; t = PyThreadState_Next(t))
    if (t == a.tstate && t->thread_id == a.ident) return true;
  return false;
}

// Gives the threads their own trace functions back and lets the parked ones go.
void disarm_all() {
  for (Armed& a : g_park.armed) {
    if (alive(a)) set_trace(a.tstate, a.saved_func, a.saved_obj);
    if (a.frame != nullptr) reinterpret_cast<PyFrameObject*>(a.frame)->f_trace_opcodes = a.saved_opcodes;
    Py_XDECREF(a.saved_obj);
    Py_XDECREF(a.frame);
  }
  g_park.armed.clear();
  g_park.collecting = false;
  {
    std::lock_guard lock(g_park.mutex);
    ++g_park.generation;
  }
  g_park.released.notify_all();
}

// Releases the GIL until the `expected` running threads have come to safe
// points of their own, or kCollectTime has passed.
void let_running_threads_come(size_t expected) {
  {
    std::lock_guard lock(g_park.mutex);
    g_park.arrived = 0;
  }
  g_park.collecting = true;
  Py_BEGIN_ALLOW_THREADS {
    std::unique_lock lock(g_park.mutex);  // let go before the GIL is taken back
    g_park.came.wait_for(lock, kCollectTime, [&] { return g_park.arrived >= expected; });
  }
  Py_END_ALLOW_THREADS
  g_park.collecting = false;
}

// A thread state of the interpreter that was not armed (started while the
// armed ones ran), or null.
PyThreadState* unarmed_thread(PyThreadState* self) {
  for (PyThreadState* t = PyInterpreterState_ThreadHead(self->interp); t; t = PyThreadState_Next(t))
    if (t != self && std::none_of(g_park.armed.begin(), g_park.armed.end(), [&](const Armed& a) { return a.tstate == t; }))
      return t;
  return nullptr;
}

void arm_all(PyThreadState* self) {
  for (PyThreadState* t = PyInterpreterState_ThreadHead(self->interp); t; t = PyThreadState_Next(t)) {
    if (t == self) continue;
    g_park.armed.push_back({t, t->thread_id, t->c_tracefunc, Py_XNewRef(t->c_traceobj), nullptr, 0, Ref()});
    set_trace(t, park_tracer, nullptr);
  }
  // Opcode events on each innermost frame: the next instruction after the
  // call returns is reported (a 'line' event would come only at the next line).
  Ref frames = check_new(_PyThread_CurrentFrames());
  for (Armed& a : g_park.armed) {
    Ref ident = check_new(PyLong_FromUnsignedLong(a.ident));
    PyObject* frame = PyDict_GetItemWithError(frames.get(), ident.get());
    if (frame == nullptr) continue;
    a.frame = Py_NewRef(frame);
    a.saved_opcodes = reinterpret_cast<PyFrameObject*>(frame)->f_trace_opcodes;
    reinterpret_cast<PyFrameObject*>(frame)->f_trace_opcodes = 1;
  }
}

bool one_of(const std::vector<PyCFunction>& functions, PyCFunction f) {
  return std::find(functions.begin(), functions.end(), f) != functions.end();
}

// Why the thread whose innermost frame is `f` cannot be parked there, or
// nothing if it waits in a re-issuable call that has not returned. The
// reasons do not depend on where exactly it runs: a refusal is reported once
// per cause (pyckpt.session).
std::optional<std::string> not_waiting(Frame* f) {
  if (f == nullptr) return "has no Python frame (it is starting or ending)";
  const std::string running = "is running Python code";
  if (_PyFrame_IsIncomplete(f)) return running;
  const CodeInfo& info = code_info(f->f_code);
  const Instr& in = info.at_unit(prev_unit(f));
  PyObject** stack = f->localsplus + f->f_code->co_nlocalsplus;
  if (in.opcode == BEFORE_WITH) {
    // `with lock:` waiting in the lock's __enter__ (BEFORE_WITH does not
    // check the eval breaker: a thread stands there only inside the call),
    // the manager replaced by its bound __exit__ on the stack.
    PyObject* exit = stack[in.depth - 1];
    PyObject* lock = PyCFunction_Check(exit) ? PyCFunction_GET_SELF(exit) : nullptr;
    if (lock != nullptr && Py_IS_TYPE(lock, g_calls.lock_type) && PyCFunction_GET_FUNCTION(exit) == g_calls.lock_exit)
      return reinterpret_cast<LockObject*>(lock)->locked ? std::nullopt : std::optional(running);
    if (lock != nullptr && Py_IS_TYPE(lock, g_calls.rlock_type) && PyCFunction_GET_FUNCTION(exit) == g_calls.rlock_exit)
      return reinterpret_cast<RLockObject*>(lock)->rlock_count > 0 ? std::nullopt : std::optional(running);
    return "is in the __enter__ of " + describe_object(reinterpret_cast<PyObject*>(Py_TYPE(exit))) + " (at " +
           describe_frame(f) + "), which pyckpt cannot run again after a restart";
  }
  const Instr* call = call_of(info, in);
  if (call == nullptr) return running;
  const int base = call_group_start(info, *call).depth - (call->oparg + 2);
  // Below the arguments: NULL and the callable, or a method descriptor and
  // its object. Once the call has returned, its result is there instead
  // (never NULL, never a method descriptor for these calls), and the slots
  // above are stale.
  PyObject* below = stack[base];
  PyCFunction function;
  PyObject* self;
  PyObject* callable;
  if (below == nullptr) {
    callable = stack[base + 1];
    if (!PyCFunction_Check(callable)) return "is in a call of " + std::string(Py_TYPE(callable)->tp_name);
    function = PyCFunction_GET_FUNCTION(callable);
    self = PyCFunction_GET_SELF(callable);
  } else if (Py_IS_TYPE(below, &PyMethodDescr_Type)) {
    callable = below;
    function = reinterpret_cast<PyMethodDescrObject*>(below)->d_method->ml_meth;
    self = stack[base + 1];
  } else {
    return running;
  }
  if (function == g_calls.sleep) return std::nullopt;
  // A lock that is free while a thread waits for it was released to that
  // thread, which is about to return with it: it runs, it does not wait.
  if (self != nullptr && Py_IS_TYPE(self, g_calls.lock_type) && one_of(g_calls.lock_waits, function))
    return reinterpret_cast<LockObject*>(self)->locked ? std::nullopt : std::optional(running);
  if (self != nullptr && Py_IS_TYPE(self, g_calls.rlock_type) && one_of(g_calls.rlock_waits, function))
    return reinterpret_cast<RLockObject*>(self)->rlock_count > 0 ? std::nullopt : std::optional(running);
  return "is in C function " + describe_object(callable) + " (at " + describe_frame(f) + "), which pyckpt cannot " +
         "run again after a restart (only a lock's acquire and time.sleep are)";
}

// "thread 'name'" from threading's table, or a thread started with _thread
// named by the function it runs (its outermost frame but a resume's).
std::string describe_thread(unsigned long ident, Frame* innermost, Frame* root) {
  Ref threading = Ref::steal(PyImport_GetModule(Ref::steal(PyUnicode_FromString("threading")).get()));
  Ref active = threading ? Ref::steal(PyObject_GetAttrString(threading.get(), "_active")) : Ref();
  Ref key = Ref::steal(PyLong_FromUnsignedLong(ident));
  PyObject* thread = active && key && PyDict_Check(active.get()) ? PyDict_GetItem(active.get(), key.get()) : nullptr;
  Ref name = thread ? Ref::steal(PyObject_GetAttrString(thread, "_name")) : Ref();
  PyErr_Clear();
  if (name && PyUnicode_Check(name.get())) return "thread '" + std::string(PyUnicode_AsUTF8(name.get())) + "'";
  Frame* start = nullptr;
  for (Frame* f = innermost; f != nullptr; f = f->previous) {
    if (!_PyFrame_IsIncomplete(f)) start = f;
    if (f == root) break;
  }
  if (start == nullptr) return "a thread started with _thread";
  return "a thread started with _thread (running " + std::string(PyUnicode_AsUTF8(start->f_code->co_name)) +
         "() of " + PyUnicode_AsUTF8(start->f_code->co_filename) + ")";
}

// Disarms the threads unless the capture completed.
class ParkAttempt {
 public:
  ParkAttempt() : gc_was_enabled_(PyGC_Disable()) {}
  ~ParkAttempt() {
    if (!done_) disarm_all();
    if (gc_was_enabled_) PyGC_Enable();
  }
  void done() { done_ = true; }
  ParkAttempt(const ParkAttempt&) = delete;
  ParkAttempt& operator=(const ParkAttempt&) = delete;

 private:
  int gc_was_enabled_;
  bool done_ = false;
};

[[noreturn]] void refuse(const std::string& thread, const std::string& why) {
  throw UnsupportedState{"cannot capture " + thread + ": it " + why +
                             "; pyckpt captures other threads while they wait (in a lock's acquire, "
                             "Queue.get, Event.wait, time.sleep) or at a safe point of their own",
                         true};
}

Ref park_impl() {
  if (g_park.captured) return g_park.captured;
  PyThreadState* self = PyThreadState_Get();
  struct Refusal {
    unsigned long ident;
    Frame* innermost;
    Frame* root;
    std::string why;
  };
  std::vector<Refusal> refusals;
  Ref captured;
  {
    ParkAttempt attempt;
    arm_all(self);
    // Threads waiting in a re-issuable call, or parked at safe points of
    // their own; the others are refused.
    auto check = [&] {
      refusals.clear();
      for (const Armed& a : g_park.armed) {
        if (a.own || !alive(a)) continue;  // one that ended meanwhile is not captured
        if (auto why = not_waiting(a.tstate->cframe->current_frame))
          refusals.push_back({a.ident, a.tstate->cframe->current_frame, resumed_root_frame(a.tstate), *why});
      }
    };
    check();
    if (!refusals.empty()) {
      let_running_threads_come(refusals.size());
      check();
      if (PyThreadState* t = unarmed_thread(self))
        refusals.push_back({t->thread_id, nullptr, nullptr, "was started while the other threads were being parked"});
    }
    if (refusals.empty()) {
      std::vector<std::pair<unsigned long, Ref>> stacks;
      for (const Armed& a : g_park.armed) {
        if (a.own) {
          stacks.emplace_back(a.ident, a.own);
          continue;
        }
        if (!alive(a)) continue;
        Ref stack;
        try {
          stack = capture_frames(a.tstate, nullptr, CaptureMode::kReissueCall, a.tstate->cframe->current_frame);
        } catch (const UnsupportedState& e) {
          refusals.push_back({a.ident, a.tstate->cframe->current_frame, resumed_root_frame(a.tstate),
                              "cannot be captured: " + e.message});
          break;
        }
        stacks.emplace_back(a.ident, std::move(stack));
      }
      captured = check_new(PyTuple_New(static_cast<Py_ssize_t>(stacks.size())));
      for (size_t i = 0; i < stacks.size(); ++i)
        PyTuple_SET_ITEM(captured.get(), static_cast<Py_ssize_t>(i),
                         check_new(Py_BuildValue("(kO)", stacks[i].first, stacks[i].second.get())).release());
    }
    if (refusals.empty()) {
      g_park.captured = captured;
      attempt.done();
    }
  }
  // The threads are disarmed (or parked): naming them may run Python code
  // (the refused thread waits for the GIL meanwhile: its frames stay).
  if (!refusals.empty()) {
    const Refusal& r = refusals.front();
    refuse(describe_thread(r.ident, r.innermost, r.root), r.why);
  }
  return captured;
}

PyCFunction method_of(PyTypeObject* type, const char* name) {
  PyObject* descr = PyDict_GetItemString(type->tp_dict, name);
  if (descr == nullptr || !Py_IS_TYPE(descr, &PyMethodDescr_Type)) return nullptr;
  return reinterpret_cast<PyMethodDescrObject*>(descr)->d_method->ml_meth;
}

}  // namespace

bool init_threads() {
  Ref thread_module = Ref::steal(PyImport_ImportModule("_thread"));
  Ref time_module = Ref::steal(PyImport_ImportModule("time"));
  if (!thread_module || !time_module) return false;
  Ref lock = Ref::steal(PyObject_CallMethod(thread_module.get(), "allocate_lock", nullptr));
  Ref rlock = Ref::steal(PyObject_CallMethod(thread_module.get(), "RLock", nullptr));
  Ref sleep = Ref::steal(PyObject_GetAttrString(time_module.get(), "sleep"));
  if (!lock || !rlock || !sleep) return false;
  g_calls.lock_type = Py_TYPE(lock.get());
  g_calls.rlock_type = Py_TYPE(rlock.get());
  g_calls.lock_waits = {method_of(g_calls.lock_type, "acquire"), method_of(g_calls.lock_type, "acquire_lock"),
                        method_of(g_calls.lock_type, "__enter__")};
  g_calls.rlock_waits = {method_of(g_calls.rlock_type, "acquire"), method_of(g_calls.rlock_type, "__enter__")};
  g_calls.lock_exit = method_of(g_calls.lock_type, "__exit__");
  g_calls.rlock_exit = method_of(g_calls.rlock_type, "__exit__");
  g_calls.sleep = PyCFunction_Check(sleep.get()) ? PyCFunction_GET_FUNCTION(sleep.get()) : nullptr;
  // The mirrored layouts must agree with what the objects say of themselves.
  auto* l = reinterpret_cast<LockObject*>(lock.get());
  auto* r = reinterpret_cast<RLockObject*>(rlock.get());
  bool layout = l->locked == 0 && r->rlock_count == 0;
  Ref taken = Ref::steal(PyObject_CallMethod(lock.get(), "acquire", nullptr));
  Ref taken_r = Ref::steal(PyObject_CallMethod(rlock.get(), "acquire", nullptr));
  Ref taken_r2 = Ref::steal(PyObject_CallMethod(rlock.get(), "acquire", nullptr));
  if (!taken || !taken_r || !taken_r2) return false;
  layout = layout && l->locked == 1 && r->rlock_count == 2 && r->rlock_owner == PyThread_get_thread_ident();
  const bool found = g_calls.sleep != nullptr && g_calls.lock_exit != nullptr && g_calls.rlock_exit != nullptr &&
                     std::find(g_calls.lock_waits.begin(), g_calls.lock_waits.end(), nullptr) == g_calls.lock_waits.end() &&
                     std::find(g_calls.rlock_waits.begin(), g_calls.rlock_waits.end(), nullptr) == g_calls.rlock_waits.end();
  if (!layout || !found) {
    PyErr_SetString(PyExc_ImportError, "pyckpt._core: _thread's lock objects are not laid out as in CPython 3.11");
    return false;
  }
  return true;
}

}  // namespace pyckpt::core::interp::py311

namespace pyckpt::core::interp {

Ref park_threads() { return py311::park_impl(); }

void release_threads() {
  if (!py311::g_park.captured) return;
  py311::g_park.captured = Ref();
  py311::disarm_all();
}

}  // namespace pyckpt::core::interp

#endif
