// How a preloaded libpyckpt_mpi.so brings pyckpt into an unmodified mpi4py
// application (`mpirun -x LD_PRELOAD=libpyckpt_mpi.so python3 app.py`).
//
// The library never links Python: it looks the C API up with dlsym in the
// process, so a C or C++ MPI program that preloads it sees none of this.
//
//  * At load (an ELF constructor, before the interpreter's main): if the job
//    is to resume (PYCKPT_RESTART unset or "auto", and PYCKPT_DIR, default
//    ./pyckpt.d, has a committed `latest`) and this process is a Python
//    interpreter, it re-executes itself as
//        python3 -m pyckpt resume-rank -- <the original arguments>
//    with PYCKPT_RESUME_DIR set. The original script never starts, so nothing
//    it does before MPI_Init happens twice; resume-rank checks that the
//    checkpoint was written by the same command line (else it runs that
//    command from the start with PYCKPT_RESTART=never). The process keeps its
//    pid and environment, so MPI_Init after the exec is an ordinary one.
//  * At the end of MPI_Init/MPI_Init_thread (called by mpi4py's import):
//    runs `pyckpt.mpi.attach()` in the interpreter, which registers the
//    capture/restore callbacks and arms the triggers.
#include "python_hook.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace pyckpt::mpi {
namespace {

// The pieces of the CPython C API used here (stable ABI).
using PyIsInitializedFn = int (*)();
using PyGILStateEnsureFn = int (*)();  // PyGILState_STATE is an int-sized enum
using PyGILStateReleaseFn = void (*)(int);
using PyRunSimpleStringFn = int (*)(const char*);

template <typename F>
F lookup(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

// The directory holding the `pyckpt` package that belongs to this library:
// <libdir>/<relative install dir> when installed, the build tree's otherwise.
std::string package_parent() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&package_parent), &info) != 0 && info.dli_fname != nullptr) {
    std::string lib(info.dli_fname);
    std::string libdir = lib.substr(0, lib.find_last_of('/') + 1);
    std::string installed = libdir + PYCKPT_LIB_TO_PYTHON;
    if (access((installed + "/pyckpt/__init__.py").c_str(), R_OK) == 0) return installed;
  }
  return PYCKPT_PYTHON_BUILD_DIR;
}

bool disabled(const char* value) {
  return value != nullptr && (std::strcmp(value, "never") == 0 || std::strcmp(value, "0") == 0 ||
                              std::strcmp(value, "no") == 0 || std::strcmp(value, "off") == 0);
}

std::string checkpoint_directory() {
  const char* dir = std::getenv("PYCKPT_DIR");
  return dir != nullptr && *dir != '\0' ? dir : "pyckpt.d";
}

void prepend_python_path() {
  std::string path = package_parent();
  if (const char* old = std::getenv("PYTHONPATH"); old != nullptr && *old != '\0') path += std::string(":") + old;
  setenv("PYTHONPATH", path.c_str(), 1);
}

// ELF constructor (glibc passes the program's arguments): see the top comment.
__attribute__((constructor)) void resume_python_rank(int argc, char** argv, char**) {
  if (argc < 2 || disabled(std::getenv("PYCKPT_RESTART")) || std::getenv("PYCKPT_RESUME_DIR") != nullptr) return;
  if (dlsym(RTLD_DEFAULT, "Py_BytesMain") == nullptr) return;  // not a Python interpreter
  const std::string dir = checkpoint_directory();
  if (access((dir + "/latest").c_str(), R_OK) != 0) return;  // nothing committed: a fresh start
  setenv("PYCKPT_RESUME_DIR", dir.c_str(), 1);
  prepend_python_path();
  std::vector<char*> args{argv[0], const_cast<char*>("-m"), const_cast<char*>("pyckpt"),
                          const_cast<char*>("resume-rank"), const_cast<char*>("--")};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  std::fprintf(stderr, "pyckpt: cannot resume from %s: exec of the interpreter failed: %s\n", dir.c_str(),
               std::strerror(errno));
  unsetenv("PYCKPT_RESUME_DIR");
}

}  // namespace

void attach_python(int rank, int size) {
  auto initialized = lookup<PyIsInitializedFn>("Py_IsInitialized");
  auto ensure = lookup<PyGILStateEnsureFn>("PyGILState_Ensure");
  auto release = lookup<PyGILStateReleaseFn>("PyGILState_Release");
  auto run = lookup<PyRunSimpleStringFn>("PyRun_SimpleString");
  if (!initialized || !ensure || !release || !run || !initialized()) return;  // not inside Python
  if (disabled(std::getenv("PYCKPT_MPI_PYTHON"))) return;
  const std::string code =
      "import sys\n"
      "try:\n"
      "    import pyckpt.mpi\n"
      "except ImportError:\n"
      "    sys.path.insert(0, " + std::string("'") + package_parent() + "')\n"
      "    import pyckpt.mpi\n"
      "pyckpt.mpi.attach(" + std::to_string(rank) + ", " + std::to_string(size) + ")\n";
  int gil = ensure();
  if (run(code.c_str()) != 0)
    std::fprintf(stderr, "pyckpt: could not attach to the Python interpreter (see above); "
                         "this process runs without checkpoints\n");
  release(gil);
}

}  // namespace pyckpt::mpi
