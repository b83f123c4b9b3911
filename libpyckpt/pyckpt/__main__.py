"""`python3 -m pyckpt ...` is the pyckpt command."""
import sys

from .cli import main

sys.exit(main())
