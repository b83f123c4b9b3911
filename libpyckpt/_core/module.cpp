// pyckpt._core: module definition; the parts are listed in module.hpp.
#include "errors.hpp"
#include "module.hpp"

#include <cstring>

#define PYCKPT_IMPORT_NUMPY
#include "numpy_api.hpp"

namespace {

PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    "pyckpt._core",
    "pyckpt native core: checkpoint container, interpreter state capture, the MPI interposer's binding.",
    -1,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace

namespace pyckpt::core {

PyTypeObject* add_struct_type(PyObject* module, PyStructSequence_Desc* desc) {
  PyTypeObject* type = PyStructSequence_NewType(desc);
  if (type == nullptr) return nullptr;
  const char* dot = std::strrchr(desc->name, '.');
  if (PyModule_AddObjectRef(module, dot ? dot + 1 : desc->name, reinterpret_cast<PyObject*>(type)) < 0) {
    Py_DECREF(type);
    return nullptr;
  }
  return type;
}

void require_numpy() {
  if (PyArray_API == nullptr && _import_array() < 0) throw PythonError{};
}

long mpi4py_fortran_handle(PyObject* obj) {
  PyObject* f = PyObject_CallMethod(obj, "py2f", nullptr);
  if (f == nullptr) return -1;
  const long handle = PyLong_AsLong(f);
  Py_DECREF(f);
  return handle;
}

}  // namespace pyckpt::core

PyMODINIT_FUNC PyInit__core() {
  PyObject* module = PyModule_Create(&core_module);
  if (module == nullptr) return nullptr;
  if (pyckpt::core::init_errors() < 0 || pyckpt::core::add_container_api(module) < 0 ||
      pyckpt::core::add_interp_api(module) < 0 || pyckpt::core::add_mpi_api(module) < 0 ||
      pyckpt::core::add_reduce_dispatch_api(module) < 0 ||
      pyckpt::core::add_triggers_api(module) < 0) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
