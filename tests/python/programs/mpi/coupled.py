"""Two coupled models over an intercommunicator, deterministic output per rank.

coupled.py STEPS: COMM_WORLD splits into two halves, the "ocean" (lower world
ranks) and the "atmosphere" (upper ones), each a 1-D diffusion model on its
own communicator. Intercomm_create joins them; every step

  * each rank exchanges its boundary value with the rank of the same index
    in the other model (Sendrecv on the intercommunicator, remote ranks);
  * the models swap their total heat with an Allreduce on the
    intercommunicator (each group gets the other's sum) and rank 0 of the
    ocean broadcasts a forcing to the atmosphere (Bcast with MPI_ROOT /
    MPI_PROC_NULL / the remote root);
  * every 10th step, the even world ranks (a Comm.Create_group communicator,
    made by them alone) Allreduce a diagnostic;
  * every 25th step, the merged communicator (Intercomm_merge) Allreduces a
    checksum of both models, and a lowercase (pickled) bcast on the
    intercommunicator sends a dict to the atmosphere.

Attributes: a keyval made with Comm.Create_keyval (copy function: a Dup
gets a copy) holds a per-communicator Python cache (a dict) on the model
communicator, the intercommunicator and the Create_group communicator; each
step records into them, and the output prints them. Another keyval holds an
int without Python semantics (nopython=True) on COMM_WORLD. After a restart
the same keyval numbers must hold the same values.
"""
import sys
import time

import numpy as np
from mpi4py import MPI


def copy_cache(comm, keyval, value):
    return dict(value, copied=True)


world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
print(f"program start: rank {rank}", file=sys.stderr, flush=True)
out = open(f"out.{rank}", "w")

CACHE = MPI.Comm.Create_keyval(copy_fn=copy_cache)
COUNTER = MPI.Comm.Create_keyval(nopython=True)
world.Set_attr(COUNTER, 0)

half = size // 2
ocean = rank < half
model = world.Split(0 if ocean else 1, rank)
# Local leader: rank 0 of each model; the remote leader by its rank in
# COMM_WORLD, the peer communicator.
coupler = model.Create_intercomm(0, world, half if ocean else 0, tag=7)
both = coupler.Merge(high=not ocean)
evens = world.Create_group(world.Get_group().Incl(list(range(0, size, 2)))) if rank % 2 == 0 else None
dup = model.Dup()  # after the cache is set below: copied by copy_cache

for comm, name in ((model, "model"), (coupler, "coupler")):
    comm.Set_attr(CACHE, {"name": name, "sent": 0, "sums": []})
if evens is not None:
    evens.Set_attr(CACHE, {"name": "evens", "diagnostics": []})
dup.Free()
dup = model.Dup()

n = 64
mrank, msize = model.Get_rank(), model.Get_size()
x = (mrank * n + np.arange(n)) / (msize * n)
u = np.exp(-50.0 * (x - (0.3 if ocean else 0.6)) ** 2)
forcing = np.zeros(1)
remote_sum = np.zeros(1)
boundary = np.zeros(1)
for step in range(steps):
    # Boundary exchange with the partner in the other model.
    coupler.Sendrecv(u[-1:].copy(), dest=mrank, sendtag=step % 5, recvbuf=boundary, source=mrank,
                     recvtag=step % 5)
    coupler.Get_attr(CACHE)["sent"] += 1
    u[-1] = 0.5 * (u[-1] + boundary[0])
    u[1:-1] = u[1:-1] + 0.2 * (u[:-2] - 2 * u[1:-1] + u[2:])
    local = np.array([u.sum()])
    total = np.zeros(1)
    model.Allreduce(local, total)
    coupler.Allreduce(total, remote_sum)  # the other model's total
    model.Get_attr(CACHE)["sums"].append(round(float(remote_sum[0]), 9))
    if ocean:
        forcing[0] = 1e-3 * np.sin(step)
        coupler.Bcast(forcing, root=MPI.ROOT if mrank == 0 else MPI.PROC_NULL)
    else:
        coupler.Bcast(forcing, root=0)
        u[0] += forcing[0]
    world.Set_attr(COUNTER, world.Get_attr(COUNTER) + 1)
    if step % 10 == 0 and evens is not None:
        d = np.zeros(1)
        evens.Allreduce(np.array([u.max()]), d, op=MPI.MAX)
        evens.Get_attr(CACHE)["diagnostics"].append(round(float(d[0]), 9))
    if step % 25 == 0:
        check = np.zeros(1)
        both.Allreduce(local, check)
        info = coupler.bcast({"step": step, "check": round(float(check[0]), 9)} if mrank == 0 else None,
                             root=MPI.ROOT if ocean and mrank == 0 else (MPI.PROC_NULL if ocean else 0))
        print(f"step {step}: check {check[0]:.12e} info {info}", file=out, flush=True)
    print(f"step {step}: u {u.sum():.15e} remote {remote_sum[0]:.15e} boundary {boundary[0]:.15e}", file=out,
          flush=True)
    time.sleep(0.005)

print(f"model cache {model.Get_attr(CACHE)['sent']} {model.Get_attr(CACHE)['sums'][-3:]}", file=out)
print(f"coupler cache {coupler.Get_attr(CACHE)}", file=out)
print(f"dup cache {dup.Get_attr(CACHE)['name']} copied={dup.Get_attr(CACHE).get('copied')}", file=out)
if evens is not None:
    print(f"evens cache {evens.Get_attr(CACHE)['diagnostics'][-3:]}", file=out)
print(f"counter {world.Get_attr(COUNTER)} keyvals {CACHE} {COUNTER} tag_ub {world.Get_attr(MPI.TAG_UB)}", file=out)
print(f"coupler remote size {coupler.Get_remote_size()} merged rank {both.Get_rank()}", file=out)
out.close()
print(f"program end: rank {rank}", file=sys.stderr, flush=True)
