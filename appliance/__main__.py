"""`python -m appliance` is the `appliance` command (so `torchrun -m appliance ...` works)."""

import sys

from .cli import main

sys.exit(main())
