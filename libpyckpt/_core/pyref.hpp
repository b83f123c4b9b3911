// Owning reference to a PyObject: the one way _core holds references, so that
// no code path pairs Py_INCREF/Py_DECREF by hand.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <utility>

namespace pyckpt::core {

class Ref {
 public:
  Ref() = default;
  // Takes over a new reference (the result of most C API calls); may be null.
  static Ref steal(PyObject* obj) { return Ref(obj); }
  // Adds a reference to a borrowed one.
  static Ref borrow(PyObject* obj) {
    Py_XINCREF(obj);
    return Ref(obj);
  }
  Ref(const Ref& other) : obj_(other.obj_) { Py_XINCREF(obj_); }
  Ref(Ref&& other) noexcept : obj_(std::exchange(other.obj_, nullptr)) {}
  Ref& operator=(Ref other) noexcept {
    std::swap(obj_, other.obj_);
    return *this;
  }
  ~Ref() { Py_XDECREF(obj_); }

  PyObject* get() const { return obj_; }
  // Hands the reference to the caller (e.g. to return it to Python).
  PyObject* release() { return std::exchange(obj_, nullptr); }
  explicit operator bool() const { return obj_ != nullptr; }

 private:
  explicit Ref(PyObject* obj) : obj_(obj) {}
  PyObject* obj_ = nullptr;
};

}  // namespace pyckpt::core
