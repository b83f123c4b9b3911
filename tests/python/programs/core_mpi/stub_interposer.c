/* A stand-in for libpyckpt_mpi.so for test_core_mpi.py: implements
 * pyckpt_mpi.h without interposing anything but MPI_Init(_thread) (to run the
 * init callback), so that pyckpt._core's binding and the Python-rank preload
 * library are tested on their own. A checkpoint runs capture, then write. */
#include <pyckpt/mpi/pyckpt_mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static pyckpt_mpi_init_fn init_cb; static void* init_user;
static pyckpt_mpi_capture_fn cap; static pyckpt_mpi_write_fn wr; static void* user;
static char err[256];
static int checkpoints;
int pyckpt_mpi_set_init_callback(pyckpt_mpi_init_fn f, void* u) { init_cb = f; init_user = u; return 0; }
int pyckpt_mpi_set_capture_callbacks(pyckpt_mpi_capture_fn c, pyckpt_mpi_write_fn w, void* u) { cap = c; wr = w; user = u; return 0; }
int MPI_Init(int* argc, char*** argv) {
  int rc = PMPI_Init(argc, argv);
  if (init_cb && init_cb(init_user) != 0) { fprintf(stderr, "stub: init callback failed, aborting\n"); PMPI_Abort(MPI_COMM_WORLD, 3); }
  return rc;
}
int MPI_Init_thread(int* argc, char*** argv, int req, int* prov) {
  int rc = PMPI_Init_thread(argc, argv, req, prov);
  if (init_cb && init_cb(init_user) != 0) { fprintf(stderr, "stub: init callback failed, aborting\n"); PMPI_Abort(MPI_COMM_WORLD, 3); }
  return rc;
}
int pyckpt_mpi_world(int* r, int* s) { PMPI_Comm_rank(MPI_COMM_WORLD, r); PMPI_Comm_size(MPI_COMM_WORLD, s); return 0; }
static volatile int requested;
void pyckpt_mpi_request_checkpoint(void) { requested = 1; }
int pyckpt_mpi_install_signal_trigger(int s) { if (s <= 0) { strcpy(err, "bad signal"); return PYCKPT_MPI_EINVAL; } return 0; }
int pyckpt_mpi_poll(void) { return 0; }
int pyckpt_mpi_checkpoint(void) {
  if (!cap) { strcpy(err, "no capture callbacks"); return PYCKPT_MPI_ESTATE; }
  int rc = cap(user);
  if (rc == PYCKPT_MPI_EAGAIN) { strcpy(err, "capture asked to retry"); return rc; }
  if (rc) { snprintf(err, sizeof err, "capture failed on rank 0 (%d)", rc); return rc; }
  rc = wr(user);
  if (rc) { snprintf(err, sizeof err, "write failed (%d)", rc); return rc; }
  checkpoints++; return 0;
}
int pyckpt_mpi_state_save(void** d, size_t* n) { *d = malloc(5); memcpy(*d, "STATE", 5); *n = 5; return 0; }
void pyckpt_mpi_free(void* d) { free(d); }
int pyckpt_mpi_state_restore(const void* d, size_t n) { if (n != 5 || memcmp(d, "STATE", 5)) { strcpy(err, "corrupt state bytes"); return PYCKPT_MPI_EINVAL; } return 0; }
uint64_t pyckpt_mpi_comm_id(MPI_Comm c) { return c == MPI_COMM_WORLD ? 1 : c == MPI_COMM_SELF ? 2 : 0; }
MPI_Comm pyckpt_mpi_comm_from_id(uint64_t id) { return id == 1 ? MPI_COMM_WORLD : id == 2 ? MPI_COMM_SELF : MPI_COMM_NULL; }
uint64_t pyckpt_mpi_type_id(MPI_Datatype t) { return t == MPI_DOUBLE ? 17 : 0; }
MPI_Datatype pyckpt_mpi_type_from_id(uint64_t id) { return id == 17 ? MPI_DOUBLE : MPI_DATATYPE_NULL; }
static MPI_Request last_req = MPI_REQUEST_NULL;
uint64_t pyckpt_mpi_request_id(MPI_Request r) { if (r == MPI_REQUEST_NULL) return 0; last_req = r; return 42; }
MPI_Request pyckpt_mpi_request_from_id(uint64_t id) { return id == 42 ? last_req : MPI_REQUEST_NULL; }
static char buffer[16];
static pyckpt_mpi_request_info infos[2] = {{5, 1, 0, buffer, 16}, {6, 0, 1, NULL, 0}};
int pyckpt_mpi_pending_requests(const pyckpt_mpi_request_info** o, size_t* n) { *o = infos; *n = 2; return 0; }
int pyckpt_mpi_request_repost(uint64_t id, void* b) { if (id != 5) { strcpy(err, "unknown request id"); return PYCKPT_MPI_EINVAL; } infos[0].buf = b; return 0; }
void pyckpt_mpi_internal_begin(void) {}
void pyckpt_mpi_internal_end(void) {}
int pyckpt_mpi_get_stats(pyckpt_mpi_stats* s) { memset(s, 0, sizeof *s); s->checkpoints = checkpoints; s->sent = 3; return 0; }
int pyckpt_mpi_channel_counts(MPI_Comm c, int p, uint64_t* s, uint64_t* r) { (void)c; (void)p; *s = *r = 0; return 0; }
static pyckpt_mpi_channel_message msgs[1] = {{1, 0, 1, 7, 24}};
int pyckpt_mpi_channel_messages(const pyckpt_mpi_channel_message** o, size_t* n) { *o = msgs; *n = 1; return 0; }
const char* pyckpt_mpi_last_error(void) { return err; }
const char* pyckpt_mpi_unsupported_calls(void) { return ""; }
