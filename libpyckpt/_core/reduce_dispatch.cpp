// ReduceDispatch: the reducer_override of the heap pickler (pyckpt.heap.Pickler).
//
// The C pickler calls reducer_override for every object that is not of a
// built-in atom or container type, the first time it meets it: once per
// instance of the program's own classes. A Python method there costs a
// Python call per instance, about a third of the time of pickling a graph of
// such instances; this callable does the per-type decision in C instead: a
// dict lookup by exact type, `resolve(cls)` (Python) running once per type.
// It remembers the last object it was given: the culprit when pickling fails.
#include "errors.hpp"
#include "module.hpp"

#include <structmember.h>

namespace pyckpt::core {
namespace {

struct ReduceDispatch {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject* resolve;  // resolve(cls) -> reduce(obj) for instances of cls, or None (pickle's own reduction)
  PyObject* cache;    // {cls: what resolve(cls) returned}
  PyObject* last;     // the last object seen (a strong reference), or null
};

PyObject* dispatch_vectorcall(PyObject* self_obj, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  auto* self = reinterpret_cast<ReduceDispatch*>(self_obj);
  if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != nullptr) {
    PyErr_SetString(PyExc_TypeError, "ReduceDispatch takes one positional argument, the object to reduce");
    return nullptr;
  }
  return guarded_ref([&] {
    PyObject* obj = args[0];
    Py_XSETREF(self->last, Py_NewRef(obj));
    auto* cls = reinterpret_cast<PyObject*>(Py_TYPE(obj));
    Ref reduce = Ref::borrow(PyDict_GetItemWithError(self->cache, cls));
    if (!reduce) {
      if (PyErr_Occurred()) throw PythonError{};
      reduce = check_new(PyObject_CallOneArg(self->resolve, cls));
      check_status(PyDict_SetItem(self->cache, cls, reduce.get()));
    }
    if (reduce.get() == Py_None) return Ref::borrow(Py_NotImplemented);
    return check_new(PyObject_CallOneArg(reduce.get(), obj));
  });
}

PyObject* dispatch_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"resolve", nullptr};
  PyObject* resolve;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:ReduceDispatch", const_cast<char**>(names), &resolve))
    return nullptr;
  Ref cache = Ref::steal(PyDict_New());
  if (!cache) return nullptr;
  auto* self = reinterpret_cast<ReduceDispatch*>(type->tp_alloc(type, 0));
  if (self == nullptr) return nullptr;
  self->vectorcall = dispatch_vectorcall;
  self->resolve = Py_NewRef(resolve);
  self->cache = cache.release();
  self->last = nullptr;
  return reinterpret_cast<PyObject*>(self);
}

int dispatch_traverse(PyObject* self_obj, visitproc visit, void* arg) {
  auto* self = reinterpret_cast<ReduceDispatch*>(self_obj);
  Py_VISIT(Py_TYPE(self_obj));
  Py_VISIT(self->resolve);
  Py_VISIT(self->cache);
  Py_VISIT(self->last);
  return 0;
}

int dispatch_clear(PyObject* self_obj) {
  auto* self = reinterpret_cast<ReduceDispatch*>(self_obj);
  Py_CLEAR(self->resolve);
  Py_CLEAR(self->cache);
  Py_CLEAR(self->last);
  return 0;
}

void dispatch_dealloc(PyObject* self_obj) {
  PyTypeObject* type = Py_TYPE(self_obj);
  PyObject_GC_UnTrack(self_obj);
  dispatch_clear(self_obj);
  type->tp_free(self_obj);
  Py_DECREF(type);
}

PyMemberDef g_members[] = {
    {"last", T_OBJECT, offsetof(ReduceDispatch, last), READONLY,
     "the last object this dispatch was called with (None before the first)"},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ReduceDispatch, vectorcall), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyType_Slot g_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(dispatch_new)},
    {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
    {Py_tp_traverse, reinterpret_cast<void*>(dispatch_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(dispatch_clear)},
    {Py_tp_dealloc, reinterpret_cast<void*>(dispatch_dealloc)},
    {Py_tp_members, g_members},
    {Py_tp_doc, const_cast<char*>(
                    "ReduceDispatch(resolve)(obj) -> a reduce tuple, or NotImplemented\n\n"
                    "A pickler's reducer_override deciding by the exact type of obj: resolve(type(obj)), called\n"
                    "once per type, gives reduce(obj) or None (NotImplemented: pickle's own reduction).\n"
                    "`last` is the last object it was called with.")},
    {0, nullptr},
};

PyType_Spec g_spec = {"pyckpt._core.ReduceDispatch", sizeof(ReduceDispatch), 0,
                      Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL, g_slots};

}  // namespace

int add_reduce_dispatch_api(PyObject* module) {
  PyObject* type = PyType_FromModuleAndSpec(module, &g_spec, nullptr);
  if (type == nullptr) return -1;
  const int status = PyModule_AddObjectRef(module, "ReduceDispatch", type);
  Py_DECREF(type);
  return status;
}

}  // namespace pyckpt::core
