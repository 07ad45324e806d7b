"""Takes 3 s to import (a hung connection at import time, say)."""

import time

time.sleep(3)


def run() -> str:
    return "imported"
