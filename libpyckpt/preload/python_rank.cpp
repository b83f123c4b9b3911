// libpyckpt_python_rank.so: what a Python rank of an MPI job needs from
// pyckpt before and at MPI_Init. It is preloaded together with the
// interposer,
//     LD_PRELOAD=<libdir>/libpyckpt_mpi.so:<libdir>/libpyckpt_python_rank.so
// (`pyckpt mpirun` does it; `pyckpt preload-path` prints the list), so that an
// unmodified mpi4py application checkpoints and resumes. The interposer itself
// knows no Python.
//
// It never links libpython: the few CPython functions it calls (stable ABI)
// are looked up with dlsym in the process, so that in a program that is not a
// Python interpreter it does nothing.
//
//  * At load (an ELF constructor, before the interpreter's main), in a Python
//    interpreter: puts the directory holding the `pyckpt` package that belongs
//    to this library first on PYTHONPATH, so `import pyckpt.mpi` works at
//    MPI_Init. Then, if the job is to resume (PYCKPT_RESTART is not
//    never/0/no/off, PYCKPT_RESUME_DIR is unset, and the checkpoint directory
//    -- $PYCKPT_DIR, default CheckpointDir::kDefaultDirectory -- has a
//    committed `latest`), it re-executes itself as
//        python3 -m pyckpt resume-rank -- <the original arguments>
//    with PYCKPT_RESUME_DIR set (the original arguments include the
//    interpreter's options: resume-rank, which parses them with
//    pyckpt.launch, execs itself again with those options when there are
//    any, such as -u or -X dev). The original script never starts, so nothing
//    it does before MPI_Init happens twice; resume-rank checks that the
//    checkpoint was written by the same command line (else it runs that
//    command from the start with PYCKPT_RESTART=never). The process keeps its
//    pid and environment, so MPI_Init after the exec is an ordinary one.
//  * At the end of MPI_Init/MPI_Init_thread (inside mpi4py's import), through
//    the interposer's init callback: `import pyckpt.mpi; pyckpt.mpi.attach()`,
//    which registers the capture callbacks with the interposer (through
//    pyckpt._core) and, in a resumed rank, restores its state. If attach
//    raises, the traceback is printed and the interposer ends the job: a rank
//    that cannot resume must not leave its peers waiting.
//    PYCKPT_MPI_PYTHON=never/0/no/off skips the attach, and so the resume
//    too (resume-rank cannot resume a rank that is not attached).
//  * A process spawned by a rank (MPI_Comm_spawn) neither resumes nor
//    attaches (spawned_process()).
#include <pyckpt/h5/container.hpp>
#include <pyckpt/mpi/pyckpt_mpi.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// The pieces of the CPython C API used here (stable ABI), found in the process.
struct PyObject;
struct Python {
  int (*is_initialized)() = nullptr;
  int (*gil_ensure)() = nullptr;  // PyGILState_STATE is an int-sized enum
  void (*gil_release)(int) = nullptr;
  PyObject* (*import_module)(const char*) = nullptr;
  PyObject* (*call_method)(PyObject*, const char*, const char*, ...) = nullptr;
  void (*decref)(PyObject*) = nullptr;
  void (*print_error)() = nullptr;

  // All found: this process has the CPython runtime.
  bool load() {
    is_initialized = lookup<decltype(is_initialized)>("Py_IsInitialized");
    gil_ensure = lookup<decltype(gil_ensure)>("PyGILState_Ensure");
    gil_release = lookup<decltype(gil_release)>("PyGILState_Release");
    import_module = lookup<decltype(import_module)>("PyImport_ImportModule");
    call_method = lookup<decltype(call_method)>("PyObject_CallMethod");
    decref = lookup<decltype(decref)>("Py_DecRef");
    print_error = lookup<decltype(print_error)>("PyErr_Print");
    return is_initialized && gil_ensure && gil_release && import_module && call_method && decref && print_error;
  }

  template <typename F>
  static F lookup(const char* name) {
    return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
  }
};

// A Python interpreter's executable (not a program that embeds Python later).
bool is_python_interpreter() { return dlsym(RTLD_DEFAULT, "Py_BytesMain") != nullptr; }

bool disabled(const char* value) {
  return value != nullptr && (std::strcmp(value, "never") == 0 || std::strcmp(value, "0") == 0 ||
                              std::strcmp(value, "no") == 0 || std::strcmp(value, "off") == 0);
}

// The directory holding the `pyckpt` package that belongs to this library:
// <libdir>/<relative install dir> when installed, the build tree's otherwise.
std::string package_parent() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&package_parent), &info) != 0 && info.dli_fname != nullptr) {
    const std::string lib(info.dli_fname);
    const std::string installed = lib.substr(0, lib.find_last_of('/') + 1) + PYCKPT_LIB_TO_PYTHON;
    if (access((installed + "/pyckpt/__init__.py").c_str(), R_OK) == 0) return installed;
  }
  return PYCKPT_PYTHON_BUILD_DIR;
}

// Puts the package's directory first on PYTHONPATH (once: a re-executed
// process finds it there already).
void prepend_python_path() {
  const std::string parent = package_parent();
  const char* old = std::getenv("PYTHONPATH");
  if (old == nullptr || *old == '\0') {
    setenv("PYTHONPATH", parent.c_str(), 1);
    return;
  }
  const std::string current(old);
  if (current == parent || current.starts_with(parent + ":")) return;
  setenv("PYTHONPATH", (parent + ":" + current).c_str(), 1);
}

// The job's checkpoint directory if it holds a committed checkpoint.
bool has_committed_checkpoint(const std::string& dir) {
  try {
    return pyckpt::h5::CheckpointDir(dir).latest().has_value();
  } catch (const std::exception&) {
    return false;  // a dangling `latest` or an unreadable directory: start afresh
  }
}

// A process started by MPI_Comm_spawn of a job's rank (mpi4py.futures'
// workers): it inherits the job's environment, LD_PRELOAD included, but is
// not one of the job's ranks. It must neither resume the job's checkpoint
// nor checkpoint into the job's directory: pyckpt leaves it alone (and the
// job's checkpoints fail once it spawned, saying why). Open MPI sets
// OMPI_PARENT_PORT in spawned processes only, MPICH's PMI PMI_SPAWNED.
bool spawned_process() {
  const char* spawned = std::getenv("PMI_SPAWNED");
  return std::getenv("OMPI_PARENT_PORT") != nullptr || (spawned != nullptr && std::strcmp(spawned, "1") == 0);
}

void resume_if_checkpointed(int argc, char** argv) {
  if (argc < 2 || disabled(std::getenv("PYCKPT_RESTART")) || disabled(std::getenv("PYCKPT_MPI_PYTHON")) ||
      std::getenv("PYCKPT_RESUME_DIR") != nullptr || spawned_process())
    return;
  const char* env_dir = std::getenv("PYCKPT_DIR");
  const std::string dir = env_dir != nullptr && *env_dir != '\0' ? env_dir : pyckpt::h5::CheckpointDir::kDefaultDirectory;
  if (!has_committed_checkpoint(dir)) return;  // nothing committed: a fresh start
  setenv("PYCKPT_RESUME_DIR", dir.c_str(), 1);
  std::vector<char*> args{argv[0], const_cast<char*>("-m"), const_cast<char*>("pyckpt"),
                          const_cast<char*>("resume-rank"), const_cast<char*>("--")};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  std::fprintf(stderr, "pyckpt: cannot resume from %s: exec of the interpreter failed: %s\n", dir.c_str(),
               std::strerror(errno));
  unsetenv("PYCKPT_RESUME_DIR");
}

// The interposer's init callback: attaches pyckpt to this rank.
int attach_at_mpi_init(void*) {
  Python py;
  if (!py.load() || !py.is_initialized()) return PYCKPT_MPI_OK;  // not inside Python
  if (disabled(std::getenv("PYCKPT_MPI_PYTHON")) || spawned_process()) return PYCKPT_MPI_OK;
  const int gil = py.gil_ensure();
  int rc = PYCKPT_MPI_OK;
  PyObject* module = py.import_module("pyckpt.mpi");
  PyObject* result = module != nullptr ? py.call_method(module, "attach", nullptr) : nullptr;
  if (result == nullptr) {
    py.print_error();  // the traceback says why; the interposer ends the job
    std::fflush(stderr);
    rc = PYCKPT_MPI_ECALLBACK;
  }
  if (result != nullptr) py.decref(result);
  if (module != nullptr) py.decref(module);
  py.gil_release(gil);
  return rc;
}

// ELF constructor (glibc passes the program's arguments): see the top comment.
__attribute__((constructor)) void python_rank_at_load(int argc, char** argv, char**) {
  if (!is_python_interpreter()) return;
  prepend_python_path();
  resume_if_checkpointed(argc, argv);
  pyckpt_mpi_set_init_callback(attach_at_mpi_init, nullptr);
}

}  // namespace
