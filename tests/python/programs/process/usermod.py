"""A module of the user's own (next to the script): its module-level state
must survive a restart (restored, not re-initialised by the reimport)."""
registry = []
config = {"mode": "initial"}


def register(item):
    registry.append(item)
    return len(registry)
