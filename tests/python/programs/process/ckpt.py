"""What the test programs call instead of pyckpt.checkpoint() (see
tests/python/process_harness.py): the same call, and with PYCKPT_TEST_CRASH
set the process dies right after every checkpoint it writes -- `exit`:
os._exit(70), `kill`: SIGKILL to itself. In a restarted process the
checkpoint() it was captured in returns True and the program goes on."""
import os
import signal

import pyckpt


def checkpoint():
    if pyckpt.checkpoint():
        return True
    crash = os.environ.get("PYCKPT_TEST_CRASH")
    if crash == "exit":
        os._exit(70)
    if crash == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return False
