"""Randomized MPI traffic with end-to-end checks (issue 14, "Tests").

argv: SEED STEPS [PAUSE]. Runs STEPS steps, sleeping PAUSE s (default 0.02)
after each.

Every step, every rank draws the same plan from random.Random(f"{SEED}:{step}")
(so a restarted rank, whose state is that of the checkpoint, makes the same
choices): a few segments, each one of

* comm: a Split (random colours, some ranks MPI.UNDEFINED, random keys) or a
  Dup of a communicator of the pool, or a Free of one;
* exchange: many messages at once between random pairs of members of random
  communicators, random tags, sizes from empty to rendezvous-sized, NumPy
  buffers (uppercase methods: BYTE, INT32, DOUBLE or a derived contiguous
  type) or pickled objects (lowercase methods). Deadlock-free by
  construction: (a) every rank pre-posts Irecvs for the "pre" channels;
  (b) sends all its messages: Send/Ssend/Isend/Issend to pre-posted
  receives, only nonblocking sends (Isend/Issend/isend/issend) otherwise;
  (c) receives the others with Recv, recv, Probe/Iprobe/Mprobe/Improbe
  then receive, Irecv+Wait/Test, Sendrecv (whose send half goes to a
  pre-posted receive), and on one "wild" communicator of the segment only
  wildcard receives (ANY_SOURCE and/or ANY_TAG); then completes its
  requests (Waitall, Waitany, Waitsome, Testall or Wait loops); then a
  Barrier or Allreduce on world, so that no message of a later segment can
  meet a wildcard receive of this one;
* chain: a list of blocking pairwise operations that every rank runs in
  the same global order, doing its own part (Send/Ssend/send/ssend and
  Recv/recv with or without ANY_TAG, probes, Sendrecv, sendrecv,
  Sendrecv_replace): the first unfinished operation always has both its
  ranks at it, so the chain cannot deadlock;
* coll: a collective (Barrier, Bcast, Reduce, Allreduce, Gather(v),
  Scatter, Allgather, Alltoall, Scan, Exscan, Reduce_scatter_block, and
  the lowercase ones) on every communicator of a pool entry.

Every message carries (sender, communicator, tag, per-channel sequence
number, payload checksum). A receiver checks that the sequence numbers of
each (sender, communicator, tag) arrive one by one in order (MPI's
non-overtaking rule: nothing lost, duplicated or reordered), the checksum,
and at the end of each segment that every planned message arrived;
collective results are checked against what the plan says they must be. A
violation prints "TRAFFIC VIOLATION" with the rank, step, seed and details
on stderr and aborts the job (exit status non-zero).

Each rank writes what it received, step by step, to out.<rank>: the
messages of an exchange sorted by channel (the order across channels of
wildcard receives depends on timing; within a channel it is MPI's), the
chain's in order, the collectives' results. Rank 0 prints one final line.
"""
import random
import sys
import time
import zlib

import numpy as np
from mpi4py import MPI

world = MPI.COMM_WORLD
me = world.Get_rank()
nranks = world.Get_size()
SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 1
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 100
PAUSE = float(sys.argv[3]) if len(sys.argv) > 3 else 0.02
print(f"program start: rank {me}", file=sys.stderr, flush=True)
out = open(f"out.{me}", "w")

MAGIC = 0x7472616666696321
HEADER = 8  # int64 words: magic, sender, comm, tag, seq, crc, payload bytes, 0 (a whole number of PAIRs)
HEADER_BYTES = 8 * HEADER
PAIR = MPI.INT64_T.Create_contiguous(2).Commit()  # a derived datatype in the heap
DTYPES = {"byte": (np.uint8, MPI.BYTE, 1), "int32": (np.int32, MPI.INT32_T, 4),
          "double": (np.float64, MPI.DOUBLE, 8), "pair": (np.int64, PAIR, 16)}
SIZES = [0, 8, 64, 512, 2048, 8192, 40000, 160000]
SIZE_WEIGHTS = [3, 6, 6, 5, 3, 2, 1, 0.3]
TAGS = 4
SENDRECV_TAG = 100  # + index: a channel of its own for a Sendrecv's send half


def violation(step, details):
    text = f"TRAFFIC VIOLATION rank {me} step {step} seed {SEED}: {details}"
    print(text, file=sys.stderr, flush=True)
    out.write(text + "\n")
    out.flush()
    world.Abort(3)


class Entry:
    """A pool entry: communicators made by one call on every rank. groups:
    the members (world ranks, in communicator rank order) of each
    communicator made; comm: this rank's (COMM_NULL if in none)."""

    def __init__(self, name, groups, comm):
        self.name = name
        self.groups = groups
        self.comm = comm
        self.group = next((g for g in groups if me in g), None)

    def pairs(self):
        return [g for g in self.groups if len(g) >= 2]


pool = [Entry(0, [list(range(nranks))], world)]
next_entry_name = 1
sent = {}      # (entry, dst, tag) -> messages this rank sent on that channel
received = {}  # (entry, src, tag) -> messages this rank received on that channel
planned = {}   # (entry, src, tag) -> messages the plan sent to this rank on it
total_received = 0


# ---------------------------------------------------------------- messages

def payload_bytes(step, seg, index, size):
    return random.Random(f"{SEED}:{step}:{seg}:{index}").randbytes(size)


def make_message(msg, step):
    """The message `msg` of the plan as this rank sends it now: a NumPy
    array (header + payload) or a tuple to pickle; counts its sequence
    number."""
    channel = (msg["entry"], msg["dst"], msg["tag"])
    seq = sent.get(channel, 0) + 1
    sent[channel] = seq
    payload = payload_bytes(step, msg["seg"], msg["index"], msg["size"])
    crc = zlib.crc32(payload)
    if msg["kind"] == "P":
        extra = [msg["index"], step, seq]
        return ("traffic", me, msg["entry"], msg["tag"], seq, crc ^ zlib.crc32(repr(extra).encode()),
                payload, extra)
    data = np.empty(HEADER_BYTES + msg["size"], np.uint8)
    data[:HEADER_BYTES].view(np.int64)[:] = [MAGIC, me, msg["entry"], msg["tag"], seq, crc, msg["size"], 0]
    data[HEADER_BYTES:] = np.frombuffer(payload, np.uint8)
    return data


def typed(data, dtype):
    """[buffer, count, datatype] of a NumPy message with the plan's datatype."""
    np_type, mpi_type, unit = DTYPES[dtype]
    return [data.view(np_type), data.nbytes // unit, mpi_type]


def receive_buffer(nbytes):
    return np.zeros(nbytes, np.uint8)


def accept(step, where, entry, source, tag, message, nbytes=None):
    """Checks a received message (source and tag in world ranks as MPI
    reported them; nbytes: the received count for a buffer) and records it;
    returns its log line."""
    global total_received
    if isinstance(message, np.ndarray):
        data = message[:nbytes] if nbytes is not None else message
        if data.nbytes < HEADER_BYTES:
            violation(step, f"{where}: a {data.nbytes}-byte buffer message from {source} tag {tag}")
        magic, sender, comm, mtag, seq, crc, size, _ = (int(x) for x in data[:HEADER_BYTES].view(np.int64))
        body = data[HEADER_BYTES:].tobytes()
        ok = magic == MAGIC and size == len(body) and zlib.crc32(body) == crc
        kind = "B"
    else:
        if not (isinstance(message, tuple) and len(message) == 8 and message[0] == "traffic"):
            violation(step, f"{where}: not a traffic message from {source} tag {tag}: {message!r:.200}")
        _, sender, comm, mtag, seq, crc, body, extra = message
        size = len(body)
        ok = zlib.crc32(body) ^ zlib.crc32(repr(extra).encode()) == crc
        kind = "P"
    if not ok:
        violation(step, f"{where}: bad checksum or length: {kind} message from {source} tag {tag} on entry "
                        f"{entry.name} (header: sender {sender} comm {comm} tag {mtag} seq {seq} size {size})")
    if (sender, comm, mtag) != (source, entry.name, tag):
        violation(step, f"{where}: message says sender {sender} comm {comm} tag {mtag} seq {seq}, MPI says "
                        f"source {source} comm {entry.name} tag {tag}")
    channel = (comm, sender, mtag)
    expected = received.get(channel, 0) + 1
    if seq != expected:
        what = "lost (a gap)" if seq > expected else "duplicated or reordered"
        violation(step, f"{where}: {what}: from {sender} on entry {comm} tag {mtag} got seq {seq}, "
                        f"expected {expected}")
    if seq > planned.get(channel, 0):
        violation(step, f"{where}: from {sender} on entry {comm} tag {mtag} seq {seq}: more messages than "
                        f"planned ({planned.get(channel, 0)})")
    received[channel] = seq
    total_received += 1
    return f"from {sender} comm {comm} tag {mtag} seq {seq} {kind} {size} crc {crc:08x}"


def world_rank(entry, comm_rank):
    return entry.group[comm_rank]


def check_all_arrived(step, where, channels):
    for channel in sorted(channels):
        if received.get(channel, 0) != planned[channel]:
            violation(step, f"{where}: from {channel[1]} on entry {channel[0]} tag {channel[2]}: "
                            f"{received.get(channel, 0)} received of {planned[channel]} sent (lost)")


# -------------------------------------------------------------------- plan

def plan_comm(rng, seg):
    extra = len(pool) - 1
    action = rng.choice(["split", "dup", "free"] if extra else ["split", "dup"])
    if extra >= 5:
        action = "free"
    if action == "free":
        return {"kind": "comm", "action": "free", "entry": rng.randrange(1, len(pool))}
    parent = rng.randrange(len(pool))
    if action == "dup":
        return {"kind": "comm", "action": "dup", "parent": parent}
    colours = [MPI.UNDEFINED if rng.random() < 0.15 else rng.randrange(3) for _ in range(nranks)]
    keys = [rng.randrange(10) for _ in range(nranks)]
    return {"kind": "comm", "action": "split", "parent": parent, "colours": colours, "keys": keys}


def random_pair(rng):
    """(entry index, src, dst) of a random pair of members of a random
    communicator of the pool (world has one for any job of 2+ ranks)."""
    entry = rng.choice([i for i, e in enumerate(pool) if e.pairs()])
    group = rng.choice(pool[entry].pairs())
    src, dst = rng.sample(group, 2)
    return entry, src, dst


def random_size(rng, unit=8):
    size = rng.choices(SIZES, SIZE_WEIGHTS)[0]
    return size - size % unit


B_POST_RECV = ["Recv", "Probe", "Iprobe", "Mprobe", "Improbe", "Irecv-Wait", "Irecv-Test", "Sendrecv"]
P_POST_RECV = ["recv", "probe", "iprobe", "mprobe", "improbe"]
B_WILD_RECV = ["Recv-any", "Recv-anysource", "Recv-anytag", "Probe-any", "Iprobe-any", "Mprobe-any",
               "Irecv-any"]
P_WILD_RECV = ["recv-any", "recv-anysource", "recv-anytag", "probe-any", "mprobe-any", "improbe-any"]
COMPLETIONS = ["Waitall", "Waitany", "Waitsome", "Testall", "Wait-reversed"]


def plan_exchange(rng, seg):
    wild = rng.choice([None] + [e.name for e in pool if e.pairs()])
    wild_kind = rng.choice("BP")
    # Every message of a channel (entry, src, dst, tag) has its channel's
    # way ("pre": a pre-posted Irecv matches it; "post"), kind and datatype:
    # MPI matches a channel's messages in order, so the receiver sizes
    # buffers by the plan's order, and a pre-posted Irecv must match a
    # message sent to it.
    channels = {}
    messages = []
    for index in range(rng.randint(1, 3 * nranks)):
        entry, src, dst = random_pair(rng)
        tag = rng.randrange(TAGS)
        msg = {"seg": seg, "index": index, "entry": pool[entry].name, "src": src, "dst": dst, "tag": tag}
        if pool[entry].name == wild:
            msg.update(kind=wild_kind, pre=False, dtype="byte" if wild_kind == "B" else None,
                       size=random_size(rng),
                       send=rng.choice(["Isend", "Issend"] if wild_kind == "B" else ["isend", "issend"]),
                       recv=rng.choice(B_WILD_RECV if wild_kind == "B" else P_WILD_RECV))
        else:
            if (entry, src, dst, tag) not in channels:
                pre = rng.random() < 0.4
                kind = "B" if pre else rng.choice("BP")
                channels[entry, src, dst, tag] = (pre, kind, rng.choice(list(DTYPES)) if kind == "B" else None)
            pre, kind, dtype = channels[entry, src, dst, tag]
            msg.update(kind=kind, pre=pre, dtype=dtype, size=random_size(rng, max(DTYPES[dtype][2], 8) if dtype
                                                                             else 8))
            if pre:
                msg.update(send=rng.choice(["Send", "Ssend", "Isend", "Issend"]), recv="Irecv-pre")
            elif kind == "B":
                msg.update(send=rng.choice(["Isend", "Issend"]), recv=rng.choice(B_POST_RECV))
            else:
                msg.update(send=rng.choice(["isend", "issend"]), recv=rng.choice(P_POST_RECV))
        messages.append(msg)
    # A Sendrecv receives a "post" message and sends a new one on a channel
    # of its own that the peer pre-posted a receive for.
    for msg in list(messages):
        if msg["recv"] == "Sendrecv":
            entry = entry_named(msg["entry"])
            group = next(g for g in entry.groups if msg["dst"] in g)
            partner = {"seg": seg, "index": len(messages), "entry": msg["entry"], "src": msg["dst"],
                       "dst": rng.choice([r for r in group if r != msg["dst"]]),
                       "tag": SENDRECV_TAG + len(messages), "kind": "B", "pre": True, "dtype": msg["dtype"],
                       "size": random_size(rng, max(DTYPES[msg["dtype"]][2], 8)), "send": "Sendrecv-half",
                       "recv": "Irecv-pre"}
            msg["partner"] = partner["index"]
            messages.append(partner)
    order = list(range(len(messages)))
    rng.shuffle(order)  # the order of phase (c)'s receives
    return {"kind": "exchange", "messages": messages, "wild": wild, "order": order,
            "completion": rng.choice(COMPLETIONS), "closing": rng.choice(["Barrier", "Allreduce"])}


B_CHAIN_SEND = ["Send", "Ssend", "Isend-Wait", "Issend-Wait"]
P_CHAIN_SEND = ["send", "ssend", "isend-wait"]
B_CHAIN_RECV = ["Recv", "Recv-anytag", "Probe", "Iprobe", "Irecv-Wait", "Irecv-Test", "Mprobe", "Improbe"]
P_CHAIN_RECV = ["recv", "recv-anytag", "probe", "mprobe", "improbe"]


def plan_chain(rng, seg):
    ops = []
    for index in range(rng.randint(1, 2 * nranks)):
        entry, src, dst = random_pair(rng)
        kind = rng.choice("BP")
        op = {"seg": seg, "index": index, "entry": pool[entry].name, "src": src, "dst": dst,
              "tag": rng.randrange(TAGS), "kind": kind, "pre": False}
        if kind == "B":
            op["dtype"] = rng.choice(list(DTYPES))
            op["size"] = random_size(rng, max(DTYPES[op["dtype"]][2], 8))
        else:
            op.update(dtype=None, size=random_size(rng))
        if rng.random() < 0.25:
            # Both ranks exchange at once: each sends one message to the other.
            op["op"] = rng.choice(["Sendrecv", "Sendrecv_replace"] if kind == "B" else ["sendrecv"])
        else:
            op["op"] = "p2p"
            op["send"] = rng.choice(B_CHAIN_SEND if kind == "B" else P_CHAIN_SEND)
            op["recv"] = rng.choice(B_CHAIN_RECV if kind == "B" else P_CHAIN_RECV)
        ops.append(op)
    return {"kind": "chain", "ops": ops}


B_COLLECTIVES = ["Barrier", "Bcast", "Reduce", "Allreduce", "Allreduce-inplace", "Gather", "Gatherv", "Scatter",
                 "Allgather", "Alltoall", "Scan", "Exscan", "Reduce_scatter_block"]
P_COLLECTIVES = ["barrier", "bcast", "reduce", "allreduce", "gather", "scatter", "allgather", "alltoall", "scan"]
OPS = {"SUM": (MPI.SUM, sum), "MAX": (MPI.MAX, max), "MIN": (MPI.MIN, min)}


def plan_coll(rng, seg):
    entry = rng.randrange(len(pool))
    return {"kind": "coll", "seg": seg, "entry": pool[entry].name,
            "name": rng.choice(B_COLLECTIVES + P_COLLECTIVES), "count": rng.choice([0, 1, 1, 2, 3, 5]),
            "root": rng.random(), "op": rng.choice(list(OPS))}


# ------------------------------------------------------- running a segment

def entry_named(name):
    return next(e for e in pool if e.name == name)


def run_comm(step, where, seg):
    global next_entry_name
    if seg["action"] == "free":
        entry = pool.pop(seg["entry"])
        if entry.comm != MPI.COMM_NULL:
            entry.comm.Free()
        return [f"free entry {entry.name}"]
    parent = pool[seg["parent"]]
    name = next_entry_name
    next_entry_name += 1
    if seg["action"] == "dup":
        comm = parent.comm.Dup() if parent.comm != MPI.COMM_NULL else MPI.COMM_NULL
        pool.append(Entry(name, [list(g) for g in parent.groups], comm))
    else:
        colours, keys = seg["colours"], seg["keys"]
        groups = []
        for g in parent.groups:
            for colour in sorted({colours[r] for r in g} - {MPI.UNDEFINED}):
                members = [r for r in g if colours[r] == colour]
                groups.append(sorted(members, key=lambda r: (keys[r], g.index(r))))
        comm = MPI.COMM_NULL
        if parent.comm != MPI.COMM_NULL:
            comm = parent.comm.Split(colours[me], keys[me])
        pool.append(Entry(name, groups, comm))
    entry = pool[-1]
    if entry.group is not None and entry.comm.Get_size() != len(entry.group):
        violation(step, f"entry {name}: communicator of {entry.comm.Get_size()} ranks, plan says {entry.group}")
    if entry.group is not None and entry.comm.Get_rank() != entry.group.index(me):
        violation(step, f"entry {name}: rank {entry.comm.Get_rank()}, plan says {entry.group.index(me)}")
    return [f"{seg['action']} of entry {parent.name} -> entry {name} {entry.groups}"]


def comm_rank(entry, world_rank_):
    return entry.group.index(world_rank_)


def send_message(step, msg, entry):
    data = make_message(msg, step)
    dest = comm_rank(entry, msg["dst"])
    # msg["send"] names the mpi4py method: isend, issend, send, ssend
    # (pickled) or Isend, Issend, Send, Ssend (buffer); a "-Wait"/"-wait"
    # suffix says the caller then waits on the request.
    method = getattr(entry.comm, msg["send"].split("-")[0])
    payload = data if msg["kind"] == "P" else typed(data, msg["dtype"])
    return method(payload, dest, msg["tag"])


def poll_until(test):
    """Iprobe/Improbe/Test loops: a little sleep between polls leaves the
    (oversubscribed) cores to the peers."""
    while True:
        result = test()
        if result:
            return result
        time.sleep(0.0003)


def receive_specific(step, where, entry, msg, how):
    """Receives the next message of msg's channel as `how` says; returns the
    log line. Buffer sizes come from msg (the channel's next message in the
    plan: MPI matches a channel's messages in order)."""
    comm, source, tag = entry.comm, comm_rank(entry, msg["src"]), msg["tag"]
    status = MPI.Status()
    if msg["kind"] == "P":
        recv_tag = MPI.ANY_TAG if how.endswith("anytag") else tag
        if how in ("recv", "recv-anytag"):
            obj = comm.recv(None, source, recv_tag, status)
        elif how == "probe":
            comm.probe(source, tag, status)
            obj = comm.recv(None, status.Get_source(), status.Get_tag())
        elif how == "iprobe":
            poll_until(lambda: comm.iprobe(source, tag, status))
            obj = comm.recv(None, status.Get_source(), status.Get_tag())
        elif how == "mprobe":
            obj = comm.mprobe(source, tag, status).recv()
        elif how == "improbe":
            obj = poll_until(lambda: comm.improbe(source, tag, status)).recv()
        else:
            raise ValueError(how)
        return accept(step, where, entry, world_rank(entry, status.Get_source()), status.Get_tag(), obj)
    data = receive_buffer(HEADER_BYTES + msg["size"])
    buf = typed(data, msg["dtype"])
    if how in ("Recv", "Recv-anytag"):
        comm.Recv(buf, source, MPI.ANY_TAG if how == "Recv-anytag" else tag, status)
    elif how == "Probe":
        comm.Probe(source, tag, status)
        comm.Recv(buf, status.Get_source(), status.Get_tag(), status)
    elif how == "Iprobe":
        poll_until(lambda: comm.Iprobe(source, tag, status))
        comm.Recv(buf, status.Get_source(), status.Get_tag(), status)
    elif how == "Mprobe":
        comm.Mprobe(source, tag, status).Recv(buf, status)
    elif how == "Improbe":
        poll_until(lambda: comm.Improbe(source, tag, status)).Recv(buf, status)
    elif how == "Irecv-Wait":
        comm.Irecv(buf, source, tag).Wait(status)
    elif how == "Irecv-Test":
        request = comm.Irecv(buf, source, tag)
        poll_until(lambda: request.Test(status))
    else:
        raise ValueError(how)
    return accept(step, where, entry, world_rank(entry, status.Get_source()), status.Get_tag(), data,
                  status.Get_count(MPI.BYTE))


def receive_wild(step, where, entry, how, remaining, largest):
    """One wildcard receive on the segment's wild communicator. remaining:
    (src, tag) of the wild messages to this rank not received yet, in plan
    order; a receive naming a source or a tag names those of the first.
    largest: the largest of them in bytes (for receives without a probe)."""
    comm = entry.comm
    source = comm_rank(entry, remaining[0][0]) if how.endswith("anytag") else MPI.ANY_SOURCE
    tag = remaining[0][1] if how.endswith("anysource") else MPI.ANY_TAG
    status = MPI.Status()
    if how.startswith("recv"):
        message = comm.recv(None, source, tag, status)
    elif how == "probe-any":
        comm.probe(source, tag, status)
        message = comm.recv(None, status.Get_source(), status.Get_tag())
    elif how == "mprobe-any":
        message = comm.mprobe(source, tag, status).recv()
    elif how == "improbe-any":
        message = poll_until(lambda: comm.improbe(source, tag, status)).recv()
    elif how == "Mprobe-any":
        matched = comm.Mprobe(source, tag, status)
        message = receive_buffer(status.Get_count(MPI.BYTE))
        matched.Recv([message, MPI.BYTE], status)
    elif how in ("Probe-any", "Iprobe-any"):
        if how == "Probe-any":
            comm.Probe(source, tag, status)
        else:
            poll_until(lambda: comm.Iprobe(source, tag, status))
        message = receive_buffer(status.Get_count(MPI.BYTE))
        comm.Recv([message, MPI.BYTE], status.Get_source(), status.Get_tag(), status)
    elif how == "Irecv-any":
        message = receive_buffer(largest)
        comm.Irecv([message, MPI.BYTE], source, tag).Wait(status)
    elif how.startswith("Recv"):
        message = receive_buffer(largest)
        comm.Recv([message, MPI.BYTE], source, tag, status)
    else:
        raise ValueError(how)
    got = (world_rank(entry, status.Get_source()), status.Get_tag())
    nbytes = status.Get_count(MPI.BYTE) if isinstance(message, np.ndarray) else None
    line = accept(step, where, entry, got[0], got[1], message, nbytes)
    remaining.remove(got)
    return line


def count_planned(entry_name, src, dst, tag):
    if dst == me:
        planned[entry_name, src, tag] = planned.get((entry_name, src, tag), 0) + 1
        return {(entry_name, src, tag)}
    return set()


def complete(requests, how):
    """Completes the requests in one of MPI's ways."""
    if how == "Waitall":
        MPI.Request.Waitall(requests)
    elif how == "Waitany":
        while MPI.Request.Waitany(requests) != MPI.UNDEFINED:
            pass
    elif how == "Waitsome":
        while MPI.Request.Waitsome(requests) is not None:
            pass
    elif how == "Testall":
        poll_until(lambda: MPI.Request.Testall(requests))
    else:
        for request in reversed(requests):
            request.Wait()


def run_exchange(step, where, seg):
    messages = seg["messages"]
    incoming = set()
    for msg in messages:
        incoming |= count_planned(msg["entry"], msg["src"], msg["dst"], msg["tag"])
    # (a) Irecvs of the pre-posted channels, in plan order (each channel's
    # messages are sent in plan order).
    pre_posted = []
    for msg in messages:
        if msg["dst"] == me and msg["pre"]:
            entry = entry_named(msg["entry"])
            data = receive_buffer(HEADER_BYTES + msg["size"])
            request = entry.comm.Irecv(typed(data, msg["dtype"]), comm_rank(entry, msg["src"]), msg["tag"])
            pre_posted.append((request, data, msg))
    # (b) every message of this rank but the Sendrecvs' send halves.
    requests = []
    for msg in messages:
        if msg["src"] == me and msg["send"] != "Sendrecv-half":
            request = send_message(step, msg, entry_named(msg["entry"]))
            if request is not None:
                requests.append(request)
    # (c) the other receives, in the plan's shuffled order.
    next_of_channel = {}  # (entry, src, tag) -> this rank's messages on it not received, plan order
    wild_remaining = []
    for msg in messages:
        if msg["dst"] == me and not msg["pre"]:
            if msg["entry"] == seg["wild"]:
                wild_remaining.append((msg["src"], msg["tag"]))
            else:
                next_of_channel.setdefault((msg["entry"], msg["src"], msg["tag"]), []).append(msg)
    largest = HEADER_BYTES + max([m["size"] for m in messages if m["dst"] == me], default=0)
    lines = []
    for index in seg["order"]:
        msg = messages[index]
        if msg["dst"] != me or msg["pre"]:
            continue
        entry = entry_named(msg["entry"])
        if msg["entry"] == seg["wild"]:
            lines.append(receive_wild(step, where, entry, msg["recv"], wild_remaining, largest))
            continue
        channel_next = next_of_channel[msg["entry"], msg["src"], msg["tag"]].pop(0)
        if msg["recv"] != "Sendrecv":
            lines.append(receive_specific(step, where, entry, channel_next, msg["recv"]))
            continue
        partner = messages[msg["partner"]]
        data = receive_buffer(HEADER_BYTES + channel_next["size"])
        status = MPI.Status()
        entry.comm.Sendrecv(typed(make_message(partner, step), partner["dtype"]), comm_rank(entry, partner["dst"]),
                            partner["tag"], typed(data, msg["dtype"]), comm_rank(entry, msg["src"]), msg["tag"],
                            status)
        lines.append(accept(step, where, entry, world_rank(entry, status.Get_source()), status.Get_tag(), data,
                            status.Get_count(MPI.BYTE)))
    complete(requests + [request for request, _, _ in pre_posted], seg["completion"])
    for request, data, msg in pre_posted:
        lines.append(accept(step, where, entry_named(msg["entry"]), msg["src"], msg["tag"], data))
    check_all_arrived(step, where, incoming)
    lines.sort()  # wildcard receives take the channels in the order they arrive
    if seg["closing"] == "Barrier":
        world.Barrier()
        lines.append("closing Barrier")
    else:
        total = np.zeros(1, np.int64)
        world.Allreduce(np.array([total_received], np.int64), total, MPI.SUM)
        lines.append(f"closing Allreduce: {int(total[0])} messages received by all so far")
    return lines


def run_chain(step, where, seg):
    incoming = set()
    for op in seg["ops"]:
        incoming |= count_planned(op["entry"], op["src"], op["dst"], op["tag"])
        if op["op"] != "p2p":
            incoming |= count_planned(op["entry"], op["dst"], op["src"], op["tag"])
    lines = []
    for op in seg["ops"]:
        if me not in (op["src"], op["dst"]):
            continue
        entry = entry_named(op["entry"])
        if op["op"] == "p2p":
            if me == op["src"]:
                request = send_message(step, op, entry)
                if request is not None:
                    request.Wait()
            else:
                lines.append(receive_specific(step, where, entry, op, op["recv"]))
            continue
        other = op["dst"] if me == op["src"] else op["src"]
        mine = dict(op, src=me, dst=other)
        peer, tag, comm, status = comm_rank(entry, other), op["tag"], entry.comm, MPI.Status()
        if op["op"] == "sendrecv":
            got = comm.sendrecv(make_message(mine, step), peer, tag, None, peer, tag, status)
            nbytes = None
        elif op["op"] == "Sendrecv":
            got = receive_buffer(HEADER_BYTES + op["size"])
            comm.Sendrecv(typed(make_message(mine, step), op["dtype"]), peer, tag, typed(got, op["dtype"]), peer,
                          tag, status)
            nbytes = status.Get_count(MPI.BYTE)
        else:
            got = make_message(mine, step)
            comm.Sendrecv_replace(typed(got, op["dtype"]), peer, tag, peer, tag, status)
            nbytes = status.Get_count(MPI.BYTE)
        lines.append(accept(step, where, entry, world_rank(entry, status.Get_source()), status.Get_tag(), got,
                            nbytes))
    check_all_arrived(step, where, incoming)
    return lines


def run_coll(step, where, seg):
    entry = entry_named(seg["entry"])
    if entry.group is None:
        return [f"{seg['name']} on entry {entry.name}: not a member"]
    comm, group, count, name = entry.comm, entry.group, seg["count"], seg["name"]
    n, r = len(group), group.index(me)
    root = int(seg["root"] * n)
    mpi_op, fold = OPS[seg["op"]]

    def values(world_rank_, count_=count, offset=0):
        return [(SEED * 7919 + step * 104729 + seg["seg"] * 1299709 + world_rank_ * 15485863 + (offset + i) * 32452843)
                % 1000003 - 500000 for i in range(count_)]

    def array(items):
        return np.array(items, np.int64)

    def folded(lists):
        return [fold(column) for column in zip(*lists)] if lists else []

    mine = array(values(me))
    result = expected = None
    if name in ("Barrier", "barrier"):
        comm.Barrier() if name == "Barrier" else comm.barrier()
        result = expected = "done"
    elif name == "Bcast":
        result = mine.copy() if r == root else np.zeros(count, np.int64)
        comm.Bcast(result, root)
        expected = values(group[root])
    elif name == "Reduce":
        result = np.zeros(count, np.int64) if r == root else None
        comm.Reduce(mine, result, mpi_op, root)
        expected = folded([values(w) for w in group]) if r == root else None
    elif name == "Allreduce":
        result = np.zeros(count, np.int64)
        comm.Allreduce(mine, result, mpi_op)
        expected = folded([values(w) for w in group])
    elif name == "Allreduce-inplace":
        result = mine.copy()
        comm.Allreduce(MPI.IN_PLACE, result, mpi_op)
        expected = folded([values(w) for w in group])
    elif name == "Gather":
        result = np.zeros(n * count, np.int64) if r == root else None
        comm.Gather(mine, result, root)
        expected = sum((values(w) for w in group), []) if r == root else None
    elif name == "Gatherv":
        counts = [(count + j) % 4 for j in range(n)]
        result = np.zeros(sum(counts), np.int64) if r == root else None
        comm.Gatherv(array(values(me, counts[r])), [result, counts] if r == root else None, root)
        expected = sum((values(w, counts[j]) for j, w in enumerate(group)), []) if r == root else None
    elif name == "Scatter":
        result = np.zeros(count, np.int64)
        comm.Scatter(array(values(me, n * count)) if r == root else None, result, root)
        expected = values(group[root], count, r * count)
    elif name == "Allgather":
        result = np.zeros(n * count, np.int64)
        comm.Allgather(mine, result)
        expected = sum((values(w) for w in group), [])
    elif name == "Alltoall":
        result = np.zeros(n * count, np.int64)
        comm.Alltoall(array(values(me, n * count)), result)
        expected = sum((values(w, count, r * count) for w in group), [])
    elif name in ("Scan", "Exscan"):
        result = np.zeros(count, np.int64)
        getattr(comm, name)(mine, result, mpi_op)
        below = group[:r + 1] if name == "Scan" else group[:r]
        expected = folded([values(w) for w in below]) if below else None  # Exscan: undefined at rank 0
        if expected is None:
            result = None
    elif name == "Reduce_scatter_block":
        result = np.zeros(count, np.int64)
        comm.Reduce_scatter_block(array(values(me, n * count)), result, mpi_op)
        expected = folded([values(w, count, r * count) for w in group])
    else:
        mine_int = sum(values(me, 1))
        if name == "bcast":
            result = comm.bcast({"from": me, "values": values(me)} if r == root else None, root)
            expected = {"from": group[root], "values": values(group[root])}
        elif name == "reduce":
            result = comm.reduce(mine_int, mpi_op, root)
            expected = fold(sum(values(w, 1)) for w in group) if r == root else None
        elif name == "allreduce":
            result = comm.allreduce(mine_int, mpi_op)
            expected = fold(sum(values(w, 1)) for w in group)
        elif name == "gather":
            result = comm.gather((me, values(me)), root)
            expected = [(w, values(w)) for w in group] if r == root else None
        elif name == "scatter":
            result = comm.scatter([(w, values(me, j + 1)) for j, w in enumerate(group)] if r == root else None, root)
            expected = (me, values(group[root], r + 1))
        elif name == "allgather":
            result = comm.allgather((me, values(me)))
            expected = [(w, values(w)) for w in group]
        elif name == "alltoall":
            result = comm.alltoall([(me, w, values(me, 1, j)) for j, w in enumerate(group)])
            expected = [(w, me, values(w, 1, r)) for w in group]
        elif name == "scan":
            result = comm.scan(mine_int, mpi_op)
            expected = fold(sum(values(w, 1)) for w in group[:r + 1])
        else:
            raise ValueError(name)
    if isinstance(result, np.ndarray):
        result = result.tolist()
    if result != expected:
        violation(step, f"{where}: {name} ({seg['op']}, count {count}, root {root}) on entry {entry.name} "
                        f"{group}: got {result}, expected {expected}")
    return [f"{name} {seg['op']} count {count} root {root} on entry {entry.name} {group}: {result}"]


# -------------------------------------------------------------------- main

for step in range(STEPS):
    # The plan of each segment is drawn when the segment begins: a comm
    # segment changes the pool the next segments draw from.
    rng = random.Random(f"{SEED}:{step}")
    lines = []
    for index in range(rng.randint(1, 4)):
        kind = rng.choices(["comm", "exchange", "chain", "coll"], [1, 4, 3, 3])[0]
        seg = globals()[f"plan_{kind}"](rng, index)
        where = f"segment {index} ({kind})"
        lines += [f"step {step} seg {index} {kind}: {line}" for line in
                  globals()[f"run_{kind}"](step, where, seg)]
    out.write("\n".join(lines) + "\n")
    out.flush()
    time.sleep(PAUSE)
out.close()
messages = world.allreduce(total_received)
sent_total = world.allreduce(sum(sent.values()))
if messages != sent_total:
    violation(STEPS, f"{sent_total} messages sent in all, {messages} received")
if me == 0:
    print(f"final traffic seed {SEED} steps {STEPS}: {messages} messages, all checks passed")
