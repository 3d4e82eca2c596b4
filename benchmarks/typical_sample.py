"""Typical shapes from a sample of each cluster's members against the means of all of them.

For the clusters of every k of a default prepare (k = 2..20), on sparse and dense demo sets: the
largest and the 99th-percentile absolute difference of a cell of the typical shape (each scaled
to a maximum of 1: 1/255 is one grey level), the largest difference in the shades the pages draw
(the square root of the density in ``SHAPE_LEVELS`` steps, see pages/ui/render.shape_png), and the
seconds, for each sample size. A change of a few grey levels, or of one shade step, over a 48 x 48
picture cannot be seen.

Run from the repository root (sets are made once in benchmarks/data/, the prepared caches kept in
benchmarks/results/typical-cache-*):

    python3 benchmarks/typical_sample.py
    python3 benchmarks/typical_sample.py --n 4000 --samples 256 1024 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from harness import DATA, RESULTS, ROOT, make_demo_once

from core.engine import processes
from core.engine.pipeline import Pipeline, Settings
from core.representation import typical

sys.path.insert(0, str(ROOT))  # the pages' renderer (no Streamlit in it): how a shape is drawn
from pages.ui.render import SHAPE_LEVELS

KINDS = {"sparse": "shapes", "dense": "dense"}


def compare(folder: str, cache: str, samples: list[int], seeds: list[int]) -> list[dict]:
    """Rows of (sample, seed, max and p99 difference, seconds) against the full means."""
    pipeline = Pipeline(folder, Settings(), cache)
    pipeline.prepare(with_map=False)
    loaded, s = pipeline.images(), pipeline.settings
    source = pipeline.file("images", "packed")
    labels = pipeline.sweep().labels
    started = time.perf_counter()
    full = typical.cluster_means(loaded.packed, loaded.grid, s.features, labels, s.ks, source=source)
    rows = [{"sample": "all", "seconds": time.perf_counter() - started}]
    for sample in samples:
        for seed in seeds:
            started = time.perf_counter()
            means = typical.cluster_means(
                loaded.packed, loaded.grid, s.features, labels, s.ks, source=source, sample=sample, seed=seed
            )
            seconds = time.perf_counter() - started
            difference = np.abs(means - full).reshape(len(full), -1)
            shades = np.abs(np.sqrt(means) - np.sqrt(full)) * (SHAPE_LEVELS - 1)
            drawn = (typical.sampled_members(labels, s.ks, sample, seed) >= 0).any(axis=0).mean()
            rows.append(
                {
                    "sample": sample,
                    "seed": seed,
                    "max": float(difference.max()),
                    "shade steps": float(shades.max()),
                    "p99": float(np.percentile(difference, 99)),
                    "worst cluster mean": float(difference.mean(axis=1).max()),
                    "drawn": float(drawn),
                    "seconds": seconds,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32_000)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--samples", nargs="+", type=int, default=[256, 512, 1024, 2048])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"{args.n:,} images, {processes.cores()} cores\n")
    print(
        "| set | sample | images drawn | max difference | 99th percentile | worst cluster's mean "
        "| max shade steps | seconds |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind in args.kinds:
        folder = make_demo_once(DATA / f"{KINDS[kind]}-{args.n}-seed1", args.n, 1, kind=KINDS[kind])
        cache = RESULTS / f"typical-cache-{kind}-{args.n}"
        rows = compare(str(folder), str(cache), args.samples, args.seeds)
        with open(RESULTS / "typical_sample.jsonl", "a") as out:
            out.write(json.dumps({"n": args.n, "kind": kind, "rows": rows}) + "\n")
        print(f"| {kind} | all | 100% | 0 | 0 | 0 | 0 | {rows[0]['seconds']:.2f} |")
        for sample in args.samples:
            found = [row for row in rows if row["sample"] == sample]
            worst = lambda name, found=found: max(row[name] for row in found)  # noqa: E731
            seconds = float(np.median([row["seconds"] for row in found]))
            print(
                f"| {kind} | {sample:,} | {worst('drawn'):.0%} | {worst('max'):.3f} ({worst('max') * 255:.0f} grey "
                f"levels) | {worst('p99'):.4f} | {worst('worst cluster mean'):.4f} | {worst('shade steps'):.1f} "
                f"| {seconds:.2f} |"
            )


if __name__ == "__main__":
    main()
