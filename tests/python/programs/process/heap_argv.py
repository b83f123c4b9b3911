"""sys.argv is the original one (the restart's own command line is not
visible); the working directory is the original one."""
import os
import sys

from ckpt import checkpoint

checkpoint()
print(sys.argv[1:], os.path.basename(sys.argv[0]), os.path.basename(os.getcwd()))
print(os.path.basename(sys.path[0]))
