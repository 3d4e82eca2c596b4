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
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import DATA  # noqa: E402

STAGE_SCRIPT = """
import json, resource, sys, time
from core.engine.backends import open_backend
from core.engine.pipeline import Pipeline, Settings

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

if __name__ == "__main__":
    workers = int(sys.argv[5]) if sys.argv[5] != "0" else None
    with open_backend(sys.argv[4], workers=workers) as backend:
        pipeline = Pipeline(sys.argv[1], Settings(), sys.argv[2], backend=backend)
        step = next(s for s in pipeline.plan() if s.stage == sys.argv[3])
        start = time.perf_counter()
        step.run()
        seconds = time.perf_counter() - start
        workers_mb = list(backend.client.run(peak_mb).values()) if backend.name == "dask" else []
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb(), "worker_peak_mb": max(workers_mb, default=0)}))
"""


def measure(n: int, seed: int, backend: str = "local", workers: int = 0, keep: bool = False) -> dict:
    from core.demo import make_demo
    from core.engine.pipeline import Pipeline, Settings

    folder = DATA / f"demo-{n}-seed{seed}"
    if not (folder / "labels.csv").exists():
        print(f"making {n:,} demo images in {folder}", flush=True)
        make_demo(folder, n=n, seed=seed)
    cache = DATA / f"large-cache-{n}-{backend}"
    shutil.rmtree(cache, ignore_errors=True)
    stages = {}
    script = DATA / "large_stage.py"  # a file, not -c: Dask's worker processes re-import the main script
    script.write_text(STAGE_SCRIPT)
    for step in Pipeline(folder, Settings(), cache).plan():
        done = subprocess.run(
            [sys.executable, str(script), str(folder), str(cache), step.stage, backend, str(workers)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"the stage {step.stage} failed at {n:,} images")
        stages[step.stage] = json.loads(done.stdout.strip().splitlines()[-1])
        got = stages[step.stage]
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
