// The window table: the RMA windows the application created (MPI_Win_create,
// MPI_Win_allocate, MPI_Win_allocate_shared; MPI_Win_create_dynamic only to
// refuse it), what a cut needs to know of their epochs, and their creation
// again in a restarted job. doc/mpi.md ("One-sided communication") describes
// the whole design.
//
// Like a file, each window has a communicator of its own, a split the
// library makes (as an internal call) of the one the window was created on:
// its fences are counted on it like collectives, it stays alive while the
// window does (the app may free the one it passed), lineage replays it at
// restart and the window is created again on it. Its lineage id is the
// window's stable id: equal on all members, the same after a restart.
#pragma once

#include "comm_table.hpp"
#include "file_table.hpp"  // Hints

#include <pyckpt/codec/bytes.hpp>
#include <pyckpt/mpi/pyckpt_mpi.h>

#include <mpi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace pyckpt::mpi {

// How the window's memory came to be (pyckpt_mpi.h: PYCKPT_MPI_WIN_*).
enum class WinFlavor : std::int32_t {
  Create = PYCKPT_MPI_WIN_CREATE,      // the application's memory
  Allocate = PYCKPT_MPI_WIN_ALLOCATE,  // MPI's, private to the rank
  Shared = PYCKPT_MPI_WIN_SHARED,      // MPI's, load/store from the ranks of a node
  Dynamic = PYCKPT_MPI_WIN_DYNAMIC,    // attached later; refused
};

struct WinRec {
  std::uint64_t id = 0;     // its communicator's lineage id
  CommRec* comm = nullptr;  // the library's split of the communicator the window was created on
  MPI_Win real = MPI_WIN_NULL;
  WinFlavor flavor = WinFlavor::Create;
  std::int64_t size = 0;  // bytes of this rank's memory
  std::int32_t disp_unit = 1;
  Hints hints;          // of the creation and MPI_Win_set_info
  void* base = nullptr;  // this rank's memory
  std::string origin;   // "MPI_Win_allocate at app.py:12": what made it, and where

  // --- epochs: what is in flight (see WinTable::settled) ---
  // RMA operations issued outside any lock since the last fence: they
  // complete at the next fence.
  std::uint64_t fence_ops = 0;
  // The last fence opened an epoch (no MPI_MODE_NOSUCCEED): a restarted
  // window opens one again.
  bool fence_epoch = false;
  std::map<int, int> locks;  // target rank -> MPI_LOCK_SHARED or MPI_LOCK_EXCLUSIVE
  bool lock_all = false;
  // Targets of operations issued under a lock and not yet completed there
  // (by MPI_Win_flush(_all) or the unlock).
  std::set<int> unflushed;
  // A call that makes the window uncapturable (general active target
  // synchronization), or null.
  const char* refused_call = nullptr;
};

class WinTable {
 public:
  WinRec& add(CommRec& comm, MPI_Win win, WinFlavor flavor, MPI_Aint size, int disp_unit, Hints hints, void* base,
              std::string origin);
  // The record of an app handle, null if the window is not recorded.
  WinRec* find(MPI_Win win) const {
    const auto it = by_handle_.find(win);
    return it == by_handle_.end() ? nullptr : it->second;
  }
  // Before the app's MPI_Win_free: MPI's memory of the window becomes
  // invalid (see freed_). forget() once the free succeeded.
  void retire(const WinRec& w);
  void forget(MPI_Win win);
  std::uint64_t id(MPI_Win win) const;
  MPI_Win from_id(std::uint64_t id) const;
  bool empty() const { return windows_.empty() && awaiting_.empty(); }

  // --- epochs (the wrappers report what the app did) ------------------------
  // An RMA operation on target (Put, Get, Accumulate, ...; not MPI_PROC_NULL).
  static void issued(WinRec& w, int target);
  static void fenced(WinRec& w, int assert_flags);
  static void locked(WinRec& w, int type, int target) { w.locks[target] = type; }
  static void unlocked(WinRec& w, int target);
  static void flushed(WinRec& w, int target) { w.unflushed.erase(target); }
  static void flushed_all(WinRec& w) { w.unflushed.clear(); }

  // Whether a cut may fall here as far as the windows go: no RMA operation
  // this rank issued is in flight (every one completed at its target by a
  // fence, a flush or an unlock) and no exclusive lock is held. Shared locks
  // are carried across (re-acquired at restart). Windows refused anyway do
  // not count.
  bool settled() const;
  // A window on c holds operations that only its next fence completes: the
  // cut must wait for that fence (the rank asks for one more collective on c).
  bool needs_fence(const CommRec& c) const;
  // Inside a cut, before the capture (local): why the windows cannot be
  // captured ("MPI window ...: why"), "" if they can.
  std::string refusal() const;

  // --- memory (the layer above captures and restores it) --------------------
  // This rank's windows, in creation order (pyckpt_mpi_windows).
  const std::vector<pyckpt_mpi_window_info>& listing();
  // The window segment holding [addr, addr + len): this rank's memory of a
  // window, or another member's segment of a shared window. False if none.
  bool locate(const void* addr, std::uint64_t len, std::uint64_t& id, int& rank, std::uint64_t& offset) const;
  // Whether [addr, addr + len) lies in MPI's memory of a window freed since:
  // the program may still hold a view of it, which must not be read.
  bool freed_memory(const void* addr, std::uint64_t len) const;
  // The address of offset in rank's segment of window id (null if unknown).
  void* address(std::uint64_t id, int rank, std::uint64_t offset) const;

  // --- the state codec (Runtime::save/restore) -------------------------------
  // Local; inside a cut (refusal() was empty).
  void save(codec::ByteWriter& w) const;
  // In pyckpt_mpi_state_restore: the windows are read and await recreate().
  void restore(codec::ByteReader& r);
  // The window read by restore() whose own communicator is comm, described
  // ("MPI window <id> (<origin>)"); "" if none.
  std::string awaiting_on(std::uint64_t comm) const;
  // Collective over world (each window collective over its members, in the
  // order this rank created them, as in the first run): the windows the
  // state named, created again on their re-created communicators. bases:
  // window id -> the restored memory of an MPI_Win_create window.
  void recreate(const CommTable& comms, const std::map<std::uint64_t, void*>& bases);
  // Collective, once the layer above restored the allocated windows'
  // content: every member fences every window (a barrier: no peer reaches
  // a window's memory before its content is back), reopening a fence epoch
  // open at the cut, then takes the shared locks held at the cut again.
  void reopen_epochs();

 private:
  std::vector<std::unique_ptr<WinRec>> windows_;  // creation order
  std::unordered_map<MPI_Win, WinRec*> by_handle_;
  // Read from a checkpoint, not created yet (restore -> recreate).
  struct Awaiting {
    WinRec rec;
    std::string name;
    bool errors_return = false;
    std::vector<int> shared_locks;
  };
  std::vector<Awaiting> awaiting_;
  // Created by recreate(), epochs not yet reopened: (window, its saved record).
  std::vector<std::pair<WinRec*, Awaiting>> reopening_;
  std::vector<pyckpt_mpi_window_info> listed_;
  // The segments of freed MPI_Win_allocate(_shared) windows (start, size):
  // MPI may have unmapped them, and a view the program still holds (it may
  // not use it) must be captured without reading it.
  std::set<std::pair<const char*, std::int64_t>> freed_;
};

// "MPI window <id> (<origin>)", for messages.
std::string describe(const WinRec& w);

}  // namespace pyckpt::mpi
