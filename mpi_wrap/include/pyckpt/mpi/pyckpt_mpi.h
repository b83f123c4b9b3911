/* pyckpt_mpi.h -- C ABI of libpyckpt_mpi.so, the PMPI interposer.
 *
 * The library is loaded with LD_PRELOAD (or linked first) and interposes the
 * MPI C API. The layer above (pyckpt's Python runtime, or a C/C++ program)
 * uses these functions to
 *   - register what to do at a consistent cut (capture) and at restart,
 *   - request checkpoints (async-signal-safe) and serve them at safe points,
 *   - save/restore this layer's own state (handle lineage, channel messages)
 *     as an opaque byte string that it stores with hdf5_io,
 *   - map application MPI handles to stable ids and back after a restart.
 * Upper layers should look these up with dlsym(RTLD_DEFAULT, ...) so that they
 * work (doing nothing) when the interposer is not preloaded. The library
 * knows nothing of Python: pyckpt's Python layer reaches it through one C++
 * binding (pyckpt._core) built on this header.
 * doc/mpi.md describes the protocol. All functions return 0 on success and a
 * nonzero PYCKPT_MPI_E* code on failure; pyckpt_mpi_last_error() says why. */
#ifndef PYCKPT_MPI_H
#define PYCKPT_MPI_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  PYCKPT_MPI_OK = 0,
  PYCKPT_MPI_EINVAL = 1,       /* bad argument, unknown id, corrupt state bytes */
  PYCKPT_MPI_ESTATE = 2,       /* called at the wrong time (not initialised, not in a cut) */
  PYCKPT_MPI_EUNSUPPORTED = 3, /* the job used an MPI feature a checkpoint cannot capture */
  PYCKPT_MPI_ECALLBACK = 4,    /* the capture/restore callback failed */
  PYCKPT_MPI_EMPI = 5,         /* an MPI call made by the protocol failed */
  PYCKPT_MPI_EAGAIN = 6        /* capture callback: not at this safe point, retry at the next */
  /* Ordered by severity where outcomes of several ranks are agreed: a
   * failure code beats EAGAIN (see the capture callback). */
};

/* The layer above (pyckpt's Python runtime, a C or C++ program) is called
 * at three points; every callback returns PYCKPT_MPI_OK or a nonzero code.
 *
 * init: at the end of MPI_Init/MPI_Init_thread, in every process. The layer
 * above attaches here: it registers its capture callbacks and, in a restarted
 * job, calls pyckpt_mpi_state_restore before the application runs. A nonzero
 * result is reported with pyckpt_mpi_last_error() and ends the job
 * (MPI_Abort): a rank that cannot resume must not leave its peers waiting. */
typedef int (*pyckpt_mpi_init_fn)(void* user);
int pyckpt_mpi_set_init_callback(pyckpt_mpi_init_fn init, void* user);

/* capture and write: on every rank inside the consistent cut, after the
 * channels were drained. Their MPI calls are not counted; the write's
 * collectives go to pyckpt_mpi_write_comm().
 *   capture: local, no MPI. Captures this rank's state (and typically calls
 *     pyckpt_mpi_state_save). PYCKPT_MPI_EAGAIN: not at this safe point.
 *   The library then agrees on the outcome over all ranks -- this library is
 *   the one place that decides whether a checkpoint succeeded job-wide: if
 *   any rank failed (or cannot be captured for a reason of its own, such as
 *   an unsupported MPI call), no rank writes and the checkpoint fails on all;
 *   else if any rank returned PYCKPT_MPI_EAGAIN, the cut is abandoned quietly
 *   and the request kept: the next safe point tries again.
 *   write: collective over MPI_COMM_WORLD, only when every capture succeeded:
 *     writes what capture captured (e.g. collectively with hdf5_io). Its
 *     outcome is agreed the same way; a failure on any rank fails the
 *     checkpoint on all. */
typedef int (*pyckpt_mpi_capture_fn)(void* user);
typedef int (*pyckpt_mpi_write_fn)(void* user);
int pyckpt_mpi_set_capture_callbacks(pyckpt_mpi_capture_fn capture, pyckpt_mpi_write_fn write, void* user);

/* progress: work the write callback left running (an asynchronous commit:
 * the data drains to the file while the application computes, and what it
 * still needs of MPI are nonblocking operations the layer above tests).
 * Setting it arms it: from then on it is called on the main thread at this
 * rank's safe points outside a cut (the entry of intercepted calls, the
 * progress loops of blocking ones, pyckpt_mpi_poll), with finishing = 0, and
 * must not block; it returns nonzero while work remains, 0 when done (then it
 * is not called again until set again). At MPI_Finalize, once any cut under
 * way has ended, an armed callback is called once more with finishing = 1
 * and completes its work before PMPI_Finalize (every rank does). Its MPI
 * calls are internal. NULL disarms. */
typedef int (*pyckpt_mpi_progress_fn)(int finishing, void* user);
int pyckpt_mpi_set_progress_callback(pyckpt_mpi_progress_fn progress, void* user);

/* This process's rank in MPI_COMM_WORLD and its size (after MPI_Init). */
int pyckpt_mpi_world(int* rank, int* size);
/* The communicator the write callback writes with: a private duplicate of
 * MPI_COMM_WORLD. The cut may fall while an application collective is
 * pending on MPI_COMM_WORLD (a rank is cut before a collective that completed
 * on no rank), so the write must not run collectives on the application's
 * communicators. */
int pyckpt_mpi_write_comm(MPI_Comm* comm);

/* Ask for a checkpoint. Async-signal-safe; any one rank suffices: the
 * request travels to every rank (O(log N) messages per rank), which serve it
 * at their safe points. */
void pyckpt_mpi_request_checkpoint(void);
/* Install a handler for signo that calls pyckpt_mpi_request_checkpoint. */
int pyckpt_mpi_install_signal_trigger(int signo);
/* Triggers watched by a thread of this library (after MPI_Init): a
 * checkpoint is requested when request_file (NULL or "": none) appears --
 * the file is removed -- and interval_seconds (<= 0: none) after the end
 * of the previous checkpoint (or after this call). One rank's triggers
 * suffice for the job. Replaces the previous settings. */
int pyckpt_mpi_set_triggers(const char* request_file, double interval_seconds);
/* A safe point of the application's own code, where no MPI call is in
 * progress (pyckpt: a Python line; a C program: its compute loop). Serves a
 * checkpoint pending on this rank: runs the protocol here until the
 * checkpoint ends (the capture callback may be called from here), unless
 * this rank or another must run its application on to reach the cut; then
 * it returns at once. Every MPI call of the application is a safe point
 * too. */
int pyckpt_mpi_poll(void);
/* wake: called from a thread of this library (never the main thread) when
 * this rank has a checkpoint to serve -- requested here, or by another
 * rank -- and the main thread has made no MPI call for a tick (20 ms): the
 * application computes. The layer above should stop at its next safe point
 * and call pyckpt_mpi_poll. Called again every tick while that holds; must
 * be quick, thread-safe, and must not wait for the main thread. Seeing
 * another rank's request needs MPI_THREAD_MULTIPLE; without it, only
 * requests made on this rank wake it. After MPI_Init; NULL unregisters
 * (returns once a call in progress has returned). */
typedef void (*pyckpt_mpi_wake_fn)(void* user);
int pyckpt_mpi_set_wake_callback(pyckpt_mpi_wake_fn wake, void* user);
/* Collective over MPI_COMM_WORLD: take a checkpoint now and return when it
 * is complete (or failed). */
int pyckpt_mpi_checkpoint(void);

/* Inside the capture callback: this layer's state as bytes (malloc'ed, free
 * with pyckpt_mpi_free). Portable: fixed-width little-endian integers. */
int pyckpt_mpi_state_save(void** data, size_t* len);
void pyckpt_mpi_free(void* data);
/* Collective over MPI_COMM_WORLD, after MPI_Init of a restarted job:
 * re-create communicators and datatypes from their lineage, load channel
 * messages for re-delivery, restore the app's requests (see below), reopen
 * the app's files (same name, access mode, hints, view, atomicity, file
 * pointers; a file that is gone is an error naming it).
 *
 * Re-issue: the capture callback runs inside the app's MPI call that was at
 * a safe point. A restarted rank is expected to re-issue that very call as
 * its first application MPI call (calls between pyckpt_mpi_internal_begin/end
 * do not count), from its restored memory:
 *   - a blocking send whose message was already sent at the cut (MPI_Send
 *     beyond the eager size, MPI_Ssend, the send half of MPI_Sendrecv)
 *     completes at once, without sending again; it must be the restarted
 *     rank's first blocking send, with the same destination, tag,
 *     communicator and size (otherwise it is sent, with a warning);
 *   - a blocking receive that got its message at the cut gets it again
 *     (it is first in channel state);
 *   - any other call (not started, receive still pending, a collective:
 *     the cut is never inside one) simply runs again. */
int pyckpt_mpi_state_restore(const void* data, size_t len);

/* Stable ids of application handles (equal on all members for a
 * communicator and a file, per rank for datatypes and requests; the same
 * after a restart). 0 means unknown. Predefined handles have fixed ids.
 * Files: those the application opened with MPI_File_open and has not
 * closed; a restored job reopens them in pyckpt_mpi_state_restore. */
uint64_t pyckpt_mpi_comm_id(MPI_Comm comm);
MPI_Comm pyckpt_mpi_comm_from_id(uint64_t id);
uint64_t pyckpt_mpi_type_id(MPI_Datatype type);
MPI_Datatype pyckpt_mpi_type_from_id(uint64_t id);
uint64_t pyckpt_mpi_request_id(MPI_Request request);
MPI_Request pyckpt_mpi_request_from_id(uint64_t id);
uint64_t pyckpt_mpi_file_id(MPI_File file);
MPI_File pyckpt_mpi_file_from_id(uint64_t id);

/* RMA windows (doc/mpi.md, "One-sided communication"). A window's id is
 * equal on all its members and the same after a restart; 0: unknown.
 * pyckpt_mpi_windows lists this rank's windows in creation order (the array
 * is the library's, valid until the next call): the memory the upper layer
 * captures is [base, base + size). A restarted job creates them again in
 * pyckpt_mpi_windows_recreate (collective over MPI_COMM_WORLD, after
 * pyckpt_mpi_state_restore): an MPI_Win_create window over the restored
 * memory at bases[i] for ids[i] (its content is the upper layer's), an
 * allocated one with new memory whose content the upper layer restores
 * then, before pyckpt_mpi_windows_reopen (collective): every member fences
 * every window -- no peer reaches a window's memory before that -- and takes
 * the shared locks held at the checkpoint again.
 * pyckpt_mpi_window_locate finds the window segment holding [addr, addr +
 * len) -- this rank's, or another member's segment of a shared window
 * (MPI_Win_shared_query) -- as (id, rank of the window, offset); id 0 if
 * none, and then rank -1 if it is MPI's memory of a window freed since (no
 * longer valid: not to be read). pyckpt_mpi_window_address is the inverse (NULL if unknown). */
enum {
  PYCKPT_MPI_WIN_CREATE = 1,   /* MPI_Win_create: the application's memory */
  PYCKPT_MPI_WIN_ALLOCATE = 2, /* MPI_Win_allocate */
  PYCKPT_MPI_WIN_SHARED = 3,   /* MPI_Win_allocate_shared */
  PYCKPT_MPI_WIN_DYNAMIC = 4   /* MPI_Win_create_dynamic: a checkpoint refuses it */
};
typedef struct pyckpt_mpi_window_info {
  uint64_t id;
  int32_t flavor; /* PYCKPT_MPI_WIN_* */
  int32_t disp_unit;
  void* base;
  uint64_t size;
  const char* origin; /* "MPI_Win_allocate at app.py:12": its creation, for messages */
} pyckpt_mpi_window_info;
uint64_t pyckpt_mpi_win_id(MPI_Win win);
MPI_Win pyckpt_mpi_win_from_id(uint64_t id);
int pyckpt_mpi_windows(const pyckpt_mpi_window_info** out, size_t* n);
int pyckpt_mpi_windows_recreate(const uint64_t* ids, void* const* bases, size_t n);
int pyckpt_mpi_windows_reopen(void);
int pyckpt_mpi_window_locate(const void* addr, uint64_t len, uint64_t* id, int* rank, uint64_t* offset);
void* pyckpt_mpi_window_address(uint64_t id, int rank, uint64_t offset);
/* site: where the application is in its own code ("app.py:12"), written
 * NUL-terminated into buf; called on the main thread inside the
 * application's MPI calls that create objects a checkpoint may refuse later
 * (windows), so that the refusal can say where the object was made. */
typedef void (*pyckpt_mpi_site_fn)(char* buf, size_t size, void* user);
int pyckpt_mpi_set_site_callback(pyckpt_mpi_site_fn site, void* user);

/* Application requests across a checkpoint.
 *
 * Inside the capture callback, pyckpt_mpi_pending_requests lists the
 * requests the app holds and has not yet completed in its view (no
 * successful MPI_Wait/Test yet), in posting order (ascending id):
 *   completed = 1  for every send (its message was received by the peer
 *                  before the peer's cut, or is in the peer's channel
 *                  state) and for every receive that completed before the
 *                  cut (its data is already in buf);
 *   completed = 0  for a receive still pending: it can only match a message
 *                  sent after the sender's cut, so it is re-posted after a
 *                  restart.
 * buf/bytes: the receive buffer and count * extent of its datatype (what the
 * upper layer must capture and restore); NULL/0 for sends; buf is NULL for
 * a receive restored from a checkpoint and not re-bound (restored complete,
 * or not yet re-posted). The array is owned by the library and valid until
 * the next call.
 *
 * After pyckpt_mpi_state_restore, pyckpt_mpi_request_from_id(id) of a
 * completed request returns an already complete request whose MPI_Wait/Test
 * reports the recorded status (source, tag, count). A pending receive must be
 * re-posted, in posting order, with pyckpt_mpi_request_repost(id, buf), buf
 * being the restored memory of the receive buffer; it is matched against
 * channel state first, like MPI_Irecv, then posted with the recorded count,
 * datatype, source, tag and communicator. Afterwards
 * pyckpt_mpi_request_from_id(id) returns its handle. Ids stay the same in the
 * restarted job, so a second checkpoint sees the same ids.
 *
 * Nonblocking collectives of the app (MPI_Ibarrier, MPI_Iallreduce, ...)
 * are listed too (is_recv = 0): completed = 1 if the collective completed
 * before the capture (its output is in the app's buffers), completed = 0 if
 * the cut fell before it (doc/mpi.md, "Collectives across a cut"): then
 * buf/bytes is its receive buffer (NULL/0 where this rank has none; its
 * send buffer is saved by the library) and after a restart it must be
 * posted again, in posting order with the receives, by
 * pyckpt_mpi_request_repost(id, buf) with the restored receive buffer
 * (NULL if it has none).
 *
 * comm/source/tag: a receive's communicator (its stable id) and the source
 * and tag it was posted with (wildcards as given); 0 for the others.
 *
 * A receive whose buffer the upper layer cannot restore at its place before
 * its own memory is rebuilt (mpi4py's lowercase comm.irecv(), whose buffer
 * mpi4py allocates and keeps in its request object) is made again by the
 * application's own call instead: after pyckpt_mpi_request_expect_reissue(id),
 * the next MPI_Irecv of the application, which must have the recorded
 * communicator, source, tag, count and datatype, gets request id rather than
 * a new one: re-posted into that call's buffer if it was pending at the cut
 * (as pyckpt_mpi_request_repost would), the restored complete request if it
 * completed before the cut (its data must then already be in that buffer).
 * An MPI_Irecv with other arguments is posted as a new receive (the caller
 * sees that pyckpt_mpi_request_id of its request is not id); the
 * expectation ends with that call either way. */
typedef struct pyckpt_mpi_request_info {
  uint64_t id;
  int32_t is_recv;
  int32_t completed;
  void* buf;
  uint64_t bytes;
  uint64_t comm;
  int32_t source;
  int32_t tag;
} pyckpt_mpi_request_info;
int pyckpt_mpi_pending_requests(const pyckpt_mpi_request_info** out, size_t* n);
int pyckpt_mpi_request_repost(uint64_t id, void* buf);
int pyckpt_mpi_request_expect_reissue(uint64_t id);

/* Memory the application allocated with MPI_Alloc_mem and has not freed:
 * returns 1 and its size if base is the start of such a block, else 0. */
int pyckpt_mpi_alloc_mem_size(const void* base, MPI_Aint* size);

/* MPI calls between begin and end (on this thread) pass straight through:
 * not counted, not cut, no lineage. Nests. For hdf5_io writing a checkpoint
 * and for any private traffic of the upper layer. */
void pyckpt_mpi_internal_begin(void);
void pyckpt_mpi_internal_end(void);

/* A compound call of the layer above: one call made of several MPI
 * operations that the layer above cannot resume in the middle of (mpi4py
 * 3.1's pickled reductions comm.allreduce/reduce/scan/exscan, kind
 * REDUCTION; lowercase comm.sendrecv, kind SENDRECV). Marked on the main
 * thread around the call. A cut inside one rolls the rank back to the
 * call's start: the messages it received go back to channel state, and the
 * re-issued call after a restart does not send again what it sent before
 * the cut (doc/mpi.md, "Compound calls"). compound_active: 1 inside a call
 * that a cut can roll back, -1 inside one it cannot (nested, or using
 * nonblocking receives), 0 outside. */
#define PYCKPT_MPI_COMPOUND_REDUCTION 1
#define PYCKPT_MPI_COMPOUND_SENDRECV 2
void pyckpt_mpi_compound_begin(int kind);
void pyckpt_mpi_compound_end(void);
int pyckpt_mpi_compound_active(void);
/* After pyckpt_mpi_state_restore: the communicators on which mpi4py ran
 * pickled reductions before the checkpoint, with mpi4py's tag counter
 * (next_tag) at the cut. The layer above makes mpi4py's context again on
 * each (mpi4py's next MPI_Comm_dup of it gets the private duplicate lineage
 * replay re-created) and advances its counter to next_tag. */
typedef struct pyckpt_mpi_mpi4py_context {
  uint64_t comm;
  int32_t next_tag;
} pyckpt_mpi_mpi4py_context;
int pyckpt_mpi_mpi4py_contexts(const pyckpt_mpi_mpi4py_context** out, size_t* n);

/* Counters, for tests and `pyckpt inspect`. */
typedef struct pyckpt_mpi_stats {
  uint64_t intercepted;      /* application MPI calls seen */
  uint64_t sent;             /* application messages sent (counted) */
  uint64_t received;         /* application messages received (counted) */
  uint64_t collectives;      /* application collectives entered */
  uint64_t checkpoints;      /* completed cuts */
  uint64_t drained;          /* messages drained into channel state, total */
  uint64_t channel_pending;  /* drained messages not yet delivered */
  uint64_t replayed;         /* drained messages delivered to the app */
  uint64_t node_local_comms; /* live communicators made by Split_type or from one:
                                re-created on the placement of a restarted job */
  uint64_t trigger_signals;  /* checkpoint signals received (pyckpt_mpi_install_signal_trigger) */
} pyckpt_mpi_stats;
int pyckpt_mpi_get_stats(pyckpt_mpi_stats* out);
/* Messages counted on comm to/from peer (a rank of comm) since the last cut. */
int pyckpt_mpi_channel_counts(MPI_Comm comm, int peer, uint64_t* sent, uint64_t* received);
/* One message of this rank's channel state (drained at a cut, not yet
 * delivered): for `pyckpt inspect`. source/dest are ranks of comm. */
typedef struct pyckpt_mpi_channel_message {
  uint64_t comm;  /* communicator id */
  int32_t source;
  int32_t dest;
  int32_t tag;
  uint64_t bytes;
} pyckpt_mpi_channel_message;
/* The channel state in delivery order. The array is owned by the library
 * and valid until the next call. */
int pyckpt_mpi_channel_messages(const pyckpt_mpi_channel_message** out, size_t* n);
/* NUL-terminated description of the last error on this thread. */
const char* pyckpt_mpi_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
