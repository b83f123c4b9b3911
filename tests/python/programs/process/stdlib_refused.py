"""State that cannot be captured (a hash object in a local's attribute, a
socket in a global): checkpoint() refuses it naming the variable, the frame,
the type and pyckpt.register_reducer; nothing is written; the program goes
on."""
import hashlib
import socket
import sys

import pyckpt


class Job:
    def __init__(self, data):
        self.digest = hashlib.sha256(data)


def attempt():
    try:
        pyckpt.checkpoint()
        print("no error")
    except pyckpt.UnsupportedStateError as e:
        print(f"refused: {e}")


def compute(data):
    job = Job(data)
    attempt()
    return job.digest.hexdigest()[:8]


if sys.argv[1] == "local":
    print(compute(b"abc"))
else:
    connection = socket.socket()
    attempt()
    connection.close()
print("continued")
