"""`python -m appliance` is the `appliance` command (so `torchrun -m appliance ...` works)."""

import sys

from .cli import run

sys.exit(run())
