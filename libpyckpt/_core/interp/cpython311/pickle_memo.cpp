// The sets a C pickler has written: the objects of its memo that are sets
// or frozensets (pyckpt.heap records their table layouts after the graph,
// doc/heap.md "Sets"). The memo is the one complete record of what a dump
// wrote; the pickler's Python API only copies it whole (memo.copy(): a dict
// of every object, as slow as the dump itself on a large graph), while this
// walk reads the table in place.
//
// The structs mirror CPython 3.11's private ones (Modules/_pickle.c,
// PicklerObject's first field and PyMemoTable; unchanged since 3.8). The
// mirror is checked once per process against memo.copy() of a small dump:
// a mismatch is an UnsupportedState, never a wrong walk.
#include "interp/cpython311/py311.hpp"
#ifdef PYCKPT_INTERP_PY311

#include <map>

namespace pyckpt::core::interp {
namespace {

struct MemoEntry {  // PyMemoEntry
  PyObject* key;
  Py_ssize_t value;  // the memo index
};

struct MemoTable {  // PyMemoTable
  std::size_t mask;
  std::size_t used;
  std::size_t allocated;
  MemoEntry* table;
};

struct PicklerHead {  // PicklerObject, up to its memo
  PyObject_HEAD
  MemoTable* memo;
};

PyObject* pickler_type() {
  static PyObject* type = nullptr;
  if (type == nullptr) {
    Ref module = check_new(PyImport_ImportModule("_pickle"));
    type = check(PyObject_GetAttrString(module.get(), "Pickler"));  // kept: types live forever
  }
  return type;
}

// Calls `visit(key, index)` for every object in the memo of `pickler`.
template <class F>
void walk_memo(PyObject* pickler, F&& visit) {
  const int is_pickler = PyObject_IsInstance(pickler, pickler_type());
  check_status(is_pickler);
  if (!is_pickler) raise(PyExc_TypeError, describe_object(pickler) + " is not a _pickle.Pickler");
  const MemoTable* memo = reinterpret_cast<PicklerHead*>(pickler)->memo;
  if (memo == nullptr) return;
  for (std::size_t i = 0; i <= memo->mask; ++i)
    if (memo->table[i].key != nullptr) visit(memo->table[i].key, memo->table[i].value);
}

// Whether the mirror reads a pickler's memo as memo.copy() tells it.
void check_mirror() {
  static bool checked = false;
  if (checked) return;
  Ref io = check_new(PyImport_ImportModule("io"));
  Ref file = check_new(PyObject_CallMethod(io.get(), "BytesIO", nullptr));
  Ref pickler = check_new(PyObject_CallFunction(pickler_type(), "Oi", file.get(), 5));
  Ref sample = check_new(Py_BuildValue("[N[s]s]", PySet_New(nullptr), "x", "y"));
  Ref dumped = check_new(PyObject_CallMethod(pickler.get(), "dump", "O", sample.get()));
  Ref proxy = check_new(PyObject_GetAttrString(pickler.get(), "memo"));
  Ref copy = check_new(PyObject_CallMethod(proxy.get(), "copy", nullptr));
  std::map<PyObject*, Py_ssize_t> expected, walked;
  PyObject *id, *entry;
  Py_ssize_t pos = 0;
  while (PyDict_Next(copy.get(), &pos, &id, &entry)) {
    Py_ssize_t index;
    PyObject* obj;
    if (!PyArg_ParseTuple(entry, "nO", &index, &obj)) throw PythonError{};
    expected[obj] = index;
  }
  walk_memo(pickler.get(), [&](PyObject* key, Py_ssize_t index) { walked[key] = index; });
  if (walked != expected || expected.size() < 4)
    throw UnsupportedState{"the pickler's memo is not laid out as in CPython 3.11: pyckpt cannot find the sets "
                           "it captured, to restore their order"};
  checked = true;
}

// memoized_sets(pickler, since) -> (list, count): the sets and frozensets
// (and instances of their subclasses) in the memo of a _pickle.Pickler
// whose memo index is at least `since`, and the count of entries in the
// memo (the next index: memo indices count up as objects are written).
PyObject* py_memoized_sets(PyObject*, PyObject* args) {
  PyObject* pickler;
  Py_ssize_t since;
  if (!PyArg_ParseTuple(args, "On:memoized_sets", &pickler, &since)) return nullptr;
  return guarded_ref([&]() -> Ref {
    check_mirror();
    Ref sets = check_new(PyList_New(0));
    Py_ssize_t count = 0;
    walk_memo(pickler, [&](PyObject* key, Py_ssize_t index) {
      ++count;
      if (index >= since && PyAnySet_Check(key)) check_status(PyList_Append(sets.get(), key));
    });
    return check_new(Py_BuildValue("(On)", sets.get(), count));
  });
}

PyMethodDef g_methods[] = {
    {"memoized_sets", py_memoized_sets, METH_VARARGS,
     "memoized_sets(pickler, since) -> (sets, count): the sets and frozensets a _pickle.Pickler has written\n"
     "(those in its memo) from memo index `since` on, and the number of objects in its memo."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

bool add_pickle_memo_api(PyObject* module) { return PyModule_AddFunctions(module, g_methods) == 0; }

}  // namespace pyckpt::core::interp

#endif
