"""Entry point of ``python -m core``."""

import sys

from core.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
