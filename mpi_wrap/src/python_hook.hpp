// The Python side of a preloaded interposer (python_hook.cpp): resuming a
// Python rank at load, attaching pyckpt at MPI_Init. No Python headers.
#pragma once

namespace pyckpt::mpi {

// After MPI_Init*: if this process is a Python interpreter, imports
// pyckpt.mpi and calls its attach(rank, size) (which registers the
// callbacks). rank/size: in MPI_COMM_WORLD.
void attach_python(int rank, int size);

}  // namespace pyckpt::mpi
