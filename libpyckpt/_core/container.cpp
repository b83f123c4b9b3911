// Python view of the hdf5_io checkpoint container: pyckpt._core.Writer and
// pyckpt._core.Reader. NumPy arrays go to and come from the container by
// pointer (the writer keeps a reference to each array until commit, the reader
// fills arrays the caller allocated), so no array data is copied here.
#include "errors.hpp"
#include "module.hpp"
#include "numpy_api.hpp"
#include "pyref.hpp"

#include <pyckpt/h5/container.hpp>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pyckpt::core {
namespace {

namespace h5 = pyckpt::h5;

std::string to_string(PyObject* obj) {
  Py_ssize_t len = 0;
  const char* s = PyUnicode_AsUTF8AndSize(obj, &len);
  if (s == nullptr) throw PythonError{};
  return std::string(s, static_cast<std::size_t>(len));
}

// ------------------------------------------------------- dtype <-> type ---

h5::ByteOrder byte_order_of(const PyArray_Descr* d) {
  switch (d->byteorder) {
    case '<': return h5::ByteOrder::Little;
    case '>': return h5::ByteOrder::Big;
    case '=': return h5::native_byte_order();
    default: return h5::ByteOrder::NotApplicable;
  }
}

h5::ElementType element_type_of(PyArray_Descr* d);

std::vector<h5::ElementType::Field> fields_of(PyArray_Descr* d) {
  std::vector<h5::ElementType::Field> fields;
  const Py_ssize_t n = PyTuple_GET_SIZE(d->names);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* name = PyTuple_GET_ITEM(d->names, i);
    // fields[name] = (dtype, offset[, title])
    PyObject* info = PyDict_GetItem(d->fields, name);
    auto* fd = reinterpret_cast<PyArray_Descr*>(PyTuple_GET_ITEM(info, 0));
    h5::ElementType::Field f;
    f.name = to_string(name);
    f.offset = PyLong_AsSize_t(PyTuple_GET_ITEM(info, 1));
    if (fd->subarray != nullptr) {
      Ref shape = Ref::borrow(fd->subarray->shape);
      if (PyLong_Check(shape.get())) shape = check_new(PyTuple_Pack(1, shape.get()));
      for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(shape.get()); ++k)
        f.shape.push_back(PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(shape.get(), k)));
      f.type = element_type_of(fd->subarray->base);
    } else {
      f.type = element_type_of(fd);
    }
    fields.push_back(std::move(f));
  }
  return fields;
}

// The container type of a NumPy dtype. datetime64/timedelta64 are stored as
// 8-byte integers; the Python layer records the exact dtype as an attribute.
h5::ElementType element_type_of(PyArray_Descr* d) {
  using T = h5::ElementType;
  const auto size = static_cast<std::size_t>(d->elsize);
  const h5::ByteOrder order = byte_order_of(d);
  if (d->names != nullptr && d->names != Py_None) return T::compound(size, fields_of(d));
  switch (d->kind) {
    case 'b': return T::boolean();
    case 'i': case 'M': case 'm': return T::integer(size, order);
    case 'u': return T::unsigned_integer(size, order);
    case 'f': return T::floating(size, order);
    case 'c': return T::complex(size, order);
    case 'S': return T::bytes(size);
    case 'U': return T::unicode(size / 4, order);
    case 'V': return T::opaque(size);
    default: break;
  }
  Ref repr = check_new(PyObject_Repr(reinterpret_cast<PyObject*>(d)));
  PyErr_Format(PyExc_TypeError, "the checkpoint container cannot store arrays of %s as a dataset",
               to_string(repr.get()).c_str());
  throw PythonError{};
}

// A NumPy dtype description (string or dict) for a container type.
Ref dtype_descr_of(const h5::ElementType& t) {
  if (t.kind != h5::ElementType::Kind::Compound) return check_new(PyUnicode_FromString(t.str().c_str()));
  Ref names = check_new(PyList_New(0)), formats = check_new(PyList_New(0)), offsets = check_new(PyList_New(0));
  for (const auto& f : t.fields) {
    Ref format = dtype_descr_of(f.type);
    if (!f.shape.empty()) {
      Ref shape = check_new(PyTuple_New(static_cast<Py_ssize_t>(f.shape.size())));
      for (std::size_t k = 0; k < f.shape.size(); ++k)
        PyTuple_SET_ITEM(shape.get(), k, check_new(PyLong_FromUnsignedLongLong(f.shape[k])).release());
      format = check_new(PyTuple_Pack(2, format.get(), shape.get()));
    }
    if (PyList_Append(names.get(), check_new(PyUnicode_FromString(f.name.c_str())).get()) < 0 ||
        PyList_Append(formats.get(), format.get()) < 0 ||
        PyList_Append(offsets.get(), check_new(PyLong_FromSize_t(f.offset)).get()) < 0)
      throw PythonError{};
  }
  Ref itemsize = check_new(PyLong_FromSize_t(t.size));
  return check_new(Py_BuildValue("{sOsOsOsO}", "names", names.get(), "formats", formats.get(), "offsets",
                             offsets.get(), "itemsize", itemsize.get()));
}

Ref dtype_of(const h5::ElementType& t) {
  Ref descr = dtype_descr_of(t);
  require_numpy();
  PyArray_Descr* d = nullptr;
  if (!PyArray_DescrConverter(descr.get(), &d)) throw PythonError{};
  return Ref::steal(reinterpret_cast<PyObject*>(d));
}

// ------------------------------------------------------------ attributes ---

h5::AttrValue attr_value_of(PyObject* v) {
  if (PyBool_Check(v) || PyLong_Check(v)) {
    const long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) throw PythonError{};
    return std::int64_t{x};
  }
  if (PyFloat_Check(v)) return PyFloat_AS_DOUBLE(v);
  if (PyUnicode_Check(v)) return to_string(v);
  if (PyList_Check(v) || PyTuple_Check(v)) {
    Ref seq = check_new(PySequence_Fast(v, "attribute value"));
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.get());
    PyObject** items = PySequence_Fast_ITEMS(seq.get());
    if (n > 0 && PyUnicode_Check(items[0])) {
      std::vector<std::string> out;
      for (Py_ssize_t i = 0; i < n; ++i) out.push_back(to_string(items[i]));
      return out;
    }
    if (n > 0 && PyFloat_Check(items[0])) {
      std::vector<double> out;
      for (Py_ssize_t i = 0; i < n; ++i) {
        out.push_back(PyFloat_AsDouble(items[i]));
        if (PyErr_Occurred()) throw PythonError{};
      }
      return out;
    }
    std::vector<std::int64_t> out;
    for (Py_ssize_t i = 0; i < n; ++i) {
      out.push_back(PyLong_AsLongLong(items[i]));
      if (PyErr_Occurred()) throw PythonError{};
    }
    return out;
  }
  PyErr_Format(PyExc_TypeError, "attribute values are int, float, str or lists of them, not %s",
               Py_TYPE(v)->tp_name);
  throw PythonError{};
}

h5::AttrMap attr_map_of(PyObject* dict) {
  h5::AttrMap out;
  if (dict == nullptr || dict == Py_None) return out;
  if (!PyDict_Check(dict)) {
    PyErr_SetString(PyExc_TypeError, "attrs must be a dict");
    throw PythonError{};
  }
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(dict, &pos, &key, &value)) out.emplace(to_string(key), attr_value_of(value));
  return out;
}

template <class T>
Ref list_of(const std::vector<T>& values, PyObject* (*make)(T)) {
  Ref list = check_new(PyList_New(static_cast<Py_ssize_t>(values.size())));
  for (std::size_t i = 0; i < values.size(); ++i)
    PyList_SET_ITEM(list.get(), i, check_new(make(values[i])).release());
  return list;
}

PyObject* str_from(std::string s) { return PyUnicode_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size())); }
PyObject* int_from(std::int64_t v) { return PyLong_FromLongLong(v); }

Ref py_value_of(const h5::AttrValue& v) {
  struct Visitor {
    Ref operator()(std::int64_t x) const { return check_new(PyLong_FromLongLong(x)); }
    Ref operator()(double x) const { return check_new(PyFloat_FromDouble(x)); }
    Ref operator()(const std::string& x) const { return check_new(str_from(x)); }
    Ref operator()(const std::vector<std::int64_t>& x) const { return list_of(x, int_from); }
    Ref operator()(const std::vector<double>& x) const { return list_of(x, PyFloat_FromDouble); }
    Ref operator()(const std::vector<std::string>& x) const { return list_of(x, str_from); }
  };
  return std::visit(Visitor{}, v);
}

Ref py_dict_of(const h5::AttrMap& attrs) {
  Ref dict = check_new(PyDict_New());
  for (const auto& [k, v] : attrs)
    if (PyDict_SetItemString(dict.get(), k.c_str(), py_value_of(v).get()) < 0) throw PythonError{};
  return dict;
}

std::vector<std::uint64_t> u64_vector_of(PyObject* seq_obj, const char* what) {
  Ref seq = check_new(PySequence_Fast(seq_obj, what));
  std::vector<std::uint64_t> out;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
    // PyNumber_Index accepts NumPy integers as well as ints.
    Ref index = check_new(PyNumber_Index(PySequence_Fast_GET_ITEM(seq.get(), i)));
    out.push_back(PyLong_AsUnsignedLongLong(index.get()));
    if (PyErr_Occurred()) throw PythonError{};
  }
  return out;
}

// Runs fn without the GIL, so other Python threads go on during file I/O.
// The caller pins every Python object fn touches.
template <class Fn>
void without_gil(Fn&& fn) {
  PyThreadState* saved = PyEval_SaveThread();
  try {
    fn();
  } catch (...) {
    PyEval_RestoreThread(saved);
    throw;
  }
  PyEval_RestoreThread(saved);
}

// ---------------------------------------------------------- array views ---

PyArrayObject* as_array(PyObject* obj, const char* what) {
  require_numpy();
  if (!PyArray_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "%s must be a numpy.ndarray, not %s", what, Py_TYPE(obj)->tp_name);
    throw PythonError{};
  }
  return reinterpret_cast<PyArrayObject*>(obj);
}

template <class View>
View view_of(PyArrayObject* a) {
  View v;
  v.data = PyArray_DATA(a);
  v.type = element_type_of(PyArray_DESCR(a));
  for (int k = 0; k < PyArray_NDIM(a); ++k) {
    v.shape.push_back(static_cast<std::uint64_t>(PyArray_DIM(a, k)));
    v.strides.push_back(PyArray_STRIDE(a, k));
  }
  return v;
}

// A destination array for the reader: writeable, contiguous.
h5::MutableArrayView dest_view_of(PyObject* obj) {
  PyArrayObject* a = as_array(obj, "out");
  if (!PyArray_ISWRITEABLE(a) || !(PyArray_IS_C_CONTIGUOUS(a) || PyArray_IS_F_CONTIGUOUS(a))) {
    PyErr_SetString(PyExc_ValueError, "out must be a writeable C- or F-contiguous array");
    throw PythonError{};
  }
  return view_of<h5::MutableArrayView>(a);
}

// Frees an instance of one of the heap types below; the instance holds a
// reference to its type.
void free_heap_instance(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);
}

// -------------------------------------------------------------- Writer ---

// A Python buffer held open until the writer commits (blob data by pointer).
struct HeldBuffer {
  Py_buffer view{};
  explicit HeldBuffer(PyObject* obj) {
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0) throw PythonError{};
  }
  HeldBuffer(const HeldBuffer&) = delete;
  HeldBuffer& operator=(const HeldBuffer&) = delete;
  ~HeldBuffer() { PyBuffer_Release(&view); }
};

struct WriterObject {
  PyObject_HEAD
  struct State {
    h5::CheckpointDir dir;
    h5::CheckpointWriter writer;
    std::vector<std::unique_ptr<HeldBuffer>> blobs;
    std::vector<Ref> arrays;  // keeps every added array alive until commit
    bool committed = false;
  };
  State* state;
};

WriterObject::State& writer_state(WriterObject* self) {
  if (self->state == nullptr || self->state->committed) {
    raise(error_classes().usage_error, "this checkpoint Writer has already committed");
  }
  return *self->state;
}

h5::Comm comm_of(PyObject* comm) {
  if (comm == nullptr || comm == Py_None) return h5::Comm::serial();
  // mpi4py communicators hand out their Fortran handle, which MPI converts
  // back to the C handle; this avoids a build dependency on mpi4py's headers.
  const long f = mpi4py_fortran_handle(comm);
  if (f == -1 && PyErr_Occurred()) throw PythonError{};
  return h5::Comm(MPI_Comm_f2c(static_cast<MPI_Fint>(f)));
}

int writer_init(WriterObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"directory", "epoch", "comm", "keep", nullptr};
  PyObject* directory = nullptr;
  PyObject* epoch = Py_None;
  PyObject* comm = Py_None;
  int keep = 2;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|OOi:Writer", const_cast<char**>(kwlist),
                                   PyUnicode_FSConverter, &directory, &epoch, &comm, &keep))
    return -1;
  Ref dir_bytes = Ref::steal(directory);
  return guarded_status([&] {
    std::optional<std::uint64_t> explicit_epoch;
    if (epoch != Py_None) {
      Ref index = check_new(PyNumber_Index(epoch));
      explicit_epoch = PyLong_AsUnsignedLongLong(index.get());
      if (PyErr_Occurred()) throw PythonError{};
    }
    h5::CheckpointDir dir(PyBytes_AS_STRING(dir_bytes.get()), keep);
    const h5::Comm c = comm_of(comm);
    delete self->state;
    self->state = nullptr;
    // Without an epoch the container picks the next one (collectively over comm).
    auto make = [&]() -> h5::CheckpointWriter {
      if (explicit_epoch) return h5::CheckpointWriter(dir, *explicit_epoch, c);
      return h5::CheckpointWriter(dir, c);
    };
    self->state = new WriterObject::State{dir, make(), {}, {}, false};
  });
}

PyObject* writer_get_epoch(WriterObject* self, void*) {
  return guarded([&] {
    if (self->state == nullptr) raise(error_classes().usage_error, "Writer is not initialised");
    return PyLong_FromUnsignedLongLong(self->state->writer.epoch());
  });
}

PyGetSetDef writer_getset[] = {
    {"epoch", reinterpret_cast<getter>(writer_get_epoch), nullptr,
     "the epoch this writer writes (chosen by the container if none was given)", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

void writer_dealloc(WriterObject* self) {
  delete self->state;
  free_heap_instance(reinterpret_cast<PyObject*>(self));
}

PyObject* writer_set_attribute(WriterObject* self, PyObject* args) {
  const char* name;
  PyObject* value;
  if (!PyArg_ParseTuple(args, "sO:set_attribute", &name, &value)) return nullptr;
  return guarded([&]() -> PyObject* {
    writer_state(self).writer.set_attribute(name, attr_value_of(value));
    Py_RETURN_NONE;
  });
}

PyObject* writer_set_rank_attribute(WriterObject* self, PyObject* args) {
  const char* name;
  PyObject* value;
  if (!PyArg_ParseTuple(args, "sO:set_rank_attribute", &name, &value)) return nullptr;
  return guarded([&]() -> PyObject* {
    writer_state(self).writer.set_rank_attribute(name, attr_value_of(value));
    Py_RETURN_NONE;
  });
}

PyObject* writer_add_blob(WriterObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"name", "data", "attrs", nullptr};
  const char* name;
  PyObject* data;
  PyObject* attrs = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sO|O:add_blob", const_cast<char**>(kwlist), &name, &data, &attrs))
    return nullptr;
  return guarded([&]() -> PyObject* {
    auto& state = writer_state(self);
    auto held = std::make_unique<HeldBuffer>(data);
    std::span<const std::byte> bytes(static_cast<const std::byte*>(held->view.buf),
                                     static_cast<std::size_t>(held->view.len));
    state.writer.add_blob(name, bytes, attr_map_of(attrs));
    state.blobs.push_back(std::move(held));
    Py_RETURN_NONE;
  });
}

PyObject* writer_add_array(WriterObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"name", "array", "attrs", nullptr};
  const char* name;
  PyObject* array;
  PyObject* attrs = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sO|O:add_array", const_cast<char**>(kwlist), &name, &array, &attrs))
    return nullptr;
  return guarded([&]() -> PyObject* {
    auto& state = writer_state(self);
    state.writer.add_array(name, view_of<h5::ArrayView>(as_array(array, "array")), attr_map_of(attrs));
    state.arrays.push_back(Ref::borrow(array));
    Py_RETURN_NONE;
  });
}

PyObject* writer_add_global_slab(WriterObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"name", "global_shape", "offset", "slab", "attrs", nullptr};
  const char* name;
  PyObject *global_shape, *offset, *slab;
  PyObject* attrs = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sOOO|O:add_global_slab", const_cast<char**>(kwlist), &name,
                                   &global_shape, &offset, &slab, &attrs))
    return nullptr;
  return guarded([&]() -> PyObject* {
    auto& state = writer_state(self);
    state.writer.add_global_slab(name, u64_vector_of(global_shape, "global_shape"), u64_vector_of(offset, "offset"),
                                 view_of<h5::ArrayView>(as_array(slab, "slab")), attr_map_of(attrs));
    state.arrays.push_back(Ref::borrow(slab));
    Py_RETURN_NONE;
  });
}

PyObject* commit_info_dict(const h5::CommitInfo& info) {
  return Py_BuildValue("{sNsKsKsKsdsdsd}", "path", PyUnicode_DecodeFSDefault(info.path.c_str()), "epoch",
                       static_cast<unsigned long long>(info.epoch), "bytes_written",
                       static_cast<unsigned long long>(info.bytes_written), "bytes_total",
                       static_cast<unsigned long long>(info.bytes_total), "seconds_prepare", info.seconds_prepare,
                       "seconds_write", info.seconds_write, "seconds_commit", info.seconds_commit);
}

PyObject* writer_commit(WriterObject* self, PyObject*) {
  return guarded([&]() -> PyObject* {
    auto& state = writer_state(self);
    h5::CommitInfo info;
    without_gil([&] { info = state.writer.commit(); });  // arrays pinned by state
    state.committed = true;
    state.blobs.clear();
    state.arrays.clear();
    return commit_info_dict(info);
  });
}

// ------------------------------------------------- asynchronous commits ---

// The one asynchronous commit of this process at a time (pyckpt.mpi's
// checkpoints with PYCKPT_ASYNC) and the buffer its data was copied into,
// kept for the next one. Reached from Python (Writer.commit_async,
// async_commit_wait) and from the interposer's safe points (async_progress,
// on the main thread, without the GIL): no Python object in here.
struct AsyncCommits {
  h5::StagingBuffer staging;
  std::unique_ptr<h5::PendingCommit> pending;
  std::string directory;
  bool report = false;  // say on stderr when it committed (rank 0 of a PYCKPT_VERBOSE job)
};
AsyncCommits g_async;

// Waits for the pending commit, if any, and says how it ended: a failure
// always (the previous checkpoint stays `latest`), a commit when asked to.
// False if it failed.
bool end_async_commit() {
  std::unique_ptr<h5::PendingCommit> pending = std::move(g_async.pending);
  if (!pending) return true;
  try {
    const h5::CommitInfo info = pending->wait();
    if (g_async.report) {
      std::fprintf(stderr, "pyckpt: checkpoint %llu committed: %s (written after the program went on; rank 0's "
                   "data in %.3f s)\n", static_cast<unsigned long long>(info.epoch), info.path.c_str(),
                   info.seconds_write);
    }
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pyckpt: checkpoint %llu in %s failed: %s; the previous checkpoint stays `latest`\n",
                 static_cast<unsigned long long>(pending->epoch()), g_async.directory.c_str(), e.what());
    return false;
  }
}

// The interposer's progress callback (pyckpt_mpi_set_progress_callback).
int async_progress(int finishing, void*) {
  if (!g_async.pending) return 0;
  if (!finishing && !g_async.pending->progress()) return 1;
  end_async_commit();
  return 0;
}

PyObject* writer_commit_async(WriterObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"report", "test_delay", nullptr};
  int report = 0;
  double test_delay = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$pd:commit_async", const_cast<char**>(kwlist), &report,
                                   &test_delay))
    return nullptr;
  return guarded([&]() -> PyObject* {
    auto& state = writer_state(self);
    if (g_async.pending) {
      raise(error_classes().usage_error, "an asynchronous commit is still pending: async_commit_wait() first");
    }
    std::unique_ptr<h5::PendingCommit> pending;
    without_gil([&] { pending = state.writer.commit_async(g_async.staging, test_delay); });
    state.committed = true;
    state.blobs.clear();  // copied
    state.arrays.clear();
    const std::uint64_t epoch = pending->epoch();
    g_async.pending = std::move(pending);
    g_async.directory = state.dir.path().string();
    g_async.report = report != 0;
    arm_mpi_progress(async_progress);
    return PyLong_FromUnsignedLongLong(epoch);
  });
}

PyObject* async_commit_wait(PyObject*, PyObject*) {
  return guarded([&]() -> PyObject* {
    if (!g_async.pending) Py_RETURN_NONE;
    bool ok = false;
    without_gil([&] {
      run_mpi_internal([](void* out) { *static_cast<bool*>(out) = end_async_commit(); }, &ok);
    });
    return PyBool_FromLong(ok);
  });
}

PyMethodDef writer_methods[] = {
    {"set_attribute", reinterpret_cast<PyCFunction>(writer_set_attribute), METH_VARARGS,
     "set_attribute(name, value): root attribute (rank 0's value is stored)."},
    {"set_rank_attribute", reinterpret_cast<PyCFunction>(writer_set_rank_attribute), METH_VARARGS,
     "set_rank_attribute(name, value): attribute of this rank's group."},
    {"add_blob", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(writer_add_blob)),
     METH_VARARGS | METH_KEYWORDS, "add_blob(name, data, attrs=None): a bytes-like object, held until commit."},
    {"add_array", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(writer_add_array)),
     METH_VARARGS | METH_KEYWORDS, "add_array(name, array, attrs=None): an ndarray, written zero-copy at commit."},
    {"add_global_slab", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(writer_add_global_slab)),
     METH_VARARGS | METH_KEYWORDS,
     "add_global_slab(name, global_shape, offset, slab, attrs=None): this rank's part of a distributed array."},
    {"commit_async", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(writer_commit_async)),
     METH_VARARGS | METH_KEYWORDS,
     "commit_async(*, report=False, test_delay=0.0) -> epoch: collective; returns once this rank's data is copied,\n"
     "which a thread then writes while the program goes on (one pending at a time: async_commit_wait() ends it;\n"
     "in an MPI job the interposer's safe points move it on). report: say on stderr when it committed.\n"
     "test_delay: for tests, seconds the thread waits before writing."},
    {"commit", reinterpret_cast<PyCFunction>(writer_commit), METH_NOARGS,
     "commit() -> dict: collective write and atomic commit; returns path, sizes and timings."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot writer_slots[] = {
    {Py_tp_doc, const_cast<char*>(
                    "Writer(directory, epoch=None, comm=None, keep=2): collective writer of one checkpoint epoch.\n"
                    "comm is an mpi4py communicator (all its ranks write one file) or None for a serial process.\n"
                    "epoch None: the next one after the newest committed checkpoint, agreed over comm (collective);\n"
                    "`epoch` tells which.")},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {Py_tp_init, reinterpret_cast<void*>(writer_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(writer_dealloc)},
    {Py_tp_methods, writer_methods},
    {Py_tp_getset, writer_getset},
    {0, nullptr},
};
PyType_Spec writer_spec = {"pyckpt._core.Writer", sizeof(WriterObject), 0, Py_TPFLAGS_DEFAULT, writer_slots};

// -------------------------------------------------------------- Reader ---

struct ReaderObject {
  PyObject_HEAD
  h5::CheckpointReader* reader;
};

h5::CheckpointReader& reader_of(ReaderObject* self) {
  if (self->reader == nullptr) {
    raise(error_classes().usage_error, "Reader is not open");
  }
  return *self->reader;
}

int reader_init(ReaderObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"path", "trust", nullptr};
  PyObject* path = nullptr;
  int trust = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|$p:Reader", const_cast<char**>(kwlist), PyUnicode_FSConverter,
                                   &path, &trust))
    return -1;
  Ref path_bytes = Ref::steal(path);
  return guarded_status([&] {
    delete self->reader;
    self->reader = nullptr;
    h5::ReaderOptions options;
    options.trust = trust != 0;
    self->reader = new h5::CheckpointReader(PyBytes_AS_STRING(path_bytes.get()), options);
  });
}

// Text from a file that may not be authenticated: never fails to decode.
PyObject* display_str(const std::string& s) {
  return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "backslashreplace");
}

PyObject* hex_str(std::span<const std::byte> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::byte b : bytes) {
    out += digits[std::to_integer<unsigned>(b) >> 4];
    out += digits[std::to_integer<unsigned>(b) & 15];
  }
  return str_from(out);
}

const char* authentication_name(h5::Authentication a) {
  switch (a) {
    case h5::Authentication::Authenticated: return "authenticated";
    case h5::Authentication::NoKey: return "no key";
    case h5::Authentication::OtherKey: return "other key";
    case h5::Authentication::Altered: return "altered";
  }
  return "?";
}

const char* header_kind_name(h5::HeaderEntry::Kind k) {
  switch (k) {
    case h5::HeaderEntry::Kind::Blob: return "blob";
    case h5::HeaderEntry::Kind::Array: return "array";
    case h5::HeaderEntry::Kind::Global: return "global";
  }
  return "?";
}

// A HeaderCheck as a dict (doc/format.md, "Header and authentication").
Ref header_dict(const h5::HeaderCheck& c) {
  const h5::CheckpointHeader& h = c.header;
  Ref datasets = check_new(PyList_New(0));
  for (const h5::HeaderEntry& e : h.datasets) {
    Ref sha = e.sha256 ? check_new(hex_str(*e.sha256)) : Ref::borrow(Py_None);
    Ref item = check_new(Py_BuildValue("{sNsssisKsKsKsO}", "path", display_str(e.path), "kind", header_kind_name(e.kind),
                                       "rank", e.rank, "offset", static_cast<unsigned long long>(e.offset), "bytes",
                                       static_cast<unsigned long long>(e.bytes), "checksum",
                                       static_cast<unsigned long long>(e.checksum), "sha256", sha.get()));
    if (PyList_Append(datasets.get(), item.get()) < 0) throw PythonError{};
  }
  return check_new(Py_BuildValue(
      "{sNsOsssNsOsNsKsKsKsdsKsKsNsNsN}", "file", PyUnicode_DecodeFSDefault(c.file.c_str()), "authenticated",
      c.authenticated() ? Py_True : Py_False, "authentication", authentication_name(c.authentication),
      "authentication_message", str_from(c.authentication_message), "intact", c.intact ? Py_True : Py_False,
      "integrity_message", str_from(c.integrity_message), "format_version",
      static_cast<unsigned long long>(h.format_version), "epoch", static_cast<unsigned long long>(h.epoch),
      "world_size", static_cast<unsigned long long>(h.world_size), "created_unix", h.created_unix, "user_block",
      static_cast<unsigned long long>(h.user_block), "file_size", static_cast<unsigned long long>(h.file_size),
      "key_id", display_str(h.key_id), "metadata_sha256", hex_str(h.metadata_sha256), "datasets",
      datasets.release()));
}

Ref verify_results_list(const std::vector<h5::VerifyResult>& results) {
  Ref list = check_new(PyList_New(0));
  for (const auto& r : results) {
    Ref item = check_new(Py_BuildValue("(NON)", display_str(r.dataset), r.ok ? Py_True : Py_False, display_str(r.message)));
    if (PyList_Append(list.get(), item.get()) < 0) throw PythonError{};
  }
  return list;
}

void reader_dealloc(ReaderObject* self) {
  delete self->reader;
  free_heap_instance(reinterpret_cast<PyObject*>(self));
}

Ref shape_tuple(const std::vector<std::uint64_t>& shape) {
  Ref t = check_new(PyTuple_New(static_cast<Py_ssize_t>(shape.size())));
  for (std::size_t k = 0; k < shape.size(); ++k)
    PyTuple_SET_ITEM(t.get(), k, check_new(PyLong_FromUnsignedLongLong(shape[k])).release());
  return t;
}

Ref dataset_dict(const h5::DatasetInfo& d) {
  return check_new(Py_BuildValue(
      "{sNsssNsNsssKsKsN}", "name", str_from(d.name), "kind", d.kind == h5::DatasetKind::Blob ? "blob" : "array",
      "dtype", dtype_of(d.type).release(), "shape", shape_tuple(d.shape).release(), "order",
      d.order == h5::StorageOrder::F ? "F" : "C", "bytes", static_cast<unsigned long long>(d.bytes), "checksum",
      static_cast<unsigned long long>(d.checksum), "attrs", py_dict_of(d.attrs).release()));
}

Ref global_array_dict(const h5::GlobalArrayInfo& g) {
  Ref slabs = check_new(PyList_New(0));
  for (const auto& s : g.slabs) {
    Ref slab = check_new(Py_BuildValue("{sisNsNsK}", "rank", s.rank, "offset", shape_tuple(s.offset).release(), "count",
                                   shape_tuple(s.count).release(), "checksum",
                                   static_cast<unsigned long long>(s.checksum)));
    if (PyList_Append(slabs.get(), slab.get()) < 0) throw PythonError{};
  }
  return check_new(Py_BuildValue("{sNsNsNsOsN}", "name", str_from(g.name), "dtype", dtype_of(g.type).release(), "shape",
                             shape_tuple(g.shape).release(), "slabs", slabs.get(), "attrs",
                             py_dict_of(g.attrs).release()));
}

PyObject* reader_get_file(ReaderObject* self, void*) {
  return guarded([&] { return PyUnicode_DecodeFSDefault(reader_of(self).file().c_str()); });
}
PyObject* reader_get_epoch(ReaderObject* self, void*) {
  return guarded([&] { return PyLong_FromUnsignedLongLong(reader_of(self).epoch()); });
}
PyObject* reader_get_world_size(ReaderObject* self, void*) {
  return guarded([&] { return PyLong_FromLong(reader_of(self).world_size()); });
}
PyObject* reader_get_attributes(ReaderObject* self, void*) {
  return guarded([&] { return py_dict_of(reader_of(self).attributes()).release(); });
}

PyObject* reader_rank_attributes(ReaderObject* self, PyObject* arg) {
  const long rank = PyLong_AsLong(arg);
  if (rank == -1 && PyErr_Occurred()) return nullptr;
  return guarded([&] { return py_dict_of(reader_of(self).rank_attributes(static_cast<int>(rank))).release(); });
}

PyObject* reader_datasets(ReaderObject* self, PyObject* arg) {
  const long rank = PyLong_AsLong(arg);
  if (rank == -1 && PyErr_Occurred()) return nullptr;
  return guarded([&]() -> PyObject* {
    Ref list = check_new(PyList_New(0));
    for (const auto& d : reader_of(self).datasets(static_cast<int>(rank)))
      if (PyList_Append(list.get(), dataset_dict(d).get()) < 0) throw PythonError{};
    return list.release();
  });
}

PyObject* reader_read_blob(ReaderObject* self, PyObject* args) {
  int rank;
  const char* name;
  if (!PyArg_ParseTuple(args, "is:read_blob", &rank, &name)) return nullptr;
  return guarded([&]() -> PyObject* {
    std::vector<std::byte> data;
    without_gil([&] { data = reader_of(self).read_blob(rank, name); });
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(data.data()), static_cast<Py_ssize_t>(data.size()));
  });
}

PyObject* reader_read_array(ReaderObject* self, PyObject* args) {
  int rank;
  const char* name;
  PyObject* out;
  if (!PyArg_ParseTuple(args, "isO:read_array", &rank, &name, &out)) return nullptr;
  return guarded([&]() -> PyObject* {
    const h5::MutableArrayView dest = dest_view_of(out);
    without_gil([&] { reader_of(self).read_array(rank, name, dest); });
    Py_RETURN_NONE;
  });
}

PyObject* reader_global_arrays(ReaderObject* self, PyObject*) {
  return guarded([&]() -> PyObject* {
    Ref list = check_new(PyList_New(0));
    for (const auto& g : reader_of(self).global_arrays())
      if (PyList_Append(list.get(), global_array_dict(g).get()) < 0) throw PythonError{};
    return list.release();
  });
}

PyObject* reader_read_global_slab(ReaderObject* self, PyObject* args) {
  const char* name;
  PyObject *offset, *count, *out;
  if (!PyArg_ParseTuple(args, "sOOO:read_global_slab", &name, &offset, &count, &out)) return nullptr;
  return guarded([&]() -> PyObject* {
    const auto off = u64_vector_of(offset, "offset");
    const auto cnt = u64_vector_of(count, "count");
    const h5::MutableArrayView dest = dest_view_of(out);
    without_gil([&] { reader_of(self).read_global_slab(name, off, cnt, dest); });
    Py_RETURN_NONE;
  });
}

PyObject* reader_verify(ReaderObject* self, PyObject*) {
  return guarded([&]() -> PyObject* {
    std::vector<h5::VerifyResult> results;
    without_gil([&] { results = reader_of(self).verify(); });
    return verify_results_list(results).release();
  });
}

PyObject* reader_get_header(ReaderObject* self, void*) {
  return guarded([&] { return header_dict(reader_of(self).header()).release(); });
}

PyGetSetDef reader_getset[] = {
    {"file", reinterpret_cast<getter>(reader_get_file), nullptr, "path of the checkpoint file", nullptr},
    {"epoch", reinterpret_cast<getter>(reader_get_epoch), nullptr, "checkpoint epoch", nullptr},
    {"world_size", reinterpret_cast<getter>(reader_get_world_size), nullptr, "number of ranks that wrote it", nullptr},
    {"attributes", reinterpret_cast<getter>(reader_get_attributes), nullptr, "root attributes (dict)", nullptr},
    {"header", reinterpret_cast<getter>(reader_get_header), nullptr,
     "the file's header and how it checked (dict, as check_header returns)", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMethodDef reader_methods[] = {
    {"rank_attributes", reinterpret_cast<PyCFunction>(reader_rank_attributes), METH_O,
     "rank_attributes(rank) -> dict"},
    {"datasets", reinterpret_cast<PyCFunction>(reader_datasets), METH_O,
     "datasets(rank) -> list of dicts (name, kind, dtype, shape, order, bytes, checksum, attrs)"},
    {"read_blob", reinterpret_cast<PyCFunction>(reader_read_blob), METH_VARARGS,
     "read_blob(rank, name) -> bytes, checksum verified"},
    {"read_array", reinterpret_cast<PyCFunction>(reader_read_array), METH_VARARGS,
     "read_array(rank, name, out): fills the contiguous ndarray out, checksum verified"},
    {"global_arrays", reinterpret_cast<PyCFunction>(reader_global_arrays), METH_NOARGS,
     "global_arrays() -> list of dicts (name, dtype, shape, slabs, attrs)"},
    {"read_global_slab", reinterpret_cast<PyCFunction>(reader_read_global_slab), METH_VARARGS,
     "read_global_slab(name, offset, count, out): any box of a global array"},
    {"verify", reinterpret_cast<PyCFunction>(reader_verify), METH_NOARGS,
     "verify() -> list of (dataset, ok, message) for every dataset"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot reader_slots[] = {
    {Py_tp_doc, const_cast<char*>(
                    "Reader(path, *, trust=False): a committed checkpoint file, or a directory (its `latest`).\n"
                    "Raises AuthenticationError unless the file is authenticated with the user's key (or trust=True:\n"
                    "read it anyway; its integrity is still checked). Blobs are SHA-256 verified before they are\n"
                    "returned, arrays checksum verified.")},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {Py_tp_init, reinterpret_cast<void*>(reader_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(reader_dealloc)},
    {Py_tp_methods, reader_methods},
    {Py_tp_getset, reader_getset},
    {0, nullptr},
};
PyType_Spec reader_spec = {"pyckpt._core.Reader", sizeof(ReaderObject), 0, Py_TPFLAGS_DEFAULT, reader_slots};

// --------------------------------------------------------- CheckpointDir ---

PyObject* fs_path(const std::filesystem::path& p) { return PyUnicode_DecodeFSDefault(p.c_str()); }

Ref entries_list(const h5::CheckpointDir& dir) {
  Ref list = check_new(PyList_New(0));
  for (const auto& e : dir.list()) {
    Ref item = check_new(Py_BuildValue("{sKsNsLsKsO}", "epoch", static_cast<unsigned long long>(e.epoch), "path",
                                   fs_path(e.path), "mtime", static_cast<long long>(e.mtime_unix), "bytes",
                                   static_cast<unsigned long long>(e.bytes), "latest",
                                   e.is_latest ? Py_True : Py_False));
    if (PyList_Append(list.get(), item.get()) < 0) throw PythonError{};
  }
  return list;
}

struct DirObject {
  PyObject_HEAD
  h5::CheckpointDir* dir;
};

const h5::CheckpointDir& dir_of(DirObject* self) {
  if (self->dir == nullptr) raise(error_classes().usage_error, "CheckpointDir is not initialised");
  return *self->dir;
}

int dir_init(DirObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"path", "keep", nullptr};
  PyObject* path = nullptr;
  int keep = 2;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|i:CheckpointDir", const_cast<char**>(kwlist),
                                   PyUnicode_FSConverter, &path, &keep))
    return -1;
  Ref path_bytes = Ref::steal(path);
  return guarded_status([&] {
    auto* dir = new h5::CheckpointDir(PyBytes_AS_STRING(path_bytes.get()), keep);
    delete self->dir;
    self->dir = dir;
  });
}

void dir_dealloc(DirObject* self) {
  delete self->dir;
  free_heap_instance(reinterpret_cast<PyObject*>(self));
}

std::uint64_t epoch_arg(PyObject* arg) {
  Ref index = check_new(PyNumber_Index(arg));
  const unsigned long long epoch = PyLong_AsUnsignedLongLong(index.get());
  if (PyErr_Occurred()) throw PythonError{};
  return epoch;
}

PyObject* dir_get_path(DirObject* self, void*) { return guarded([&] { return fs_path(dir_of(self).path()); }); }
PyObject* dir_get_keep(DirObject* self, void*) { return guarded([&] { return PyLong_FromLong(dir_of(self).keep()); }); }
PyObject* dir_get_request_path(DirObject* self, void*) {
  return guarded([&] { return fs_path(dir_of(self).request_path()); });
}
PyObject* dir_list(DirObject* self, PyObject*) { return guarded([&] { return entries_list(dir_of(self)).release(); }); }
PyObject* dir_create(DirObject* self, PyObject*) {
  return guarded([&]() -> PyObject* {
    dir_of(self).create();
    Py_RETURN_NONE;
  });
}
PyObject* dir_latest(DirObject* self, PyObject*) {
  return guarded([&]() -> PyObject* {
    const auto latest = dir_of(self).latest();
    if (!latest) Py_RETURN_NONE;
    return fs_path(*latest);
  });
}
PyObject* dir_next_epoch(DirObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"comm", nullptr};
  PyObject* comm = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:next_epoch", const_cast<char**>(kwlist), &comm)) return nullptr;
  return guarded([&] {
    const h5::Comm c = comm_of(comm);
    std::uint64_t epoch = 0;
    without_gil([&] { epoch = dir_of(self).next_epoch(c); });
    return PyLong_FromUnsignedLongLong(epoch);
  });
}
PyObject* dir_file_for(DirObject* self, PyObject* arg) {
  return guarded([&] { return fs_path(dir_of(self).file_for(epoch_arg(arg))); });
}
PyObject* dir_writing_marker(DirObject* self, PyObject* arg) {
  return guarded([&] { return fs_path(dir_of(self).writing_marker(epoch_arg(arg))); });
}
// [(epoch, path)] as a Python list.
PyObject* epoch_paths_list(const std::vector<std::pair<std::uint64_t, std::filesystem::path>>& files) {
  Ref list = check_new(PyList_New(0));
  for (const auto& [epoch, path] : files) {
    Ref item = check_new(Py_BuildValue("(KN)", static_cast<unsigned long long>(epoch), fs_path(path)));
    if (PyList_Append(list.get(), item.get()) < 0) throw PythonError{};
  }
  return list.release();
}
PyObject* dir_writing_markers(DirObject* self, PyObject*) {
  return guarded([&] { return epoch_paths_list(dir_of(self).writing_markers()); });
}
PyObject* dir_in_flight_files(DirObject* self, PyObject*) {
  return guarded([&] { return epoch_paths_list(dir_of(self).in_flight_files()); });
}
PyObject* dir_repr(DirObject* self) {
  return guarded([&] {
    Ref path = check_new(fs_path(dir_of(self).path()));
    return PyUnicode_FromFormat("pyckpt._core.CheckpointDir(%R, keep=%d)", path.get(), dir_of(self).keep());
  });
}

PyGetSetDef dir_getset[] = {
    {"path", reinterpret_cast<getter>(dir_get_path), nullptr, "the directory (str)", nullptr},
    {"keep", reinterpret_cast<getter>(dir_get_keep), nullptr, "how many committed checkpoints a commit keeps", nullptr},
    {"request_path", reinterpret_cast<getter>(dir_get_request_path), nullptr,
     "the file whose creation asks a running job for a checkpoint (`pyckpt request`)", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMethodDef dir_methods[] = {
    {"list", reinterpret_cast<PyCFunction>(dir_list), METH_NOARGS,
     "list() -> committed checkpoints, oldest first: dicts (epoch, path, mtime, bytes, latest)"},
    {"latest", reinterpret_cast<PyCFunction>(dir_latest), METH_NOARGS,
     "latest() -> path of the file `latest` names, or None; CheckpointFileError if it dangles"},
    {"next_epoch", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(dir_next_epoch)),
     METH_VARARGS | METH_KEYWORDS,
     "next_epoch(comm=None) -> the epoch after the newest committed one (1 if none); with an mpi4py comm,\n"
     "rank 0's answer, collectively"},
    {"file_for", reinterpret_cast<PyCFunction>(dir_file_for), METH_O, "file_for(epoch) -> path of that checkpoint"},
    {"create", reinterpret_cast<PyCFunction>(dir_create), METH_NOARGS,
     "create(): the directory and missing parents, mode 0700 whatever the umask (an existing one is left)"},
    {"writing_marker", reinterpret_cast<PyCFunction>(dir_writing_marker), METH_O,
     "writing_marker(epoch) -> path of the marker an asynchronous writer holds while it writes epoch"},
    {"writing_markers", reinterpret_cast<PyCFunction>(dir_writing_markers), METH_NOARGS,
     "writing_markers() -> [(epoch, path)] of the markers present, by epoch"},
    {"in_flight_files", reinterpret_cast<PyCFunction>(dir_in_flight_files), METH_NOARGS,
     "in_flight_files() -> [(epoch, path)] of the *.h5.tmp files present (commits under way or interrupted)"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot dir_slots[] = {
    {Py_tp_doc, const_cast<char*>("CheckpointDir(path, keep=2): a checkpoint directory and its conventions\n"
                                  "(names of checkpoints, `latest`, writing markers, the request file; epochs).")},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {Py_tp_init, reinterpret_cast<void*>(dir_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(dir_dealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(dir_repr)},
    {Py_tp_methods, dir_methods},
    {Py_tp_getset, dir_getset},
    {0, nullptr},
};
PyType_Spec dir_spec = {"pyckpt._core.CheckpointDir", sizeof(DirObject), 0, Py_TPFLAGS_DEFAULT, dir_slots};

// ------------------------------------------------------------ functions ---

// Kept while pyckpt's Python modules still call it: CheckpointDir(d).list().

PyObject* dataset_path(PyObject*, PyObject* args) {
  int rank;
  const char* kind;
  const char* name;
  Py_ssize_t name_len;
  if (!PyArg_ParseTuple(args, "iss#:dataset_path", &rank, &kind, &name, &name_len)) return nullptr;
  return guarded([&] {
    const std::string_view k(kind);
    if (k != "blob" && k != "array") raise(error_classes().usage_error, "dataset kind must be 'blob' or 'array', not '" + std::string(k) + "'");
    return str_from(h5::dataset_path(rank, k == "blob" ? h5::DatasetKind::Blob : h5::DatasetKind::Array,
                                     std::string(name, static_cast<std::size_t>(name_len))));
  });
}

PyObject* check_header(PyObject*, PyObject* args) {
  PyObject* path = nullptr;
  if (!PyArg_ParseTuple(args, "O&:check_header", PyUnicode_FSConverter, &path)) return nullptr;
  Ref path_bytes = Ref::steal(path);
  return guarded([&] {
    h5::HeaderCheck check;
    without_gil([&] { check = h5::check_header(PyBytes_AS_STRING(path_bytes.get())); });
    return header_dict(check).release();
  });
}

PyObject* verify_raw(PyObject*, PyObject* args) {
  PyObject* path = nullptr;
  if (!PyArg_ParseTuple(args, "O&:verify_raw", PyUnicode_FSConverter, &path)) return nullptr;
  Ref path_bytes = Ref::steal(path);
  return guarded([&] {
    std::vector<h5::VerifyResult> results;
    without_gil([&] { results = h5::verify_raw(h5::check_header(PyBytes_AS_STRING(path_bytes.get()))); });
    return verify_results_list(results).release();
  });
}

PyObject* key_path(PyObject*, PyObject*) { return guarded([&] { return fs_path(h5::Key::default_path()); }); }

PyObject* key_id(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"create", nullptr};
  int create = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$p:key_id", const_cast<char**>(kwlist), &create)) return nullptr;
  return guarded([&] {
    const auto path = h5::Key::default_path();
    return str_from((create ? h5::Key::load_or_create(path) : h5::Key::load(path)).id());
  });
}

PyMethodDef container_functions[] = {
    {"check_header", check_header, METH_VARARGS,
     "check_header(path) -> dict: the header of a checkpoint file (or a directory's latest) and how it checks\n"
     "with the user's key, read without HDF5 (keys: authenticated, authentication, authentication_message,\n"
     "intact, integrity_message, epoch, world_size, created_unix, key_id, datasets, ...)"},
    {"verify_raw", verify_raw, METH_VARARGS,
     "verify_raw(path) -> [(dataset, ok, message)]: the per-rank datasets' data checked against the header\n"
     "with plain reads (for a file HDF5 must not parse because it is not authenticated)"},
    {"key_path", key_path, METH_NOARGS,
     "key_path() -> where the user's checkpoint key lives ($PYCKPT_KEY_FILE, else the config directory)"},
    {"key_id", as_method(key_id), METH_VARARGS | METH_KEYWORDS,
     "key_id(*, create=False) -> the id of the user's key (KeyFileError if there is none, unless create)"},
    {"async_commit_wait", async_commit_wait, METH_NOARGS,
     "async_commit_wait() -> None if no asynchronous commit is pending, else whether it committed (a failure\n"
     "is said on stderr; the previous checkpoint stays `latest`). Waits for it; in an MPI job every rank's part\n"
     "must reach rank 0 (each rank's next MPI call, safe point or wait sends it)."},
    {"dataset_path", dataset_path, METH_VARARGS,
     "dataset_path(rank, kind, name) -> HDF5 path of rank's 'blob' or 'array' `name` (escaped as stored)"},
    {nullptr, nullptr, 0, nullptr},
};

int add_type(PyObject* module, PyType_Spec* spec, const char* name) {
  PyObject* type = PyType_FromSpec(spec);
  if (type == nullptr) return -1;
  if (PyModule_AddObject(module, name, type) < 0) {
    Py_DECREF(type);
    return -1;
  }
  return 0;
}

}  // namespace

int add_container_api(PyObject* module) {
  if (add_type(module, &writer_spec, "Writer") < 0 || add_type(module, &reader_spec, "Reader") < 0 ||
      add_type(module, &dir_spec, "CheckpointDir") < 0)
    return -1;
  if (PyModule_AddStringConstant(module, "DEFAULT_DIRECTORY", h5::CheckpointDir::kDefaultDirectory) < 0) return -1;
  return PyModule_AddFunctions(module, container_functions);
}

}  // namespace pyckpt::core
