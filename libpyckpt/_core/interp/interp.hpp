// Interpreter-state capture and resume: the version-independent interface.
//
// Everything that depends on the layout of one CPython version's frames,
// bytecode and generators lives in a backend folder (cpython311/ for 3.11);
// the Python-facing functions (api.cpp) and the safe-point machinery
// (safepoint.cpp) only use what is declared here. Supporting 3.12 means adding
// a cpython312/ backend that implements these functions, nothing else.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyref.hpp"

namespace pyckpt::core::interp {

// Where the innermost captured frame stands.
enum class CaptureMode {
  // It is inside a call to a C function (capture_stack() itself, or a Python
  // function that led there): on resume the call returns the given result.
  kAfterCall,
  // It is at an instruction boundary reported by a C trace function ('line'
  // event): on resume it executes that instruction.
  kAtTraceEvent,
  // It called a C function that called back into Python to capture (an MPI
  // call serving a checkpoint from its progress loop): capture stops at that
  // frame, and on resume it runs the same call again, with the captured
  // callable and arguments (the C function's effects are the caller's
  // business: mpi_wrap makes a re-issued MPI call complete as the cut needs).
  kReissueCall,
};

// --- backend (one implementation per CPython minor version) ---------------

// Tag stored in every state; resume refuses states with another tag.
const char* state_format();

// One-time setup at module import (opcode tables, types); false with a Python
// error set on failure.
bool backend_init(PyObject* module);

// Adds the functions that read and set how far io streams were read
// (TextIOWrapper and BufferedReader internals; streams.cpp).
bool add_streams_api(PyObject* module);

// Adds set_layouts() and restore_set_layouts(): the slot layout of set
// tables, so that restored sets iterate as the captured ones (sets.cpp).
bool add_sets_api(PyObject* module);

// Adds memoized_sets(): the sets a C pickler has written, read from its memo
// (pickle_memo.cpp).
bool add_pickle_memo_api(PyObject* module);

// The singleton that stands for an unbound slot (C NULL) in captured states.
PyObject* null_marker();

// Static value-stack depth of `code` before each code unit (None where no
// instruction starts). `live` analyses the quickened in-memory bytecode
// instead of the de-specialised co_code.
Ref stack_depths(PyObject* code, bool live);

// Captures the current thread's Python frames from `base` (a frame or code
// object, or nullptr for the default base) down to the innermost frame, or
// with kReissueCall down to the frame whose C call led to the capture.
Ref capture_stack(PyObject* base, CaptureMode mode);

// Resumes a captured stack on the calling thread; returns what the outermost
// frame returns. on_rebuilt (a callable, or null) is called once the frames
// are rebuilt, just before the innermost one goes on.
Ref resume_stack(PyObject* state, PyObject* result, PyObject* on_rebuilt);

// The other Python threads of the interpreter (threads.cpp; doc/interp.md,
// "Threads"). park_threads() stops each of them where it waits in a call
// that can be re-issued after a restart (a lock's acquire, time.sleep), or
// lets a running one go on to a safe point of its own (the GIL released
// meanwhile), captures its stack there and keeps it from running Python
// code until release_threads(). Returns a tuple of (thread ident,
// StackState); while parked, it returns the same tuple again. Throws a
// transient UnsupportedState naming the thread if one comes to neither
// (nothing stays parked then). Main thread, GIL held.
Ref park_threads();
void release_threads();

// The interpreter frame behind a frame object (UnsupportedState::blocking_frame).
const void* frame_key(PyFrameObject* frame);

Ref capture_generator(PyObject* gen);
// A generator is rebuilt in two steps, so that its state may refer back to
// it (a module whose globals hold it): made from its code, then filled.
Ref new_generator(PyObject* code);
void fill_generator(PyObject* gen, PyObject* state);
// Both steps at once.
Ref rebuild_generator(PyObject* state);
// The asend()/__anext__()/athrow()/aclose() awaitable of an async generator
// (async_awaitables.cpp).
Ref capture_async_awaitable(PyObject* awaitable);
Ref rebuild_async_awaitable(PyObject* state);
// The types of those awaitables (a tuple), which the heap pickler reduces
// with the two functions above.
Ref async_awaitable_types();

// Test hook: runs `callable()` with opcode tracing and compares the static
// depth with the interpreter's stack pointer at every instruction.
Ref verify_stack_depths(PyObject* callable);

// --- generic parts --------------------------------------------------------

// Adds the safe-point functions to the module (safepoint.cpp).
bool add_safepoint_api(PyObject* module);
// Adds call_on_large_stack() (large_stack.cpp).
bool add_large_stack_api(PyObject* module);

}  // namespace pyckpt::core::interp
