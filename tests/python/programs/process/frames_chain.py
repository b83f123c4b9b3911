"""A restart chain: three checkpoints, the second and third taken by
restarted processes; state built between them accumulates."""
from ckpt import checkpoint

state = {"steps": []}


def step(i):
    state["steps"].append(i * i)
    checkpoint()
    state["steps"].append(-i)
    print("step", i, state["steps"])


for i in range(1, 4):
    step(i)
print("final", sum(state["steps"]))
