// NumPy C API for every translation unit of _core. The API table is imported
// once, in module.cpp (which defines PYCKPT_IMPORT_NUMPY before including this).
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL pyckpt_core_ARRAY_API
#ifndef PYCKPT_IMPORT_NUMPY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
