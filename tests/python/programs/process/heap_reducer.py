"""pyckpt.register_reducer: application-specific capture of a type pickle
cannot handle (an object holding a lock and a socket-like OS resource,
rebuilt from its saved settings)."""
import os
import threading

import pyckpt
from ckpt import checkpoint


class Channel:
    """Holds a pipe (not picklable): saved as its settings, reopened on load."""

    def __init__(self, name, sent=0):
        self.name, self.sent = name, sent
        self.read_fd, self.write_fd = os.pipe()
        self.lock = threading.Lock()

    def send(self, data):
        with self.lock:
            os.write(self.write_fd, data)
            self.sent += 1
            return os.read(self.read_fd, 100)


def save_channel(ch):
    return (ch.name, ch.sent)


def load_channel(saved):
    return Channel(*saved)


pyckpt.register_reducer(Channel, save_channel, load_channel)
ch = Channel("c1")
print(ch.send(b"hello"))
checkpoint()
pyckpt.register_reducer(Channel, save_channel, load_channel)  # process state: registered again
print(ch.name, ch.sent, ch.send(b"again"), ch.sent)
