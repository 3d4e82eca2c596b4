"""Server time of a page's parts, written to the file named by $DOTMAP_TIMING_LOG (benchmarks/dashboard.py)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

TIMING_ENV = "DOTMAP_TIMING_LOG"


@contextmanager
def timed(part: str) -> Iterator[None]:
    """Log how long the block took, as one JSON line {"part", "ms"}; nothing at all when the variable is unset."""
    log = os.environ.get(TIMING_ENV)
    start = time.perf_counter()
    try:
        yield
    finally:
        if log:
            with open(log, "a") as out:
                out.write(json.dumps({"part": part, "ms": round(1000 * (time.perf_counter() - start), 2)}) + "\n")
