// pyckpt._core is assembled from parts; each adds its types and functions to
// the module object in its own add_* function, called from module.cpp.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace pyckpt::core {

// container.cpp: Python view of the hdf5_io checkpoint container.
int add_container_api(PyObject* module);

// interp/api.cpp: interpreter-state capture and resume (frames, generators,
// safe points).
int add_interp_api(PyObject* module);

}  // namespace pyckpt::core
