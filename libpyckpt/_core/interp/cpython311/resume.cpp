// Resume of captured CPython 3.11 frames.
//
// Frames are resumed outermost first, each one truly nested in its parent:
// the parent re-executes its pending instruction (CALL, CALL_FUNCTION_EX,
// BINARY_SUBSCR, FOR_ITER, SEND) with a ResumeThunk in place of the callable
// (or container), or on the same generator object; that enters the child
// frame through the ordinary call machinery, and a PEP 523 eval-frame hook,
// installed only while the chain is being rebuilt, overwrites the child's
// fresh frame (locals, value stack, position, handled exception) with the
// captured state before the default evaluator runs it.
//
// Each thread has its own resume (the main thread's, and one per thread
// restored by pyckpt.threads); the hook is per interpreter, so the chains
// are rebuilt one at a time: a resume refuses to start while another
// thread's chain is being rebuilt, and on_rebuilt tells the restore driver
// that this one's is (the thread then runs, or waits in its re-issued call).
#include "interp/cpython311/py311.hpp"
#ifdef PYCKPT_INTERP_PY311

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace pyckpt::core::interp::py311 {

bool init_capture();  // capture.cpp
bool init_threads();  // threads.cpp

void bad_state(const std::string& what) {
  PyErr_SetString(PyExc_ValueError, ("invalid interpreter state: " + what).c_str());
  throw PythonError{};
}

void check_format(PyObject* tag) {
  if (!PyUnicode_Check(tag) || PyUnicode_CompareWithASCIIString(tag, state_format()) != 0)
    bad_state("captured by " + describe_object(tag) + ", this interpreter resumes " + state_format());
}

namespace {

struct Resume {
  PyThreadState* tstate = nullptr;  // the thread it runs on
  Ref state;
  Ref on_rebuilt;                  // called once the innermost frame is filled, or null
  bool hook_installed = false;
  std::vector<PyObject*> records;  // borrowed from `state`
  PyObject* result = nullptr;      // borrowed from the caller of resume_stack
  size_t next = 0;                 // the record the hook applies next
  bool expect_call = false;        // a function frame for `next` is being entered
  Frame* root = nullptr;
  // Rebuilt "running" generators, by record index. While the chain is rebuilt
  // they count as suspended: the parent's re-executed `gen.send(value)` must
  // not be refused as a non-None send to a just-started generator (the hook
  // drops the value gen_send_ex pushes when it fills the frame).
  std::vector<std::pair<size_t, PyGenObject*>> generators;
};

// This thread's resume, if one is running on it.
thread_local Resume* g_active = nullptr;
// Every running resume (GIL-protected): the root frames, per thread.
std::vector<Resume*> g_resumes;
// The resume whose chain is being rebuilt (its hook installed), if any.
Resume* g_rebuilding = nullptr;
_PyFrameEvalFunction g_previous_eval = nullptr;
PyObject* eval_hook(PyThreadState* tstate, Frame* f, int throwflag);
PyTypeObject* g_thunk_type = nullptr;

struct Thunk {
  PyObject_HEAD
  Resume* resume;
  size_t index;
};

PyObject* field(PyObject* record, int index) { return PyTuple_GET_ITEM(record, index); }
bool is_kind(PyObject* record, const char* kind) { return PyUnicode_CompareWithASCIIString(field(record, kKind), kind) == 0; }
std::string describe_record(PyObject* record) {
  return describe_code_at(field(record, kCode), static_cast<int>(PyLong_AsLong(field(record, kOffset))));
}

// A function object for the code, globals and free-variable cells of a
// captured frame. Its closure is only read by a generator's prologue.
Ref make_function(PyObject* code, PyObject* globals, PyObject* localsplus) {
  auto* co = reinterpret_cast<PyCodeObject*>(code);
  Ref func = check_new(PyFunction_New(code, globals));
  const int nfree = co->co_nfreevars;
  if (nfree > 0) {
    Ref closure = check_new(PyTuple_New(nfree));
    for (int i = 0; i < nfree; ++i) {
      PyObject* cell = localsplus != nullptr ? from_state(PyTuple_GET_ITEM(localsplus, co->co_nlocalsplus - nfree + i)) : nullptr;
      PyTuple_SET_ITEM(closure.get(), i, cell ? Py_NewRef(cell) : check(PyCell_New(nullptr)));
    }
    check_status(PyFunction_SetClosure(func.get(), closure.get()));
  }
  return func;
}

// Calls `func` with arguments that bind to every parameter (their values are
// overwritten afterwards): None for each positional one, keyword-only ones by
// name. Returns null with the call's exception set on failure.
Ref call_with_placeholders(PyObject* func) {
  auto* co = reinterpret_cast<PyCodeObject*>(PyFunction_GET_CODE(func));
  const int npos = co->co_argcount;
  const int nkw = co->co_kwonlyargcount;
  std::vector<PyObject*> args(static_cast<size_t>(npos + nkw) + 1, Py_None);
  Ref kwnames;
  if (nkw > 0) {
    Ref varnames = check_new(PyCode_GetVarnames(co));
    kwnames = check_new(PyTuple_GetSlice(varnames.get(), npos, npos + nkw));
  }
  return Ref::steal(PyObject_Vectorcall(func, args.data() + 1, static_cast<size_t>(npos) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                        kwnames.get()));
}

// Gives a generator's frame, made with placeholder globals (new_generator),
// a function of the captured globals, which the frame borrows.
void set_frame_globals(Frame* f, PyObject* globals, PyObject* localsplus) {
  if (f->f_globals == globals) return;
  Ref func = make_function(reinterpret_cast<PyObject*>(f->f_code), globals, localsplus);
  auto* fn = reinterpret_cast<PyFunctionObject*>(func.release());
  f->f_globals = fn->func_globals;
  f->f_builtins = fn->func_builtins;
  Py_SETREF(f->f_func, fn);
}

// Writes locals, value stack and position into a frame whose code matches.
// Nothing can fail once writing starts.
void fill_frame(Frame* f, PyObject* localsplus, PyObject* stack, std::vector<Ref>& extra, int offset) {
  PyCodeObject* co = f->f_code;
  const int nlocals = co->co_nlocalsplus;
  const auto nstack = static_cast<int>(PyTuple_GET_SIZE(stack));
  for (int i = 0; i < nlocals; ++i) {
    PyObject* value = from_state(PyTuple_GET_ITEM(localsplus, i));
    Py_XSETREF(f->localsplus[i], Py_XNewRef(value));
  }
  for (int i = nlocals; i < f->stacktop; ++i) Py_CLEAR(f->localsplus[i]);
  PyObject** top = f->localsplus + nlocals;
  for (int i = 0; i < nstack; ++i) *top++ = Py_XNewRef(from_state(PyTuple_GET_ITEM(stack, i)));
  for (Ref& item : extra) *top++ = item.release();
  f->stacktop = static_cast<int>(top - f->localsplus);
  f->prev_instr = _PyCode_CODE(co) + offset / 2 - 1;
}

// Checks a captured (localsplus, stack, offset) against the code it resumes.
void check_frame_data(PyCodeObject* co, PyObject* localsplus, PyObject* stack, int offset, size_t extra) {
  if (!PyTuple_Check(localsplus) || PyTuple_GET_SIZE(localsplus) != co->co_nlocalsplus || !PyTuple_Check(stack))
    bad_state("locals do not match " + describe_code_at(reinterpret_cast<PyObject*>(co), offset));
  if (PyTuple_GET_SIZE(stack) + static_cast<Py_ssize_t>(extra) > co->co_stacksize)
    bad_state("value stack deeper than co_stacksize at " + describe_code_at(reinterpret_cast<PyObject*>(co), offset));
  const CodeInfo& info = code_info(co);
  if (offset <= 0 || offset % 2 != 0 || offset / 2 >= units_of(co) || info.at_unit(offset / 2).start != offset / 2)
    bad_state("offset " + std::to_string(offset) + " is not an instruction of " + describe_code_at(reinterpret_cast<PyObject*>(co), 0));
}

Ref new_thunk(Resume& r, size_t index) {
  if (index >= r.records.size()) bad_state("a frame's call link has no callee frame");
  auto* thunk = PyObject_New(Thunk, g_thunk_type);
  if (thunk == nullptr) throw PythonError{};
  thunk->resume = &r;
  thunk->index = index;
  return Ref::steal(reinterpret_cast<PyObject*>(thunk));
}

// The operands the pending instruction of record k finds on top of its stack.
std::vector<Ref> link_operands(Resume& r, size_t k) {
  PyObject* link = field(r.records[k], kLink);
  if (!PyTuple_Check(link) || PyTuple_GET_SIZE(link) < 1) bad_state("malformed link");
  const char* kind = PyUnicode_AsUTF8(PyTuple_GET_ITEM(link, 0));
  if (kind == nullptr) throw PythonError{};
  const long arg = PyTuple_GET_SIZE(link) > 1 ? PyLong_AsLong(PyTuple_GET_ITEM(link, 1)) : 0;
  std::vector<Ref> ops;
  const std::string_view name(kind);
  const bool last = k + 1 == r.records.size();
  auto none = [] { return Ref::borrow(Py_None); };
  if (name == kLinkResult) {
    if (!last) bad_state("only the innermost frame can receive the result");
    ops.push_back(Ref::borrow(r.result));
  } else if (name == kLinkNone) {
    if (!last && field(r.records[k + 1], kGenerator) == Py_None) bad_state("frame resumes no generator");
  } else if (name == kLinkCall) {
    ops.emplace_back();  // NULL: no bound "self" below the callable
    ops.push_back(new_thunk(r, k + 1));
    for (long i = 0; i < arg; ++i) ops.push_back(none());
  } else if (name == kLinkCallEx) {
    ops.emplace_back();
    ops.push_back(new_thunk(r, k + 1));
    ops.push_back(check_new(PyTuple_New(0)));
    if (arg) ops.push_back(check_new(PyDict_New()));
  } else if (name == kLinkSubscr) {
    ops.push_back(new_thunk(r, k + 1));
    ops.push_back(none());
  } else if (name == kLinkSend) {
    ops.push_back(none());
  } else {
    bad_state(std::string("unknown link ") + kind);
  }
  return ops;
}

void install_hook(Resume& r) {
  PyInterpreterState* interp = PyInterpreterState_Get();
  g_previous_eval = _PyInterpreterState_GetEvalFrameFunc(interp);
  _PyInterpreterState_SetEvalFrameFunc(interp, eval_hook);
  r.hook_installed = true;
  g_rebuilding = &r;
}

void uninstall_hook(Resume& r) {
  if (!r.hook_installed) return;
  _PyInterpreterState_SetEvalFrameFunc(PyInterpreterState_Get(), g_previous_eval);
  g_previous_eval = nullptr;
  r.hook_installed = false;
  g_rebuilding = nullptr;
}

// Applies record r.next to the frame about to be evaluated.
void apply(Resume& r, Frame* f, PyThreadState* tstate) {
  const size_t k = r.next;
  PyObject* record = r.records[k];
  auto* co = reinterpret_cast<PyCodeObject*>(field(record, kCode));
  if (f->f_code != co) bad_state("code of " + describe_record(record) + " does not match its generator");
  const int offset = static_cast<int>(PyLong_AsLong(field(record, kOffset)));
  std::vector<Ref> operands = link_operands(r, k);
  check_frame_data(co, field(record, kLocalsplus), field(record, kStack), offset, operands.size());
  // A rebuilt running generator was made without its frame (and globals).
  set_frame_globals(f, field(record, kGlobals), field(record, kLocalsplus));
  fill_frame(f, field(record, kLocalsplus), field(record, kStack), operands, offset);
  // The thread's handled exception is owned by the outermost frame; each
  // generator brings its own (gen_send_ex2 made it the current item).
  if (k == 0 || f->owner == FRAME_OWNED_BY_GENERATOR) {
    PyObject* exc = field(record, kExc);
    Py_XSETREF(tstate->exc_info->exc_value, exc == Py_None ? nullptr : Py_NewRef(exc));
  }
  if (k == 0) r.root = f;
  r.expect_call = false;
  if (++r.next == r.records.size()) {
    uninstall_hook(r);
    if (r.on_rebuilt) {
      // Another thread's resume may start now; an error of the callback is
      // not the resumed program's.
      Ref ignored = Ref::steal(PyObject_CallNoArgs(r.on_rebuilt.get()));
      if (!ignored) PyErr_WriteUnraisable(r.on_rebuilt.get());
    }
  }
}

bool matches(const Resume& r, Frame* f) {
  PyObject* record = r.records[r.next];
  PyObject* gen = field(record, kGenerator);
  if (gen != Py_None) return PyGen_CheckExact(gen) && f == frame_of(reinterpret_cast<PyGenObject*>(gen));
  return r.expect_call && reinterpret_cast<PyObject*>(f->f_code) == field(record, kCode) &&
         f->owner != FRAME_OWNED_BY_GENERATOR;
}

PyObject* eval_hook(PyThreadState* tstate, Frame* f, int throwflag) {
  Resume* r = g_active;
  if (r != nullptr && r->next < r->records.size() && matches(*r, f)) {
    bool ok = guarded([&] { apply(*r, f, tstate); return true; }, false);
    // On failure the untouched frame unwinds the error like generator.throw().
    return _PyEval_EvalFrameDefault(tstate, f, ok ? throwflag : 1);
  }
  return g_previous_eval ? g_previous_eval(tstate, f, throwflag) : _PyEval_EvalFrameDefault(tstate, f, throwflag);
}

// Enters the function or module frame of record r.next; the hook fills it.
Ref enter_frame(Resume& r) {
  const size_t k = r.next;
  PyObject* record = r.records[k];
  PyObject* code = field(record, kCode);
  Ref result;
  r.expect_call = true;
  if (is_kind(record, "module")) {
    PyObject* locals = field(record, kLocals);
    auto* co = reinterpret_cast<PyCodeObject*>(code);
    Ref func = make_function(code, field(record, kGlobals), field(record, kLocalsplus));
    PyObject* closure = co->co_nfreevars ? PyFunction_GET_CLOSURE(func.get()) : nullptr;
    result = Ref::steal(PyEval_EvalCodeEx(code, field(record, kGlobals), locals == Py_None ? field(record, kGlobals) : locals,
                                          nullptr, 0, nullptr, 0, nullptr, 0, nullptr, closure));
  } else if (is_kind(record, "function")) {
    Ref func = make_function(code, field(record, kGlobals), field(record, kLocalsplus));
    result = call_with_placeholders(func.get());
  } else {
    bad_state("generator frame " + describe_record(record) + " must be resumed by its parent");
  }
  r.expect_call = false;
  if (r.next == k && !PyErr_Occurred()) bad_state("frame " + describe_record(record) + " was not resumed");
  if (!result) throw PythonError{};
  return result;
}

PyObject* thunk_enter(Thunk* self) {
  return guarded_ref([&] {
    Resume* r = self->resume;
    if (r != g_active || r->next != self->index) {
      PyErr_SetString(PyExc_RuntimeError, "pyckpt resume thunk called outside its resume");
      throw PythonError{};
    }
    return enter_frame(*r);
  });
}
PyObject* thunk_call(PyObject* self, PyObject*, PyObject*) { return thunk_enter(reinterpret_cast<Thunk*>(self)); }
PyObject* thunk_subscript(PyObject* self, PyObject*) { return thunk_enter(reinterpret_cast<Thunk*>(self)); }

PyType_Slot g_thunk_slots[] = {
    {Py_tp_call, reinterpret_cast<void*>(thunk_call)},
    {Py_mp_subscript, reinterpret_cast<void*>(thunk_subscript)},
    {Py_tp_doc, const_cast<char*>("Stands for a resumed frame's callee while its parent's call is re-executed.")},
    {0, nullptr},
};
PyType_Spec g_thunk_spec = {"pyckpt._core.ResumeThunk", sizeof(Thunk), 0, Py_TPFLAGS_DEFAULT, g_thunk_slots};

// Restores the interpreter when resume_stack() returns or fails.
class ActiveResume {
 public:
  explicit ActiveResume(Resume& r)
      : r_(r), tstate_(PyThreadState_Get()), saved_exc_(Ref::borrow(tstate_->exc_info->exc_value)) {
    install_hook(r);
    g_active = &r;
    g_resumes.push_back(&r);
    for (auto& [index, gen] : r.generators) gen->gi_frame_state = FRAME_SUSPENDED;
  }
  ~ActiveResume() {
    uninstall_hook(r_);
    g_resumes.erase(std::find(g_resumes.begin(), g_resumes.end(), &r_));
    // Generators the resume never reached (it failed) are placeholders again.
    for (auto& [index, gen] : r_.generators)
      if (index >= r_.next && gen->gi_frame_state == FRAME_SUSPENDED) gen->gi_frame_state = FRAME_CREATED;
    g_active = nullptr;
    Py_XSETREF(tstate_->exc_info->exc_value, saved_exc_.release());
  }
  ActiveResume(const ActiveResume&) = delete;
  ActiveResume& operator=(const ActiveResume&) = delete;

 private:
  Resume& r_;
  PyThreadState* tstate_;
  Ref saved_exc_;
};

Ref resume_stack_impl(PyObject* state, PyObject* result, PyObject* on_rebuilt) {
  if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != 2) bad_state("expected (format, frames)");
  check_format(PyTuple_GET_ITEM(state, 0));
  PyObject* frames = PyTuple_GET_ITEM(state, 1);
  if (!PyTuple_Check(frames) || PyTuple_GET_SIZE(frames) == 0) bad_state("no frames");
  if (g_active != nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "resume_stack() is already running in this thread");
    throw PythonError{};
  }
  if (g_rebuilding != nullptr) {
    PyErr_SetString(PyExc_RuntimeError,
                    "resume_stack(): another thread's frames are being rebuilt; resume threads one after another");
    throw PythonError{};
  }
  Resume r;
  r.tstate = PyThreadState_Get();
  r.state = Ref::borrow(state);
  if (on_rebuilt != nullptr && on_rebuilt != Py_None) r.on_rebuilt = Ref::borrow(on_rebuilt);
  r.result = result;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(frames); ++i) {
    PyObject* record = PyTuple_GET_ITEM(frames, i);
    if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != kFrameFields || !PyCode_Check(field(record, kCode)) ||
        !PyDict_Check(field(record, kGlobals)) || !PyLong_Check(field(record, kOffset)))
      bad_state("frame " + std::to_string(i) + " is malformed");
    PyObject* gen = field(record, kGenerator);
    if (gen != Py_None) {
      auto* g = reinterpret_cast<PyGenObject*>(gen);
      if (!PyGen_CheckExact(gen) || g->gi_frame_state != FRAME_CREATED || reinterpret_cast<PyObject*>(g->gi_code) != field(record, kCode))
        bad_state("generator of frame " + describe_record(record) + " is not a rebuilt running generator");
      r.generators.emplace_back(static_cast<size_t>(i), g);
    }
    r.records.push_back(record);
  }
  ActiveResume active(r);
  return enter_frame(r);
}

// --- generators -------------------------------------------------------------

// Finishes a created generator, coroutine or async generator, as its close()
// (an async generator's aclose(), awaited) does: it becomes completed
// without running any of its code.
void close_created(PyObject* gen) {
  if (!PyAsyncGen_CheckExact(gen)) {
    check_new(PyObject_CallMethod(gen, "close", nullptr));
    return;
  }
  Ref closing = check_new(PyObject_CallMethod(gen, "aclose", nullptr));
  Ref yielded = Ref::steal(PyObject_CallMethod(closing.get(), "send", "O", Py_None));
  if (yielded || !PyErr_ExceptionMatches(PyExc_StopIteration)) {
    if (yielded) PyErr_SetString(PyExc_RuntimeError, "a created async generator did not close at once");
    throw PythonError{};
  }
  PyErr_Clear();
}

// An async generator's flags (capture's async_state): (hooks_inited, closed, running_async).
void set_async_state(PyObject* gen, PyObject* flags) {
  if (!PyAsyncGen_CheckExact(gen)) {
    if (flags != Py_None) bad_state("async generator flags for a generator that is not one");
    return;
  }
  if (!PyTuple_Check(flags) || PyTuple_GET_SIZE(flags) != 3) bad_state("async generator without its flags");
  int values[3];
  for (int i = 0; i < 3; ++i) check_status(values[i] = PyObject_IsTrue(PyTuple_GET_ITEM(flags, i)));
  auto* ag = reinterpret_cast<PyAsyncGenObject*>(gen);
  ag->ag_hooks_inited = static_cast<char>(values[0]);
  ag->ag_closed = static_cast<char>(values[1]);
  ag->ag_running_async = static_cast<char>(values[2]);
}

// A generator, coroutine or async generator of `code`, created (not
// started), its frame running in placeholder globals until fill_generator.
Ref new_generator_impl(PyObject* code) {
  if (!PyCode_Check(code) ||
      !(reinterpret_cast<PyCodeObject*>(code)->co_flags & (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)))
    bad_state("generator state without generator code");
  Ref globals = check_new(PyDict_New());
  check_status(PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()));
  Ref func = make_function(code, globals.get(), nullptr);
  Ref gen = call_with_placeholders(func.get());
  if (!gen) throw PythonError{};
  return gen;
}

// Makes `gen` (new_generator of the state's code) the captured generator.
void fill_generator_impl(PyObject* gen, PyObject* state) {
  // States of checkpoints written before async_state have one field less.
  if (!PyTuple_Check(state) || (PyTuple_GET_SIZE(state) != kGenFields && PyTuple_GET_SIZE(state) != kGenAsync))
    bad_state("expected a generator state");
  check_format(PyTuple_GET_ITEM(state, kGenFormat));
  PyObject* code = PyTuple_GET_ITEM(state, kGenCode);
  PyObject* status_obj = PyTuple_GET_ITEM(state, kGenStatus);
  PyObject* flags = PyTuple_GET_SIZE(state) > kGenAsync ? PyTuple_GET_ITEM(state, kGenAsync) : Py_None;
  auto* g = reinterpret_cast<PyGenObject*>(gen);
  if (!(PyGen_CheckExact(gen) || PyCoro_CheckExact(gen) || PyAsyncGen_CheckExact(gen)) ||
      reinterpret_cast<PyObject*>(g->gi_code) != code || g->gi_frame_state != FRAME_CREATED ||
      !PyUnicode_Check(status_obj))
    bad_state("generator state does not fit its new generator");
  const std::string status = PyUnicode_AsUTF8(status_obj);
  check_status(PyObject_SetAttrString(gen, "__name__", PyTuple_GET_ITEM(state, kGenName)));
  check_status(PyObject_SetAttrString(gen, "__qualname__", PyTuple_GET_ITEM(state, kGenQualname)));
  if (status == "completed") {
    close_created(gen);
  } else if (status == "created" || status == "suspended") {
    PyObject* localsplus = PyTuple_GET_ITEM(state, kGenLocalsplus);
    PyObject* stack = PyTuple_GET_ITEM(state, kGenStack);
    PyObject* globals = PyTuple_GET_ITEM(state, kGenGlobals);
    const int offset = static_cast<int>(PyLong_AsLong(PyTuple_GET_ITEM(state, kGenOffset)));
    if (!PyDict_Check(globals)) bad_state("generator state without globals");
    // The next send pushes one value.
    check_frame_data(g->gi_code, localsplus, stack, offset, 1);
    set_frame_globals(frame_of(g), globals, localsplus);
    std::vector<Ref> none;
    fill_frame(frame_of(g), localsplus, stack, none, offset);
    if (status == "suspended") g->gi_frame_state = FRAME_SUSPENDED;
    PyObject* exc = PyTuple_GET_ITEM(state, kGenExc);
    Py_XSETREF(g->gi_exc_state.exc_value, exc == Py_None ? nullptr : Py_NewRef(exc));
  } else if (status != "running") {  // running: its frame is filled by resume_stack
    bad_state("unknown generator status " + status);
  }
  if (status != "running") set_async_state(gen, flags);
}

}  // namespace

Frame* resumed_root_frame(PyThreadState* tstate) {
  for (Resume* r : g_resumes)
    if (r->tstate == tstate) return r->root;
  return nullptr;
}
bool is_resume_thunk(PyObject* obj) { return Py_TYPE(obj) == g_thunk_type; }

}  // namespace pyckpt::core::interp::py311

namespace pyckpt::core::interp {

const char* state_format() { return "cpython-3.11"; }

bool backend_init(PyObject* module) {
  using namespace py311;
  if (!init_opcode_tables() || !init_capture() || !init_threads() || !init_records(module)) return false;
  g_thunk_type = reinterpret_cast<PyTypeObject*>(PyType_FromModuleAndSpec(module, &g_thunk_spec, nullptr));
  return g_thunk_type != nullptr;
}

Ref resume_stack(PyObject* state, PyObject* result, PyObject* on_rebuilt) {
  return py311::resume_stack_impl(state, result, on_rebuilt);
}
Ref new_generator(PyObject* code) { return py311::new_generator_impl(code); }
void fill_generator(PyObject* gen, PyObject* state) { py311::fill_generator_impl(gen, state); }
Ref rebuild_generator(PyObject* state) {
  if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) <= py311::kGenCode) py311::bad_state("expected a generator state");
  Ref gen = new_generator(PyTuple_GET_ITEM(state, py311::kGenCode));
  fill_generator(gen.get(), state);
  return gen;
}

}  // namespace pyckpt::core::interp

#endif
