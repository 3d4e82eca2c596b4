"""Every stage of a cold ``prepare`` with the default settings, on sparse and dense images, quiet and busy.

Each run is a fresh process with a fresh cache (every stage is computed; numba's cache is as the
machine has it: warm after the first UMAP of an install), the default settings (``shape-rotation``
features, the UMAP cluster space, the map and the groups without a k), on the built-in demo's kind
(sparse: 1-2 px dots, a median of ~290 ink pixels an image) and the dense kind (40-400 dots of 3-5 px,
~1,500 ink pixels: the ink of real scans), on a quiet machine and with another process keeping one
core busy. "first clustering" is what the Overview waits for: every stage up to the scored k sweep.
Memory: "peak MB" is the prepare's own process, "worker peak MB" the largest of the processes it
started, "all processes MB" the peak of them all together (proportional set sizes sampled every
0.2 s, so pages a fork shares count once). The map is made beside the stages after the sweep, so
the stages' seconds add up to more than the total. "warm prepare" is the whole command
``python3 -m core prepare DIR --cache CACHE`` again on that cache (nothing to compute), the median of
WARM_RUNS, with Python writing its bytecode as it does by default.

Run from the repository root (medians of --repeats runs; sets are made once in benchmarks/data/):

    python3 benchmarks/stages.py                          # 32,000 images of each kind, one run each
    python3 benchmarks/stages.py --n 4000 --repeats 3 --kinds dense --loads quiet
    python3 benchmarks/stages.py --features learned       # the encoder's training and its features
    git worktree add /tmp/before COMMIT && python3 benchmarks/stages.py --before /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import DATA, RESULTS, ROOT, busy_core, make_demo_once, run_fresh, stage_seconds

STAGES = (
    "images",
    "encoder",
    "learned",
    "features",
    "reduction",
    "neighbours",
    "space",
    "sweep",
    "typical",
    "atlas",
    "map",
    "auto",
)  # fmt: skip  (encoder and learned: the stages of --features learned, in place of features)
FIRST_CLUSTERING = STAGES[: STAGES.index("sweep") + 1]
KINDS = {"sparse": "shapes", "dense": "dense"}
WARM_RUNS = 5


def warm_prepare(folder: str, cache: str, root: Path | None) -> float:
    """Seconds of the median of WARM_RUNS ``python3 -m core prepare`` commands on a prepared ``cache``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # a user's Python writes it
    command = [sys.executable, "-m", "core", "prepare", folder, "--cache", cache, "--quiet"]
    seconds = []
    for _ in range(WARM_RUNS + 1):  # the first writes the bytecode and the code versions' memo
        started = time.perf_counter()
        subprocess.run(command, cwd=root or ROOT, env=env, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:])


def prepare_once(folder: str, cache: str, features: str | None = None) -> dict[str, float]:
    """In a fresh process: a default ``prepare`` of ``folder`` into ``cache`` (other ``features`` if given);
    seconds per stage, peak MB."""
    from core.engine.pipeline import Pipeline, Settings

    pipeline = Pipeline(folder, Settings(features=features) if features else Settings(), cache)
    started = time.perf_counter()
    pipeline.prepare()
    seconds = stage_seconds(pipeline.records)
    seconds["first clustering"] = sum(seconds.get(stage, 0.0) for stage in FIRST_CLUSTERING)
    seconds["total"] = time.perf_counter() - started
    seconds["peak MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the stages spread over a process per core: the largest worker (forked, so sharing pages with this one)
    seconds["worker peak MB"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds


def measure(
    folder: str, busy: bool, repeats: int, before: Path | None = None, features: str | None = None
) -> tuple[dict, dict]:
    """Median of each number over ``repeats`` fresh runs; with ``before``, of that checkout's runs too,
    each just before one of this checkout's (the same machine, the same moment)."""
    runs: dict[str, list] = {"after": [], "before": []}
    for _ in range(repeats):
        for which, root in (("before", before), ("after", None)):
            if which == "before" and before is None:
                continue
            with tempfile.TemporaryDirectory() as cache, busy_core(busy):
                peak: list[float] = []
                run = run_fresh("stages", "prepare_once", folder, cache, features, root=root, peak_tree=peak)
                warm = warm_prepare(folder, cache, root)
                runs[which].append({**run, "all processes MB": peak[0], "warm prepare": warm})
    return tuple(
        {name: statistics.median(run.get(name, 0.0) for run in found) for name in found[0]} if found else {}
        for found in (runs["after"], runs["before"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32_000)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--loads", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--features", default=None, help="other features than the default (learned: the encoder)")
    parser.add_argument("--before", type=Path, help="a checkout of an older commit, measured too, run by run")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    columns = [(kind, load) for kind in args.kinds for load in args.loads]
    results, earlier = {}, {}
    for kind, load in columns:
        folder = make_demo_once(DATA / f"{KINDS[kind]}-{args.n}-seed1", args.n, 1, kind=KINDS[kind])
        before = args.before.resolve() if args.before else None
        results[kind, load], earlier[kind, load] = measure(
            str(folder), load == "busy", args.repeats, before, args.features
        )
        row = {"n": args.n, "kind": kind, "load": load, "repeats": args.repeats, "cores": os.cpu_count()}
        row["features"] = args.features or "default"
        with open(RESULTS / "stages.jsonl", "a") as out:
            out.write(json.dumps({**row, "seconds": results[kind, load], "before": earlier[kind, load]}) + "\n")
    print(f"{args.n:,} images, medians of {args.repeats}" + (f"; before: {args.before}" if args.before else ""))
    print(f"features: {args.features or 'the default'}")
    print("\n| stage | " + " | ".join(f"{kind}, {load}" for kind, load in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name in (*STAGES, "first clustering", "total", "warm prepare", "peak MB", "worker peak MB", "all processes MB"):
        if not any(name in results[c] or name in earlier[c] for c in columns):
            continue
        print(f"| {name} | " + " | ".join(_cell(results[c], earlier[c], name) for c in columns) + " |")


def _cell(after: dict, before: dict, name: str) -> str:
    """A number (``before -> after`` when there is a before)."""
    unit, digits = (" MB", 0) if name.endswith("MB") else (" s", 2 if name == "warm prepare" else 1)
    number = lambda run: f"{run[name]:,.{digits}f}{unit}" if name in run else "-"  # noqa: E731
    return f"{number(before)} -> {number(after)}" if before else number(after)


if __name__ == "__main__":
    main()
