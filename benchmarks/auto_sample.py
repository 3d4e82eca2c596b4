"""What running HDBSCAN on a sample costs: the groups found without a k on all images against those
found on a sample and spread through the kNN graph (core.clustering.algorithms.spread_labels).

Uses a set prepared by benchmarks/umap_sample.py (its cluster space and neighbours are cached).

    python3 benchmarks/auto_sample.py                      # the 100,000-image demo, samples of 20,000 and 50,000
    python3 benchmarks/auto_sample.py --n 20000 --samples 4000
"""

from __future__ import annotations

import sys
import time

from harness import demo_folder
from umap_sample import set_parser, set_pipeline

from core.clustering.agreement import agreement
from core.clustering.algorithms import auto_groups
from core.reading.labels import read_labels


def main(argv: list[str] | None = None) -> int:
    parser = set_parser(__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[20_000, 50_000])
    args = parser.parse_args(argv)
    folder = demo_folder(args.n, args.seed, make=False)
    if not (folder / "labels.csv").exists():
        print(f"{folder} is missing: run benchmarks/umap_sample.py --n {args.n} first", file=sys.stderr)
        return 1
    pipeline = set_pipeline(folder, args.n)
    X, graph = pipeline.space(), pipeline.neighbours()[0]
    truth, _ = read_labels(pipeline.inventory.labels_path, pipeline.image_meta()["paths"])
    start = time.perf_counter()
    full = auto_groups(X, fit_up_to=len(X))
    seconds = time.perf_counter() - start
    print(
        f"all {len(X):,}: {seconds:.1f} s, {full.max() + 1} groups, "
        f"ARI {agreement(truth, full)[0]:.3f} against the truth"
    )
    for size in args.samples:
        start = time.perf_counter()
        part = auto_groups(X, graph, fit_up_to=size, seed=args.seed)
        seconds = time.perf_counter() - start
        print(
            f"sample {size:,}: {seconds:.1f} s, {part.max() + 1} groups, noise {(part < 0).mean():.3f}, "
            f"ARI {agreement(full, part)[0]:.3f} against all, {agreement(truth, part)[0]:.3f} against the truth"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
