// The one error boundary of pyckpt._core: C++ exceptions inside, Python
// exceptions at every entry point from Python. No C++ exception may cross a
// CPython frame, so every function, type slot, callback and hook that Python
// (or a C library calling back) enters runs its body through `guarded`.
//
// One mapping for the whole module (errors.cpp):
//   PythonError                      the Python exception already set
//   UnsupportedState                 pyckpt.UnsupportedStateError
//   h5::ChecksumError                pyckpt.ChecksumError
//   h5::AuthenticationError          pyckpt.AuthenticationError
//   h5::KeyFileError                 pyckpt.KeyFileError
//   h5::IoError, h5::FormatError     pyckpt.CheckpointFileError
//   h5::UsageError                   pyckpt.UsageError (a CheckpointError and a ValueError)
//   std::bad_alloc                   MemoryError
//   any other std::exception         pyckpt.CheckpointError
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string>

#include "pyref.hpp"

namespace pyckpt::core {

// A Python exception is already set.
struct PythonError {};

// Throw PythonError if a C API call failed: check() for a borrowed or raw
// result, check_new() for a new reference, check_status() for a status.
inline PyObject* check(PyObject* obj) {
  if (obj == nullptr) throw PythonError{};
  return obj;
}
inline Ref check_new(PyObject* obj) { return Ref::steal(check(obj)); }
inline void check_status(int status) {
  if (status < 0) throw PythonError{};
}

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

// pyckpt.errors' classes, looked up once when the module is initialised
// (init_errors); borrowed references valid for the life of the process.
struct ErrorClasses {
  PyObject* checkpoint_error = nullptr;
  PyObject* unsupported_state_error = nullptr;
  PyObject* file_error = nullptr;
  PyObject* checksum_error = nullptr;
  PyObject* authentication_error = nullptr;
  PyObject* key_file_error = nullptr;
  PyObject* usage_error = nullptr;
};
const ErrorClasses& error_classes();
int init_errors();  // 0, or -1 with a Python error set

// Sets the Python exception for the C++ exception being handled (call it in
// a catch block only).
void set_error_from_current_exception() noexcept;

// Sets cls(message) and throws PythonError.
[[noreturn]] void raise(PyObject* cls, const std::string& message);

template <class F>
auto guarded(F&& body, decltype(body()) on_error) noexcept -> decltype(body()) {
  try {
    return body();
  } catch (...) {
    set_error_from_current_exception();
  }
  return on_error;
}

// For functions returning a new reference (PyObject*) to Python.
template <class F>
PyObject* guarded(F&& body) noexcept {
  return guarded(std::forward<F>(body), static_cast<PyObject*>(nullptr));
}

// For functions whose body returns a Ref.
template <class F>
PyObject* guarded_ref(F&& body) noexcept {
  return guarded([&]() -> PyObject* { return body().release(); }, nullptr);
}

// For tp_init-style slots: 0, or -1 with the exception set.
template <class F>
int guarded_status(F&& body) noexcept {
  return guarded([&]() -> int { body(); return 0; }, -1);
}

// A METH_KEYWORDS function in a PyMethodDef (the void(*)() detour is the
// sanctioned way to silence -Wcast-function-type).
inline PyCFunction as_method(PyObject* (*fn)(PyObject*, PyObject*, PyObject*)) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn));
}

}  // namespace pyckpt::core
