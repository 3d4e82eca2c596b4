"""Entry point of ``python -m core``."""

import sys

from core.engine import threads
from core.errors import DotmapError

try:
    threads.set_for_this_process()  # before numpy loads: every pool of this process starts with its threads
except DotmapError as exc:  # a DOTMAP_THREADS that is not a count
    sys.exit(f"error: {exc}")

from core.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
