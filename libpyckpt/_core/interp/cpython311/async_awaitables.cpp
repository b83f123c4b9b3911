// The awaitables of an async generator: asend() (and __anext__(), its
// asend(None)) and athrow() (and aclose()). A program driving async
// generators by hand, or a coroutine in `async for`, holds them while they
// are pending: created, or being iterated while the generator is suspended
// in an `await` (then the generator refuses another asend until this one is
// done). CPython 3.11 keeps their state in private structs of genobject.c
// (PyAsyncGenASend, PyAsyncGenAThrow), mirrored here; the mirror is checked
// against what the object's tp_traverse reports before it is read or written.
#include "interp/cpython311/py311.hpp"
#ifdef PYCKPT_INTERP_PY311

#include <string_view>
#include <vector>

namespace pyckpt::core::interp::py311 {
namespace {

// genobject.c's AwaitableState.
enum AwaitableState : int { kStateInit, kStateIter, kStateClosed };
const char* const kStateNames[] = {"init", "iter", "closed"};

// PyAsyncGenASend {ags_gen, ags_sendval, ags_state} and PyAsyncGenAThrow
// {agt_gen, agt_args, agt_state} have one layout. `argument` is null for
// __anext__() (asend's value None) and aclose() (athrow(GeneratorExit)).
struct AsyncGenAwaitable {
  PyObject_HEAD
  PyObject* gen;
  PyObject* argument;
  AwaitableState state;
};

int collect(PyObject* obj, void* arg) {
  static_cast<std::vector<PyObject*>*>(arg)->push_back(obj);
  return 0;
}

// The awaitable as the mirror sees it, after checking the mirror: its
// traverse visits exactly the generator and the argument, and the state is
// one of the three.
AsyncGenAwaitable* mirrored(PyObject* obj) {
  auto* a = reinterpret_cast<AsyncGenAwaitable*>(obj);
  std::vector<PyObject*> visited;
  Py_TYPE(obj)->tp_traverse(obj, collect, &visited);
  std::vector<PyObject*> expected{a->gen};
  if (a->argument != nullptr) expected.push_back(a->argument);
  if (visited != expected || !PyAsyncGen_CheckExact(a->gen) || a->state < kStateInit || a->state > kStateClosed)
    throw UnsupportedState{"cannot capture " + describe_object(obj) +
                           ": its layout is not CPython 3.11's PyAsyncGenASend/PyAsyncGenAThrow"};
  return a;
}

const char* kind_of(PyObject* obj) {
  if (Py_IS_TYPE(obj, &_PyAsyncGenASend_Type)) return "asend";
  if (Py_IS_TYPE(obj, &_PyAsyncGenAThrow_Type)) return "athrow";
  return nullptr;
}

}  // namespace

Ref capture_async_awaitable_impl(PyObject* obj) {
  const char* kind = kind_of(obj);
  if (kind == nullptr) {
    PyErr_SetString(PyExc_TypeError, "capture_async_awaitable() needs the asend() or athrow() of an async generator");
    throw PythonError{};
  }
  AsyncGenAwaitable* a = mirrored(obj);
  return check_new(Py_BuildValue("(ssOOs)", state_format(), kind, a->gen, to_state(a->argument),
                                 kStateNames[a->state]));
}

// Made again the way the program made it (asend(value), __anext__(),
// athrow(*args), aclose()) on the rebuilt generator, then given its state.
Ref rebuild_async_awaitable_impl(PyObject* state) {
  if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != 5) bad_state("expected an async generator awaitable");
  check_format(PyTuple_GET_ITEM(state, 0));
  PyObject* kind_obj = PyTuple_GET_ITEM(state, 1);
  PyObject* gen = PyTuple_GET_ITEM(state, 2);
  PyObject* argument = from_state(PyTuple_GET_ITEM(state, 3));
  PyObject* state_obj = PyTuple_GET_ITEM(state, 4);
  if (!PyUnicode_Check(kind_obj) || !PyUnicode_Check(state_obj) || !PyAsyncGen_CheckExact(gen))
    bad_state("malformed async generator awaitable");
  const std::string_view kind = PyUnicode_AsUTF8(kind_obj);
  Ref awaitable;
  if (kind == "asend") {
    awaitable = argument ? check_new(PyObject_CallMethod(gen, "asend", "O", argument))
                         : check_new(PyObject_CallMethod(gen, "__anext__", nullptr));
  } else if (kind == "athrow") {
    if (argument != nullptr && !PyTuple_Check(argument)) bad_state("athrow() arguments are not a tuple");
    Ref method = check_new(PyObject_GetAttrString(gen, argument ? "athrow" : "aclose"));
    awaitable = check_new(argument ? PyObject_Call(method.get(), argument, nullptr) : PyObject_CallNoArgs(method.get()));
  } else {
    bad_state("unknown async generator awaitable " + std::string(kind));
  }
  const std::string_view name = PyUnicode_AsUTF8(state_obj);
  int state_index = -1;
  for (int i = kStateInit; i <= kStateClosed; ++i)
    if (name == kStateNames[i]) state_index = i;
  if (state_index < 0) bad_state("unknown awaitable state " + std::string(name));
  mirrored(awaitable.get())->state = static_cast<AwaitableState>(state_index);
  return awaitable;
}

}  // namespace pyckpt::core::interp::py311

namespace pyckpt::core::interp {

Ref capture_async_awaitable(PyObject* obj) { return py311::capture_async_awaitable_impl(obj); }
Ref rebuild_async_awaitable(PyObject* state) { return py311::rebuild_async_awaitable_impl(state); }
Ref async_awaitable_types() {
  return check_new(Py_BuildValue("(OO)", &_PyAsyncGenASend_Type, &_PyAsyncGenAThrow_Type));
}

}  // namespace pyckpt::core::interp

#endif
