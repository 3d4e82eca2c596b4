"""What running HDBSCAN on a sample costs: the groups found without a k on all images against those
found on a sample and spread through the kNN graph (core.clustering.algorithms.spread_labels).

Uses a set prepared by benchmarks/umap_sample.py (its cluster space and neighbours are cached).

    python3 benchmarks/auto_sample.py                      # the 100,000-image demo, samples of 20,000 and 50,000
    python3 benchmarks/auto_sample.py --n 20000 --samples 4000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import DATA  # noqa: E402
from core import clustering  # noqa: E402
from core.engine.pipeline import Pipeline, Settings  # noqa: E402
from core.outputs.compare import agreement  # noqa: E402
from core.reading.images import read_labels  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--samples", type=int, nargs="+", default=[20_000, 50_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = DATA / f"demo-{args.n}-seed{args.seed}"
    if not (folder / "labels.csv").exists():
        print(f"{folder} is missing: run benchmarks/umap_sample.py --n {args.n} first", file=sys.stderr)
        return 1
    pipeline = Pipeline(folder, Settings(), DATA / f"umap-sample-cache-{args.n}")
    X, graph = pipeline.space(), pipeline.neighbours()[0]
    truth, _ = read_labels(pipeline.inventory.labels_path, pipeline.image_meta()["paths"])
    start = time.perf_counter()
    full = clustering.auto_groups(X, fit_up_to=len(X))
    seconds = time.perf_counter() - start
    print(
        f"all {len(X):,}: {seconds:.1f} s, {full.max() + 1} groups, "
        f"ARI {agreement(truth, full)[0]:.3f} against the truth"
    )
    for size in args.samples:
        start = time.perf_counter()
        part = clustering.auto_groups(X, graph, fit_up_to=size, seed=args.seed)
        seconds = time.perf_counter() - start
        print(
            f"sample {size:,}: {seconds:.1f} s, {part.max() + 1} groups, noise {(part < 0).mean():.3f}, "
            f"ARI {agreement(full, part)[0]:.3f} against all, {agreement(truth, part)[0]:.3f} against the truth"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
