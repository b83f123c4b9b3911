"""A checkpoint is requested (the SIGUSR1 of `pyckpt run`) on the very line
where the program ends -- returning, raising, calling sys.exit, interrupted
by SIGINT -- after three checkpoints of its own. Nothing of the program is
left to capture: no checkpoint may be written after the third, and nothing
said about one."""
import signal
import sys

from ckpt import checkpoint

how = sys.argv[1]
for step in range(3):
    print("step", step, flush=True)
    checkpoint()
print("ending:", how, flush=True)
if how == "return":
    signal.raise_signal(signal.SIGUSR1)
elif how == "exception":
    signal.raise_signal(signal.SIGUSR1); raise ValueError("the program fails")  # noqa: E702
elif how == "exit":
    signal.raise_signal(signal.SIGUSR1); sys.exit(3)  # noqa: E702
elif how == "sigint":
    signal.raise_signal(signal.SIGUSR1); signal.raise_signal(signal.SIGINT)  # noqa: E702
