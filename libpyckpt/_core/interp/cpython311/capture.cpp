// Capture of CPython 3.11 frames and generators into plain Python data.
//
// A frame that is not the innermost one is suspended inside an instruction
// that led (possibly through C) to its child frame. Resume re-executes that
// instruction, so capture records the value stack *below* the operands the
// instruction consumes and a "link" saying which operands resume pushes back
// (a runtime thunk in place of the callable, placeholders for arguments) --
// or keeps the operands when the instruction must run on the very same
// objects (FOR_ITER/next() on the generator that owns the child frame).
#include "interp/cpython311/py311.hpp"
#ifdef PYCKPT_INTERP_PY311

#include <stdexcept>
#include <vector>

#include "module.hpp"

namespace pyckpt::core::interp::py311 {

bool is_resume_thunk(PyObject* obj);  // resume.cpp

namespace {

// --- record types -------------------------------------------------------------

PyStructSequence_Field g_stack_state_fields[] = {
    {"format", "interpreter state format (INTERP_FORMAT) of the capturing interpreter"},
    {"frames", "tuple of FrameRecord, outermost first"},
    {nullptr, nullptr},
};
// In FrameField order.
PyStructSequence_Field g_frame_record_fields[] = {
    {"code", "code object"},
    {"kind", "'module', 'function' or 'generator'"},
    {"globals", "globals dict"},
    {"locals", "locals mapping of a module frame, else None"},
    {"localsplus", "tuple: locals, cells, free variables (NULL marks unbound)"},
    {"stack", "tuple: the value stack kept below the pending instruction's operands"},
    {"offset", "byte offset of the instruction execution continues at"},
    {"link", "(kind[, arg]): what resume pushes for the pending instruction"},
    {"exc", "the handled exception of the frame (or None)"},
    {"generator", "the generator owning the frame, or None"},
    {nullptr, nullptr},
};
// In GenField order.
PyStructSequence_Field g_generator_state_fields[] = {
    {"format", "interpreter state format"},
    {"code", "code object"},
    {"globals", "globals dict (None for a running or finished generator)"},
    {"name", "__name__"},
    {"qualname", "__qualname__"},
    {"status", "'created', 'suspended', 'running' or 'completed'"},
    {"localsplus", "tuple of locals, cells, free variables, or None"},
    {"stack", "tuple: value stack of the suspended frame, or None"},
    {"offset", "byte offset execution continues at, or None"},
    {"exc", "the generator's handled exception, or None"},
    {"async_state", "(hooks_inited, closed, running_async) of an async generator, else None"},
    {nullptr, nullptr},
};
PyStructSequence_Desc g_record_descs[] = {
    {"pyckpt._core.StackState", "The captured Python stack of a thread (capture_stack()).", g_stack_state_fields, 2},
    {"pyckpt._core.FrameRecord", "One captured frame of a StackState.", g_frame_record_fields, kFrameFields},
    {"pyckpt._core.GeneratorState", "A captured generator (capture_generator()).", g_generator_state_fields,
     kGenFields},
};
PyTypeObject* g_record_types[3] = {nullptr, nullptr, nullptr};

// Callables through which a parent frame legitimately runs a generator frame.
PyObject* g_builtin_next = nullptr;
PyObject* g_gen_send = nullptr;
PyObject* g_gen_next = nullptr;

constexpr int kUnsupportedFlags = CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE;

// What the pending instruction of a frame needs on resume.
struct Pending {
  int resume_unit;     // where execution continues
  int keep;            // captured value-stack items
  const char* link;    // kLink*
  int link_arg = -1;   // oparg-derived count for call links
  PyObject* top = nullptr;  // stands for the captured stack's top item (BEFORE_WITH)
};

PyObject* code_obj(Frame* f) { return reinterpret_cast<PyObject*>(f->f_code); }

[[noreturn]] void between(Frame* parent, Frame* child, const std::string& what, bool transient = true) {
  throw UnsupportedState{"cannot capture the stack: " + what + " sits between frame " + describe_frame(parent) +
                             " and frame " + describe_frame(child) +
                             " (only Python-to-Python calls, generators and __getitem__ can be resumed)",
                         transient, child};
}

// The import system keeps process-wide state across its frames: module
// locks owned by the importing thread's id (a resumed process has another),
// a module half executed in sys.modules. `import x` enters it through C
// (refused by `between`), but importlib.import_module() calls it from
// Python. A stack inside it is not a safe point: the safe point waits until
// its outermost frame has returned, i.e. the import is done.
bool runs_import_system(Frame* f) {
  PyObject* file = f->f_code->co_filename;
  return PyUnicode_Check(file) && (PyUnicode_CompareWithASCIIString(file, "<frozen importlib._bootstrap>") == 0 ||
                                   PyUnicode_CompareWithASCIIString(file, "<frozen importlib._bootstrap_external>") == 0);
}

void refuse_inside_import(const std::vector<Frame*>& frames) {
  Frame* outermost = nullptr;
  for (Frame* f : frames)
    if (runs_import_system(f)) outermost = f;
  if (outermost != nullptr)
    throw UnsupportedState{"cannot capture the stack: an import is under way (frame " + describe_frame(outermost) + ")",
                           true, outermost};
}

const char* frame_kind(Frame* f) {
  PyCodeObject* co = f->f_code;
  // Not resumable on the stack; a safe point is retried once it suspends or
  // returns (a suspended coroutine is captured as an object in the heap).
  if (co->co_flags & kUnsupportedFlags)
    throw UnsupportedState{"cannot capture the stack: coroutine or async frame " + describe_frame(f) + " is running",
                           true, f};
  if (f->owner == FRAME_OWNED_BY_GENERATOR) return "generator";
  return (co->co_flags & CO_OPTIMIZED) ? "function" : "module";
}

// The callable runs the child's code object directly (Python function, bound
// method, or the thunk of an earlier resume).
bool calls_directly(PyObject* callable, Frame* child) {
  if (callable == nullptr) return false;
  if (is_resume_thunk(callable)) return true;
  if (PyMethod_Check(callable)) callable = PyMethod_GET_FUNCTION(callable);
  return PyFunction_Check(callable) && PyFunction_GET_CODE(callable) == code_obj(child);
}

// `callable(self, ...)` resumes generator `gen` (next(gen), gen.send(v), gen.__next__()).
bool resumes_generator(PyObject* callable, PyObject* self, PyGenObject* gen) {
  auto* g = reinterpret_cast<PyObject*>(gen);
  if (callable == nullptr || gen == nullptr) return false;
  if (callable == g_builtin_next || callable == g_gen_send || callable == g_gen_next) return self == g;
  return PyCFunction_Check(callable) && PyCFunction_GET_SELF(callable) == g;
}

Pending parent_pending(Frame* parent, Frame* child) {
  const CodeInfo& info = code_info(parent->f_code);
  const Instr& in = info.at_unit(prev_unit(parent));
  PyObject** stack = parent->localsplus + parent->f_code->co_nlocalsplus;
  const bool inlined = !child->is_entry;  // CALL_PY_* / BINARY_SUBSCR_GETITEM pushed it directly
  PyGenObject* child_gen = generator_of(child);
  auto* child_gen_obj = reinterpret_cast<PyObject*>(child_gen);
  auto check_inlined_depth = [&](int base) {
    // An inlining instruction saved the stack pointer after removing its operands.
    if (parent->stacktop - parent->f_code->co_nlocalsplus != base)
      throw std::runtime_error("stack analysis disagrees with the interpreter at " + describe_frame(parent));
  };
  if (const Instr* call = call_of(info, in)) {
    const Instr& first = call_group_start(info, *call);
    const int nargs = call->oparg;
    const int base = first.depth - (nargs + 2);
    if (inlined) {
      check_inlined_depth(base);
      return {first.start, base, kLinkCall, nargs};
    }
    PyObject* meth = stack[base];
    PyObject* callable = meth ? meth : stack[base + 1];
    PyObject* self = meth ? stack[base + 1] : (nargs > 0 ? stack[base + 2] : nullptr);
    if (child_gen) {
      if (resumes_generator(callable, self, child_gen)) return {first.start, first.depth, kLinkNone};
    } else if (calls_directly(callable, child)) {
      return {first.start, base, kLinkCall, nargs};
    }
    between(parent, child, "C function " + describe_object(callable));
  }
  const int d = in.depth;
  switch (in.opcode) {
    case CALL_FUNCTION_EX: {
      const int base = d - (3 + (in.oparg & 1));
      if (!child_gen && calls_directly(stack[base + 1], child)) return {in.start, base, kLinkCallEx, in.oparg & 1};
      between(parent, child, "C function " + describe_object(stack[base + 1]));
    }
    case BINARY_SUBSCR: {
      const int base = d - 2;
      if (inlined) {
        check_inlined_depth(base);
        return {in.start, base, kLinkSubscr};
      }
      PyObject* container = stack[base];
      if (is_resume_thunk(container)) return {in.start, base, kLinkSubscr};
      static PyObject* name = PyUnicode_InternFromString("__getitem__");
      PyObject* getitem = _PyType_Lookup(Py_TYPE(container), name);
      if (!child_gen && calls_directly(getitem, child)) return {in.start, base, kLinkSubscr};
      between(parent, child, "__getitem__ of " + describe_object(reinterpret_cast<PyObject*>(Py_TYPE(container))));
    }
    case FOR_ITER:
      if (child_gen && stack[d - 1] == child_gen_obj) return {in.start, d, kLinkNone};
      between(parent, child, "iterator " + describe_object(stack[d - 1]));
    case SEND:
      if (child_gen && stack[d - 2] == child_gen_obj) return {in.start, d - 1, kLinkSend};
      between(parent, child, "iterator " + describe_object(stack[d - 2]));
    case LOAD_ATTR:
    case LOAD_METHOD: {
      // A descriptor's getter (property, cached_property...) runs the child.
      PyObject* name = PyTuple_GET_ITEM(parent->f_code->co_names, in.oparg);
      PyObject* owner = reinterpret_cast<PyObject*>(Py_TYPE(stack[d - 1]));
      PyObject* descr = _PyType_Lookup(Py_TYPE(stack[d - 1]), name);
      between(parent, child,
              (descr ? describe_object(reinterpret_cast<PyObject*>(Py_TYPE(descr))) + " " : std::string("getattr ")) +
                  PyUnicode_AsUTF8(name) + " of " + describe_object(owner));
    }
    default:
      between(parent, child, std::string("instruction ") + opname(in.opcode));
  }
}

Pending innermost_pending(Frame* f, CaptureMode mode) {
  const CodeInfo& info = code_info(f->f_code);
  const Instr& in = info.at_unit(prev_unit(f));
  if (mode == CaptureMode::kAtTraceEvent) {
    // In a trace callback prev_instr points at the instruction about to run
    // and the stack pointer is saved.
    const int depth = f->stacktop - f->f_code->co_nlocalsplus;
    if (depth != in.depth)
      throw std::runtime_error("stack analysis (" + std::to_string(in.depth) + ") disagrees with the interpreter (" +
                               std::to_string(depth) + ") at " + describe_frame(f));
    return {in.start, depth, kLinkNone};
  }
  if (mode == CaptureMode::kReissueCall) {
    // In a call to a C function: its operands are still on the stack (they
    // are popped when it returns), so the whole call can run again.
    if (in.opcode == CALL_FUNCTION_EX) return {in.start, in.depth, kLinkNone};
    if (const Instr* call = call_of(info, in)) {
      const Instr& first = call_group_start(info, *call);
      return {first.start, first.depth, kLinkNone};
    }
    if (in.opcode == BEFORE_WITH) {
      // In `with manager:`, calling a C __enter__: BEFORE_WITH has put the
      // manager's bound __exit__ in its place; the manager goes back, and
      // BEFORE_WITH runs again.
      PyObject* exit = f->localsplus[f->f_code->co_nlocalsplus + in.depth - 1];
      PyObject* manager = PyCFunction_Check(exit) ? PyCFunction_GET_SELF(exit)
                          : PyMethod_Check(exit)  ? PyMethod_GET_SELF(exit)
                                                  : nullptr;
      if (manager == nullptr)
        throw UnsupportedState{"cannot capture frame " + describe_frame(f) + ": its with statement's __exit__ is " +
                               describe_object(exit)};
      return {in.start, in.depth, kLinkNone, -1, manager};
    }
    throw UnsupportedState{"cannot capture frame " + describe_frame(f) + ": it is not calling a C function (" +
                           opname(in.opcode) + ")"};
  }
  const Instr* call = in.opcode == CALL_FUNCTION_EX ? &in : call_of(info, in);
  const Instr* after = call ? info.next(*call) : nullptr;
  if (after == nullptr || after->depth < 1)
    throw UnsupportedState{"cannot capture frame " + describe_frame(f) + ": it is not calling the capture function (" +
                           opname(in.opcode) + ")"};
  return {after->start, after->depth - 1, kLinkResult};
}

Ref slots_tuple(PyObject** slots, int n) {
  Ref tuple = check_new(PyTuple_New(n));
  for (int i = 0; i < n; ++i) PyTuple_SET_ITEM(tuple.get(), i, Py_NewRef(to_state(slots[i])));
  return tuple;
}

Ref link_tuple(const Pending& p) {
  if (p.link_arg < 0) return check_new(Py_BuildValue("(s)", p.link));
  return check_new(Py_BuildValue("(si)", p.link, p.link_arg));
}

PyObject* or_none(PyObject* obj) { return obj ? obj : Py_None; }

Ref frame_state(Frame* f, const Pending& p, PyObject* exc) {
  PyCodeObject* co = f->f_code;
  const char* kind = frame_kind(f);
  const bool is_module = kind[0] == 'm';
  PyObject* gen = reinterpret_cast<PyObject*>(generator_of(f));
  Ref stack = slots_tuple(f->localsplus + co->co_nlocalsplus, p.keep);
  if (p.top != nullptr && p.keep > 0) {
    PyObject* replaced = PyTuple_GET_ITEM(stack.get(), p.keep - 1);
    PyTuple_SET_ITEM(stack.get(), p.keep - 1, Py_NewRef(p.top));
    Py_DECREF(replaced);
  }
  return as_record(Record::kFrameRecord, check_new(Py_BuildValue("(OsOONNiNOO)", co, kind, f->f_globals, is_module ? or_none(f->f_locals) : Py_None,
                                 slots_tuple(f->localsplus, co->co_nlocalsplus).release(), stack.release(),
                                 p.resume_unit * 2, link_tuple(p).release(), or_none(exc), or_none(gen))));
}

}  // namespace

bool init_records(PyObject* module) {
  for (int i = 0; i < 3; ++i) {
    g_record_types[i] = add_struct_type(module, &g_record_descs[i]);  // kept for the process
    if (g_record_types[i] == nullptr) return false;
  }
  return true;
}

Ref as_record(Record type, Ref tuple) {
  PyTypeObject* t = g_record_types[static_cast<int>(type)];
  Ref record = check_new(PyStructSequence_New(t));
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple.get()); ++i)
    PyStructSequence_SetItem(record.get(), i, Py_NewRef(PyTuple_GET_ITEM(tuple.get(), i)));
  return record;
}

std::string describe_frame(Frame* f) {
  int unit = prev_unit(f);
  return describe_code_at(code_obj(f), unit < 0 ? 0 : unit * 2);
}

bool init_capture() {
  Ref builtins = Ref::steal(PyImport_ImportModule("builtins"));
  if (!builtins) return false;
  g_builtin_next = PyObject_GetAttrString(builtins.get(), "next");
  PyObject* gen_dict = PyGen_Type.tp_dict;
  g_gen_send = Py_XNewRef(PyDict_GetItemString(gen_dict, "send"));
  g_gen_next = Py_XNewRef(PyDict_GetItemString(gen_dict, "__next__"));
  return g_builtin_next && g_gen_send && g_gen_next;
}

Ref capture_frames(PyThreadState* tstate, PyObject* base_obj, CaptureMode mode, Frame* innermost) {
  Frame* base = nullptr;
  if (base_obj != nullptr && PyCode_Check(base_obj)) {
    // The outermost frame running this code: how `pyckpt run` names the
    // script's module frame before it exists.
    for (Frame* f = innermost; f != nullptr; f = f->previous)
      if (reinterpret_cast<PyObject*>(f->f_code) == base_obj && !_PyFrame_IsIncomplete(f)) base = f;
    if (base == nullptr)
      throw UnsupportedState{"cannot capture the stack: no frame of the base code object is running"};
  } else if (base_obj != nullptr && base_obj != Py_None) {
    if (!PyFrame_Check(base_obj)) {
      PyErr_SetString(PyExc_TypeError, "capture_stack(): base must be a frame or code object");
      throw PythonError{};
    }
    base = reinterpret_cast<PyFrameObject*>(base_obj)->f_frame;
  } else {
    base = resumed_root_frame(tstate);
  }
  // Innermost first; frames not yet past their prologue are not on the
  // Python-visible stack.
  std::vector<Frame*> frames;
  for (Frame* f = innermost; f != nullptr; f = f->previous) {
    if (_PyFrame_IsIncomplete(f)) continue;
    frames.push_back(f);
    if (f == base) break;
  }
  if (frames.empty()) throw UnsupportedState{"cannot capture the stack: no Python frame"};
  refuse_inside_import(frames);
  if (base != nullptr && frames.back() != base)
    throw UnsupportedState{"cannot capture the stack: the base frame is not on the current thread's stack"};
  if (generator_of(frames.back()))
    throw UnsupportedState{"cannot capture the stack: outermost frame " + describe_frame(frames.back()) +
                           " is a generator"};
  std::vector<Pending> pending;
  pending.reserve(frames.size());
  pending.push_back(innermost_pending(frames[0], mode));
  for (size_t i = 1; i < frames.size(); ++i) pending.push_back(parent_pending(frames[i], frames[i - 1]));
  const auto n = static_cast<Py_ssize_t>(frames.size());
  Ref states = check_new(PyTuple_New(n));
  // Each generator on the stack installed its own handled-exception item.
  _PyErr_StackItem* item = tstate->exc_info;
  for (Py_ssize_t i = 0; i < n; ++i) {
    Frame* f = frames[i];
    PyObject* exc = item ? item->exc_value : nullptr;
    if (PyGenObject* gen = generator_of(f)) {
      if (item != &gen->gi_exc_state)
        throw std::runtime_error("exception-state stack out of step at " + describe_frame(f));
      item = item->previous_item;
    }
    PyTuple_SET_ITEM(states.get(), n - 1 - i, frame_state(f, pending[i], exc).release());
  }
  return as_record(Record::kStackState, check_new(Py_BuildValue("(sN)", state_format(), states.release())));
}

// --- generators -------------------------------------------------------------

namespace {

// An async generator's flags (3.11's _PyGenObject_HEAD): whether the event
// loop hooks ran (the first iteration), aclose() or the end was reached, and
// whether an asend()/athrow() is iterating it (suspended in an `await`).
Ref async_state(PyObject* obj) {
  auto* ag = reinterpret_cast<PyAsyncGenObject*>(obj);
  return check_new(Py_BuildValue("(NNN)", PyBool_FromLong(ag->ag_hooks_inited), PyBool_FromLong(ag->ag_closed),
                                 PyBool_FromLong(ag->ag_running_async)));
}

}  // namespace

// A coroutine object (async def) and an async generator (async def with
// yield) have a generator's layout (3.11's _PyGenObject_HEAD): one that is
// not running is captured as a generator is, and calling its code again
// makes a coroutine or an async generator (rebuild_generator). Its frame
// suspended in an `await` is at the YIELD_VALUE of the SEND loop, with the
// awaited iterator on its value stack, as a generator's in `yield from`. A
// generator made a coroutine by types.coroutine is a generator. An async
// generator also has flags (async_state); one whose first iteration ran an
// event loop's hooks (sys.set_asyncgen_hooks: asyncio's) has that loop's
// finalizer, which is refused with the loop.
Ref capture_generator_impl(PyObject* obj) {
  const bool coroutine = PyCoro_CheckExact(obj);
  const bool async_gen = PyAsyncGen_CheckExact(obj);
  if (!PyGen_CheckExact(obj) && !coroutine && !async_gen) {
    PyErr_SetString(PyExc_TypeError, "capture_generator() needs a generator, a coroutine or an async generator");
    throw PythonError{};
  }
  auto* gen = reinterpret_cast<PyGenObject*>(obj);
  Frame* f = frame_of(gen);
  PyObject* code = reinterpret_cast<PyObject*>(gen->gi_code);
  if (gen->gi_code->co_flags & ((async_gen ? 0 : CO_ASYNC_GENERATOR) | (coroutine ? 0 : CO_COROUTINE)))
    throw UnsupportedState{"cannot capture generator " + describe_object(obj) + ": coroutine flags are not supported"};
  if (async_gen && gen->gi_origin_or_finalizer != nullptr)
    throw UnsupportedState{"cannot capture " + describe_object(obj) + ": it is iterated by an event loop (its finalizer " +
                           describe_object(gen->gi_origin_or_finalizer) +
                           ", set by sys.set_asyncgen_hooks, e.g. asyncio's), and event loops cannot be captured"};
  Ref flags = async_gen ? async_state(obj) : Ref::borrow(Py_None);
  const char* status;
  switch (gen->gi_frame_state) {
    case FRAME_CREATED: status = "created"; break;
    case FRAME_SUSPENDED: status = "suspended"; break;
    case FRAME_EXECUTING:
      if (coroutine || async_gen)  // its frame is on the stack, which capture_stack() refuses (frame_kind)
        throw UnsupportedState{"cannot capture " + describe_object(obj) + ": a running " +
                                   (coroutine ? "coroutine" : "async generator"),
                               false};
      // Its frame is on the stack: capture_stack() holds it, resume fills it.
      return as_record(Record::kGeneratorState,
                       check_new(Py_BuildValue("(sOOOOsOOOOO)", state_format(), code, Py_None, gen->gi_name,
                                               gen->gi_qualname, "running", Py_None, Py_None, Py_None, Py_None,
                                               Py_None)));
    default:
      return as_record(Record::kGeneratorState,
                       check_new(Py_BuildValue("(sOOOOsOOOOO)", state_format(), code, Py_None, gen->gi_name,
                                               gen->gi_qualname, "completed", Py_None, Py_None, Py_None, Py_None,
                                               flags.get())));
  }
  // Suspended at YIELD_VALUE (or created at RETURN_GENERATOR): the next send
  // pushes its value and execution continues after prev_instr.
  const int resume_unit = prev_unit(f) + 1;
  const int depth = f->stacktop - gen->gi_code->co_nlocalsplus;
  const CodeInfo& info = code_info(gen->gi_code);
  const Instr& next = info.at_unit(resume_unit);
  if (next.start != resume_unit || next.depth != depth + 1)
    throw std::runtime_error("stack analysis disagrees with suspended generator " + describe_object(obj));
  return as_record(Record::kGeneratorState,
                   check_new(Py_BuildValue("(sOOOOsNNiOO)", state_format(), code, f->f_globals, gen->gi_name,
                                           gen->gi_qualname, status,
                                           slots_tuple(f->localsplus, gen->gi_code->co_nlocalsplus).release(),
                                           slots_tuple(f->localsplus + gen->gi_code->co_nlocalsplus, depth).release(),
                                           resume_unit * 2, or_none(gen->gi_exc_state.exc_value), flags.get())));
}

}  // namespace pyckpt::core::interp::py311

namespace pyckpt::core::interp {

Ref capture_stack(PyObject* base, CaptureMode mode) {
  // Other threads are captured parked (park_threads), never by themselves.
  if (!_PyOS_IsMainThread())
    throw UnsupportedState{"cannot capture the stack of a thread other than the main thread"};
  PyThreadState* tstate = PyThreadState_Get();
  auto* innermost = tstate->cframe->current_frame;
  if (mode == CaptureMode::kReissueCall) {
    // Skip the frames run by the C function's callback: up to the most
    // recent frame entered from C, whose previous frame made the C call.
    while (innermost != nullptr && !innermost->is_entry) innermost = innermost->previous;
    if (innermost != nullptr) innermost = innermost->previous;
    while (innermost != nullptr && _PyFrame_IsIncomplete(innermost)) innermost = innermost->previous;
    if (innermost == nullptr) throw UnsupportedState{"cannot capture the stack: no Python frame called into C"};
  }
  return py311::capture_frames(tstate, base, mode, innermost);
}
const void* frame_key(PyFrameObject* frame) { return frame->f_frame; }
Ref capture_generator(PyObject* gen) { return py311::capture_generator_impl(gen); }

}  // namespace pyckpt::core::interp

#endif
