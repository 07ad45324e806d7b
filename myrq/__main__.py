"""``python -m myrq``: the same as the ``myrq`` command."""

import sys

from myrq.cli import main

sys.exit(main())
