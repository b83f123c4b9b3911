"""Module-level variables of the main script and of the user's own module
(usermod.py) keep their values; library modules are re-imported (the same
objects as a fresh import, usable), not copied."""
import json
import os.path
import sys

import usermod
from ckpt import checkpoint

counter = 0
usermod.register("before")
usermod.config["mode"] = "changed"
alias_dumps = json.dumps
checkpoint()
counter += 1
usermod.register("after")
print(counter, usermod.registry, usermod.config, usermod.register.__module__)
print(sys.modules["usermod"] is usermod, sys.modules["json"] is json, alias_dumps is json.dumps)
print(json.dumps({"b": 1, "a": [1, 2]}, sort_keys=True), os.path.join("a", "b"))
print(sys.modules["__main__"].counter, __name__)
