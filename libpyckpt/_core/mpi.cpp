// pyckpt._core's binding of libpyckpt_mpi.so, the PMPI interposer: the one
// place where Python reaches mpi_wrap. Its C ABI is described by one header,
// pyckpt_mpi.h; _core does not link the library (a serial Python program has
// none) but looks every function up once, with dlsym in the process, into a
// table typed from the header's declarations. Also: where the libraries a job
// preloads are (library_dir, preload_libraries).
//
// mpi4py objects cross as Fortran handles through mpi4py's public API
// (obj.py2f(), cls.f2py(fint)), which the MPI library converts to and from C
// handles: no mpi4py headers, no writing into mpi4py objects' memory.
#include "errors.hpp"
#include "module.hpp"
#include "pyref.hpp"

#include <pyckpt/h5/types.hpp>
#include <pyckpt/mpi/pyckpt_mpi.h>

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <utility>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace pyckpt::core {
namespace {

// ------------------------------------------------------ the symbol table ---

#define PYCKPT_MPI_FUNCTIONS(X)                                                                          \
  X(set_capture_callbacks) X(set_wake_callback) X(world) X(write_comm) X(request_checkpoint) X(install_signal_trigger) X(set_triggers) \
  X(poll) X(checkpoint)                                                                                   \
  X(state_save) X(free) X(state_restore) X(comm_id) X(comm_from_id) X(type_id) X(type_from_id)            \
  X(request_id) X(request_from_id) X(file_id) X(file_from_id) X(pending_requests) X(request_repost) X(request_expect_reissue) \
  X(win_id) X(win_from_id) X(windows) X(windows_recreate) X(windows_reopen) X(window_locate) X(window_address)               \
  X(set_site_callback) X(get_stats) X(channel_messages) X(last_error) X(alloc_mem_size)                 \
  X(compound_begin) X(compound_end) X(compound_active) X(mpi4py_contexts)                                \
  X(set_progress_callback) X(internal_begin) X(internal_end)

struct Api {
#define PYCKPT_MPI_MEMBER(name) decltype(&pyckpt_mpi_##name) name = nullptr;
  PYCKPT_MPI_FUNCTIONS(PYCKPT_MPI_MEMBER)
#undef PYCKPT_MPI_MEMBER
  bool loaded = false;  // every function above was found
};

Api g_api;

void load_api() {
  bool all = true;
#define PYCKPT_MPI_LOOKUP(name)                                                                           \
  g_api.name = reinterpret_cast<decltype(g_api.name)>(dlsym(RTLD_DEFAULT, "pyckpt_mpi_" #name)); \
  all = all && g_api.name != nullptr;
  PYCKPT_MPI_FUNCTIONS(PYCKPT_MPI_LOOKUP)
#undef PYCKPT_MPI_LOOKUP
  g_api.loaded = all;
}

const Api& api() {
  if (!g_api.loaded)
    throw std::runtime_error(
        "libpyckpt_mpi.so is not loaded in this process: run the job with `pyckpt mpirun` or "
        "`mpirun -x LD_PRELOAD=$(pyckpt preload-path) ...`");
  return g_api;
}

// Raises CheckpointError with the library's description of a failure.
void check_rc(int rc, const char* what) {
  if (rc == PYCKPT_MPI_OK) return;
  const char* text = g_api.last_error();
  throw std::runtime_error(text != nullptr && *text != '\0'
                               ? std::string(text)
                               : std::string(what) + " failed (code " + std::to_string(rc) + ")");
}

std::uint64_t u64_arg(PyObject* arg) {
  Ref index = check_new(PyNumber_Index(arg));
  const unsigned long long v = PyLong_AsUnsignedLongLong(index.get());
  if (PyErr_Occurred()) throw PythonError{};
  return v;
}

MPI_Fint fortran_handle(PyObject* obj) {
  const long f = mpi4py_fortran_handle(obj);
  if (f == -1 && PyErr_Occurred()) throw PythonError{};
  return static_cast<MPI_Fint>(f);
}

// cls.f2py(fint): an mpi4py object of class cls for a C handle.
Ref mpi4py_object(PyObject* cls, MPI_Fint fint) {
  return check_new(PyObject_CallMethod(cls, "f2py", "i", static_cast<int>(fint)));
}

// ------------------------------------------------------------ callbacks ---

// The Python callables behind the C trampolines; replaced with the GIL held.
struct Callbacks {
  Ref capture, write;
};
// Never destroyed: the process's exit runs C++ static destructors after the
// interpreter is finalised, when releasing a Python object would crash.
Callbacks& g_callbacks = *new Callbacks;
// Why this rank's capture or write callback failed last (empty: it did not),
// for the error pyckpt.checkpoint() raises on this rank: the library only
// knows that a callback failed. Touched with the GIL held.
std::string& g_callback_failure = *new std::string;

// Runs one callback from inside an MPI call, which mpi4py may have made with
// or without the GIL. Returns the library's code for its outcome.
int run_callback(Ref Callbacks::*which, bool may_retry) {
  const PyGILState_STATE gil = PyGILState_Ensure();
  int rc = PYCKPT_MPI_OK;
  {
    Ref fn = g_callbacks.*which;  // pinned: the callback may replace the callbacks
    Ref result = fn ? Ref::steal(PyObject_CallNoArgs(fn.get())) : Ref();
    if (!fn) {
      rc = PYCKPT_MPI_ECALLBACK;
    } else if (!result) {
      PyObject *type, *value, *tb;
      PyErr_Fetch(&type, &value, &tb);
      PyErr_NormalizeException(&type, &value, &tb);
      Ref t = Ref::steal(type), v = Ref::steal(value), b = Ref::steal(tb);
      Ref text = v ? Ref::steal(PyObject_Str(v.get())) : Ref();
      const char* utf8 = text ? PyUnicode_AsUTF8(text.get()) : nullptr;
      PyErr_Clear();
      // Once per cause: a checkpoint retried every interval fails the same
      // way each time.
      static std::string& last_printed = *new std::string;
      const std::string why = utf8 != nullptr ? utf8 : "<unprintable>";
      g_callback_failure = why;
      if (why != last_printed) {
        int rank = -1, size = 0;
        g_api.world(&rank, &size);
        std::fprintf(stderr, "pyckpt: rank %d: checkpoint failed: %s\n", rank, why.c_str());
        std::fflush(stderr);
        last_printed = why;
      }
      rc = PYCKPT_MPI_ECALLBACK;
    } else if (may_retry && result.get() == Py_False) {
      rc = PYCKPT_MPI_EAGAIN;
    }
  }
  PyGILState_Release(gil);
  return rc;
}

int capture_trampoline(void*) { return run_callback(&Callbacks::capture, true); }
int write_trampoline(void*) { return run_callback(&Callbacks::write, false); }

// ------------------------------------------------------------ functions ---

PyObject* py_mpi_loaded(PyObject*, PyObject*) { return PyBool_FromLong(g_api.loaded); }

PyObject* py_mpi_world(PyObject*, PyObject*) {
  return guarded([] {
    int rank = 0, size = 0;
    check_rc(api().world(&rank, &size), "pyckpt_mpi_world");
    return Py_BuildValue("(ii)", rank, size);
  });
}

PyObject* py_mpi_write_comm(PyObject*, PyObject* cls) {
  return guarded([&] {
    MPI_Comm comm = MPI_COMM_NULL;
    check_rc(api().write_comm(&comm), "pyckpt_mpi_write_comm");
    return mpi4py_object(cls, MPI_Comm_c2f(comm)).release();
  });
}

PyObject* py_mpi_set_capture_callbacks(PyObject*, PyObject* args) {
  PyObject *capture, *write;
  if (!PyArg_ParseTuple(args, "OO:mpi_set_capture_callbacks", &capture, &write)) return nullptr;
  return guarded([&]() -> PyObject* {
    const Api& a = api();
    const bool clear = capture == Py_None && write == Py_None;
    if (!clear && (!PyCallable_Check(capture) || !PyCallable_Check(write))) {
      PyErr_SetString(PyExc_TypeError, "mpi_set_capture_callbacks(capture, write) needs two callables (or None, None)");
      throw PythonError{};
    }
    g_callbacks.capture = clear ? Ref() : Ref::borrow(capture);
    g_callbacks.write = clear ? Ref() : Ref::borrow(write);
    check_rc(clear ? a.set_capture_callbacks(nullptr, nullptr, nullptr)
                   : a.set_capture_callbacks(capture_trampoline, write_trampoline, nullptr),
             "pyckpt_mpi_set_capture_callbacks");
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_request_checkpoint(PyObject*, PyObject*) {
  return guarded([]() -> PyObject* {
    api().request_checkpoint();
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_set_triggers(PyObject*, PyObject* args) {
  PyObject* path = nullptr;
  double interval = 0;
  if (!PyArg_ParseTuple(args, "O&d:mpi_set_triggers", PyUnicode_FSConverter, &path, &interval)) return nullptr;
  Ref owned = Ref::steal(path);
  return guarded([&]() -> PyObject* {
    check_rc(api().set_triggers(PyBytes_AS_STRING(owned.get()), interval), "pyckpt_mpi_set_triggers");
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_install_signal_trigger(PyObject*, PyObject* arg) {
  const long signum = PyLong_AsLong(arg);
  if (signum == -1 && PyErr_Occurred()) return nullptr;
  return guarded([&]() -> PyObject* {
    check_rc(api().install_signal_trigger(static_cast<int>(signum)), "pyckpt_mpi_install_signal_trigger");
    Py_RETURN_NONE;
  });
}

// Calls a library function that may run a whole checkpoint, without the GIL:
// other Python threads go on, and the callbacks take the GIL themselves.
template <class Fn>
int without_gil(Fn&& fn) {
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = fn();
  Py_END_ALLOW_THREADS
  return rc;
}

// The waker's callback, on libpyckpt_mpi.so's own thread without the GIL.
// It "trips" a signal number for which pyckpt.mpi installed a Python
// handler (no OS signal is sent): the main thread runs that handler at its
// next bytecode boundary. Py_AddPendingCall is no substitute: in 3.11 it
// only interrupts the eval loop when called by the main thread or by one
// that hands the GIL over.
void wake_trampoline(void* signum) {
  PyErr_SetInterruptEx(static_cast<int>(reinterpret_cast<std::intptr_t>(signum)));
}

PyObject* py_mpi_enable_wake(PyObject*, PyObject* arg) {
  const long signum = PyLong_AsLong(arg);
  if (signum == -1 && PyErr_Occurred()) return nullptr;
  return guarded([&]() -> PyObject* {
    check_rc(api().set_wake_callback(wake_trampoline, reinterpret_cast<void*>(static_cast<std::intptr_t>(signum))),
             "pyckpt_mpi_set_wake_callback");
    Py_RETURN_NONE;
  });
}

// Before the interpreter is finalised (mpi4py finalises MPI after it).
PyObject* py_mpi_disable_wake(PyObject*, PyObject*) {
  return guarded([]() -> PyObject* {
    const Api& a = api();
    check_rc(without_gil([&] { return a.set_wake_callback(nullptr, nullptr); }), "pyckpt_mpi_set_wake_callback");
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_poll(PyObject*, PyObject*) {
  return guarded([]() -> PyObject* {
    const Api& a = api();
    check_rc(without_gil([&] { return a.poll(); }), "pyckpt_mpi_poll");
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_checkpoint(PyObject*, PyObject*) {
  return guarded([]() -> PyObject* {
    const Api& a = api();
    g_callback_failure.clear();
    const int rc = without_gil([&] { return a.checkpoint(); });
    if (rc != PYCKPT_MPI_OK && !g_callback_failure.empty()) {
      const char* text = g_api.last_error();
      throw std::runtime_error((text != nullptr ? std::string(text) : "pyckpt_mpi_checkpoint failed") + ": " +
                               g_callback_failure);
    }
    check_rc(rc, "pyckpt_mpi_checkpoint");
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_state_save(PyObject*, PyObject*) {
  return guarded([] {
    const Api& a = api();
    void* data = nullptr;
    std::size_t len = 0;
    check_rc(a.state_save(&data, &len), "pyckpt_mpi_state_save");
    std::unique_ptr<void, void (*)(void*)> owned(data, a.free);
    return PyBytes_FromStringAndSize(static_cast<const char*>(data), static_cast<Py_ssize_t>(len));
  });
}

PyObject* py_mpi_state_restore(PyObject*, PyObject* arg) {
  Py_buffer view;
  if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS) < 0) return nullptr;
  std::unique_ptr<Py_buffer, void (*)(Py_buffer*)> held(&view, PyBuffer_Release);
  return guarded([&]() -> PyObject* {
    const Api& a = api();
    // Collective: the other ranks may still be on their way.
    check_rc(without_gil([&] { return a.state_restore(view.buf, static_cast<std::size_t>(view.len)); }),
             "pyckpt_mpi_state_restore");
    Py_RETURN_NONE;
  });
}

// --- handles ---
//
// One kind of MPI handle: its C<->Fortran conversions, its null handle and
// the library's id functions.
struct CommHandle {
  static MPI_Comm f2c(MPI_Fint f) { return MPI_Comm_f2c(f); }
  static MPI_Fint c2f(MPI_Comm h) { return MPI_Comm_c2f(h); }
  static MPI_Comm null() { return MPI_COMM_NULL; }
  static std::uint64_t id(const Api& a, MPI_Comm h) { return a.comm_id(h); }
  static MPI_Comm from_id(const Api& a, std::uint64_t id) { return a.comm_from_id(id); }
};
struct TypeHandle {
  static MPI_Datatype f2c(MPI_Fint f) { return MPI_Type_f2c(f); }
  static MPI_Fint c2f(MPI_Datatype h) { return MPI_Type_c2f(h); }
  static MPI_Datatype null() { return MPI_DATATYPE_NULL; }
  static std::uint64_t id(const Api& a, MPI_Datatype h) { return a.type_id(h); }
  static MPI_Datatype from_id(const Api& a, std::uint64_t id) { return a.type_from_id(id); }
};
struct RequestHandle {
  static MPI_Request f2c(MPI_Fint f) { return MPI_Request_f2c(f); }
  static MPI_Fint c2f(MPI_Request h) { return MPI_Request_c2f(h); }
  static MPI_Request null() { return MPI_REQUEST_NULL; }
  static std::uint64_t id(const Api& a, MPI_Request h) { return a.request_id(h); }
  static MPI_Request from_id(const Api& a, std::uint64_t id) { return a.request_from_id(id); }
};

struct FileHandle {
  static MPI_File f2c(MPI_Fint f) { return MPI_File_f2c(f); }
  static MPI_Fint c2f(MPI_File h) { return MPI_File_c2f(h); }
  static MPI_File null() { return MPI_FILE_NULL; }
  static std::uint64_t id(const Api& a, MPI_File h) { return a.file_id(h); }
  static MPI_File from_id(const Api& a, std::uint64_t id) { return a.file_from_id(id); }
};

struct WinHandle {
  static MPI_Win f2c(MPI_Fint f) { return MPI_Win_f2c(f); }
  static MPI_Fint c2f(MPI_Win h) { return MPI_Win_c2f(h); }
  static MPI_Win null() { return MPI_WIN_NULL; }
  static std::uint64_t id(const Api& a, MPI_Win h) { return a.win_id(h); }
  static MPI_Win from_id(const Api& a, std::uint64_t id) { return a.win_from_id(id); }
};

// mpi_X_id(obj) -> int: the stable id of an mpi4py object's handle (0: unknown).
template <class H>
PyObject* py_handle_id(PyObject*, PyObject* obj) {
  return guarded([&] {
    const Api& a = api();
    return PyLong_FromUnsignedLongLong(H::id(a, H::f2c(fortran_handle(obj))));
  });
}

// mpi_X_from_id(cls, id) -> cls.f2py() of the handle with that id, or None.
template <class H>
PyObject* py_handle_from_id(PyObject*, PyObject* args) {
  PyObject *cls, *id;
  if (!PyArg_ParseTuple(args, "OO", &cls, &id)) return nullptr;
  return guarded([&]() -> PyObject* {
    const auto handle = H::from_id(api(), u64_arg(id));
    if (handle == H::null()) Py_RETURN_NONE;
    return mpi4py_object(cls, H::c2f(handle)).release();
  });
}

// mpi_alloc_mem_size(address) -> size of the block the app allocated there
// with MPI_Alloc_mem and has not freed, or None.
PyObject* py_mpi_alloc_mem_size(PyObject*, PyObject* address) {
  return guarded([&]() -> PyObject* {
    const Api& a = api();
    void* base = PyLong_AsVoidPtr(address);
    if (PyErr_Occurred()) throw PythonError{};
    MPI_Aint size = 0;
    if (!a.alloc_mem_size(base, &size)) Py_RETURN_NONE;
    return PyLong_FromSsize_t(size);
  });
}

// --- requests and channel state ---

PyTypeObject* g_request_info_type = nullptr;

PyStructSequence_Field g_request_info_fields[] = {
    {"id", "stable request id"},
    {"is_recv", "True for a receive"},
    {"completed", "True if the request needs no re-post after a restart"},
    {"buf", "receive buffer address (int), None for sends and unbound receives"},
    {"bytes", "receive buffer size: count * extent of its datatype"},
    {"comm", "a receive's communicator (stable id), 0 for the others"},
    {"source", "the source a receive was posted with"},
    {"tag", "the tag a receive was posted with"},
    {nullptr, nullptr},
};
PyStructSequence_Desc g_request_info_desc = {
    "pyckpt._core.RequestInfo", "A request the application holds, as mpi_pending_requests() lists it.",
    g_request_info_fields, 8};

PyObject* py_mpi_pending_requests(PyObject*, PyObject*) {
  return guarded([] {
    const Api& a = api();
    const pyckpt_mpi_request_info* infos = nullptr;
    std::size_t n = 0;
    check_rc(a.pending_requests(&infos, &n), "pyckpt_mpi_pending_requests");
    Ref list = check_new(PyList_New(0));
    for (std::size_t i = 0; i < n; ++i) {
      const pyckpt_mpi_request_info& r = infos[i];
      Ref item = check_new(PyStructSequence_New(g_request_info_type));
      const auto set = [&](Py_ssize_t k, PyObject* v) { PyStructSequence_SetItem(item.get(), k, check_new(v).release()); };
      set(0, PyLong_FromUnsignedLongLong(r.id));
      set(1, PyBool_FromLong(r.is_recv));
      set(2, PyBool_FromLong(r.completed));
      set(3, r.buf != nullptr ? PyLong_FromVoidPtr(r.buf) : Py_NewRef(Py_None));
      set(4, PyLong_FromUnsignedLongLong(r.bytes));
      set(5, PyLong_FromUnsignedLongLong(r.comm));
      set(6, PyLong_FromLong(r.source));
      set(7, PyLong_FromLong(r.tag));
      if (PyList_Append(list.get(), item.get()) < 0) throw PythonError{};
    }
    return list.release();
  });
}

PyObject* py_mpi_request_repost(PyObject*, PyObject* args) {
  PyObject *id, *address;
  if (!PyArg_ParseTuple(args, "OO:mpi_request_repost", &id, &address)) return nullptr;
  return guarded([&]() -> PyObject* {
    const Api& a = api();
    void* buf = address == Py_None ? nullptr : PyLong_AsVoidPtr(address);
    if (PyErr_Occurred()) throw PythonError{};
    check_rc(a.request_repost(u64_arg(id), buf), "pyckpt_mpi_request_repost");
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_request_expect_reissue(PyObject*, PyObject* id) {
  return guarded([&]() -> PyObject* {
    check_rc(api().request_expect_reissue(u64_arg(id)), "pyckpt_mpi_request_expect_reissue");
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_channel_messages(PyObject*, PyObject*) {
  return guarded([] {
    const Api& a = api();
    const pyckpt_mpi_channel_message* messages = nullptr;
    std::size_t n = 0;
    check_rc(a.channel_messages(&messages, &n), "pyckpt_mpi_channel_messages");
    Ref list = check_new(PyList_New(0));
    for (std::size_t i = 0; i < n; ++i) {
      const pyckpt_mpi_channel_message& m = messages[i];
      Ref item = check_new(Py_BuildValue("{sKsisisisK}", "comm", static_cast<unsigned long long>(m.comm), "source",
                                       static_cast<int>(m.source), "dest", static_cast<int>(m.dest), "tag",
                                       static_cast<int>(m.tag), "bytes", static_cast<unsigned long long>(m.bytes)));
      if (PyList_Append(list.get(), item.get()) < 0) throw PythonError{};
    }
    return list.release();
  });
}

PyObject* py_mpi_stats(PyObject*, PyObject*) {
  return guarded([] {
    pyckpt_mpi_stats s{};
    check_rc(api().get_stats(&s), "pyckpt_mpi_get_stats");
    using ull = unsigned long long;
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsK}", "intercepted", ull{s.intercepted}, "sent", ull{s.sent},
                         "received", ull{s.received}, "collectives", ull{s.collectives}, "checkpoints",
                         ull{s.checkpoints}, "drained", ull{s.drained}, "channel_pending", ull{s.channel_pending},
                         "replayed", ull{s.replayed}, "node_local_comms", ull{s.node_local_comms},
                         "trigger_signals", ull{s.trigger_signals});
  });
}

// --- RMA windows ---

PyObject* py_mpi_windows(PyObject*, PyObject*) {
  return guarded([] {
    const pyckpt_mpi_window_info* infos = nullptr;
    std::size_t n = 0;
    check_rc(api().windows(&infos, &n), "pyckpt_mpi_windows");
    Ref list = check_new(PyList_New(0));
    for (std::size_t i = 0; i < n; ++i) {
      const pyckpt_mpi_window_info& w = infos[i];
      Ref item = check_new(Py_BuildValue("{sKsisisNsKss}", "id", static_cast<unsigned long long>(w.id), "flavor",
                                         static_cast<int>(w.flavor), "disp_unit", static_cast<int>(w.disp_unit),
                                         "base", PyLong_FromVoidPtr(w.base), "size",
                                         static_cast<unsigned long long>(w.size), "origin", w.origin));
      if (PyList_Append(list.get(), item.get()) < 0) throw PythonError{};
    }
    return list.release();
  });
}

PyObject* py_mpi_windows_recreate(PyObject*, PyObject* bases) {
  return guarded([&]() -> PyObject* {
    const Api& a = api();
    if (!PyDict_Check(bases)) {
      PyErr_SetString(PyExc_TypeError, "mpi_windows_recreate({window id: address}) needs a dict");
      throw PythonError{};
    }
    std::vector<std::uint64_t> ids;
    std::vector<void*> addresses;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(bases, &pos, &key, &value)) {
      ids.push_back(u64_arg(key));
      addresses.push_back(PyLong_AsVoidPtr(value));
      if (PyErr_Occurred()) throw PythonError{};
    }
    // Collective: the other ranks may still be on their way.
    check_rc(without_gil([&] { return a.windows_recreate(ids.data(), addresses.data(), ids.size()); }),
             "pyckpt_mpi_windows_recreate");
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_windows_reopen(PyObject*, PyObject*) {
  return guarded([]() -> PyObject* {
    const Api& a = api();
    check_rc(without_gil([&] { return a.windows_reopen(); }), "pyckpt_mpi_windows_reopen");
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_window_locate(PyObject*, PyObject* args) {
  PyObject *address, *length;
  if (!PyArg_ParseTuple(args, "OO:mpi_window_locate", &address, &length)) return nullptr;
  return guarded([&]() -> PyObject* {
    void* addr = PyLong_AsVoidPtr(address);
    if (PyErr_Occurred()) throw PythonError{};
    std::uint64_t id = 0, offset = 0;
    int rank = 0;
    check_rc(api().window_locate(addr, u64_arg(length), &id, &rank, &offset), "pyckpt_mpi_window_locate");
    if (id == 0 && rank == -1) return Py_BuildValue("(KiK)", 0ULL, -1, 0ULL);
    if (id == 0) Py_RETURN_NONE;
    return Py_BuildValue("(KiK)", static_cast<unsigned long long>(id), rank, static_cast<unsigned long long>(offset));
  });
}

PyObject* py_mpi_window_address(PyObject*, PyObject* args) {
  PyObject *id, *offset;
  int rank = 0;
  if (!PyArg_ParseTuple(args, "OiO:mpi_window_address", &id, &rank, &offset)) return nullptr;
  return guarded([&]() -> PyObject* {
    void* addr = api().window_address(u64_arg(id), rank, u64_arg(offset));
    if (addr == nullptr) Py_RETURN_NONE;
    return PyLong_FromVoidPtr(addr);
  });
}

// The site callback: the file and line of the Python code that makes the
// MPI call (mpi4py's methods are C functions: the innermost frame is the
// program's). Called on the main thread, possibly without the GIL.
void site_trampoline(char* buf, std::size_t size, void*) {
  if (!Py_IsInitialized()) return;
  const PyGILState_STATE gil = PyGILState_Ensure();
  if (PyFrameObject* frame = PyThreadState_GetFrame(PyThreadState_Get())) {
    PyCodeObject* code = PyFrame_GetCode(frame);
    const char* file = PyUnicode_AsUTF8(code->co_filename);
    std::snprintf(buf, size, "%s:%d", file != nullptr ? file : "?", PyFrame_GetLineNumber(frame));
    PyErr_Clear();
    Py_DECREF(code);
    Py_DECREF(frame);
  }
  PyGILState_Release(gil);
}

// ---------------------------------------------------- preload libraries ---

// Directory holding libpyckpt_h5.so; libpyckpt_mpi.so and the Python-rank
// library are installed beside it in both the build and the install tree.
std::string library_directory() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&h5::native_byte_order), &info) == 0 || info.dli_fname == nullptr)
    throw std::runtime_error("cannot locate libpyckpt_h5, hence pyckpt's libraries");
  const std::string path = info.dli_fname;
  return path.substr(0, path.rfind('/'));
}

PyObject* py_library_dir(PyObject*, PyObject*) {
  return guarded([] { return PyUnicode_DecodeFSDefault(library_directory().c_str()); });
}

PyObject* py_preload_libraries(PyObject*, PyObject*) {
  return guarded([] {
    const std::string dir = library_directory();
    return Py_BuildValue("[NN]", PyUnicode_DecodeFSDefault((dir + "/" PYCKPT_MPI_LIBRARY).c_str()),
                         PyUnicode_DecodeFSDefault((dir + "/" PYCKPT_PYTHON_RANK_LIBRARY).c_str()));
  });
}

PyObject* py_hash_secret_library(PyObject*, PyObject*) {
  return guarded([] { return PyUnicode_DecodeFSDefault((library_directory() + "/" PYCKPT_HASH_SECRET_LIBRARY).c_str()); });
}

// ------------------------------------------- mpi4py's compound methods ---

// mpi4py 3.1's lowercase methods made of several MPI operations, which a
// cut rolls back to their start (pyckpt_mpi_compound_begin). Each is
// replaced in mpi4py.MPI.Comm's dictionary by a method of the same name
// that marks the call and calls the original: a C method, so that the
// application's frame stays the innermost Python frame, captured at the
// call and re-issuing it after a restart, and no Python line lies between
// the call's end and its mark. It carries the original's docstring: the
// application sees mpi4py's methods unchanged (mpi4py's own test_doc checks
// that every method has one).
struct CompoundMethod {
  const char* name;
  int kind;
  PyObject* original;  // mpi4py's method descriptor
  std::string doc;     // its __doc__, the wrapper's ml_doc
};
CompoundMethod g_compound_methods[] = {{"allreduce", PYCKPT_MPI_COMPOUND_REDUCTION, nullptr, {}},
                                       {"reduce", PYCKPT_MPI_COMPOUND_REDUCTION, nullptr, {}},
                                       {"scan", PYCKPT_MPI_COMPOUND_REDUCTION, nullptr, {}},
                                       {"exscan", PYCKPT_MPI_COMPOUND_REDUCTION, nullptr, {}},
                                       {"sendrecv", PYCKPT_MPI_COMPOUND_SENDRECV, nullptr, {}}};

template <std::size_t I>
PyObject* call_compound(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  const CompoundMethod& m = g_compound_methods[I];
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  std::vector<PyObject*> all(static_cast<std::size_t>(1 + nargs + nkw));
  all[0] = self;
  std::copy(args, args + nargs + nkw, all.begin() + 1);
  g_api.compound_begin(m.kind);
  PyObject* result = PyObject_Vectorcall(m.original, all.data(), static_cast<std::size_t>(nargs + 1), kwnames);
  g_api.compound_end();
  return result;
}

template <std::size_t... I>
constexpr std::array<PyMethodDef, sizeof...(I)> compound_defs(std::index_sequence<I...>) {
  return {PyMethodDef{g_compound_methods[I].name,
                      reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(call_compound<I>)),
                      METH_FASTCALL | METH_KEYWORDS, nullptr}...};
}
std::array<PyMethodDef, std::size(g_compound_methods)> g_compound_defs =
    compound_defs(std::make_index_sequence<std::size(g_compound_methods)>());

PyObject* py_mpi_wrap_compound_methods(PyObject*, PyObject* arg) {
  if (!PyTuple_Check(arg) || PyTuple_GET_SIZE(arg) == 0) {
    PyErr_SetString(PyExc_TypeError, "mpi_wrap_compound_methods(types): a tuple of mpi4py's communicator types");
    return nullptr;
  }
  return guarded([&]() -> PyObject* {
    api();
    for (std::size_t i = 0; i < std::size(g_compound_methods); ++i) {
      CompoundMethod& m = g_compound_methods[i];
      if (m.original) continue;  // once per process
      // The type whose dictionary defines the method (Intracomm for scan).
      PyTypeObject* owner = nullptr;
      PyObject* original = nullptr;
      for (Py_ssize_t t = 0; t < PyTuple_GET_SIZE(arg) && !original; ++t) {
        PyObject* type = PyTuple_GET_ITEM(arg, t);
        if (!PyType_Check(type)) throw std::runtime_error("mpi_wrap_compound_methods: an item is not a type");
        owner = reinterpret_cast<PyTypeObject*>(type);
        original = PyDict_GetItemString(owner->tp_dict, m.name);
      }
      if (!original) throw std::runtime_error(std::string("mpi4py's communicator types have no method ") + m.name);
      Ref doc = check_new(PyObject_GetAttrString(original, "__doc__"));
      if (doc.get() != Py_None) {
        const char* text = PyUnicode_AsUTF8(doc.get());
        if (!text) throw PythonError{};
        m.doc = text;
        g_compound_defs[i].ml_doc = m.doc.c_str();
      }
      Ref wrapper = check_new(PyDescr_NewMethod(owner, &g_compound_defs[i]));
      Py_INCREF(original);
      m.original = original;
      // mpi4py's types are immutable to setattr; their dictionary is not.
      if (PyDict_SetItemString(owner->tp_dict, m.name, wrapper.get()) < 0) throw PythonError{};
      PyType_Modified(owner);
    }
    Py_RETURN_NONE;
  });
}

PyObject* py_mpi_compound_active(PyObject*, PyObject*) {
  return guarded([]() -> PyObject* { return PyLong_FromLong(api().compound_active()); });
}

PyObject* py_mpi_mpi4py_contexts(PyObject*, PyObject*) {
  return guarded([]() -> PyObject* {
    const pyckpt_mpi_mpi4py_context* listed = nullptr;
    size_t n = 0;
    check_rc(api().mpi4py_contexts(&listed, &n), "pyckpt_mpi_mpi4py_contexts");
    Ref out = check_new(PyList_New(0));
    for (size_t i = 0; i < n; ++i) {
      Ref item = check_new(Py_BuildValue("(Ki)", static_cast<unsigned long long>(listed[i].comm), listed[i].next_tag));
      if (PyList_Append(out.get(), item.get()) < 0) throw PythonError{};
    }
    return out.release();
  });
}

PyMethodDef g_mpi_functions[] = {
    {"mpi_wrap_compound_methods", py_mpi_wrap_compound_methods, METH_O,
     "mpi_wrap_compound_methods((Comm, Intracomm)): marks the begin and end of mpi4py's compound lowercase\n"
     "methods (allreduce, reduce, scan, exscan, sendrecv) for the interposer, which rolls them back at a cut"},
    {"mpi_compound_active", py_mpi_compound_active, METH_NOARGS,
     "mpi_compound_active() -> 1 inside a compound call a cut rolls back, -1 inside one it cannot, 0 outside"},
    {"mpi_mpi4py_contexts", py_mpi_mpi4py_contexts, METH_NOARGS,
     "mpi_mpi4py_contexts() -> [(comm id, next tag)]: mpi4py's reduction contexts to make again at restart"},
    {"mpi_loaded", py_mpi_loaded, METH_NOARGS, "mpi_loaded() -> bool: libpyckpt_mpi.so's functions are in this process"},
    {"mpi_world", py_mpi_world, METH_NOARGS, "mpi_world() -> (rank, size) in MPI_COMM_WORLD"},
    {"mpi_set_capture_callbacks", py_mpi_set_capture_callbacks, METH_VARARGS,
     "mpi_set_capture_callbacks(capture, write): called on every rank inside a cut (with the GIL).\n"
     "capture() returning False: not at this safe point, retry at the next; raising: the checkpoint\n"
     "fails on every rank. write() is collective, run only when every capture succeeded.\n"
     "(None, None) unregisters them."},
    {"mpi_request_checkpoint", py_mpi_request_checkpoint, METH_NOARGS,
     "mpi_request_checkpoint(): ask for a checkpoint at the next safe point (any rank suffices)"},
    {"mpi_install_signal_trigger", py_mpi_install_signal_trigger, METH_O,
     "mpi_install_signal_trigger(signum): the signal requests a checkpoint (C handler)"},
    {"mpi_set_triggers", py_mpi_set_triggers, METH_VARARGS,
     "mpi_set_triggers(request_file, interval): the interposer's thread asks for a checkpoint when\n"
     "request_file ('' for none) appears and interval seconds (<= 0: none) after the previous one"},
    {"mpi_write_comm", py_mpi_write_comm, METH_O,
     "mpi_write_comm(cls) -> cls: the interposer's private duplicate of COMM_WORLD that writes checkpoints"},
    {"mpi_enable_wake", py_mpi_enable_wake, METH_O,
     "mpi_enable_wake(signum): when a checkpoint is pending while this rank computes, the interposer's\n"
     "thread makes the main thread run the Python handler of signal signum (no OS signal is sent)"},
    {"mpi_disable_wake", py_mpi_disable_wake, METH_NOARGS, "mpi_disable_wake(): no more of that (at exit)"},
    {"mpi_poll", py_mpi_poll, METH_NOARGS,
     "mpi_poll(): a safe point of the program's own code: serves a pending checkpoint here\n"
     "(the capture callback may run) unless this rank or another must run on"},
    {"mpi_checkpoint", py_mpi_checkpoint, METH_NOARGS,
     "mpi_checkpoint(): collective over MPI_COMM_WORLD; returns when the checkpoint is committed,\n"
     "raises CheckpointError if it failed (on every rank). Runs without the GIL."},
    {"mpi_state_save", py_mpi_state_save, METH_NOARGS,
     "mpi_state_save() -> bytes: the interposer's state (lineage, channel state), inside capture"},
    {"mpi_state_restore", py_mpi_state_restore, METH_O,
     "mpi_state_restore(data): collective, after MPI_Init of a restarted job"},
    {"mpi_comm_id", py_handle_id<CommHandle>, METH_O, "mpi_comm_id(comm) -> stable id of an mpi4py communicator (0: unknown)"},
    {"mpi_comm_from_id", py_handle_from_id<CommHandle>, METH_VARARGS,
     "mpi_comm_from_id(cls, id) -> cls.f2py() of the communicator with that id, or None"},
    {"mpi_type_id", py_handle_id<TypeHandle>, METH_O, "mpi_type_id(datatype) -> stable id (0: unknown)"},
    {"mpi_type_from_id", py_handle_from_id<TypeHandle>, METH_VARARGS,
     "mpi_type_from_id(cls, id) -> cls.f2py() of the datatype with that id, or None"},
    {"mpi_request_id", py_handle_id<RequestHandle>, METH_O, "mpi_request_id(request) -> stable id (0: unknown)"},
    {"mpi_request_from_id", py_handle_from_id<RequestHandle>, METH_VARARGS,
     "mpi_request_from_id(cls, id) -> cls.f2py() of the request with that id, or None (MPI_REQUEST_NULL)"},
    {"mpi_file_id", py_handle_id<FileHandle>, METH_O,
     "mpi_file_id(file) -> stable id of an MPI file the application opened (0: unknown)"},
    {"mpi_file_from_id", py_handle_from_id<FileHandle>, METH_VARARGS,
     "mpi_file_from_id(cls, id) -> cls.f2py() of the file with that id (reopened after a restart), or None"},
    {"mpi_win_id", py_handle_id<WinHandle>, METH_O,
     "mpi_win_id(win) -> stable id of an RMA window the application created (0: unknown)"},
    {"mpi_win_from_id", py_handle_from_id<WinHandle>, METH_VARARGS,
     "mpi_win_from_id(cls, id) -> cls.f2py() of the window with that id (created again after a restart), or None"},
    {"mpi_windows", py_mpi_windows, METH_NOARGS,
     "mpi_windows() -> [dict(id, flavor, disp_unit, base, size, origin)]: this rank's windows in creation order;\n"
     "flavor 1 MPI_Win_create, 2 MPI_Win_allocate, 3 MPI_Win_allocate_shared, 4 dynamic"},
    {"mpi_windows_recreate", py_mpi_windows_recreate, METH_O,
     "mpi_windows_recreate({id: address}): collective, after mpi_state_restore: the checkpoint's windows\n"
     "created again, MPI_Win_create ones over the restored memory at address"},
    {"mpi_windows_reopen", py_mpi_windows_reopen, METH_NOARGS,
     "mpi_windows_reopen(): collective, once the allocated windows' content is restored: every window fenced\n"
     "on every member, the shared locks of the checkpoint taken again"},
    {"mpi_window_locate", py_mpi_window_locate, METH_VARARGS,
     "mpi_window_locate(address, length) -> (window id, rank, offset) of the window segment holding it,\n"
     "(0, -1, 0) for memory of a window freed since, or None"},
    {"mpi_window_address", py_mpi_window_address, METH_VARARGS,
     "mpi_window_address(id, rank, offset) -> address in rank's segment of window id, or None"},
    {"mpi_pending_requests", py_mpi_pending_requests, METH_NOARGS,
     "mpi_pending_requests() -> [RequestInfo(id, is_recv, completed, buf, bytes)], in posting order"},
    {"mpi_alloc_mem_size", py_mpi_alloc_mem_size, METH_O,
     "mpi_alloc_mem_size(address) -> size of the app's MPI_Alloc_mem block starting there, or None"},
    {"mpi_request_repost", py_mpi_request_repost, METH_VARARGS,
     "mpi_request_repost(id, address): re-post a pending receive into restored memory at address"},
    {"mpi_request_expect_reissue", py_mpi_request_expect_reissue, METH_O,
     "mpi_request_expect_reissue(id): the application's next MPI_Irecv re-issues receive id of the checkpoint"},
    {"mpi_channel_messages", py_mpi_channel_messages, METH_NOARGS,
     "mpi_channel_messages() -> [dict(comm, source, dest, tag, bytes)]: channel state in delivery order"},
    {"mpi_stats", py_mpi_stats, METH_NOARGS, "mpi_stats() -> dict of the interposer's counters"},
    {"library_dir", py_library_dir, METH_NOARGS, "library_dir() -> directory of pyckpt's shared libraries"},
    {"preload_libraries", py_preload_libraries, METH_NOARGS,
     "preload_libraries() -> [libpyckpt_mpi.so, the Python-rank library]: absolute paths, in LD_PRELOAD order"},
    {"hash_secret_library", py_hash_secret_library, METH_NOARGS,
     "hash_secret_library() -> path of libpyckpt_hash_secret.so (preloaded by a restart, see pyckpt.cli)"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

// g_api was loaded when the module was made (add_mpi_api).
void arm_mpi_progress(int (*progress)(int finishing, void* user)) {
  if (g_api.loaded) g_api.set_progress_callback(progress, nullptr);
}

void run_mpi_internal(void (*fn)(void* user), void* user) {
  if (!g_api.loaded) return fn(user);
  struct Scope {
    Scope() { g_api.internal_begin(); }
    ~Scope() { g_api.internal_end(); }
  } scope;
  fn(user);
}

int add_mpi_api(PyObject* module) {
  load_api();
  // Messages about a window name the program's line that created it.
  if (g_api.loaded) g_api.set_site_callback(site_trampoline, nullptr);
  g_request_info_type = add_struct_type(module, &g_request_info_desc);
  if (g_request_info_type == nullptr) return -1;
  return PyModule_AddFunctions(module, g_mpi_functions);
}

}  // namespace pyckpt::core
