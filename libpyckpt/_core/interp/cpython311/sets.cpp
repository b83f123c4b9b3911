// The slot layout of sets, so that a restored set iterates as the captured
// one did (doc/heap.md, "Sets").
//
// A set iterates in the order of its hash table's slots. Pickle rebuilds a
// set (and a frozenset, and a set subclass through its __reduce__) by adding
// its elements one by one, in the captured iteration order, to a fresh
// table; where the captured table's slots came from another history --
// deletions (dummy slots), pop() (its search finger), collisions resolved
// in another insertion order, a table sized at once by set(other) or grown
// then emptied -- the fresh table has other slots: another iteration order
// now, and other behaviour later (where new elements go, which one pop()
// returns). set_layouts() finds the sets whose fresh rebuild would differ,
// by simulating it on their recorded hashes (no Python code runs), and
// records their table; restore_set_layouts() rebuilds the restored sets'
// tables slot by slot.
//
// The table (PySetObject, setentry, the dummy key) is CPython's public
// cpython/setobject.h; how a table is filled and grown (probe sequence,
// LINEAR_PROBES, growth rule) mirrors Objects/setobject.c of 3.8 to 3.11,
// and test_heap.py checks the simulation against real pickle round trips.
#include "interp/cpython311/py311.hpp"
#ifdef PYCKPT_INTERP_PY311

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace pyckpt::core::interp {
namespace {

constexpr std::size_t kLinearProbes = 9;  // setobject.c LINEAR_PROBES
constexpr int kPerturbShift = 5;          // setobject.c PERTURB_SHIFT
constexpr Py_ssize_t kMinSize = PySet_MINSIZE;

PySetObject* as_set(PyObject* obj) {
  if (!PyAnySet_Check(obj))
    raise(PyExc_TypeError, "expected a set or frozenset, got " + describe_object(obj));
  return reinterpret_cast<PySetObject*>(obj);
}

// The table size set_table_resize() picks for `minused` elements.
std::size_t table_size_for(Py_ssize_t minused) {
  std::size_t size = kMinSize;
  while (size <= static_cast<std::size_t>(minused)) size <<= 1;
  return size;
}

// set_insert_clean(): the first free slot of `hash`'s probe sequence, in a
// table without dummies. `taken[slot]` marks used slots.
std::size_t probe_free(const std::vector<char>& taken, std::size_t mask, Py_hash_t hash) {
  std::size_t perturb = static_cast<std::size_t>(hash);
  std::size_t i = static_cast<std::size_t>(hash) & mask;
  while (true) {
    if (!taken[i]) return i;
    if (i + kLinearProbes <= mask) {
      for (std::size_t j = 1; j <= kLinearProbes; ++j)
        if (!taken[i + j]) return i + j;
    }
    perturb >>= kPerturbShift;
    i = (i * 5 + 1 + perturb) & mask;
  }
}

// Whether adding the elements, with `hashes` (the captured table's, in slot
// order), one by one to a new set -- what the unpickler does -- gives a
// table of `mask` with element k in slot `slots[k]`. set_add_entry(): a new
// element takes the first free slot of its probe sequence (no dummies in a
// table only added to); when fill*5 >= mask*3 the table is rebuilt, larger,
// by re-inserting the elements in slot order.
bool fresh_table_matches(const std::vector<Py_hash_t>& hashes, const std::vector<std::size_t>& slots,
                         std::size_t mask) {
  const Py_ssize_t n = static_cast<Py_ssize_t>(hashes.size());
  // The size alone first: the growth points depend on the count only.
  std::size_t size = kMinSize;
  for (Py_ssize_t used = 1; used <= n; ++used)
    if (static_cast<std::size_t>(used) * 5 >= (size - 1) * 3) size = table_size_for(used > 50000 ? used * 2 : used * 4);
  if (size != mask + 1) return false;

  std::size_t cur_mask = kMinSize - 1;
  std::vector<char> taken(kMinSize, 0);
  std::vector<Py_ssize_t> at(kMinSize, -1);  // slot -> element
  std::vector<std::size_t> slot_of(hashes.size());
  for (Py_ssize_t k = 0; k < n; ++k) {
    const std::size_t slot = probe_free(taken, cur_mask, hashes[k]);
    taken[slot] = 1;
    at[slot] = k;
    slot_of[k] = slot;
    if (static_cast<std::size_t>(k + 1) * 5 < cur_mask * 3) continue;
    const Py_ssize_t used = k + 1;
    const std::size_t new_size = table_size_for(used > 50000 ? used * 2 : used * 4);
    std::vector<char> new_taken(new_size, 0);
    std::vector<Py_ssize_t> new_at(new_size, -1);
    for (std::size_t s = 0; s <= cur_mask; ++s) {
      if (at[s] < 0) continue;
      const std::size_t moved = probe_free(new_taken, new_size - 1, hashes[at[s]]);
      new_taken[moved] = 1;
      new_at[moved] = at[s];
      slot_of[at[s]] = moved;
    }
    cur_mask = new_size - 1;
    taken.swap(new_taken);
    at.swap(new_at);
  }
  return slot_of == slots;
}

void put_u64(std::string& out, std::uint64_t value) {
  for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>(value >> (8 * b)));
}

std::uint64_t get_u64(const char* p) {
  std::uint64_t value = 0;
  for (int b = 0; b < 8; ++b) value |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[b])) << (8 * b);
  return value;
}

Ref bytes_of(const std::string& s) { return check_new(PyBytes_FromStringAndSize(s.data(), s.size())); }

// (keys, layout) of a set whose fresh rebuild would differ, else nullptr.
// keys: the elements in slot order; layout: (mask, finger, slots, hashes,
// dummies), the three byte strings being little-endian 64-bit integers:
// each element's slot and hash, and the dummy (deleted) slots.
Ref layout_of(PySetObject* so) {
  std::vector<Py_hash_t> hashes;
  std::vector<std::size_t> slots, dummies;
  hashes.reserve(so->used);
  slots.reserve(so->used);
  for (Py_ssize_t i = 0; i <= so->mask; ++i) {
    const setentry& e = so->table[i];
    if (e.key == nullptr) continue;
    if (e.key == _PySet_Dummy) {
      dummies.push_back(i);
    } else {
      hashes.push_back(e.hash);
      slots.push_back(i);
    }
  }
  if (dummies.empty() && so->finger == 0 && fresh_table_matches(hashes, slots, so->mask)) return {};
  Ref keys = check_new(PyTuple_New(static_cast<Py_ssize_t>(slots.size())));
  std::string slot_bytes, hash_bytes, dummy_bytes;
  for (std::size_t k = 0; k < slots.size(); ++k) {
    PyObject* key = so->table[slots[k]].key;
    Py_INCREF(key);
    PyTuple_SET_ITEM(keys.get(), static_cast<Py_ssize_t>(k), key);
    put_u64(slot_bytes, slots[k]);
    put_u64(hash_bytes, static_cast<std::uint64_t>(hashes[k]));
  }
  for (std::size_t d : dummies) put_u64(dummy_bytes, d);
  Ref layout = check_new(Py_BuildValue("(nnNNN)", so->mask, so->finger, bytes_of(slot_bytes).release(),
                                       bytes_of(hash_bytes).release(), bytes_of(dummy_bytes).release()));
  return check_new(PyTuple_Pack(2, keys.get(), layout.get()));
}

// set_layouts(sets) -> [(set, keys, layout)] for those of `sets` whose
// table a rebuild by pickle would not reproduce.
PyObject* py_set_layouts(PyObject*, PyObject* sets) {
  return guarded_ref([&]() -> Ref {
    Ref seq = check_new(PySequence_Fast(sets, "set_layouts() needs a sequence of sets"));
    Ref out = check_new(PyList_New(0));
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.get());
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* obj = PySequence_Fast_GET_ITEM(seq.get(), i);
      Ref layout = layout_of(as_set(obj));
      if (!layout) continue;
      Ref record = check_new(Py_BuildValue("(OOO)", obj, PyTuple_GET_ITEM(layout.get(), 0),
                                           PyTuple_GET_ITEM(layout.get(), 1)));
      check_status(PyList_Append(out.get(), record.get()));
    }
    return out;
  });
}

// A checked view of a layout tuple (layout_of's format).
struct Layout {
  std::size_t mask;
  Py_ssize_t finger;
  std::vector<std::size_t> slots;
  std::vector<Py_hash_t> hashes;
  std::vector<std::size_t> dummies;
};

std::vector<std::uint64_t> u64s(PyObject* bytes, const char* what) {
  if (!PyBytes_Check(bytes) || PyBytes_GET_SIZE(bytes) % 8 != 0)
    raise(PyExc_ValueError, std::string("invalid set layout: ") + what + " is not a string of 64-bit integers");
  std::vector<std::uint64_t> out(PyBytes_GET_SIZE(bytes) / 8);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = get_u64(PyBytes_AS_STRING(bytes) + 8 * i);
  return out;
}

Layout parse_layout(PyObject* layout, Py_ssize_t n) {
  Py_ssize_t mask, finger;
  PyObject *slots, *hashes, *dummies;
  if (!PyTuple_Check(layout) || !PyArg_ParseTuple(layout, "nnSSS", &mask, &finger, &slots, &hashes, &dummies))
    raise(PyExc_ValueError, "invalid set layout: not (mask, finger, slots, hashes, dummies)");
  Layout out{static_cast<std::size_t>(mask), finger, {}, {}, {}};
  if (mask < kMinSize - 1 || ((mask + 1) & mask) != 0)
    raise(PyExc_ValueError, "invalid set layout: table mask " + std::to_string(mask));
  for (std::uint64_t s : u64s(slots, "slots")) out.slots.push_back(s);
  for (std::uint64_t h : u64s(hashes, "hashes")) out.hashes.push_back(static_cast<Py_hash_t>(h));
  for (std::uint64_t d : u64s(dummies, "dummies")) out.dummies.push_back(d);
  if (static_cast<Py_ssize_t>(out.slots.size()) != n || out.hashes.size() != out.slots.size())
    raise(PyExc_ValueError, "invalid set layout: not one slot and hash per element");
  if (out.slots.size() + out.dummies.size() > out.mask)  // a lookup needs an empty slot to end
    raise(PyExc_ValueError, "invalid set layout: no empty slot");
  for (std::size_t k = 0; k < out.slots.size(); ++k)
    if (out.slots[k] > out.mask || (k > 0 && out.slots[k] <= out.slots[k - 1]))
      raise(PyExc_ValueError, "invalid set layout: slots out of order or out of the table");
  return out;
}

// Exchanges the tables (and their counts and pop() fingers) of two sets;
// a frozenset keeps its hash.
void swap_tables(PySetObject* a, PySetObject* b) {
  setentry* a_table = a->table == a->smalltable ? nullptr : a->table;
  setentry* b_table = b->table == b->smalltable ? nullptr : b->table;
  std::swap(a->fill, b->fill);
  std::swap(a->used, b->used);
  std::swap(a->mask, b->mask);
  std::swap(a->finger, b->finger);
  std::swap(a->smalltable, b->smalltable);
  a->table = b_table ? b_table : a->smalltable;
  b->table = a_table ? a_table : b->smalltable;
}

// Whether every element of `a` is found in `b` by a lookup (its hash's
// probe sequence reaches its slot).
bool all_found_in(PySetObject* a, PyObject* b) {
  for (Py_ssize_t i = 0; i <= a->mask; ++i) {
    PyObject* key = a->table[i].key;
    if (key == nullptr || key == _PySet_Dummy) continue;
    const int found = PySet_Contains(b, key);
    check_status(found);
    if (!found) return false;
  }
  return true;
}

// Rebuilds `so`'s table as `layout` says, `keys` going to its slots; false
// (the set unchanged) if that would not give a valid set of the same
// elements: an element's hash is not the recorded one (it hashes by
// identity), or `keys` are not the set's elements.
bool restore_layout(PySetObject* so, PyObject* keys, const Layout& layout) {
  const Py_ssize_t n = PyTuple_GET_SIZE(keys);
  if (so->used != n) return false;
  for (Py_ssize_t k = 0; k < n; ++k) {
    const Py_hash_t hash = PyObject_Hash(PyTuple_GET_ITEM(keys, k));
    if (hash == -1) throw PythonError{};
    if (hash != layout.hashes[k]) return false;
  }
  // The table is built in a new set, which owns it (its dealloc releases
  // it and its references on any way out), checked, then swapped in.
  Ref built_set = check_new(PySet_New(nullptr));
  PySetObject* built = reinterpret_cast<PySetObject*>(built_set.get());
  const std::size_t size = layout.mask + 1;
  if (size != kMinSize) {
    auto* table = static_cast<setentry*>(PyMem_Calloc(size, sizeof(setentry)));
    if (table == nullptr) throw std::bad_alloc();
    built->table = table;
    built->mask = static_cast<Py_ssize_t>(layout.mask);
  }
  for (std::size_t d : layout.dummies) {
    if (d > layout.mask || built->table[d].key != nullptr)
      raise(PyExc_ValueError, "invalid set layout: a dummy slot out of the table or given twice");
    built->table[d].key = _PySet_Dummy;
    built->table[d].hash = -1;
    ++built->fill;
  }
  for (Py_ssize_t k = 0; k < n; ++k) {
    setentry& e = built->table[layout.slots[k]];
    if (e.key != nullptr) raise(PyExc_ValueError, "invalid set layout: a slot given twice");
    e.key = Py_NewRef(PyTuple_GET_ITEM(keys, k));
    e.hash = layout.hashes[k];
    ++built->fill;
    ++built->used;
  }
  built->finger = layout.finger;
  if (!all_found_in(so, built_set.get())) return false;
  swap_tables(so, built);
  return true;
}

// restore_set_layouts(records) -> [sets left as rebuilt]: gives each set
// of `records` ((set, keys, layout), from set_layouts) the recorded table.
PyObject* py_restore_set_layouts(PyObject*, PyObject* records) {
  return guarded_ref([&]() -> Ref {
    Ref seq = check_new(PySequence_Fast(records, "restore_set_layouts() needs a sequence of records"));
    Ref left = check_new(PyList_New(0));
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.get());
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject *set, *keys, *layout;
      PyObject* record = PySequence_Fast_GET_ITEM(seq.get(), i);
      if (!PyTuple_Check(record) || !PyArg_ParseTuple(record, "OO!O", &set, &PyTuple_Type, &keys, &layout))
        raise(PyExc_ValueError, "invalid set layout record: not (set, keys, layout)");
      PySetObject* so = as_set(set);
      if (!restore_layout(so, keys, parse_layout(layout, PyTuple_GET_SIZE(keys))))
        check_status(PyList_Append(left.get(), set));
    }
    return left;
  });
}

PyMethodDef g_methods[] = {
    {"set_layouts", py_set_layouts, METH_O,
     "set_layouts(sets) -> [(set, keys, layout)]: the hash tables of those of `sets` that a rebuild adding their\n"
     "elements one by one (as pickle does) would not reproduce: keys in slot order, and the table's layout."},
    {"restore_set_layouts", py_restore_set_layouts, METH_O,
     "restore_set_layouts(records) -> [sets]: rebuilds each record's set's table slot by slot (records from\n"
     "set_layouts); returns the sets left as they were because an element's hash differs from the recorded one."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

bool add_sets_api(PyObject* module) { return PyModule_AddFunctions(module, g_methods) == 0; }

}  // namespace pyckpt::core::interp

#endif
