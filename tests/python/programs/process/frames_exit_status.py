"""The exit status of the resumed program: sys.exit(3) after the checkpoint,
from inside a function, with a finally block still to run."""
import sys

from ckpt import checkpoint


def finish():
    try:
        checkpoint()
        print("exiting")
        sys.exit(3)
    finally:
        print("finally ran")


finish()
print("not reached")
