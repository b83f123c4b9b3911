// Python-facing functions of the interp part (documented in doc/interp.md).
#include "interp/errors.hpp"
#include "interp/interp.hpp"
#include "module.hpp"

namespace pyckpt::core::interp {
namespace {

PyObject* g_null = nullptr;

PyObject* null_reduce(PyObject*, PyObject*) { return PyUnicode_FromString("NULL"); }
PyObject* null_repr(PyObject*) { return PyUnicode_FromString("pyckpt._core.NULL"); }

PyMethodDef g_null_methods[] = {
    {"__reduce__", null_reduce, METH_NOARGS, "Pickles by reference to pyckpt._core.NULL."},
    {nullptr, nullptr, 0, nullptr},
};
PyType_Slot g_null_slots[] = {
    {Py_tp_methods, g_null_methods},
    {Py_tp_repr, reinterpret_cast<void*>(null_repr)},
    {Py_tp_doc, const_cast<char*>("Marks an unbound local or a NULL value-stack slot in captured frames.")},
    {0, nullptr},
};
PyType_Spec g_null_spec = {"pyckpt._core.NullType", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, g_null_slots};

PyObject* py_capture_stack(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"base", "reissue_c_call", nullptr};
  PyObject* base = nullptr;
  int reissue = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$p:capture_stack", const_cast<char**>(names), &base, &reissue))
    return nullptr;
  const CaptureMode mode = reissue ? CaptureMode::kReissueCall : CaptureMode::kAfterCall;
  return guarded_ref([&] { return capture_stack(base, mode); });
}

PyObject* py_resume_stack(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"state", "result", "on_rebuilt", nullptr};
  PyObject *state, *result, *on_rebuilt = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:resume_stack", const_cast<char**>(names), &state, &result,
                                   &on_rebuilt))
    return nullptr;
  if (on_rebuilt != Py_None && !PyCallable_Check(on_rebuilt)) {
    PyErr_SetString(PyExc_TypeError, "resume_stack(): on_rebuilt must be callable or None");
    return nullptr;
  }
  return guarded_ref([&] { return resume_stack(state, result, on_rebuilt); });
}

PyObject* py_park_threads(PyObject*, PyObject*) {
  if (!_PyOS_IsMainThread()) {
    PyErr_SetString(PyExc_RuntimeError, "park_threads() must be called from the main thread");
    return nullptr;
  }
  return guarded_ref([&] { return park_threads(); });
}

PyObject* py_release_threads(PyObject*, PyObject*) {
  release_threads();
  Py_RETURN_NONE;
}

PyObject* py_capture_generator(PyObject*, PyObject* gen) {
  return guarded_ref([&] { return capture_generator(gen); });
}

PyObject* py_rebuild_generator(PyObject*, PyObject* state) {
  return guarded_ref([&] { return rebuild_generator(state); });
}

PyObject* py_new_generator(PyObject*, PyObject* code) {
  return guarded_ref([&] { return new_generator(code); });
}

PyObject* py_fill_generator(PyObject*, PyObject* args) {
  PyObject *gen, *state;
  if (!PyArg_ParseTuple(args, "OO:fill_generator", &gen, &state)) return nullptr;
  return guarded_ref([&] {
    fill_generator(gen, state);
    return Ref::borrow(Py_None);
  });
}

PyObject* py_capture_async_awaitable(PyObject*, PyObject* awaitable) {
  return guarded_ref([&] { return capture_async_awaitable(awaitable); });
}

PyObject* py_rebuild_async_awaitable(PyObject*, PyObject* state) {
  return guarded_ref([&] { return rebuild_async_awaitable(state); });
}

PyObject* py_stack_depths(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* names[] = {"code", "live", nullptr};
  PyObject* code;
  int live = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:stack_depths", const_cast<char**>(names), &code, &live)) return nullptr;
  return guarded_ref([&] { return stack_depths(code, live != 0); });
}

PyObject* py_verify_stack_depths(PyObject*, PyObject* callable) {
  return guarded_ref([&] { return verify_stack_depths(callable); });
}

// The interpreter's str/bytes hash secret (set at start-up from
// PYTHONHASHSEED or at random): a restart must run with the same one.
PyObject* py_hash_secret(PyObject*, PyObject*) {
  return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(&_Py_HashSecret), sizeof(_Py_HashSecret));
}

PyMethodDef g_methods[] = {
    {"capture_stack", as_method(py_capture_stack), METH_VARARGS | METH_KEYWORDS,
     "capture_stack(base=None, *, reissue_c_call=False) -> state\n\nCaptures the calling thread's Python frames, from\n"
     "`base` (a frame object, or a code object: the outermost frame running it; default: the outermost\n"
     "frame, or the outermost resumed frame) down to the caller. With reissue_c_call, down to the frame\n"
     "that called the C function through which this code was entered; on resume that frame runs the\n"
     "same C call again (resume_stack's result is unused). See doc/interp.md."},
    {"resume_stack", as_method(py_resume_stack), METH_VARARGS | METH_KEYWORDS,
     "resume_stack(state, result, on_rebuilt=None) -> object\n\nResumes captured frames on the calling thread; the\n"
     "innermost capture_stack() call returns `result`. Returns what the outermost frame returns.\n"
     "on_rebuilt() is called once the frames are rebuilt (another thread's resume may start then)."},
    {"park_threads", py_park_threads, METH_NOARGS,
     "park_threads() -> ((ident, StackState), ...)\n\nStops every other Python thread where it waits in a call\n"
     "that can be re-issued (a lock's acquire, time.sleep), captures its stack there, and keeps it from\n"
     "running Python code until release_threads(). UnsupportedStateError naming the thread if one is\n"
     "elsewhere. Main thread only. See doc/interp.md, Threads."},
    {"release_threads", py_release_threads, METH_NOARGS, "release_threads(): lets the parked threads go on."},
    {"capture_generator", py_capture_generator, METH_O,
     "capture_generator(gen) -> state of a generator, coroutine or async generator."},
    {"rebuild_generator", py_rebuild_generator, METH_O,
     "rebuild_generator(state) -> a new generator, coroutine or async generator:\n"
     "fill_generator(new_generator(state.code), state)."},
    {"new_generator", py_new_generator, METH_O,
     "new_generator(code) -> a created generator, coroutine or async generator of `code`, to be filled."},
    {"fill_generator", py_fill_generator, METH_VARARGS,
     "fill_generator(gen, state): makes gen (of new_generator) the captured generator `state`."},
    {"capture_async_awaitable", py_capture_async_awaitable, METH_O,
     "capture_async_awaitable(awaitable) -> (format, kind, agen, argument, state) of an async generator's\n"
     "asend()/__anext__() (kind 'asend') or athrow()/aclose() (kind 'athrow') awaitable."},
    {"rebuild_async_awaitable", py_rebuild_async_awaitable, METH_O,
     "rebuild_async_awaitable(state) -> the awaitable, made again on the (rebuilt) async generator."},
    {"stack_depths", as_method(py_stack_depths), METH_VARARGS | METH_KEYWORDS,
     "stack_depths(code, live=False) -> list: value-stack depth before each code unit (None where no\n"
     "instruction starts). `live` analyses the quickened bytecode in memory."},
    {"hash_secret", py_hash_secret, METH_NOARGS,
     "hash_secret() -> bytes: this interpreter's hash secret (_Py_HashSecret, 24 bytes)"},
    {"_verify_stack_depths", py_verify_stack_depths, METH_O,
     "_verify_stack_depths(callable) -> (checked, mismatches): runs callable() under opcode tracing and\n"
     "compares the static depth with the interpreter's at every instruction (test hook)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

PyObject* null_marker() { return g_null; }

}  // namespace pyckpt::core::interp

namespace pyckpt::core {

int add_interp_api(PyObject* module) {
  using namespace interp;
  Ref null_type = Ref::steal(PyType_FromModuleAndSpec(module, &g_null_spec, nullptr));
  if (!null_type) return -1;
  g_null = PyObject_CallNoArgs(null_type.get());  // immortal for the process: states refer to it
  if (g_null == nullptr) return -1;
  if (PyModule_AddObjectRef(module, "NULL", g_null) < 0) return -1;
  if (PyModule_AddStringConstant(module, "INTERP_FORMAT", state_format()) < 0) return -1;
  Ref awaitable_types = Ref::steal(guarded_ref([] { return async_awaitable_types(); }));
  if (!awaitable_types || PyModule_AddObjectRef(module, "ASYNC_GENERATOR_AWAITABLES", awaitable_types.get()) < 0)
    return -1;
  if (PyModule_AddFunctions(module, g_methods) < 0) return -1;
  if (!backend_init(module) || !add_streams_api(module) || !add_sets_api(module) || !add_pickle_memo_api(module) ||
      !add_safepoint_api(module) || !add_large_stack_api(module))
    return -1;
  return 0;
}

}  // namespace pyckpt::core
