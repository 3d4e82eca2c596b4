"""Every k at once: the fits of each k with ids matched from k to k+1, their scores, and the recommended k."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.clustering import algorithms as clustering
from core.clustering import scoring
from core.errors import DotmapError

ProgressFn = Callable[[int, int, str], None]


@dataclass
class Sweep:
    """Clusterings for every k, with ids matched from k to k+1, and their scores.

    labels : ndarray of shape (n_k, n_images), int16; row j is k = ks[j].
    silhouette : ndarray of shape (n_k, n_images), float32, per image.
    distance : ndarray of shape (n_k, n_images), float32, to the own cluster's centre.
    table : one dict per k with k, inertia, silhouette, davies_bouldin, calinski_harabasz,
        stability (mean ARI over the stability runs), stability_spread (their standard deviation), sizes.
    transitions : for each k but the last, the overlap table (k, k+1) of clusters at k and k+1.
    """

    ks: list[int]
    labels: np.ndarray
    centres: list[np.ndarray]
    silhouette: np.ndarray
    distance: np.ndarray
    table: list[dict[str, Any]]
    transitions: list[list[list[int]]]
    recommended_k: int
    sample_size: int
    algorithm: str
    mixtures: list[tuple[np.ndarray, np.ndarray]] | None = None  # Gaussian mixture: (weights, covariances) per k

    def fit(self, k: int) -> clustering.Fit:
        """The clustering of one k as a Fit (labels, centres and, for a mixture, its components)."""
        j = self.row(k)
        weights, covariances = self.mixtures[j] if self.mixtures is not None else (None, None)
        return clustering.Fit(self.labels[j].astype(np.int64), self.centres[j], 0.0, weights, covariances)

    def row(self, k: int) -> int:
        if k not in self.ks:
            raise DotmapError(f"k={k} is outside the prepared range {self.ks[0]}..{self.ks[-1]}.")
        return self.ks.index(k)


def matched_fits(ks: Sequence[int], fit_of: Callable[[int], tuple[dict, dict]], on_progress: ProgressFn | None = None):
    """The fit of every k, its ids matched to the previous k's, with its meta and the transition tables.

    ``fit_of(k)`` returns the (arrays, meta) of one k's fit (see scoring.fit_and_score).
    """
    fits, previous, transitions = [], None, []
    for i, k in enumerate(ks):
        if on_progress is not None:
            on_progress(i, len(ks), "clustering")
        a, meta = fit_of(k)
        fit = clustering.Fit(a["labels"], a["centres"], meta["inertia"], a.get("weights"), a.get("covariances"))
        if previous is None:
            fit = clustering.order_by_size(fit)
        else:
            fit, table = clustering.match_to_previous(previous, fit)
            transitions.append(table.tolist())
        fits.append((fit, meta))
        previous = fit.labels
    if on_progress is not None:
        on_progress(len(ks), len(ks), "clustering")
    return fits, transitions


def assemble_sweep(
    X: np.ndarray,
    ks: list[int],
    fit_of: Callable[[int], tuple[dict, dict]],
    algorithm: str,
    seed: int,
    on_progress: ProgressFn | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and meta of a Sweep of ``X`` (n_images, d) over ``ks``: matched fits, silhouettes, the table."""
    fits, transitions = matched_fits(ks, fit_of, on_progress)
    metric = "cosine" if algorithm == "spherical" else "euclidean"
    sample = scoring.silhouette_sample(len(X), seed)
    labels = [f.labels for f, _ in fits]
    sil_scores, per_image = scoring.silhouettes(X, labels, sample, metric, on_progress)
    distance = np.stack(
        [clustering.distances_to_centres(X, f.centres, algorithm)[np.arange(len(X)), f.labels] for f, _ in fits]
    ).astype(np.float32)
    table = []
    for j, ((f, meta), k) in enumerate(zip(fits, ks, strict=True)):
        table.append(
            {
                "k": k,
                "inertia": meta["inertia"],
                "silhouette": float(sil_scores[j]),
                "davies_bouldin": meta["davies_bouldin"],
                "calinski_harabasz": meta["calinski_harabasz"],
                "stability": meta["stability"],
                "stability_spread": meta["stability_spread"],
                "sizes": np.bincount(f.labels, minlength=k).tolist(),
            }
        )
    arrays = {
        "labels": np.stack(labels).astype(np.int16),
        "centres": np.concatenate([f.centres for f, _ in fits]),
        "silhouette": per_image,
        "distance": distance,
    }
    if fits[0][0].weights is not None:
        arrays["weights"] = np.concatenate([f.weights for f, _ in fits])
        arrays["covariances"] = np.concatenate([f.covariances for f, _ in fits])
    meta = {
        "ks": ks,
        "table": table,
        "transitions": transitions,
        "recommended_k": scoring.recommend_k(ks, sil_scores, [t["stability"] for t in table]),
        "sample_size": int(len(sample)),
        "algorithm": algorithm,
    }
    return arrays, meta


def per_k(stacked: np.ndarray, ks: Sequence[int]) -> list[np.ndarray]:
    """Rows stacked k after k (k rows for each k, as centres and typical shapes are kept) split back per k."""
    bounds = np.cumsum([0, *ks])
    return [stacked[bounds[i] : bounds[i + 1]] for i in range(len(ks))]


def sweep_from_arrays(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Sweep:
    """The Sweep that :func:`assemble_sweep`'s arrays and meta describe."""
    ks = meta["ks"]
    mixtures = None
    if "weights" in arrays:
        mixtures = list(zip(per_k(arrays["weights"], ks), per_k(arrays["covariances"], ks), strict=True))
    return Sweep(
        ks=ks,
        labels=arrays["labels"],
        centres=per_k(arrays["centres"], ks),
        mixtures=mixtures,
        silhouette=arrays["silhouette"],
        distance=arrays["distance"],
        table=meta["table"],
        transitions=meta["transitions"],
        recommended_k=meta["recommended_k"],
        sample_size=meta["sample_size"],
        algorithm=meta["algorithm"],
    )
