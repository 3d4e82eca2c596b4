"""The speed, memory and quality benchmarks: scripts, run as ``python3 benchmarks/NAME.py`` (see harness.py)."""
