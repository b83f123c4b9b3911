// pyckpt._core: module definition; the parts are listed in module.hpp.
#include "module.hpp"

#define PYCKPT_IMPORT_NUMPY
#include "numpy_api.hpp"

namespace {

PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    "pyckpt._core",
    "pyckpt native core: checkpoint container, interpreter state capture.",
    -1,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit__core() {
  import_array();
  PyObject* module = PyModule_Create(&core_module);
  if (module == nullptr) return nullptr;
  if (pyckpt::core::add_container_api(module) < 0 || pyckpt::core::add_interp_api(module) < 0) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
