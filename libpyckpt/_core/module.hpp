// pyckpt._core is assembled from parts; each adds its types and functions to
// the module object in its own add_* function, called from module.cpp.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace pyckpt::core {

// container.cpp: Python view of the hdf5_io checkpoint container.
int add_container_api(PyObject* module);

// interp/api.cpp: interpreter-state capture and resume (frames, generators,
// safe points).
int add_interp_api(PyObject* module);

// mpi.cpp: the binding of libpyckpt_mpi.so's C ABI (pyckpt_mpi.h), and where
// the libraries a job preloads are.
int add_mpi_api(PyObject* module);

// reduce_dispatch.cpp: the heap pickler's reducer_override, deciding per type
// in C (pyckpt.heap).
int add_reduce_dispatch_api(PyObject* module);

// triggers.cpp: when a serial program checkpoints (interval, signal, request
// file), decided by a thread that never takes the GIL.
int add_triggers_api(PyObject* module);

// --- shared by the parts (module.cpp) ---------------------------------------

// mpi.cpp, for container.cpp's asynchronous commits: arms the interposer's
// progress callback (pyckpt_mpi_set_progress_callback) if the interposer is
// loaded; and runs fn with this thread's MPI calls internal to it (not the
// application's: not counted, not cut).
void arm_mpi_progress(int (*progress)(int finishing, void* user));
void run_mpi_internal(void (*fn)(void* user), void* user);

// A PyStructSequence type named desc->name ("pyckpt._core.X"), added to the
// module as X so that its instances pickle by reference. New reference, or
// null with an error set.
PyTypeObject* add_struct_type(PyObject* module, PyStructSequence_Desc* desc);

// The Fortran handle of an mpi4py object (obj.py2f(), mpi4py's public API);
// -1 with an error set on failure.
long mpi4py_fortran_handle(PyObject* obj);

}  // namespace pyckpt::core
