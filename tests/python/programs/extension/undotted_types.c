/* A C extension type declared the way some third-party extensions declare
   theirs (gmpy2's xmpz): its tp_name carries no module ("Counter", not
   "undotted_types.Counter"), so Python reports its __module__ as "builtins"
   and pickle cannot find the type by name. Instances reduce to
   (Counter, (value,)), as gmpy2's numbers do. Built for the tests only
   (test_third_party_shapes.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
  PyObject_HEAD
  long long value;
} Counter;

static int Counter_init(Counter* self, PyObject* args, PyObject* kwds) {
  (void)kwds;
  self->value = 0;
  return PyArg_ParseTuple(args, "|L", &self->value) ? 0 : -1;
}

static PyObject* Counter_add(Counter* self, PyObject* arg) {
  long long n = PyLong_AsLongLong(arg);
  if (n == -1 && PyErr_Occurred()) return NULL;
  self->value += n;
  Py_RETURN_NONE;
}

static PyObject* Counter_get_value(Counter* self, void* closure) {
  (void)closure;
  return PyLong_FromLongLong(self->value);
}

static PyObject* Counter_reduce(Counter* self, PyObject* unused) {
  (void)unused;
  return Py_BuildValue("(O(L))", (PyObject*)Py_TYPE(self), self->value);
}

static PyMethodDef Counter_methods[] = {
  {"add", (PyCFunction)Counter_add, METH_O, "Adds an int."},
  {"__reduce__", (PyCFunction)Counter_reduce, METH_NOARGS, NULL},
  {NULL, NULL, 0, NULL},
};

static PyGetSetDef Counter_getset[] = {
  {"value", (getter)Counter_get_value, NULL, "The count.", NULL},
  {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CounterType = {
  PyVarObject_HEAD_INIT(NULL, 0)
  .tp_name = "Counter",
  .tp_basicsize = sizeof(Counter),
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_new = PyType_GenericNew,
  .tp_init = (initproc)Counter_init,
  .tp_methods = Counter_methods,
  .tp_getset = Counter_getset,
};

static struct PyModuleDef undotted_types_module = {
  PyModuleDef_HEAD_INIT, "undotted_types", NULL, -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_undotted_types(void) {
  if (PyType_Ready(&CounterType) < 0) return NULL;
  PyObject* module = PyModule_Create(&undotted_types_module);
  if (module == NULL) return NULL;
  Py_INCREF(&CounterType);
  if (PyModule_AddObject(module, "Counter", (PyObject*)&CounterType) < 0) {
    Py_DECREF(&CounterType);
    Py_DECREF(module);
    return NULL;
  }
  return module;
}
