// Error helpers of the interp part. The boundary itself (PythonError,
// UnsupportedState, guarded) is _core's one boundary, errors.hpp: every entry
// point from Python (functions, type slots, the eval-frame hook, the trace
// function) runs its body through `guarded`.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string>
#include <utility>

#include "../errors.hpp"  // _core/errors.hpp, the boundary (not this file)
#include "pyref.hpp"

namespace pyckpt::core::interp {

// "file:line in function" of a code object at a byte offset.
std::string describe_code_at(PyObject* code, int offset_bytes);
// str()/repr() of an object for messages; never throws.
std::string describe_object(PyObject* obj);

}  // namespace pyckpt::core::interp
