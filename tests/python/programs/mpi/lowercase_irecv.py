"""mpi4py's lowercase (pickled) nonblocking point-to-point: a master keeps
one comm.irecv() pending per worker and hands out tasks with comm.isend();
the workers wait for their next task with an irecv they poll with test()
while they compute. Usage: lowercase_irecv.py NTASKS MODE, MODE one of

  waitany  the master takes results with MPI.Request.waitany(irecvs)
  testany  ... with a loop of MPI.Request.testany(irecvs) and some Python
  buffer   as waitany, into the program's own buffers (irecv(buf=bytearray))
           with results larger than mpi4py's default 32 KiB buffer
  waitall  rounds: a task to every worker, then MPI.Request.waitall of the
           irecvs of all results (and of the isends)

Which worker answers first varies, so rank 0 writes the count of results as
they come and the results in task order at the end."""
import sys
import time

from mpi4py import MPI

TASK, RESULT = 1, 2
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
ntasks = int(sys.argv[1]) if len(sys.argv) > 1 else 120
mode = sys.argv[2] if len(sys.argv) > 2 else "waitany"
BUFFER = 1 << 17  # the program's receive buffers in mode "buffer"
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")


def result_of(task):
    # Over 32 KiB pickled in mode "buffer" (mpi4py's own irecv buffer would
    # be too small), a few hundred bytes otherwise.
    n = 4000 + 10 * task if mode == "buffer" else 20 + task % 7
    return {"task": task, "values": [float(task * i) for i in range(n)], "worker": rank}


def compute(seconds):
    """Pure Python work (the waker brings a checkpoint to it at a line)."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def post_result_irecv(worker, buffers):
    if mode == "buffer":
        return comm.irecv(buffers[worker], source=worker, tag=RESULT)
    return comm.irecv(source=worker, tag=RESULT)


def master():
    workers = list(range(1, size))
    buffers = {w: bytearray(BUFFER) for w in workers}
    results, sends, next_task = {}, [], 0
    if mode == "waitall":
        while next_task < ntasks:
            batch = workers[:ntasks - next_task]
            irecvs = [post_result_irecv(w, buffers) for w in batch]
            for w in batch:
                sends.append(comm.isend(next_task, dest=w, tag=TASK))
                next_task += 1
            compute(0.01)
            for value in MPI.Request.waitall(irecvs):
                results[value["task"]] = value
            MPI.Request.waitall(sends)
            sends = []
            out.write(f"received {len(results)}\n")
            out.flush()
    else:
        irecvs = [post_result_irecv(w, buffers) for w in workers]
        for w in workers:
            sends.append(comm.isend(next_task, dest=w, tag=TASK))
            next_task += 1
        while len(results) < ntasks:
            if mode == "testany":
                index, flag, value = MPI.Request.testany(irecvs)
                if not flag:
                    compute(0.002)
                    continue
            else:
                index, value = MPI.Request.waitany(irecvs)
            worker = workers[index]
            if value["task"] in results or value["worker"] != worker:
                raise SystemExit(f"result of task {value['task']} from worker {value['worker']} taken twice or "
                                 f"from the wrong request")
            results[value["task"]] = value
            out.write(f"received {len(results)}\n")
            out.flush()
            if next_task < ntasks:  # else its request stays spent (MPI.REQUEST_NULL) until the stop
                irecvs[index] = post_result_irecv(worker, buffers)
                sends.append(comm.isend(next_task, dest=worker, tag=TASK))
                next_task += 1
            if len(sends) > 8:
                MPI.Request.waitall(sends)
                sends = []
    # The stop: every worker answers it with an empty result.
    irecvs = [post_result_irecv(w, buffers) for w in workers]
    sends += [comm.isend(None, dest=w, tag=TASK) for w in workers]
    if any(value is not None for value in MPI.Request.waitall(irecvs)):
        raise SystemExit("a result after the stop")
    MPI.Request.waitall(sends)
    for task in sorted(results):
        value = results[task]
        out.write(f"task {task} worker-independent sum {sum(value['values']):.6e} n {len(value['values'])}\n")
    return sum(sum(v["values"]) for v in results.values())


def worker():
    done = 0
    while True:
        request = comm.irecv(source=0, tag=TASK)
        while True:
            flag, task = request.test()
            if flag:
                break
            compute(0.002)
        if task is None:
            comm.isend(None, dest=0, tag=RESULT).wait()
            break
        compute(0.03)
        comm.isend(result_of(task), dest=0, tag=RESULT).wait()
        done += 1
    out.write("stopped\n")
    return done


total = master() if rank == 0 else worker()
out.close()
done = comm.reduce(total if rank else 0, op=MPI.SUM, root=0)
if rank == 0:
    print(f"final sum of results {total:.6e}, tasks done {done}")
