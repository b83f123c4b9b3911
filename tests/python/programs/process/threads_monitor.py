"""A progress monitor thread looping on Event.wait(0.05) and a heartbeat
thread looping on time.sleep(0.02) with an RLock held (so a checkpoint
finds the RLock held by a parked thread), and a reader of the heartbeat's
count that waits for that RLock in `with` (BEFORE_WITH), while the main
thread computes. What
they record does not depend on timing (the monitor notes once that it saw
the work halfway done; both note that they stopped), printed at the end.
argv: STEPS [--api: checkpoint() every 10 steps]."""
import sys
import threading
import time

import ckpt

steps = int(sys.argv[1])
api = "--api" in sys.argv
progress = [0]
stop = threading.Event()
seen = []
beats = [0]
beat_lock = threading.RLock()


def monitor():
    halfway = False
    while not stop.wait(0.05):
        if not halfway and progress[0] >= steps // 2:
            halfway = True
            seen.append("monitor saw halfway")
    seen.append(f"monitor stopped at {progress[0]}")


def heartbeat():
    while not stop.is_set():
        with beat_lock:
            time.sleep(0.02)
            beats[0] += 1
    seen.append("heartbeat stopped")


def reader():
    read = 0
    while not stop.wait(0.01):
        with beat_lock:
            read = max(read, beats[0])
    seen.append("reader stopped")


threads = [threading.Thread(target=monitor, name="monitor", daemon=True),
           threading.Thread(target=heartbeat, name="heartbeat"), threading.Thread(target=reader, name="reader")]
for t in threads:
    t.start()

total = 0
for step in range(steps):
    for i in range(20000):
        total = (total * 31 + i) % 1000003
    progress[0] = step + 1
    print(f"step {step} {total}", flush=True)
    if api and step % 10 == 9:
        ckpt.checkpoint()

while "monitor saw halfway" not in seen:
    time.sleep(0.01)
stop.set()
for t in threads:
    t.join()
with beat_lock:
    beating = beats[0] > 0
print(seen[0], sorted(seen[1:]), beating, [t.is_alive() for t in threads], threads[0].daemon)
print("done")
