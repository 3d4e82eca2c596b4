"""The dashboard's background job, timed without a browser: what *Apply and prepare* starts.

Each run starts ``python -m core prepare --job`` as the Overview does (``core.engine.jobs.start_job``,
a fresh cache, numba's cache as the machine has it) and reads the job's status file until it ends:
when the scored sweep (what the Overview waits for) was done, when the whole job was, and each
stage's seconds. The job's process runs threads of its own (its status writer and a watch on the
server), which a command-line ``prepare`` does not: this is the number that shows what they cost.
A browser adds its own noise (``benchmarks/first_start.py`` measures the page). Run from the
repository root:

    python3 benchmarks/job.py --repeats 3                                  # the dense 32,000 set
    git worktree add /tmp/before COMMIT && python3 benchmarks/job.py --before /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import DATA, ROOT, make_demo_once

POLL_S = 0.1

ONE_JOB = """
import json, sys, tempfile, time
from core.engine import jobs
from core.engine.settings import Settings

cache = tempfile.mkdtemp(prefix="dotmap-job-bench-")
started = time.monotonic()
job = jobs.start_job(sys.argv[1], Settings(), cache)
first = None
while True:
    status = jobs.read_status(cache, job)
    if first is None and any(s.stage == "sweep" and s.state.value == "done" for s in status.stages):
        first = time.monotonic() - started
    if status.state.value not in ("none", "starting", "running"):
        break
    time.sleep(float(sys.argv[2]))
whole = time.monotonic() - started
stages = {s.stage: s.seconds for s in status.stages}
print(json.dumps({"state": status.state.value, "first clustering": first, "whole job": whole, **stages}))
"""


def one_run(folder: Path, root: Path) -> dict[str, float]:
    """One job on ``folder`` with ``root``'s core (this checkout or an older one), from a fresh cache."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory(prefix="dotmap-job-bench-") as cwd:
        done = subprocess.run(
            [sys.executable, "-c", ONE_JOB, str(folder), str(POLL_S)],
            env=env, cwd=cwd, capture_output=True, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the timing process failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result.pop("state") != "done":
        raise RuntimeError(f"the job on {folder} did not finish: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="a folder of images (default: the dense 32,000 demo set)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a checkout of an older commit, run just before each run here")
    args = parser.parse_args()
    folder = args.folder or make_demo_once(DATA / "dense-32000-seed1", 32_000, 1, kind="dense")
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for i in range(args.repeats):
        for which, root in (("before", args.before), ("after", ROOT)):
            if root is None:
                continue
            runs[which].append(one_run(folder.resolve(), root.resolve()))
            print(f"run {i + 1}, {which}: first clustering {runs[which][-1]['first clustering']:.1f} s", flush=True)
    names = list(runs["after"][0])
    print(f"\n{folder}, medians of {args.repeats}" + (f"; before: {args.before}" if args.before else ""))
    print("| stage | seconds |\n|---|---:|")
    for name in names:
        after = statistics.median(r[name] for r in runs["after"])
        cell = f"{after:.1f} s"
        if runs["before"]:
            cell = f"{statistics.median(r[name] for r in runs['before']):.1f} -> {cell}"
        print(f"| {name} | {cell} |")


if __name__ == "__main__":
    main()
