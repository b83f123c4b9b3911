// The C ABI of pyckpt_mpi.h: exceptions become error codes plus
// pyckpt_mpi_last_error(); each entry point calls one part of the Runtime.
#include "callbacks.hpp"
#include "runtime.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

using namespace pyckpt::mpi;

namespace {

template <typename F>
int guarded(F f) {
  try {
    return f();
  } catch (const Error& e) {
    set_last_error(e.what());
    return e.code;
  } catch (const std::exception& e) {
    set_last_error(std::string("pyckpt_mpi: ") + e.what());
    return PYCKPT_MPI_EINVAL;
  }
}

Runtime& running() {
  Runtime* rt = Runtime::get();
  if (!rt) throw Error(PYCKPT_MPI_ESTATE, "pyckpt_mpi: MPI is not initialised (or already finalised)");
  return *rt;
}

// f(runtime), or `none` outside MPI_Init..MPI_Finalize (the handle lookups
// of the C ABI: a null handle or id 0, never an error).
template <typename T, typename F>
T if_running(T none, F f) {
  Runtime* rt = Runtime::get();
  return rt ? static_cast<T>(f(*rt)) : none;
}

// Checkpoint signals received (lock-free: counted in the handler). A job
// that requeues itself at Slurm's time-limit signal holds after the
// checkpoint such a signal asked for (pyckpt/mpi.py, _hold_if_stopping).
std::atomic<std::uint64_t> trigger_signals{0};

extern "C" void on_trigger_signal(int) {
  trigger_signals.fetch_add(1, std::memory_order_relaxed);
  pyckpt_mpi_request_checkpoint();
}

}  // namespace


extern "C" {

int pyckpt_mpi_set_init_callback(pyckpt_mpi_init_fn init, void* user) {
  callbacks.init = init;
  callbacks.init_user = user;
  return PYCKPT_MPI_OK;
}

int pyckpt_mpi_set_capture_callbacks(pyckpt_mpi_capture_fn capture, pyckpt_mpi_write_fn write, void* user) {
  callbacks.capture = capture;
  callbacks.write = write;
  callbacks.user = user;
  return PYCKPT_MPI_OK;
}

int pyckpt_mpi_set_progress_callback(pyckpt_mpi_progress_fn progress, void* user) {
  callbacks.progress_user = user;
  callbacks.progress = progress;
  return PYCKPT_MPI_OK;
}

int pyckpt_mpi_world(int* rank, int* size) {
  return guarded([&] {
    const Runtime& rt = running();
    *rank = rt.world_rank();
    *size = rt.world_size();
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_write_comm(MPI_Comm* comm) {
  return guarded([&] {
    *comm = running().coordinator.write_comm();
    return PYCKPT_MPI_OK;
  });
}

void pyckpt_mpi_request_checkpoint(void) { Coordinator::request(); }

int pyckpt_mpi_install_signal_trigger(int signo) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_trigger_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(signo, &sa, nullptr) != 0) {
    set_last_error("pyckpt_mpi: cannot install a handler for signal " + std::to_string(signo));
    return PYCKPT_MPI_EINVAL;
  }
  return PYCKPT_MPI_OK;
}

int pyckpt_mpi_poll(void) {
  return guarded([] {
    running().coordinator.serve_here();
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_set_wake_callback(pyckpt_mpi_wake_fn wake, void* user) {
  return guarded([&] {
    running().waker().set_wake(wake, user);
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_set_triggers(const char* request_file, double interval_seconds) {
  return guarded([&] {
    running().waker().set_triggers(request_file != nullptr ? request_file : "", interval_seconds);
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_checkpoint(void) {
  return guarded([] {
    Coordinator& co = running().coordinator;
    int rc = co.checkpoint_now();
    if (rc != PYCKPT_MPI_OK) set_last_error(co.last_message());
    return rc;
  });
}

int pyckpt_mpi_state_save(void** data, size_t* len) {
  return guarded([&] {
    auto bytes = running().save();
    *data = std::malloc(bytes.empty() ? 1 : bytes.size());
    if (!*data) throw std::bad_alloc();
    std::memcpy(*data, bytes.data(), bytes.size());
    *len = bytes.size();
    return PYCKPT_MPI_OK;
  });
}

void pyckpt_mpi_free(void* data) { std::free(data); }

int pyckpt_mpi_state_restore(const void* data, size_t len) {
  return guarded([&] {
    running().restore(static_cast<const std::byte*>(data), len);
    return PYCKPT_MPI_OK;
  });
}

uint64_t pyckpt_mpi_comm_id(MPI_Comm comm) {
  return if_running(std::uint64_t{0}, [&](Runtime& rt) {
    CommRec* c = rt.comms.find(comm);
    return c ? c->id : 0;
  });
}

MPI_Comm pyckpt_mpi_comm_from_id(uint64_t id) {
  return if_running(MPI_COMM_NULL, [&](Runtime& rt) {
    CommRec* c = rt.comms.by_id(id);
    return c ? c->real : MPI_COMM_NULL;
  });
}

uint64_t pyckpt_mpi_type_id(MPI_Datatype type) {
  return if_running(std::uint64_t{0}, [&](Runtime& rt) { return rt.types.id(type); });
}

MPI_Datatype pyckpt_mpi_type_from_id(uint64_t id) {
  return if_running(MPI_DATATYPE_NULL, [&](Runtime& rt) { return rt.types.from_id(id); });
}

uint64_t pyckpt_mpi_request_id(MPI_Request request) {
  return if_running(std::uint64_t{0}, [&](Runtime& rt) { return rt.requests.id(request); });
}

MPI_Request pyckpt_mpi_request_from_id(uint64_t id) {
  return if_running(MPI_REQUEST_NULL, [&](Runtime& rt) { return rt.requests.from_id(id); });
}

uint64_t pyckpt_mpi_file_id(MPI_File file) {
  return if_running(std::uint64_t{0}, [&](Runtime& rt) { return rt.files.id(file); });
}

MPI_File pyckpt_mpi_file_from_id(uint64_t id) {
  return if_running(MPI_FILE_NULL, [&](Runtime& rt) { return rt.files.from_id(id); });
}

uint64_t pyckpt_mpi_win_id(MPI_Win win) {
  return if_running(std::uint64_t{0}, [&](Runtime& rt) { return rt.windows.id(win); });
}

MPI_Win pyckpt_mpi_win_from_id(uint64_t id) {
  return if_running(MPI_WIN_NULL, [&](Runtime& rt) { return rt.windows.from_id(id); });
}

int pyckpt_mpi_windows(const pyckpt_mpi_window_info** out, size_t* n) {
  return guarded([&] {
    const auto& v = running().windows.listing();
    *out = v.data();
    *n = v.size();
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_windows_recreate(const uint64_t* ids, void* const* bases, size_t n) {
  return guarded([&] {
    Runtime& rt = running();
    std::map<std::uint64_t, void*> restored;
    for (size_t i = 0; i < n; ++i) restored[ids[i]] = bases[i];
    rt.windows.recreate(rt.comms, restored);
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_windows_reopen(void) {
  return guarded([] {
    running().windows.reopen_epochs();
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_window_locate(const void* addr, uint64_t len, uint64_t* id, int* rank, uint64_t* offset) {
  return guarded([&] {
    *id = 0;
    const WinTable& windows = running().windows;
    if (!windows.locate(addr, len, *id, *rank, *offset) && windows.freed_memory(addr, len)) *rank = -1;
    return PYCKPT_MPI_OK;
  });
}

void* pyckpt_mpi_window_address(uint64_t id, int rank, uint64_t offset) {
  return if_running(static_cast<void*>(nullptr),
                    [&](Runtime& rt) { return rt.windows.address(id, rank, offset); });
}

int pyckpt_mpi_set_site_callback(pyckpt_mpi_site_fn site, void* user) {
  callbacks.site = site;
  callbacks.site_user = user;
  return PYCKPT_MPI_OK;
}

int pyckpt_mpi_pending_requests(const pyckpt_mpi_request_info** out, size_t* n) {
  return guarded([&] {
    Runtime& rt = running();
    const auto& v = rt.requests.pending(rt.collectives);
    *out = v.data();
    *n = v.size();
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_request_repost(uint64_t id, void* buf) {
  return guarded([&] {
    Runtime& rt = running();
    if (rt.collectives.awaiting(id)) {
      auto [comm, call, send_copy] = rt.collectives.take_for_repost(id, buf);
      MPI_Request request = MPI_REQUEST_NULL;
      check(rt.start_collective(comm, std::move(call), id, &request, std::move(send_copy)),
            "MPI nonblocking collective (repost)");
    } else {
      rt.requests.repost(id, buf);
    }
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_request_expect_reissue(uint64_t id) {
  return guarded([&] {
    running().requests.expect_reissue(id);
    return PYCKPT_MPI_OK;
  });
}

void pyckpt_mpi_compound_begin(int kind) {
  if (Runtime* rt = Runtime::get(); rt && internal_depth == 0 && rt->on_main_thread())
    rt->compound.begin(kind, rt->requests.next_id());
}

void pyckpt_mpi_compound_end(void) {
  if (Runtime* rt = Runtime::get(); rt && internal_depth == 0 && rt->on_main_thread()) rt->compound.end();
}

int pyckpt_mpi_compound_active(void) {
  const Runtime* rt = Runtime::get();
  if (!rt || !rt->compound.active()) return 0;
  return rt->compound.recordable() ? 1 : -1;
}

int pyckpt_mpi_mpi4py_contexts(const pyckpt_mpi_mpi4py_context** out, size_t* n) {
  return guarded([&] {
    Runtime& rt = running();
    static thread_local std::vector<pyckpt_mpi_mpi4py_context> listed;
    listed.clear();
    for (const auto& [comm, next_tag] : rt.compound.contexts(rt.comms)) listed.push_back({comm, next_tag});
    *out = listed.data();
    *n = listed.size();
    return PYCKPT_MPI_OK;
  });
}

void pyckpt_mpi_internal_begin(void) { ++internal_depth; }
void pyckpt_mpi_internal_end(void) { --internal_depth; }

int pyckpt_mpi_get_stats(pyckpt_mpi_stats* out) {
  return guarded([&] {
    const Runtime& rt = running();
    const Channel& ch = rt.channel;
    const auto& comms = rt.comms.all();
    const auto node_local = std::count_if(comms.begin(), comms.end(), [](const auto& c) {
      return c->placement_dependent && c->real != MPI_COMM_NULL;
    });
    *out = pyckpt_mpi_stats{rt.intercepted(),
                            ch.sent(),
                            ch.received(),
                            rt.coordinator.collectives(),
                            rt.coordinator.checkpoints(),
                            ch.drained(),
                            static_cast<uint64_t>(ch.size()),
                            ch.replayed(),
                            static_cast<uint64_t>(node_local),
                            trigger_signals.load(std::memory_order_relaxed)};
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_channel_counts(MPI_Comm comm, int peer, uint64_t* sent, uint64_t* received) {
  return guarded([&] {
    CommRec* c = running().comms.find(comm);
    if (!c || peer < 0 || peer >= static_cast<int>(c->peers().size()))
      throw Error(PYCKPT_MPI_EINVAL, "pyckpt_mpi_channel_counts: unknown communicator or peer");
    *sent = c->sent[static_cast<std::size_t>(peer)];
    *received = c->received[static_cast<std::size_t>(peer)];
    return PYCKPT_MPI_OK;
  });
}

int pyckpt_mpi_channel_messages(const pyckpt_mpi_channel_message** out, size_t* n) {
  return guarded([&] {
    Runtime& rt = running();
    static thread_local std::vector<pyckpt_mpi_channel_message> listed;
    listed.clear();
    for (const ChannelMsg& m : rt.channel.messages()) {
      const CommRec* c = rt.comms.by_id(m.comm);
      listed.push_back({m.comm, m.source, c ? c->rank : -1, m.tag, static_cast<std::uint64_t>(m.data.size())});
    }
    *out = listed.data();
    *n = listed.size();
    return PYCKPT_MPI_OK;
  });
}

const char* pyckpt_mpi_last_error(void) { return last_error_cstr(); }

}  // extern "C"
