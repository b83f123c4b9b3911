#include "interp/errors.hpp"

namespace pyckpt::core::interp {

std::string describe_object(PyObject* obj) {
  if (obj == nullptr) return "<NULL>";
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);  // messages are built while an error may be pending
  std::string text = "<unprintable>";
  Ref repr = Ref::steal(PyObject_Repr(obj));
  if (repr) {
    if (const char* utf8 = PyUnicode_AsUTF8(repr.get())) text = utf8;
  }
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
  if (text.size() > 120) text = text.substr(0, 117) + "...";
  return text;
}

std::string describe_code_at(PyObject* code, int offset_bytes) {
  auto* co = reinterpret_cast<PyCodeObject*>(code);
  const char* file = PyUnicode_AsUTF8(co->co_filename);
  const char* name = PyUnicode_AsUTF8(co->co_qualname);
  if (file == nullptr || name == nullptr) PyErr_Clear();
  int line = PyCode_Addr2Line(co, offset_bytes);
  return std::string(file ? file : "?") + ":" + std::to_string(line) + " in " + (name ? name : "?");
}

}  // namespace pyckpt::core::interp
