// Test hook: checks the static stack-depth analysis against the interpreter.
// With per-opcode tracing the interpreter saves its stack pointer before each
// instruction, so every executed instruction is a data point.
#include "interp/cpython311/py311.hpp"
#ifdef PYCKPT_INTERP_PY311

namespace pyckpt::core::interp::py311 {
namespace {

struct Tally {
  long checked = 0;
  Ref mismatches;  // list of (file:line, offset, static, actual)
};

int depth_tracer(PyObject* obj, PyFrameObject* frame, int what, PyObject*) {
  auto* tally = static_cast<Tally*>(PyCapsule_GetPointer(obj, nullptr));
  if (what == PyTrace_CALL) frame->f_trace_opcodes = 1;
  if (what != PyTrace_OPCODE) return 0;
  return guarded([&] {
    Frame* f = frame->f_frame;
    const Instr& in = code_info(f->f_code).at_unit(prev_unit(f));
    const int actual = f->stacktop - f->f_code->co_nlocalsplus;
    ++tally->checked;
    if (in.depth != actual) {
      Ref item = check_new(Py_BuildValue("(siii)", describe_frame(f).c_str(), prev_unit(f) * 2, in.depth, actual));
      check_status(PyList_Append(tally->mismatches.get(), item.get()));
    }
    return 0;
  }, -1);
}

}  // namespace
}  // namespace pyckpt::core::interp::py311

namespace pyckpt::core::interp {

Ref verify_stack_depths(PyObject* callable) {
  using namespace py311;
  Tally tally;
  tally.mismatches = check_new(PyList_New(0));
  Ref capsule = check_new(PyCapsule_New(&tally, nullptr, nullptr));
  PyThreadState* tstate = PyThreadState_Get();
  Py_tracefunc saved_func = tstate->c_tracefunc;
  Ref saved_obj = Ref::borrow(tstate->c_traceobj);
  PyEval_SetTrace(depth_tracer, capsule.get());
  Ref result = Ref::steal(PyObject_CallNoArgs(callable));
  PyEval_SetTrace(saved_func, saved_obj.get());
  if (!result) throw PythonError{};
  return check_new(Py_BuildValue("(lO)", tally.checked, tally.mismatches.get()));
}

}  // namespace pyckpt::core::interp

#endif
