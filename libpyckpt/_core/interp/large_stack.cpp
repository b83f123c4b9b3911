// call_on_large_stack(func, stack_bytes): runs func() in the calling thread,
// on a C stack of its own of up to `stack_bytes`, with the recursion limit
// raised to what that stack can hold.
//
// CPython's pickler is recursive in C: pickling a linked list of 10^6 objects
// nests about 3 * 10^6 calls, far beyond the thread's 8 MiB stack and the
// default recursion limit of 1000. Running it on a thread with a large stack
// would change the thread that runs the reductions (mpi4py handles must be
// queried from the thread that called MPI_Init, RLock owners are thread ids),
// so the stack is switched in place instead (ucontext), the way greenlet
// does: CPython 3.11 keys everything on the thread state, never on the stack
// address.
//
// The stack is reserved, not committed (MAP_NORESERVE): only the pages the
// recursion touches take memory, and they are returned when func returns. A
// guard page below it turns an overflow into a crash instead of silent
// corruption, and the recursion limit keeps it from being reached: each level
// is granted kBytesPerLevel of stack, 2.5 times what the pickler's deepest
// paths use (measured on CPython 3.11: 80 bytes per level for nested lists,
// 155 for objects with a __dict__, 260 for objects reduced by a Python
// __reduce__, 300 to 400 for list subclasses, OrderedDict, deque and
// defaultdict, whose items go through an iterator).
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "interp/errors.hpp"
#include "interp/interp.hpp"

namespace pyckpt::core::interp {
namespace {

constexpr size_t kBytesPerLevel = 1024;
constexpr size_t kMinStack = size_t{64} << 20;  // below this the normal stack does as well

// What the function running on the large stack needs (makecontext passes no
// pointers portably); one call at a time, under the GIL.
struct LargeStackCall {
  PyObject* func = nullptr;
  PyObject* result = nullptr;  // new reference, or nullptr with the error set
  ucontext_t caller{};
  ucontext_t callee{};
};
LargeStackCall* g_call = nullptr;

void run_call() { g_call->result = PyObject_CallNoArgs(g_call->func); }  // returns to uc_link

// A reserved stack with a guard page at its low end; unmapped by the destructor.
class ReservedStack {
 public:
  explicit ReservedStack(size_t bytes) : page_(static_cast<size_t>(sysconf(_SC_PAGESIZE))) {
    // Halve the request while the system refuses it (strict overcommit
    // accounting ignores MAP_NORESERVE).
    for (size_t size = bytes; size >= kMinStack; size /= 2) {
      void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                     -1, 0);
      if (p == MAP_FAILED) continue;
      if (mprotect(p, page_, PROT_NONE) != 0) {
        munmap(p, size);
        continue;
      }
      base_ = p;
      size_ = size;
      return;
    }
  }
  ~ReservedStack() {
    if (base_ != nullptr) munmap(base_, size_);
  }
  ReservedStack(const ReservedStack&) = delete;
  ReservedStack& operator=(const ReservedStack&) = delete;

  bool ok() const { return base_ != nullptr; }
  void* usable() const { return static_cast<char*>(base_) + page_; }
  size_t usable_size() const { return size_ - page_; }

 private:
  size_t page_;
  void* base_ = nullptr;
  size_t size_ = 0;
};

PyObject* py_call_on_large_stack(PyObject*, PyObject* args) {
  PyObject* func;
  unsigned long long requested;
  if (!PyArg_ParseTuple(args, "OK:call_on_large_stack", &func, &requested)) return nullptr;
  if (!PyCallable_Check(func)) {
    PyErr_SetString(PyExc_TypeError, "call_on_large_stack(): func must be callable");
    return nullptr;
  }
  if (g_call != nullptr) return PyObject_CallNoArgs(func);  // nested: already on a large stack
  ReservedStack stack(static_cast<size_t>(requested));
  if (!stack.ok()) return PyObject_CallNoArgs(func);  // no memory to reserve: as deep as the thread allows

  // Levels the new stack can hold, on top of the current limit (whose levels
  // in use sit on the thread's own stack).
  const int old_limit = Py_GetRecursionLimit();
  const size_t extra = std::min<size_t>(stack.usable_size() / kBytesPerLevel, INT32_MAX / 2);
  Py_SetRecursionLimit(old_limit + static_cast<int>(extra));

  LargeStackCall call;
  call.func = func;
  g_call = &call;
  bool switched = getcontext(&call.callee) == 0;
  if (switched) {
    call.callee.uc_stack.ss_sp = stack.usable();
    call.callee.uc_stack.ss_size = stack.usable_size();
    call.callee.uc_link = &call.caller;
    makecontext(&call.callee, run_call, 0);
    switched = swapcontext(&call.caller, &call.callee) == 0;
  }
  g_call = nullptr;
  Py_SetRecursionLimit(old_limit);
  if (!switched) {
    PyErr_SetFromErrno(PyExc_OSError);
    return nullptr;
  }
  return call.result;
}

PyObject* py_large_stack_levels(PyObject*, PyObject* arg) {
  const unsigned long long bytes = PyLong_AsUnsignedLongLong(arg);
  if (PyErr_Occurred()) return nullptr;
  return PyLong_FromUnsignedLongLong(bytes / kBytesPerLevel);
}

PyMethodDef g_methods[] = {
    {"call_on_large_stack", py_call_on_large_stack, METH_VARARGS,
     "call_on_large_stack(func, stack_bytes) -> func()\n\nRuns func() in this thread on a C stack of its own of up to\n"
     "stack_bytes (reserved, committed as it is used), with the recursion limit raised by what it holds\n"
     "(large_stack_levels(stack_bytes)). For the recursive C pickler on deep object graphs."},
    {"large_stack_levels", py_large_stack_levels, METH_O,
     "large_stack_levels(stack_bytes) -> int: recursion levels call_on_large_stack grants such a stack."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

bool add_large_stack_api(PyObject* module) { return PyModule_AddFunctions(module, g_methods) == 0; }

}  // namespace pyckpt::core::interp
