// pyckpt._core: module definition.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace {
PyModuleDef core_module = {PyModuleDef_HEAD_INIT, "pyckpt._core", "pyckpt native core", -1, nullptr};
}

PyMODINIT_FUNC PyInit__core() { return PyModule_Create(&core_module); }
