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
// table without dummies (`at[slot]` < 0: free).
std::size_t probe_free(const std::vector<Py_ssize_t>& at, std::size_t mask, Py_hash_t hash) {
  std::size_t perturb = static_cast<std::size_t>(hash);
  std::size_t i = static_cast<std::size_t>(hash) & mask;
  while (true) {
    if (at[i] < 0) return i;
    if (i + kLinearProbes <= mask) {
      for (std::size_t j = 1; j <= kLinearProbes; ++j)
        if (at[i + j] < 0) return i + j;
    }
    perturb >>= kPerturbShift;
    i = (i * 5 + 1 + perturb) & mask;
  }
}

// A set's table read slot by slot, and the tables of the simulation
// (slot -> element, -1 if free); reused from set to set.
struct TableScan {
  std::vector<Py_hash_t> hashes;
  std::vector<std::size_t> slots, dummies;
  std::vector<Py_ssize_t> at, next;
};

// Whether adding the elements of `scan` (hashes and slots of the captured
// table, in slot order) one by one to a new set -- what the unpickler does
// -- gives a table of `mask` with each element in its slot.
// set_add_entry(): a new element takes the first free slot of its probe
// sequence (no dummies in a table only added to); when fill*5 >= mask*3
// the table is rebuilt, larger, by re-inserting the elements in slot order.
bool fresh_table_matches(TableScan& scan, std::size_t mask) {
  auto& [hashes, slots, dummies, at, next] = scan;
  const Py_ssize_t n = static_cast<Py_ssize_t>(hashes.size());
  // The size alone first: the growth points depend on the count only.
  std::size_t size = kMinSize;
  for (Py_ssize_t used = 1; used <= n; ++used)
    if (static_cast<std::size_t>(used) * 5 >= (size - 1) * 3) size = table_size_for(used > 50000 ? used * 2 : used * 4);
  if (size != mask + 1) return false;

  std::size_t cur_mask = kMinSize - 1;
  at.assign(kMinSize, -1);
  for (Py_ssize_t k = 0; k < n; ++k) {
    at[probe_free(at, cur_mask, hashes[k])] = k;
    if (static_cast<std::size_t>(k + 1) * 5 < cur_mask * 3) continue;
    const Py_ssize_t used = k + 1;
    const std::size_t new_size = table_size_for(used > 50000 ? used * 2 : used * 4);
    next.assign(new_size, -1);
    for (std::size_t s = 0; s <= cur_mask; ++s)
      if (at[s] >= 0) next[probe_free(next, new_size - 1, hashes[at[s]])] = at[s];
    at.swap(next);
    cur_mask = new_size - 1;
  }
  for (Py_ssize_t k = 0; k < n; ++k)
    if (at[slots[k]] != k) return false;
  return true;
}

// The layouts of all the sets a dump lays out are one byte string (a
// checkpoint may hold a million small sets: one object per set would cost
// more than the set), and their elements one tuple, in the sets' order.
// Per set, little-endian:
//   width   1 byte: bytes of each number below but finger and digest
//           (1, 2, 4 or 8: enough for mask)
//   mask    the table has mask + 1 slots
//   used    its elements: the next `used` items of the elements tuple
//   dummies its dummy (deleted) slots
//   finger  8 bytes: where pop() looks first
//   digest  8 bytes: of the elements' hashes in slot order
//   the slots of the elements, ascending, then those of the dummies
void put_uint(std::string& out, std::uint64_t value, int width) {
  for (int b = 0; b < width; ++b) out.push_back(static_cast<char>(value >> (8 * b)));
}

int width_for(std::size_t mask) { return mask <= 0xff ? 1 : mask <= 0xffff ? 2 : mask <= 0xffffffffu ? 4 : 8; }

// FNV-1a over the hashes: tells at restore whether the elements still hash
// as they did (a string's hash depends on the hash secret, an object's
// default hash on its address).
struct HashDigest {
  std::uint64_t value = 0xcbf29ce484222325u;
  void add(Py_hash_t hash) { value = (value ^ static_cast<std::uint64_t>(hash)) * 0x100000001b3u; }
};

// Appends the layout of `so` to `layouts` and its elements (borrowed) to
// `keys` if a fresh rebuild would give another table; false otherwise.
bool add_layout(PySetObject* so, TableScan& scan, std::string& layouts, std::vector<PyObject*>& keys) {
  auto& [hashes, slots, dummies, at, next] = scan;
  hashes.clear();
  slots.clear();
  dummies.clear();
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
  if (dummies.empty() && so->finger == 0 && fresh_table_matches(scan, so->mask)) return false;
  const int width = width_for(so->mask);
  layouts.push_back(static_cast<char>(width));
  put_uint(layouts, so->mask, width);
  put_uint(layouts, slots.size(), width);
  put_uint(layouts, dummies.size(), width);
  put_uint(layouts, so->finger, 8);
  HashDigest digest;
  for (Py_hash_t h : hashes) digest.add(h);
  put_uint(layouts, digest.value, 8);
  for (std::size_t slot : slots) {
    keys.push_back(so->table[slot].key);
    put_uint(layouts, slot, width);
  }
  for (std::size_t d : dummies) put_uint(layouts, d, width);
  return true;
}

// Holds the garbage collector off while alive: the sets' tables are made
// and freed in numbers, and the collections that many new objects trigger
// would each walk the whole heap of the checkpoint (a million objects: as
// long as the step itself).
class GcPaused {
 public:
  GcPaused() : was_enabled_(PyGC_Disable()) {}
  ~GcPaused() {
    if (was_enabled_) PyGC_Enable();
  }
  GcPaused(const GcPaused&) = delete;
  GcPaused& operator=(const GcPaused&) = delete;

 private:
  int was_enabled_;
};

// set_layouts(sets) -> (laid_out, elements, layouts): those of `sets` whose
// table a rebuild by pickle would not reproduce, their elements in slot
// order (one tuple) and their layouts (one byte string).
PyObject* py_set_layouts(PyObject*, PyObject* sets) {
  return guarded_ref([&]() -> Ref {
    GcPaused paused;
    Ref seq = check_new(PySequence_Fast(sets, "set_layouts() needs a sequence of sets"));
    Ref laid_out = check_new(PyList_New(0));
    std::string layouts;
    std::vector<PyObject*> keys;
    TableScan scan;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.get());
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* obj = PySequence_Fast_GET_ITEM(seq.get(), i);
      if (add_layout(as_set(obj), scan, layouts, keys)) check_status(PyList_Append(laid_out.get(), obj));
    }
    Ref elements = check_new(PyTuple_New(static_cast<Py_ssize_t>(keys.size())));
    for (std::size_t k = 0; k < keys.size(); ++k)
      PyTuple_SET_ITEM(elements.get(), static_cast<Py_ssize_t>(k), Py_NewRef(keys[k]));
    Ref blob = check_new(PyBytes_FromStringAndSize(layouts.data(), static_cast<Py_ssize_t>(layouts.size())));
    return check_new(PyTuple_Pack(3, laid_out.get(), elements.get(), blob.get()));
  });
}

// One set's checked layout, read from the byte string of all.
struct Layout {
  std::size_t mask;
  Py_ssize_t finger;
  std::uint64_t digest;
  std::vector<std::size_t> slots;
  std::vector<std::size_t> dummies;
};

class LayoutReader {
 public:
  LayoutReader(const char* data, std::size_t size) : p_(data), end_(data + size) {}
  bool done() const { return p_ == end_; }

  Layout next() {
    const int width = static_cast<int>(get(1));
    if (width != 1 && width != 2 && width != 4 && width != 8) invalid("numbers of " + std::to_string(width) + " bytes");
    Layout out{};
    out.mask = get(width);
    const std::size_t used = get(width), dummies = get(width);
    out.finger = static_cast<Py_ssize_t>(get(8));
    out.digest = get(8);
    if (out.mask < kMinSize - 1 || ((out.mask + 1) & out.mask) != 0 || out.mask > PY_SSIZE_T_MAX / sizeof(setentry))
      invalid("table mask " + std::to_string(out.mask));
    if (used + dummies > out.mask) invalid("no empty slot");  // a lookup needs one to end
    read_slots(out.slots, used, width, out.mask);
    read_slots(out.dummies, dummies, width, out.mask);
    return out;
  }

 private:
  [[noreturn]] static void invalid(const std::string& why) {
    raise(PyExc_ValueError, "invalid set layouts: " + why);
  }

  std::uint64_t get(int width) {
    if (end_ - p_ < width) invalid("cut short");
    std::uint64_t value = 0;
    for (int b = 0; b < width; ++b) value |= static_cast<std::uint64_t>(static_cast<unsigned char>(p_[b])) << (8 * b);
    p_ += width;
    return value;
  }

  void read_slots(std::vector<std::size_t>& out, std::size_t count, int width, std::size_t mask) {
    out.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t slot = get(width);
      if (slot > mask || (i > 0 && slot <= out.back())) invalid("slots out of order or out of the table");
      out.push_back(slot);
    }
  }

  const char* p_;
  const char* end_;
};

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
// elements: the elements do not hash as recorded (by identity, say), or
// `keys` are not the set's elements.
bool restore_layout(PySetObject* so, PyObject* const* keys, const Layout& layout) {
  const Py_ssize_t n = static_cast<Py_ssize_t>(layout.slots.size());
  if (so->used != n) return false;
  std::vector<Py_hash_t> hashes(n);
  HashDigest digest;
  for (Py_ssize_t k = 0; k < n; ++k) {
    hashes[k] = PyObject_Hash(keys[k]);
    if (hashes[k] == -1) throw PythonError{};
    digest.add(hashes[k]);
  }
  if (digest.value != layout.digest) return false;
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
    built->table[d].key = _PySet_Dummy;
    built->table[d].hash = -1;
    ++built->fill;
  }
  for (Py_ssize_t k = 0; k < n; ++k) {
    setentry& e = built->table[layout.slots[k]];
    if (e.key != nullptr) raise(PyExc_ValueError, "invalid set layout: a slot both an element's and a dummy");
    e.key = Py_NewRef(keys[k]);
    e.hash = hashes[k];
    ++built->fill;
    ++built->used;
  }
  built->finger = layout.finger;
  if (!all_found_in(so, built_set.get())) return false;
  swap_tables(so, built);
  return true;
}

// restore_set_layouts(sets, elements, layouts) -> [sets left as rebuilt]:
// gives each of `sets` the table set_layouts() recorded.
PyObject* py_restore_set_layouts(PyObject*, PyObject* args) {
  PyObject *sets, *elements, *layouts;
  if (!PyArg_ParseTuple(args, "O!O!S:restore_set_layouts", &PyList_Type, &sets, &PyTuple_Type, &elements, &layouts))
    return nullptr;
  return guarded_ref([&]() -> Ref {
    GcPaused paused;
    Ref left = check_new(PyList_New(0));
    LayoutReader reader(PyBytes_AS_STRING(layouts), PyBytes_GET_SIZE(layouts));
    Py_ssize_t taken = 0;  // elements of the sets before
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sets); ++i) {
      PyObject* set = PyList_GET_ITEM(sets, i);
      const Layout layout = reader.next();
      const Py_ssize_t n = static_cast<Py_ssize_t>(layout.slots.size());
      if (n > PyTuple_GET_SIZE(elements) - taken) raise(PyExc_ValueError, "invalid set layouts: elements missing");
      // Not a set: a reducer the program registered rebuilt it as another
      // type, whose order is its own business.
      if (PyAnySet_Check(set) && !restore_layout(as_set(set), &PyTuple_GET_ITEM(elements, taken), layout))
        check_status(PyList_Append(left.get(), set));
      taken += n;
    }
    if (!reader.done() || taken != PyTuple_GET_SIZE(elements))
      raise(PyExc_ValueError, "invalid set layouts: not one per set");
    return left;
  });
}

PyMethodDef g_methods[] = {
    {"set_layouts", py_set_layouts, METH_O,
     "set_layouts(sets) -> (laid_out, elements, layouts): those of `sets` whose hash table a rebuild adding\n"
     "their elements one by one (as pickle does) would not reproduce, their elements in slot order (one tuple)\n"
     "and their tables' layouts (one byte string)."},
    {"restore_set_layouts", py_restore_set_layouts, METH_VARARGS,
     "restore_set_layouts(sets, elements, layouts) -> [sets]: rebuilds each set's table slot by slot as\n"
     "set_layouts() recorded it; returns the sets left as they were because their elements hash otherwise now."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

bool add_sets_api(PyObject* module) { return PyModule_AddFunctions(module, g_methods) == 0; }

}  // namespace pyckpt::core::interp

#endif
