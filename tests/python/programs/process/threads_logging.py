"""A logging.handlers.QueueListener thread writes the program's log records
to a file while the main thread computes and logs through a QueueHandler
on the logger "app"; the listener waits in Queue.get() between records. At
the end the listener is stopped (joined) and the log file printed.
argv: STEPS [--api: checkpoint() every 10 steps]."""
import logging
import logging.handlers
import os
import queue
import sys

import ckpt

steps = int(sys.argv[1])
api = "--api" in sys.argv
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "threads_logging.log")
records = queue.Queue()
to_file = logging.FileHandler(path, mode="w")
to_file.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
listener = logging.handlers.QueueListener(records, to_file)
listener.start()
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log.propagate = False
log.addHandler(logging.handlers.QueueHandler(records))

total = 0
for step in range(steps):
    for i in range(20000):
        total = (total * 31 + i) % 1000003
    log.info("step %d total %d", step, total)
    if step % 10 == 0:
        log.warning("checkpointable at step %d", step)
        print(f"step {step} {total}", flush=True)
    if api and step % 10 == 9:
        ckpt.checkpoint()

listener.stop()
to_file.close()
with open(path) as f:
    print(f.read(), end="")
print("listener", listener._thread, "done")
