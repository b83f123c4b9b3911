// Error handling of the interp part: C++ exceptions inside, Python exceptions
// at the boundary. No C++ exception may cross a CPython frame, so every entry
// point from Python (functions, type slots, the eval-frame hook, the trace
// function) runs its body through `guarded`.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string>
#include <utility>

#include "pyref.hpp"

namespace pyckpt::core::interp {

// A Python exception is already set.
struct PythonError {};

// State that cannot be captured or resumed; becomes
// pyckpt.UnsupportedStateError. `transient` marks conditions that go away by
// themselves (a C function between two frames): a preemptive request waits
// for the next safe point instead of failing.
struct UnsupportedState {
  std::string message;
  bool transient = false;
  // For transient states: the frame called from C; capture cannot succeed
  // before it returns.
  const void* blocking_frame = nullptr;
};

// Throws PythonError if a C API call failed.
inline PyObject* check(PyObject* obj) {
  if (obj == nullptr) throw PythonError{};
  return obj;
}
inline Ref check_new(PyObject* obj) { return Ref::steal(check(obj)); }
inline void check_status(int status) {
  if (status < 0) throw PythonError{};
}

// Sets pyckpt.UnsupportedStateError (RuntimeError if the package is missing).
void set_unsupported(const std::string& message);

// "file:line in function" of a code object at a byte offset.
std::string describe_code_at(PyObject* code, int offset_bytes);
// str()/repr() of an object for messages; never throws.
std::string describe_object(PyObject* obj);

template <class F>
auto guarded(F&& body, decltype(body()) on_error) noexcept -> decltype(body()) {
  try {
    return body();
  } catch (const PythonError&) {
  } catch (const UnsupportedState& e) {
    set_unsupported(e.message);
  } catch (const std::exception& e) {
    PyErr_Format(PyExc_SystemError, "pyckpt interp: %s", e.what());
  }
  return on_error;
}

// A METH_KEYWORDS function in a PyMethodDef (the void(*)() detour is the
// sanctioned way to silence -Wcast-function-type).
inline PyCFunction as_method(PyObject* (*fn)(PyObject*, PyObject*, PyObject*)) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn));
}

// For functions returning a new reference to Python.
template <class F>
PyObject* guarded_ref(F&& body) noexcept {
  return guarded([&]() -> PyObject* { return body().release(); }, nullptr);
}

}  // namespace pyckpt::core::interp
