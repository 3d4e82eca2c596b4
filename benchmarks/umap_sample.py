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
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import DATA  # noqa: E402
from core import clustering, embedding  # noqa: E402
from core.demo import FAMILIES, make_demo  # noqa: E402
from core.engine.pipeline import Pipeline, Settings  # noqa: E402
from core.outputs.compare import agreement  # noqa: E402
from core.reading.images import read_labels  # noqa: E402
from core.representation.reduction import nearest_neighbors  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    folder = DATA / f"demo-{args.n}-seed{args.seed}"
    if not (folder / "labels.csv").exists():
        print(f"making {args.n:,} demo images in {folder}", flush=True)
        make_demo(folder, n=args.n, seed=args.seed)
    pipeline = Pipeline(folder, Settings(), DATA / f"umap-sample-cache-{args.n}")
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
        found[name] = clustering.fit_clusters(U, k, "kmeans", args.seed).labels
        ari, nmi = agreement(truth, found[name])
        print(f"{name:>16}: {seconds:6.0f} s, ARI {ari:.3f}, NMI {nmi:.3f} against the true families", flush=True)
    a, b = found.values()
    print(f"the two clusterings agree at ARI {agreement(a, b)[0]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
