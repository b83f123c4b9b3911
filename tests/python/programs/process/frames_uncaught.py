"""An exception raised after the checkpoint and never caught: status 1, the
traceback on stderr, output up to there on stdout."""
from ckpt import checkpoint


def fail(x):
    checkpoint()
    print("about to fail with", x)
    return {}[x]


print(fail("missing"))
