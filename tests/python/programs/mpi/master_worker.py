"""Master/worker: rank 0 hands out tasks and takes results from whichever
worker answers first (recv and probe with ANY_SOURCE/ANY_TAG, the task in the
tag); the workers take tasks or a stop message with ANY_TAG."""
import sys
import time

from mpi4py import MPI

TASK, STOP, RESULT = 1, 2, 1000
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
ntasks = int(sys.argv[1]) if len(sys.argv) > 1 else 80
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")
if rank == 0:
    results = {}
    next_task = 0
    for worker in range(1, size):
        comm.send(next_task, dest=worker, tag=TASK)
        next_task += 1
    while len(results) < ntasks:
        status = MPI.Status()
        if len(results) % 2:
            comm.probe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status)
            value = comm.recv(source=status.Get_source(), tag=status.Get_tag())
        else:
            value = comm.recv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status)
        task = status.Get_tag() - RESULT
        if task in results:
            raise SystemExit(f"task {task} answered twice")
        results[task] = value
        out.write(f"received {len(results)}\n")
        out.flush()
        if next_task < ntasks:
            comm.send(next_task, dest=status.Get_source(), tag=TASK)
            next_task += 1
        else:
            comm.send(None, dest=status.Get_source(), tag=STOP)
    for task in sorted(results):
        out.write(f"task {task} result {results[task]}\n")
    out.close()
    done = 0
else:
    done = 0
    while True:
        status = MPI.Status()
        task = comm.recv(source=0, tag=MPI.ANY_TAG, status=status)
        if status.Get_tag() == STOP:
            break
        time.sleep(0.04)
        done += 1
        comm.send(sum(i * i for i in range(task * 100)), dest=0, tag=RESULT + task)
    out.write("stopped\n")
    out.close()
# The tasks each worker did vary from run to run: only their sum is fixed.
done_total = comm.reduce(done, op=MPI.SUM, root=0)
if rank == 0:
    print(f"final sum of results {sum(results.values())}, tasks done {done_total}")
