"""Deep object graphs (issue 12: a linked list ~400 long hit "maximum
recursion depth exceeded while pickling", with a 1,750-character path in the
message). The pickler runs on a large stack of its own
(_core.call_on_large_stack), so graphs nested hundreds of thousands deep are
captured and restored: uninterrupted == crash after each checkpoint +
restarts, also under preemption with random SIGKILLs. What is still too
deep is refused with a short message.
"""
import pytest

from process_harness import References, check_survives, preempted_run

from pyckpt import UnsupportedStateError, heap

NODES = "100000"  # 300,000 nested pickling calls for the list: 300 times the default limit


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return References(tmp_path_factory)


@pytest.mark.parametrize("crash", ["exit", "kill"])
def test_deep_graphs_survive_restart_chain(tmp_path, references, crash):
    reference, _ = check_survives(tmp_path, references, "deep_structures", NODES, crash=crash, checkpoints=2)
    n = int(NODES)
    assert reference.stdout.splitlines()[-1] == \
        f"after 2 ({n + 1}, {n * (n - 1) // 2 - 1}) {n // 2} {n + 1} {n} True", reference.describe()


def test_deep_graphs_survive_preemption(tmp_path, references):
    # Smaller, and an interval longer than a checkpoint takes on a loaded
    # machine: a request made while a checkpoint is written is served at
    # once after it (issue 12's "interval shorter than the checkpoint's
    # cost", another change's business).
    nodes = "50000"
    reference = references.get("deep_structures", nodes)
    outcome = preempted_run(tmp_path, "deep_structures", nodes, seed=12, interval="3", kill_times=(1.0, 5.0),
                            rounds=2)
    assert outcome.returncode == 0 and outcome.stdout == reference.stdout, outcome.describe()


class Node:
    def __init__(self, next_node):
        self.next = next_node


def test_too_deep_is_refused_with_a_short_message(monkeypatch):
    # A 64 MiB stack grants 65,536 levels; the list needs 120,000.
    monkeypatch.setattr(heap, "_LARGE_STACK_BYTES", 64 << 20)
    head = None
    for _ in range(40000):
        head = Node(head)
    with pytest.raises(UnsupportedStateError) as refused:
        heap.dumps({"head": head}, user_dirs=[])
    message = str(refused.value)
    assert message.startswith("head.next*") and "nested deeper than the 65,536 levels" in message, message
    assert len(message) < 200, message
