// NumPy C API for every translation unit of _core. The API table is imported
// on first use (require_numpy(), module.cpp, which defines PYCKPT_IMPORT_NUMPY
// before including this), not when _core is imported: importing numpy takes
// longer than starting the interpreter, and a program without arrays has no
// use for it.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL pyckpt_core_ARRAY_API
#ifndef PYCKPT_IMPORT_NUMPY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

namespace pyckpt::core {

// Imports the NumPy C API if not yet done; call it before any PyArray_*
// function or macro (as_array, dtype_of). Throws PythonError on failure.
void require_numpy();

}  // namespace pyckpt::core
