// The window table: records of the app's RMA windows, their epochs as far as
// a cut cares, their state as bytes and their creation again at restart.
#include "win_table.hpp"

#include "error.hpp"
#include "internal_scope.hpp"
#include "mpi_handles.hpp"

#include <algorithm>

namespace pyckpt::mpi {

namespace {

const char* flavor_call(WinFlavor f) {
  switch (f) {
    case WinFlavor::Create: return "MPI_Win_create";
    case WinFlavor::Allocate: return "MPI_Win_allocate";
    case WinFlavor::Shared: return "MPI_Win_allocate_shared";
    case WinFlavor::Dynamic: return "MPI_Win_create_dynamic";
  }
  return "?";
}

// A window's own reason not to be captured, or "".
std::string uncapturable(const WinRec& w) {
  if (w.flavor == WinFlavor::Dynamic)
    return "a dynamic window (MPI_Win_create_dynamic) cannot be captured: the memory attached to it "
           "(MPI_Win_attach) is not recorded; free it before checkpoints, or use MPI_Win_create/MPI_Win_allocate";
  if (w.refused_call)
    return std::string("it was synchronized with ") + w.refused_call +
           " (general active target synchronization, post/start/complete/wait), which a checkpoint does not "
           "support; use fences or locks";
  OwnedErrhandler handler;
  if (PMPI_Win_get_errhandler(w.real, handler.out()) == MPI_SUCCESS && handler.get() != MPI_ERRORS_RETURN &&
      handler.get() != MPI_ERRORS_ARE_FATAL)
    return "it has an error handler of the program's own (MPI_Win_set_errhandler), which a restarted job "
           "could not set again";
  return {};
}

bool errors_return(const WinRec& w) {
  OwnedErrhandler handler;
  check(PMPI_Win_get_errhandler(w.real, handler.out()), "MPI_Win_get_errhandler");
  return handler.get() == MPI_ERRORS_RETURN;
}

std::string name_of(const WinRec& w) {
  char name[MPI_MAX_OBJECT_NAME + 1] = {};
  int len = 0;
  check(PMPI_Win_get_name(w.real, name, &len), "MPI_Win_get_name");
  return std::string(name, static_cast<std::size_t>(len));
}

}  // namespace

std::string describe(const WinRec& w) {
  return "MPI window " + std::to_string(w.id) + " (" + w.origin + ")";
}

WinRec& WinTable::add(CommRec& comm, MPI_Win win, WinFlavor flavor, MPI_Aint size, int disp_unit, Hints hints,
                      void* base, std::string origin) {
  auto rec = std::make_unique<WinRec>();
  rec->id = comm.id;
  rec->comm = &comm;
  rec->real = win;
  rec->flavor = flavor;
  rec->size = size;
  rec->disp_unit = disp_unit;
  rec->hints = std::move(hints);
  rec->base = size > 0 ? base : nullptr;
  rec->origin = origin.empty() ? std::string(flavor_call(flavor)) : std::string(flavor_call(flavor)) + " at " + origin;
  by_handle_[win] = rec.get();
  windows_.push_back(std::move(rec));
  return *windows_.back();
}

void WinTable::retire(const WinRec& w) {
  if (w.flavor != WinFlavor::Allocate && w.flavor != WinFlavor::Shared) return;  // the app's memory, or none
  InternalScope internal;
  for (int r = 0; r < w.comm->size; ++r) {
    MPI_Aint size = 0;
    int disp_unit = 0;
    void* base = nullptr;
    if (r == w.comm->rank) {
      base = w.base;
      size = w.size;
    } else if (w.flavor != WinFlavor::Shared || PMPI_Win_shared_query(w.real, r, &size, &disp_unit, &base)) {
      continue;
    }
    if (base && size > 0) freed_.emplace(static_cast<const char*>(base), size);
  }
}

bool WinTable::freed_memory(const void* addr, std::uint64_t len) const {
  const auto* p = static_cast<const char*>(addr);
  return std::any_of(freed_.begin(), freed_.end(),
                     [&](const auto& f) { return p >= f.first && p + len <= f.first + f.second; });
}

void WinTable::forget(MPI_Win win) {
  const auto it = by_handle_.find(win);
  if (it == by_handle_.end()) return;
  const WinRec* rec = it->second;
  by_handle_.erase(it);
  windows_.erase(std::find_if(windows_.begin(), windows_.end(), [rec](const auto& w) { return w.get() == rec; }));
}

std::uint64_t WinTable::id(MPI_Win win) const {
  const WinRec* w = find(win);
  return w ? w->id : 0;
}

MPI_Win WinTable::from_id(std::uint64_t id) const {
  for (const auto& w : windows_)
    if (w->id == id) return w->real;
  return MPI_WIN_NULL;
}

void WinTable::issued(WinRec& w, int target) {
  if (target == MPI_PROC_NULL) return;
  if (w.lock_all || w.locks.count(target))
    w.unflushed.insert(target);
  else
    ++w.fence_ops;
}

void WinTable::fenced(WinRec& w, int assert_flags) {
  w.fence_ops = 0;
  w.fence_epoch = (assert_flags & MPI_MODE_NOSUCCEED) == 0;
}

void WinTable::unlocked(WinRec& w, int target) {
  w.locks.erase(target);
  w.unflushed.erase(target);
}

bool WinTable::settled() const {
  for (const auto& w : windows_) {
    if (w->flavor == WinFlavor::Dynamic || w->refused_call) continue;  // the cut fails on them anyway
    if (w->fence_ops > 0 || !w->unflushed.empty()) return false;
    for (const auto& lock : w->locks)
      if (lock.second == MPI_LOCK_EXCLUSIVE) return false;
  }
  return true;
}

bool WinTable::needs_fence(const CommRec& c) const {
  return std::any_of(windows_.begin(), windows_.end(),
                     [&c](const auto& w) { return w->comm == &c && w->fence_ops > 0 && !w->refused_call; });
}

std::string WinTable::refusal() const {
  InternalScope internal;
  for (const auto& w : windows_)
    if (const std::string why = uncapturable(*w); !why.empty()) return describe(*w) + ": " + why;
  return {};
}

const std::vector<pyckpt_mpi_window_info>& WinTable::listing() {
  listed_.clear();
  for (const auto& w : windows_)
    listed_.push_back({w->id, static_cast<std::int32_t>(w->flavor), w->disp_unit, w->base,
                       static_cast<std::uint64_t>(w->size), w->origin.c_str()});
  return listed_;
}

bool WinTable::locate(const void* addr, std::uint64_t len, std::uint64_t& id, int& rank, std::uint64_t& offset) const {
  InternalScope internal;
  const auto* p = static_cast<const char*>(addr);
  const auto inside = [&](const void* base, std::int64_t size) {
    const auto* b = static_cast<const char*>(base);
    return b != nullptr && p >= b && p + len <= b + size;
  };
  for (const auto& w : windows_) {
    if (inside(w->base, w->size)) {
      id = w->id;
      rank = w->comm->rank;
      offset = static_cast<std::uint64_t>(p - static_cast<const char*>(w->base));
      return true;
    }
    if (w->flavor != WinFlavor::Shared) continue;
    for (int r = 0; r < w->comm->size; ++r) {
      MPI_Aint size = 0;
      int disp_unit = 0;
      void* base = nullptr;
      if (PMPI_Win_shared_query(w->real, r, &size, &disp_unit, &base) != MPI_SUCCESS || !inside(base, size))
        continue;
      id = w->id;
      rank = r;
      offset = static_cast<std::uint64_t>(p - static_cast<const char*>(base));
      return true;
    }
  }
  return false;
}

void* WinTable::address(std::uint64_t id, int rank, std::uint64_t offset) const {
  InternalScope internal;
  for (const auto& w : windows_) {
    if (w->id != id) continue;
    void* base = w->base;
    if (rank != w->comm->rank) {
      MPI_Aint size = 0;
      int disp_unit = 0;
      if (w->flavor != WinFlavor::Shared || rank < 0 || rank >= w->comm->size ||
          PMPI_Win_shared_query(w->real, rank, &size, &disp_unit, &base) != MPI_SUCCESS)
        return nullptr;
    }
    return base ? static_cast<char*>(base) + offset : nullptr;
  }
  return nullptr;
}

// Per window, in creation order: u64 id, i32 flavor, i64 size, i32 disp_unit,
//   u32 nhints { string key, string value }, string origin, string name,
//   u8 errors_return, u8 fence_epoch, u8 lock_all, u32 nshared { i32 target }
// (refusal() was empty: no exclusive lock, nothing in flight.)
void WinTable::save(codec::ByteWriter& w) const {
  InternalScope internal;
  w.put<std::uint64_t>(windows_.size());
  for (const auto& rec : windows_) {
    w.put(rec->id);
    w.put(static_cast<std::int32_t>(rec->flavor));
    w.put<std::int64_t>(rec->size);
    w.put<std::int32_t>(rec->disp_unit);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(rec->hints.size()));
    for (const auto& [key, value] : rec->hints) {
      w.put_string(key);
      w.put_string(value);
    }
    w.put_string(rec->origin);
    w.put_string(name_of(*rec));
    w.put<std::uint8_t>(errors_return(*rec) ? 1 : 0);
    w.put<std::uint8_t>(rec->fence_epoch ? 1 : 0);
    w.put<std::uint8_t>(rec->lock_all ? 1 : 0);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(rec->locks.size()));
    for (const auto& lock : rec->locks) w.put<std::int32_t>(lock.first);
  }
}

void WinTable::restore(codec::ByteReader& r) {
  const auto n = r.get<std::uint64_t>();
  for (std::uint64_t k = 0; k < n; ++k) {
    Awaiting a;
    a.rec.id = r.get<std::uint64_t>();
    a.rec.flavor = static_cast<WinFlavor>(r.get<std::int32_t>());
    a.rec.size = r.get<std::int64_t>();
    a.rec.disp_unit = r.get<std::int32_t>();
    a.rec.hints.resize(r.get<std::uint32_t>());
    for (auto& [key, value] : a.rec.hints) {
      key = r.get_string();
      value = r.get_string();
    }
    a.rec.origin = r.get_string();
    a.name = r.get_string();
    a.errors_return = r.get<std::uint8_t>() != 0;
    a.rec.fence_epoch = r.get<std::uint8_t>() != 0;
    a.rec.lock_all = r.get<std::uint8_t>() != 0;
    a.shared_locks.resize(r.get<std::uint32_t>());
    for (auto& target : a.shared_locks) target = r.get<std::int32_t>();
    if (a.rec.flavor != WinFlavor::Create && a.rec.flavor != WinFlavor::Allocate && a.rec.flavor != WinFlavor::Shared)
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: corrupt window record");
    awaiting_.push_back(std::move(a));
  }
}

std::string WinTable::awaiting_on(std::uint64_t comm) const {
  for (const Awaiting& a : awaiting_)
    if (a.rec.id == comm) return describe(a.rec);
  return {};
}

void WinTable::recreate(const CommTable& comms, const std::map<std::uint64_t, void*>& bases) {
  InternalScope internal;
  std::vector<Awaiting> awaiting = std::move(awaiting_);
  awaiting_.clear();
  for (Awaiting& a : awaiting) {
    const WinRec& saved = a.rec;
    const std::string what = describe(saved) + ", open at the checkpoint";
    const auto failed = [&what](const char* call, int rc) {
      throw Error(PYCKPT_MPI_EMPI, "pyckpt_mpi: " + what + ": " + call + " failed: " + mpi_error_text(rc), rc);
    };
    CommRec* c = comms.by_id(saved.id);
    if (!c) throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: the communicator of " + what + " was not re-created");
    OwnedInfo info;
    if (!saved.hints.empty()) {
      check(PMPI_Info_create(info.out()), "MPI_Info_create (window hints)");
      for (const auto& [key, value] : saved.hints)
        check(PMPI_Info_set(info.get(), key.c_str(), value.c_str()), "MPI_Info_set");
    }
    MPI_Win win = MPI_WIN_NULL;
    void* base = nullptr;
    int rc = MPI_SUCCESS;
    switch (saved.flavor) {
      case WinFlavor::Create: {
        const auto it = bases.find(saved.id);
        if (saved.size > 0 && (it == bases.end() || it->second == nullptr))
          throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi: no restored memory given for " + what);
        base = saved.size > 0 ? it->second : nullptr;
        rc = PMPI_Win_create(base, saved.size, saved.disp_unit, info.get(), c->real, &win);
        break;
      }
      case WinFlavor::Allocate:
        rc = PMPI_Win_allocate(saved.size, saved.disp_unit, info.get(), c->real, &base, &win);
        break;
      case WinFlavor::Shared:
        rc = PMPI_Win_allocate_shared(saved.size, saved.disp_unit, info.get(), c->real, &base, &win);
        break;
      case WinFlavor::Dynamic:
        break;  // never saved
    }
    if (rc != MPI_SUCCESS) failed(flavor_call(saved.flavor), rc);
    WinRec& w = add(*c, win, saved.flavor, saved.size, saved.disp_unit, saved.hints, base, {});
    w.origin = saved.origin;
    if (a.errors_return)
      if ((rc = PMPI_Win_set_errhandler(win, MPI_ERRORS_RETURN))) failed("MPI_Win_set_errhandler", rc);
    if (!a.name.empty())
      if ((rc = PMPI_Win_set_name(win, a.name.c_str()))) failed("MPI_Win_set_name", rc);
    reopening_.emplace_back(&w, std::move(a));
  }
}

void WinTable::reopen_epochs() {
  InternalScope internal;
  for (auto& [w, a] : reopening_) {
    const std::string what = describe(*w) + ", open at the checkpoint";
    const auto failed = [&what](const char* call, int rc) {
      throw Error(PYCKPT_MPI_EMPI, "pyckpt_mpi: " + what + ": " + call + " failed: " + mpi_error_text(rc), rc);
    };
    int rc;
    // Every member fences every window once, in the same order: an epoch
    // open at the cut (the last fence had no MPI_MODE_NOSUCCEED) is open
    // again, with nothing in it.
    if ((rc = PMPI_Win_fence(a.rec.fence_epoch ? 0 : MPI_MODE_NOPRECEDE | MPI_MODE_NOSUCCEED, w->real)))
      failed("MPI_Win_fence", rc);
    w->fence_epoch = a.rec.fence_epoch;
    // Shared locks held at the cut (no exclusive one was: a cut waits for
    // its unlock), taken again; compatible with each other.
    if (a.rec.lock_all) {
      if ((rc = PMPI_Win_lock_all(0, w->real))) failed("MPI_Win_lock_all", rc);
      w->lock_all = true;
    }
    for (int target : a.shared_locks) {
      if ((rc = PMPI_Win_lock(MPI_LOCK_SHARED, target, 0, w->real))) failed("MPI_Win_lock", rc);
      w->locks[target] = MPI_LOCK_SHARED;
    }
  }
  reopening_.clear();
}

}  // namespace pyckpt::mpi
