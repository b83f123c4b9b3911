// The mapping of C++ exceptions to pyckpt's Python exceptions (errors.hpp).
#include "errors.hpp"

#include <pyckpt/h5/types.hpp>

#include <cstring>
#include <new>
#include <stdexcept>

namespace pyckpt::core {
namespace {

ErrorClasses g_classes;

// Sets cls(message). Bytes of the message that are not UTF-8 (from a
// damaged file: a dataset name, a key id) are shown as escapes, not lost.
void set_error(PyObject* cls, const char* message) {
  Ref text = Ref::steal(PyUnicode_DecodeUTF8(message, static_cast<Py_ssize_t>(std::strlen(message)), "backslashreplace"));
  if (text) PyErr_SetObject(cls, text.get());
}

}  // namespace

const ErrorClasses& error_classes() { return g_classes; }

int init_errors() {
  Ref mod = Ref::steal(PyImport_ImportModule("pyckpt.errors"));
  if (!mod) return -1;
  struct Entry {
    PyObject** slot;
    const char* name;
  };
  for (Entry e : {Entry{&g_classes.checkpoint_error, "CheckpointError"},
                  Entry{&g_classes.unsupported_state_error, "UnsupportedStateError"},
                  Entry{&g_classes.file_error, "CheckpointFileError"},
                  Entry{&g_classes.checksum_error, "ChecksumError"},
                  Entry{&g_classes.authentication_error, "AuthenticationError"},
                  Entry{&g_classes.key_file_error, "KeyFileError"}, Entry{&g_classes.usage_error, "UsageError"}}) {
    if (*e.slot != nullptr) continue;  // a second import of the module (sub-interpreter)
    *e.slot = PyObject_GetAttrString(mod.get(), e.name);  // kept for the process
    if (*e.slot == nullptr) return -1;
  }
  return 0;
}

[[noreturn]] void raise(PyObject* cls, const std::string& message) {
  PyErr_SetString(cls, message.c_str());
  throw PythonError{};
}

void set_error_from_current_exception() noexcept {
  // Before init_errors() succeeded only built-in classes are available.
  const auto cls = [](PyObject* c) { return c != nullptr ? c : PyExc_RuntimeError; };
  try {
    throw;
  } catch (const PythonError&) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "pyckpt: error without a Python exception");
  } catch (const UnsupportedState& e) {
    set_error(cls(g_classes.unsupported_state_error), e.message.c_str());
  } catch (const h5::ChecksumError& e) {
    set_error(cls(g_classes.checksum_error), e.what());
  } catch (const h5::AuthenticationError& e) {
    set_error(cls(g_classes.authentication_error), e.what());
  } catch (const h5::KeyFileError& e) {
    set_error(cls(g_classes.key_file_error), e.what());
  } catch (const h5::UsageError& e) {
    set_error(g_classes.usage_error ? g_classes.usage_error : PyExc_ValueError, e.what());
  } catch (const h5::Error& e) {  // IoError, FormatError
    set_error(cls(g_classes.file_error), e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    set_error(cls(g_classes.checkpoint_error), e.what());
  } catch (...) {
    PyErr_SetString(cls(g_classes.checkpoint_error), "pyckpt: unknown C++ exception");
  }
}

}  // namespace pyckpt::core
