// Static value-stack depth analysis of CPython 3.11 bytecode.
//
// The interpreter's stack pointer is a C local while a frame runs, so the
// depth at the instruction a frame is suspended in must be computed. The
// compiler's stack effects (dis.stack_effect) do not describe the running
// interpreter exactly (e.g. it charges PRECALL with -oparg, but the arguments
// stay on the stack until CALL), so the effects below follow ceval.c.
#include "interp/cpython311/py311.hpp"
#ifdef PYCKPT_INTERP_PY311

#include <array>
#include <deque>
#include <stdexcept>

namespace pyckpt::core::interp::py311 {
namespace {

std::array<uint8_t, 256> g_deopt{};
std::array<uint8_t, 256> g_caches{};
std::array<std::string, 256> g_names;

// Specialised opcodes have no numbers in opcode.opname; dis numbers them the
// way the interpreter's generated opcode.h does (dis._all_opname).
bool load_tables() {
  Ref opcode = Ref::steal(PyImport_ImportModule("opcode"));
  Ref dis = Ref::steal(PyImport_ImportModule("dis"));
  if (!opcode || !dis) return false;
  Ref names = Ref::steal(PyObject_GetAttrString(dis.get(), "_all_opname"));
  Ref opmap = Ref::steal(PyObject_GetAttrString(dis.get(), "_all_opmap"));
  Ref caches = Ref::steal(PyObject_GetAttrString(opcode.get(), "_inline_cache_entries"));
  Ref specs = Ref::steal(PyObject_GetAttrString(opcode.get(), "_specializations"));
  if (!names || !opmap || !caches || !specs) return false;
  for (int op = 0; op < 256; ++op) {
    g_deopt[op] = static_cast<uint8_t>(op);
    PyObject* name = PyList_GetItem(names.get(), op);
    PyObject* cache = PyList_GetItem(caches.get(), op);
    if (name == nullptr || cache == nullptr) return false;
    g_names[op] = PyUnicode_AsUTF8(name);
    g_caches[op] = static_cast<uint8_t>(PyLong_AsLong(cache));
  }
  // _specializations: base name -> [specialised names]
  PyObject *base, *variants;
  Py_ssize_t pos = 0;
  while (PyDict_Next(specs.get(), &pos, &base, &variants)) {
    long base_op = PyLong_AsLong(PyDict_GetItem(opmap.get(), base));
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(variants); ++i) {
      PyObject* spec_op = PyDict_GetItem(opmap.get(), PyList_GET_ITEM(variants, i));
      if (spec_op == nullptr) {
        PyErr_Format(PyExc_RuntimeError, "pyckpt: unknown specialised opcode %R", PyList_GET_ITEM(variants, i));
        return false;
      }
      g_deopt[PyLong_AsLong(spec_op)] = static_cast<uint8_t>(base_op);
    }
  }
  return !PyErr_Occurred();
}

bool is_backward_jump(uint8_t op) {
  switch (op) {
    case JUMP_BACKWARD: case JUMP_BACKWARD_NO_INTERRUPT:
    case POP_JUMP_BACKWARD_IF_FALSE: case POP_JUMP_BACKWARD_IF_TRUE:
    case POP_JUMP_BACKWARD_IF_NONE: case POP_JUMP_BACKWARD_IF_NOT_NONE:
      return true;
    default:
      return false;
  }
}

bool is_jump(uint8_t op) {
  switch (op) {
    case JUMP_FORWARD: case FOR_ITER: case SEND:
    case JUMP_IF_FALSE_OR_POP: case JUMP_IF_TRUE_OR_POP:
    case POP_JUMP_FORWARD_IF_FALSE: case POP_JUMP_FORWARD_IF_TRUE:
    case POP_JUMP_FORWARD_IF_NONE: case POP_JUMP_FORWARD_IF_NOT_NONE:
      return true;
    default:
      return is_backward_jump(op);
  }
}

// No fall-through to the next instruction.
bool is_terminator(uint8_t op) {
  switch (op) {
    case RETURN_VALUE: case RERAISE: case RAISE_VARARGS:
    case JUMP_FORWARD: case JUMP_BACKWARD: case JUMP_BACKWARD_NO_INTERRUPT:
      return true;
    default:
      return false;
  }
}

constexpr int kInvalid = 1000;

// Net stack effect in the running interpreter; `jump` selects the branch.
int stack_effect(uint8_t op, int oparg, bool jump) {
  switch (op) {
    case NOP: case RESUME: case EXTENDED_ARG: case MAKE_CELL: case COPY_FREE_VARS:
    case UNARY_POSITIVE: case UNARY_NEGATIVE: case UNARY_NOT: case UNARY_INVERT:
    case GET_ITER: case GET_YIELD_FROM_ITER: case GET_AWAITABLE: case GET_AITER:
    case LIST_TO_TUPLE: case SETUP_ANNOTATIONS: case ASYNC_GEN_WRAP:
    case DELETE_NAME: case DELETE_GLOBAL: case DELETE_FAST: case DELETE_DEREF:
    case LOAD_ATTR: case SWAP: case JUMP_FORWARD: case JUMP_BACKWARD:
    case JUMP_BACKWARD_NO_INTERRUPT: case CHECK_EXC_MATCH: case CHECK_EG_MATCH:
    case KW_NAMES: case PRECALL:  // PRECALL leaves callable and arguments for CALL
    case YIELD_VALUE:             // pops the yielded value; resumption pushes the sent one
      return 0;
    case RETURN_GENERATOR:  // the generator's first send pushes a value (popped by POP_TOP)
    case PUSH_NULL: case GET_LEN: case MATCH_MAPPING: case MATCH_SEQUENCE: case MATCH_KEYS:
    case PUSH_EXC_INFO: case WITH_EXCEPT_START: case GET_ANEXT: case BEFORE_ASYNC_WITH:
    case BEFORE_WITH: case LOAD_BUILD_CLASS: case LOAD_ASSERTION_ERROR: case LOAD_CONST:
    case LOAD_NAME: case IMPORT_FROM: case COPY: case LOAD_FAST: case LOAD_CLOSURE:
    case LOAD_DEREF: case LOAD_CLASSDEREF: case LOAD_METHOD:
      return 1;
    case POP_TOP: case BINARY_SUBSCR: case PRINT_EXPR: case RETURN_VALUE: case IMPORT_STAR:
    case PREP_RERAISE_STAR: case POP_EXCEPT: case STORE_NAME: case DELETE_ATTR:
    case STORE_GLOBAL: case COMPARE_OP: case IMPORT_NAME: case IS_OP: case CONTAINS_OP:
    case RERAISE: case BINARY_OP: case STORE_FAST: case STORE_DEREF: case LIST_APPEND:
    case SET_ADD: case LIST_EXTEND: case SET_UPDATE: case DICT_MERGE: case DICT_UPDATE:
    case POP_JUMP_FORWARD_IF_FALSE: case POP_JUMP_FORWARD_IF_TRUE:
    case POP_JUMP_FORWARD_IF_NONE: case POP_JUMP_FORWARD_IF_NOT_NONE:
    case POP_JUMP_BACKWARD_IF_FALSE: case POP_JUMP_BACKWARD_IF_TRUE:
    case POP_JUMP_BACKWARD_IF_NONE: case POP_JUMP_BACKWARD_IF_NOT_NONE:
      return -1;
    case STORE_ATTR: case DELETE_SUBSCR: case END_ASYNC_FOR: case MAP_ADD: case MATCH_CLASS:
      return -2;
    case STORE_SUBSCR:
      return -3;
    case UNPACK_SEQUENCE: return oparg - 1;
    case UNPACK_EX: return (oparg & 0xFF) + (oparg >> 8);
    case FOR_ITER: return jump ? -1 : 1;  // exhausted: pops the iterator
    case SEND: return jump ? -1 : 0;      // returned: [receiver, v] -> [value]
    case JUMP_IF_FALSE_OR_POP: case JUMP_IF_TRUE_OR_POP: return jump ? 0 : -1;
    case BUILD_TUPLE: case BUILD_LIST: case BUILD_SET: case BUILD_STRING: return 1 - oparg;
    case BUILD_MAP: return 1 - 2 * oparg;
    case BUILD_CONST_KEY_MAP: return -oparg;
    case LOAD_GLOBAL: return 1 + (oparg & 1);
    case RAISE_VARARGS: return -oparg;
    case MAKE_FUNCTION: return -__builtin_popcount(oparg & 0x0F);
    case BUILD_SLICE: return oparg == 3 ? -2 : -1;
    case CALL_FUNCTION_EX: return -2 - (oparg & 1);
    case FORMAT_VALUE: return (oparg & 0x04) ? -1 : 0;
    case CALL: return -(oparg + 1);  // [NULL|meth, callable|self, args...] -> result
    default:
      return kInvalid;
  }
}

[[noreturn]] void malformed(PyCodeObject* co, int unit, const std::string& what) {
  throw std::runtime_error("stack analysis of " + describe_code_at(reinterpret_cast<PyObject*>(co), unit * 2) +
                           " at offset " + std::to_string(unit * 2) + ": " + what);
}

int read_varint(const unsigned char*& p, const unsigned char* end) {
  int value = *p & 63;
  while (*p++ & 64) {
    if (p >= end) throw std::runtime_error("truncated exception table");
    value = (value << 6) | (*p & 63);
  }
  return value;
}

Py_ssize_t g_extra_index = -1;

void free_info(void* info) { delete static_cast<CodeInfo*>(info); }

}  // namespace

bool init_opcode_tables() {
  if (!load_tables()) return false;
  g_extra_index = _PyEval_RequestCodeExtraIndex(free_info);
  if (g_extra_index < 0) {
    PyErr_SetString(PyExc_RuntimeError, "pyckpt: no free code-object extra slot");
    return false;
  }
  return true;
}

uint8_t deopt(uint8_t opcode) { return g_deopt[opcode]; }
const char* opname(uint8_t opcode) { return g_names[opcode].c_str(); }

CodeInfo analyse(PyCodeObject* co, std::span<const _Py_CODEUNIT> units) {
  CodeInfo info;
  const int n = static_cast<int>(units.size());
  info.owner.assign(n, -1);
  // Decode.
  for (int u = 0; u < n;) {
    Instr in{u, u, 0, 0, 0, -1};
    int oparg = 0;
    uint8_t op;
    for (;;) {
      op = deopt(_Py_OPCODE(units[u]));
      oparg = (oparg << 8) | _Py_OPARG(units[u]);
      if (op != EXTENDED_ARG) break;
      if (++u >= n) malformed(co, u, "EXTENDED_ARG at end");
    }
    in.op = u;
    in.opcode = op;
    in.oparg = oparg;
    in.end = u + 1 + g_caches[op];
    if (in.end > n) malformed(co, u, "inline cache past the end");
    for (int k = in.start; k < in.end; ++k) info.owner[k] = static_cast<int>(info.instrs.size());
    info.instrs.push_back(in);
    u = in.end;
  }
  auto index_of = [&](int unit, int from) {
    if (unit < 0 || unit >= n || info.instrs[info.owner[unit]].start != unit)
      malformed(co, from, "jump to " + std::to_string(unit * 2) + " is not an instruction");
    return info.owner[unit];
  };
  // Propagate depths from the entry and from every exception handler.
  std::deque<int> work;
  auto reach = [&](int index, int depth, int from) {
    Instr& in = info.instrs[index];
    if (depth < 0) malformed(co, from, "negative stack depth");
    if (in.depth == -1) {
      in.depth = depth;
      work.push_back(index);
    } else if (in.depth != depth) {
      malformed(co, in.op, "inconsistent stack depth " + std::to_string(in.depth) + " vs " + std::to_string(depth));
    }
  };
  if (!info.instrs.empty()) reach(0, 0, 0);
  Py_ssize_t table_size = PyBytes_GET_SIZE(co->co_exceptiontable);
  const auto* p = reinterpret_cast<const unsigned char*>(PyBytes_AS_STRING(co->co_exceptiontable));
  const unsigned char* table_end = p + table_size;
  while (p < table_end) {
    read_varint(p, table_end);  // start
    read_varint(p, table_end);  // length
    int target = read_varint(p, table_end);
    int depth_lasti = read_varint(p, table_end);
    // The handler gets the exception, and the raising offset if "lasti".
    reach(index_of(target, target), (depth_lasti >> 1) + (depth_lasti & 1) + 1, target);
  }
  while (!work.empty()) {
    const Instr in = info.instrs[work.front()];
    work.pop_front();
    int effect = stack_effect(in.opcode, in.oparg, false);
    if (effect == kInvalid) malformed(co, in.op, std::string("unknown opcode ") + opname(in.opcode));
    if (!is_terminator(in.opcode)) {
      if (in.end >= n) malformed(co, in.op, "falls off the end");
      reach(info.owner[in.end], in.depth + effect, in.op);
    }
    if (is_jump(in.opcode)) {
      int target = is_backward_jump(in.opcode) ? in.end - in.oparg : in.end + in.oparg;
      reach(index_of(target, in.op), in.depth + stack_effect(in.opcode, in.oparg, true), in.op);
    }
  }
  return info;
}

const CodeInfo& code_info(PyCodeObject* co) {
  void* cached = nullptr;
  if (_PyCode_GetExtra(reinterpret_cast<PyObject*>(co), g_extra_index, &cached) < 0) throw PythonError{};
  if (cached != nullptr) return *static_cast<CodeInfo*>(cached);
  auto* info = new CodeInfo(analyse(co, {code_units(co), static_cast<size_t>(units_of(co))}));
  if (_PyCode_SetExtra(reinterpret_cast<PyObject*>(co), g_extra_index, info) < 0) {
    delete info;
    throw PythonError{};
  }
  return *info;
}

Ref stack_depths_impl(PyObject* code, bool live) {
  if (!PyCode_Check(code)) {
    PyErr_SetString(PyExc_TypeError, "stack_depths() needs a code object");
    throw PythonError{};
  }
  auto* co = reinterpret_cast<PyCodeObject*>(code);
  Ref plain;
  CodeInfo local;
  const CodeInfo* info;
  if (live) {
    info = &code_info(co);
  } else {
    plain = check_new(PyCode_GetCode(co));
    auto* units = reinterpret_cast<const _Py_CODEUNIT*>(PyBytes_AS_STRING(plain.get()));
    local = analyse(co, {units, static_cast<size_t>(PyBytes_GET_SIZE(plain.get()) / 2)});
    info = &local;
  }
  Ref result = check_new(PyList_New(static_cast<Py_ssize_t>(info->owner.size())));
  for (size_t u = 0; u < info->owner.size(); ++u) {
    const Instr& in = info->instrs[info->owner[u]];
    bool start = static_cast<int>(u) == in.start || static_cast<int>(u) == in.op;
    PyObject* item = start && in.depth >= 0 ? check(PyLong_FromLong(in.depth)) : Py_NewRef(Py_None);
    PyList_SET_ITEM(result.get(), static_cast<Py_ssize_t>(u), item);
  }
  return result;
}

}  // namespace pyckpt::core::interp::py311

namespace pyckpt::core::interp {
Ref stack_depths(PyObject* code, bool live) { return py311::stack_depths_impl(code, live); }
}  // namespace pyckpt::core::interp

#endif
