"""The growth of a cold `prepare` with the number of images: the time and the peak memory of every stage.

Each stage runs in a process of its own, from an empty cache, in the order of the plan: its peak
resident memory (ru_maxrss) is that of the stage itself plus what it loads of the stages before it,
which is what a bound on memory must hold. Demo sets are made on first use (in parallel above
10,000 images) and kept under benchmarks/data.

    python3 benchmarks/large.py                           # 100,000 images
    python3 benchmarks/large.py --sizes 32000 100000 300000
    python3 benchmarks/large.py --sizes 1000000 --json large.json
    python3 benchmarks/large.py --backend dask --workers 2   # the same stages on a 2-worker LocalCluster
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from harness import DATA, ChildFailed, demo_folder, peak_mb, run_fresh


def child_stage(folder: str, cache: str, stage: str, backend: str, workers: int) -> dict:
    """Inside the measured process: run one stage of the plan and say what it cost."""
    from core.engine.backends import open_backend
    from core.engine.pipeline import Pipeline, Settings

    with open_backend(backend, workers=workers or None) as running:
        pipeline = Pipeline(folder, Settings(), cache, backend=running)
        step = next(s for s in pipeline.plan() if s.stage == stage)
        start = time.perf_counter()
        step.run()
        seconds = time.perf_counter() - start
        # peak_mb travels by reference: Dask's workers import harness from the sys.path they inherit
        workers_mb = list(running.client.run(peak_mb).values()) if running.name == "dask" else []
    return {"seconds": seconds, "peak_mb": peak_mb(), "worker_peak_mb": max(workers_mb, default=0)}


def measure(n: int, seed: int, backend: str = "local", workers: int = 0, keep: bool = False) -> dict:
    from core.engine.pipeline import Pipeline, Settings

    folder = demo_folder(n, seed)
    cache = DATA / f"large-cache-{n}-{backend}"
    shutil.rmtree(cache, ignore_errors=True)
    stages = {}
    for step in Pipeline(folder, Settings(), cache).plan():
        try:
            got = run_fresh("large", "child_stage", str(folder), str(cache), step.stage, backend, workers)
        except ChildFailed as error:
            print(error.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"the stage {step.stage} failed at {n:,} images") from None
        stages[step.stage] = got
        workers_mb = f" (workers {got['worker_peak_mb']:.0f} MB)" if got["worker_peak_mb"] else ""
        print(f"{n:>9,} {step.words:<48} {got['seconds']:8.1f} s {got['peak_mb']:8.0f} MB{workers_mb}", flush=True)
    if not keep:
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "n": n,
        "stages": stages,
        "seconds": sum(s["seconds"] for s in stages.values()),
        "peak_mb": max(s["peak_mb"] for s in stages.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--backend", choices=("local", "dask"), default="local")
    parser.add_argument("--workers", type=int, default=0, help="Dask: workers of the local cluster (default: cores)")
    parser.add_argument("--keep", action="store_true", help="keep the cache, to open the set in the dashboard")
    args = parser.parse_args(argv)
    results = []
    for n in args.sizes:
        started = time.perf_counter()
        results.append(measure(n, args.seed, args.backend, args.workers, args.keep))
        print(
            f"{n:>9,} images: stages {results[-1]['seconds']:.0f} s ({time.perf_counter() - started:.0f} s with "
            f"process starts), peak {results[-1]['peak_mb']:.0f} MB",
            flush=True,
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
