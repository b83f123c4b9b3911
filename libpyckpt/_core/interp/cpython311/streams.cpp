// How far a program has read an io stream, beyond what io's public API
// tells: a TextIOWrapper decodes input a chunk (8 KiB) at a time and keeps
// the decoded text the program has not read yet; a BufferedReader reads
// ahead of its consumer too. tell() accounts for both only on a seekable
// stream and not while the text file is iterated (`for line in f`: "telling
// position disabled by next() call"), and sys.stdin of an MPI rank is a pipe.
// pyckpt.heap captures these positions with the functions below and puts the
// read-ahead text back into the restored stream (doc/heap.md, "open file").
//
// The structs mirror CPython 3.11's private ones (Modules/_io/textio.c,
// bufferedio.c; unchanged from 3.7 to 3.11). Every access first checks the
// mirror against the object's public attributes; a mismatch is an
// UnsupportedState naming the stream, never a wrong position.
#include "interp/cpython311/py311.hpp"
#ifdef PYCKPT_INTERP_PY311
#include <pythread.h>

#include <cstdint>
#include <string>

namespace pyckpt::core::interp {
namespace {

using encodefunc_t = PyObject* (*)(PyObject*, PyObject*);

struct TextIO {  // textio
  PyObject_HEAD
  int ok;
  int detached;
  Py_ssize_t chunk_size;
  PyObject* buffer;
  PyObject* encoding;
  PyObject* encoder;
  PyObject* decoder;
  PyObject* readnl;
  PyObject* errors;
  const char* writenl;
  char line_buffering;
  char write_through;
  char readuniversal;
  char readtranslate;
  char writetranslate;
  char seekable;
  char has_read1;
  char telling;
  char finalizing;
  encodefunc_t encodefunc;
  char encoding_start_of_stream;
  PyObject* decoded_chars;        // text decoded from the last chunk
  Py_ssize_t decoded_chars_used;  // how much of it the program has read
  PyObject* pending_bytes;
  Py_ssize_t pending_bytes_count;
  PyObject* snapshot;  // (decoder flags, next input) for tell(), or NULL
  double b2cratio;
  PyObject* raw;
  PyObject* weakreflist;
  PyObject* dict;
};

struct Buffered {  // buffered
  PyObject_HEAD
  PyObject* raw;
  int ok;
  int detached;
  int readable;
  int writable;
  char finalizing;
  int fast_closed_checks;
  std::int64_t abs_pos;  // the raw stream's position, or bytes read from it if it cannot tell
  char* buffer;
  std::int64_t pos;       // the consumer's position in the buffer
  std::int64_t raw_pos;
  std::int64_t read_end;  // end of the read-ahead data in the buffer, -1 if none
  std::int64_t write_pos;
  std::int64_t write_end;
  PyThread_type_lock lock;
  volatile unsigned long owner;
  Py_ssize_t buffer_size;
  Py_ssize_t buffer_mask;
  PyObject* dict;
  PyObject* weakreflist;
};

PyObject* io_type(const char* name) {
  Ref io = check_new(PyImport_ImportModule("_io"));
  return check(PyObject_GetAttrString(io.get(), name));  // a new reference, kept: types live forever
}

// The object as T if it is exactly io's `type_name` (not a subclass, whose
// layout may differ) and its mirrored `attr` field is its public attribute.
template <class T>
T* mirrored(PyObject* obj, const char* type_name, const char* attr, PyObject* T::*field) {
  static PyObject* types[2] = {};
  PyObject*& type = types[std::string(type_name) == "TextIOWrapper" ? 0 : 1];
  if (type == nullptr) type = io_type(type_name);
  if (Py_TYPE(obj) != reinterpret_cast<PyTypeObject*>(type))
    throw UnsupportedState{describe_object(obj) + " is not an io." + type_name + ": pyckpt cannot tell how far it "
                           "was read"};
  T* mirror = reinterpret_cast<T*>(obj);
  Ref expected = check_new(PyObject_GetAttrString(obj, attr));
  if (mirror->ok != 1 || mirror->detached != 0 || mirror->*field != expected.get())
    throw UnsupportedState{"the layout of " + describe_object(obj) + " is not CPython 3.11's: pyckpt cannot tell "
                           "how far it was read"};
  return mirror;
}

// buffered_read_position(reader) -> int or None: the position of what the
// BufferedReader's consumer has read, in bytes of the raw stream (counted from
// the stream's start, or for a stream that cannot tell its position, such as
// a pipe, from what this reader read of it); None if unknown.
PyObject* py_buffered_read_position(PyObject*, PyObject* reader) {
  return guarded_ref([&]() -> Ref {
    Buffered* b = mirrored<Buffered>(reader, "BufferedReader", "raw", &Buffered::raw);
    if (b->abs_pos < 0) return Ref::borrow(Py_None);
    const std::int64_t ahead = b->readable && b->read_end != -1 ? b->read_end - b->pos : 0;
    return check_new(PyLong_FromLongLong(b->abs_pos - ahead));
  });
}

// text_read_ahead(f) -> (text, decoder, telling): what the TextIOWrapper
// decoded and the program has not read yet, its decoder (whose getstate()
// holds the bytes it took but has not decoded yet) and whether tell() is
// enabled (not while the file is iterated).
PyObject* py_text_read_ahead(PyObject*, PyObject* f) {
  return guarded_ref([&]() -> Ref {
    TextIO* t = mirrored<TextIO>(f, "TextIOWrapper", "buffer", &TextIO::buffer);
    Ref text = t->decoded_chars == nullptr
                   ? check_new(PyUnicode_FromString(""))
                   : check_new(PyUnicode_Substring(t->decoded_chars, t->decoded_chars_used,
                                                   PyUnicode_GET_LENGTH(t->decoded_chars)));
    return check_new(Py_BuildValue("(OOO)", text.get(), t->decoder ? t->decoder : Py_None,
                                   t->telling ? Py_True : Py_False));
  });
}

// set_text_read_ahead(f, text, telling): makes `text` the next text f reads,
// before whatever its buffer reads next (f has read nothing yet: just
// opened, or positioned with seek()). The decoder's own state is set by the
// caller through its public setstate().
PyObject* py_set_text_read_ahead(PyObject*, PyObject* args) {
  PyObject *f, *text;
  int telling;
  if (!PyArg_ParseTuple(args, "OUp:set_text_read_ahead", &f, &text, &telling)) return nullptr;
  return guarded_ref([&]() -> Ref {
    TextIO* t = mirrored<TextIO>(f, "TextIOWrapper", "buffer", &TextIO::buffer);
    Py_INCREF(text);
    Py_XSETREF(t->decoded_chars, text);
    t->decoded_chars_used = 0;
    Py_CLEAR(t->snapshot);  // tell() has no snapshot to start from, as after next()
    t->telling = static_cast<char>(telling && t->seekable);
    return Ref::borrow(Py_None);
  });
}

PyMethodDef g_methods[] = {
    {"buffered_read_position", py_buffered_read_position, METH_O,
     "buffered_read_position(reader) -> int or None: the raw stream position of what an io.BufferedReader's\n"
     "consumer has read (for a pipe: bytes this reader read of it, minus its read-ahead)."},
    {"text_read_ahead", py_text_read_ahead, METH_O,
     "text_read_ahead(f) -> (text, decoder, telling): text an io.TextIOWrapper decoded that the program has not\n"
     "read, its decoder, and whether tell() is enabled."},
    {"set_text_read_ahead", py_set_text_read_ahead, METH_VARARGS,
     "set_text_read_ahead(f, text, telling): `text` becomes what f reads first (f has read nothing yet)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

bool add_streams_api(PyObject* module) { return PyModule_AddFunctions(module, g_methods) == 0; }

}  // namespace pyckpt::core::interp

#endif
