"""What fitting UMAP on a sample costs in cluster quality: the full fit against a fit on a sample with
the other images placed through the kNN graph (core.representation.embedding.place_through_graph).

On a demo set of --n images (made on first use, in parallel), with the default settings: the 10-D
UMAP cluster space fitted on all images, and fitted on --sample of them; k-means at the true k
(10 starts) in each; ARI of each against the true shape families, and between the two; the time of
each fit. The engine fits on a sample above core.representation.embedding.UMAP_FIT_UP_TO (200,000) images; here the
sample is forced smaller so the comparison fits on one machine.

    python3 benchmarks/umap_sample.py                        # 100,000 images, a sample of 20,000
    python3 benchmarks/umap_sample.py --n 20000 --sample 4000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness import DATA, demo_folder

from core.clustering.agreement import agreement
from core.clustering.algorithms import fit_clusters
from core.demo import FAMILIES
from core.engine.pipeline import Pipeline, Settings
from core.reading.labels import read_labels
from core.representation import embedding
from core.representation.reduction import nearest_neighbors


def set_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the options that name the set; auto_sample.py reuses the set and its cache."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def set_pipeline(folder: Path, n: int) -> Pipeline:
    """The pipeline of the demo set of ``n`` images in ``folder``, with the cache auto_sample.py reuses."""
    return Pipeline(folder, Settings(), DATA / f"umap-sample-cache-{n}")


def main(argv: list[str] | None = None) -> int:
    parser = set_parser(__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=20_000)
    args = parser.parse_args(argv)

    pipeline = set_pipeline(demo_folder(args.n, args.seed), args.n)
    start = time.perf_counter()
    Z = pipeline.reduction().Z
    indices, distances = pipeline.neighbours()
    print(f"read, features, PCA and neighbours: {time.perf_counter() - start:.0f} s", flush=True)
    truth, _ = read_labels(pipeline.inventory.labels_path, pipeline.image_meta()["paths"])
    k = len(FAMILIES)

    warm = slice(0, 500)  # numba compiles UMAP once per process: not part of either fit's time
    embedding.umap_embedding(Z[warm], *nearest_neighbors(Z[warm]), 2, args.seed, n_epochs=5)
    found = {}
    for name, limit in (("full fit", args.n), (f"fit on {args.sample:,}", args.sample)):
        start = time.perf_counter()
        U = embedding.umap_embedding(
            Z,
            indices,
            distances,
            embedding.CLUSTER_SPACE_DIM,
            args.seed,
            min_dist=0.0,
            n_epochs=embedding.CLUSTER_SPACE_EPOCHS,
            fit_up_to=limit,
        )
        seconds = time.perf_counter() - start
        found[name] = fit_clusters(U, k, "kmeans", args.seed).labels
        ari, nmi = agreement(truth, found[name])
        print(f"{name:>16}: {seconds:6.0f} s, ARI {ari:.3f}, NMI {nmi:.3f} against the true families", flush=True)
    a, b = found.values()
    print(f"the two clusterings agree at ARI {agreement(a, b)[0]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
