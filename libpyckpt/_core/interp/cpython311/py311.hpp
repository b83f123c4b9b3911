// CPython 3.11 backend: access to interpreter internals. Only files in this
// folder include internal headers; the rest of _core sees interp.hpp.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <opcode.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define PYCKPT_INTERP_PY311 1
#define Py_BUILD_CORE
#include <internal/pycore_frame.h>
#undef Py_BUILD_CORE

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "interp/errors.hpp"
#include "interp/interp.hpp"

namespace pyckpt::core::interp::py311 {

using Frame = _PyInterpreterFrame;

inline PyCodeObject* code_of(const Frame* f) { return f->f_code; }
inline const _Py_CODEUNIT* code_units(PyCodeObject* co) { return _PyCode_CODE(co); }
inline int units_of(PyCodeObject* co) { return static_cast<int>(Py_SIZE(co)); }
// Code-unit index of the unit before the next instruction.
inline int prev_unit(const Frame* f) { return static_cast<int>(f->prev_instr - _PyCode_CODE(f->f_code)); }
inline PyGenObject* generator_of(Frame* f) {
  return f->owner == FRAME_OWNED_BY_GENERATOR ? _PyFrame_GetGenerator(f) : nullptr;
}
inline Frame* frame_of(PyGenObject* gen) { return reinterpret_cast<Frame*>(gen->gi_iframe); }

// --- bytecode (bytecode.cpp) ----------------------------------------------

// One decoded instruction. `start` is the first unit (its EXTENDED_ARG
// prefix, if any), `op` the unit holding the opcode; the instruction ends
// after its inline CACHE entries at `end`.
struct Instr {
  int start, op, end;
  uint8_t opcode;  // de-specialised
  int oparg;       // including EXTENDED_ARG prefixes
  int depth;       // value-stack depth before it; -1 if unreachable
};

// Static analysis of one code object, cached on the code object (co_extra).
struct CodeInfo {
  std::vector<Instr> instrs;
  std::vector<int> owner;  // code unit -> index into instrs

  const Instr& at_unit(int unit) const { return instrs.at(owner.at(unit)); }
  const Instr* next(const Instr& in) const {
    size_t i = &in - instrs.data() + 1;
    return i < instrs.size() ? &instrs[i] : nullptr;
  }
  const Instr* prev(const Instr& in) const { return &in == instrs.data() ? nullptr : &in - 1; }
};

bool init_opcode_tables();
uint8_t deopt(uint8_t opcode);
const char* opname(uint8_t opcode);
// Analyses `units` (quickened or not). Throws on malformed bytecode.
CodeInfo analyse(PyCodeObject* co, std::span<const _Py_CODEUNIT> units);
// The cached analysis of the live bytecode.
const CodeInfo& code_info(PyCodeObject* co);

// Group start of a CALL: [KW_NAMES] PRECALL CALL, each possibly with EXTENDED_ARG.
inline const Instr& call_group_start(const CodeInfo& info, const Instr& call) {
  const Instr* first = &call;
  if (const Instr* p = info.prev(*first); p && p->opcode == PRECALL) first = p;
  if (const Instr* p = info.prev(*first); p && p->opcode == KW_NAMES) first = p;
  return *first;
}

// The CALL that `in` (PRECALL or CALL) belongs to, or nullptr.
inline const Instr* call_of(const CodeInfo& info, const Instr& in) {
  if (in.opcode == CALL) return &in;
  if (in.opcode == PRECALL) {
    const Instr* next = info.next(in);
    if (next && next->opcode == CALL) return next;
  }
  return nullptr;
}

// --- shared by capture and resume ------------------------------------------

// Captured states are named tuples (PyStructSequence types of pyckpt._core,
// doc/interp.md): StackState(format, frames), frames a tuple of FrameRecord,
// and GeneratorState. Resume reads them by index and also accepts plain
// tuples of the same layout (older checkpoints).
// FrameRecord fields.
enum FrameField { kCode, kKind, kGlobals, kLocals, kLocalsplus, kStack, kOffset, kLink, kExc, kGenerator, kFrameFields };
// GeneratorState fields.
// kGenAsync was added after the others: states without it (older
// checkpoints) are read as those of generators and coroutines.
enum GenField { kGenFormat, kGenCode, kGenGlobals, kGenName, kGenQualname, kGenStatus, kGenLocalsplus, kGenStack, kGenOffset, kGenExc, kGenAsync, kGenFields };

// The record types, created by init_records (capture.cpp) at module import.
enum class Record { kStackState, kFrameRecord, kGeneratorState };
bool init_records(PyObject* module);
// A record of the given type holding the items of `tuple` (its field layout).
Ref as_record(Record type, Ref tuple);

// Link kinds: what a resumed frame's pending instruction gets on top of its
// captured value stack.
inline constexpr const char* kLinkResult = "result";    // the resume result
inline constexpr const char* kLinkNone = "none";        // nothing: re-executes as captured
inline constexpr const char* kLinkCall = "call";        // NULL, thunk, n placeholders
inline constexpr const char* kLinkCallEx = "call_ex";   // NULL, thunk, (), {} if kw
inline constexpr const char* kLinkSubscr = "subscr";    // thunk, placeholder
inline constexpr const char* kLinkSend = "send";        // placeholder value to send

std::string describe_frame(Frame* f);
// ValueError("invalid interpreter state: ..."), thrown as PythonError
// (resume.cpp): a state that is malformed or does not fit its code.
[[noreturn]] void bad_state(const std::string& what);
// Refuses a state captured by another interpreter format (its tag).
void check_format(PyObject* tag);
// Slot value <-> captured value (NULL becomes the marker).
inline PyObject* to_state(PyObject* slot) { return slot ? slot : null_marker(); }
inline PyObject* from_state(PyObject* value) { return value == null_marker() ? nullptr : value; }

// The outermost frame of the resume in progress on thread `tstate`, for the
// default capture base; nullptr if none.
Frame* resumed_root_frame(PyThreadState* tstate);

// Captures the frames of thread `tstate` (the current one, or a thread parked
// by threads.cpp) from `base` (see capture_stack) down to `innermost`.
Ref capture_frames(PyThreadState* tstate, PyObject* base, CaptureMode mode, Frame* innermost);

}  // namespace pyckpt::core::interp::py311

#endif
