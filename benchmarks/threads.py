"""Thread pools on a machine that is not quiet: each stage's seconds with the thread settings that matter.

OpenMP (scikit-learn's k-means and pairwise distances) and OpenBLAS (PCA, the typical shapes' matrix
product) each start one thread per core; waiting for a core another process holds, a spinning thread
burns its time slice. Every run is a fresh process (a fresh cache, so every stage is computed) with one
of these environments, on a quiet machine and with one core kept busy by another process:

- ``per-core``: a thread per core (``DOTMAP_THREADS`` = the cores; what the libraries do by themselves);
- ``one``: one thread everywhere (``DOTMAP_THREADS=1``, Dotmap's default: core/engine/threads.py);
- ``passive``: a thread per core with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep, not spin).

Run from the repository root (medians of --repeats runs; sets are made once in benchmarks/data/):

    python3 benchmarks/threads.py                      # 300 and 4,000 demo images, pca cluster space, no map
    python3 benchmarks/threads.py --n 32000 --repeats 1 --environments per-core one
    python3 benchmarks/threads.py --kind dense         # the ink of real scans (core.demo's dense kind)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness import DATA, RESULTS, busy_core, make_demo_once, run_fresh, stage_seconds

CORES = str(os.cpu_count() or 1)
ENVIRONMENTS = {
    "per-core": {"DOTMAP_THREADS": CORES},
    "one": {"DOTMAP_THREADS": "1"},
    "passive": {"DOTMAP_THREADS": CORES, "OMP_WAIT_POLICY": "PASSIVE"},
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "DOTMAP_THREADS")
STAGES = ("features", "reduction", "sweep", "typical")


def prepare_once(folder: str, cache: str) -> dict[str, float]:
    """In a fresh process: prepare ``folder`` (pca cluster space, no map) into ``cache``; seconds per stage."""
    from core.engine.pipeline import Pipeline, Settings

    pipeline = Pipeline(folder, Settings(cluster_space="pca"), cache)
    started = time.perf_counter()
    pipeline.prepare(with_map=False)
    pipeline.cluster_means()
    seconds = stage_seconds(pipeline.records)
    seconds["total"] = time.perf_counter() - started
    return seconds


def measure(folder: Path, environment: str, busy: bool, repeats: int) -> dict[str, float]:
    """Median seconds per stage of ``repeats`` fresh runs."""
    base = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env = {**base, **ENVIRONMENTS[environment]}
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache, busy_core(busy):
            runs.append(run_fresh("threads", "prepare_once", str(folder), cache, env=env))
    return {stage: statistics.median(run.get(stage, 0.0) for run in runs) for stage in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[300, 4000])
    parser.add_argument("--kind", default="shapes", choices=["shapes", "dense"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--environments", nargs="+", default=list(ENVIRONMENTS), choices=list(ENVIRONMENTS))
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"{'images':>7} {'load':>6} {'threads':>8} " + " ".join(f"{s:>9}" for s in (*STAGES, "total")))
    for n in args.n:
        folder = make_demo_once(DATA / f"{args.kind}-{n}-seed1", n, 1, say=False, kind=args.kind)
        for busy in (False, True):
            for environment in args.environments:
                seconds = measure(folder, environment, busy, args.repeats)
                load = "busy" if busy else "quiet"
                cells = " ".join(f"{seconds.get(s, 0.0):9.2f}" for s in (*STAGES, "total"))
                print(f"{n:>7} {load:>6} {environment:>8} {cells}", flush=True)
                row = {"n": n, "kind": args.kind, "busy": busy, "environment": environment, "seconds": seconds}
                with open(RESULTS / "threads.jsonl", "a") as out:
                    out.write(json.dumps({**row, "repeats": args.repeats, "cores": os.cpu_count()}) + "\n")


if __name__ == "__main__":
    main()
