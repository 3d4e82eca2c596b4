"""Scores of clusterings: silhouettes for every k at once, stability, and the recommended k."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from core.clustering.agreement import adjusted_rand
from core.clustering.algorithms import distances_to_centres, fit_clusters, unit_rows
from core.engine.processes import spread

SILHOUETTE_SAMPLE = 10_000  # silhouettes are taken against at most this many images
STABILITY_RUNS = 5  # two runs let one lucky or unlucky start decide whether a k passes
STABILITY_N_INIT = 3  # starts per stability run: the runs test the data, not the luck of one start
STABILITY_FRACTION = 0.8
STABLE_ENOUGH = 0.8
QUERY_BATCH = 2048
SILHOUETTE_TOLERANCE = 0.02
RECOMMENDATION_RULE = (
    f"the largest k whose stability (mean ARI between clusterings of {STABILITY_RUNS} other seeds and "
    f"{STABILITY_FRACTION:.0%} subsamples) is at least {STABLE_ENOUGH} and whose silhouette is within "
    f"{SILHOUETTE_TOLERANCE} of the best such k's; if no k is that stable, the same among all k"
)

ProgressFn = Callable[[int, int, str], None]


def silhouette_sample(n: int, seed: int, sample_size: int = SILHOUETTE_SAMPLE) -> np.ndarray:
    """Sorted row ids of the fixed-seed reference sample (all rows when n <= sample_size)."""
    if n <= sample_size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False))


def _pairwise(Q: np.ndarray, R: np.ndarray, R_sq: np.ndarray, metric: str) -> np.ndarray:
    """Distances (len(Q), len(R)) as float32, computed in float64 in place."""
    D = Q @ R.T
    if metric == "cosine":
        np.subtract(1.0, D, out=D)
        np.clip(D, 0.0, 2.0, out=D)
    else:
        D *= -2.0
        D += (Q * Q).sum(1)[:, None]
        D += R_sq[None, :]
        np.maximum(D, 0.0, out=D)
        np.sqrt(D, out=D)
    return D.astype(np.float32)


def silhouettes(
    X: np.ndarray,
    labels_by_k: Sequence[np.ndarray],
    sample: np.ndarray,
    metric: str = "euclidean",
    on_progress: ProgressFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Silhouettes of every image for several clusterings, against one reference sample.

    a(i) and b(i) are mean distances to the sample's members of each cluster, so for images in
    the sample the mean is scikit-learn's ``silhouette_score`` on that sample (up to float32
    rounding); for the
    others it is an estimate from the same reference. A cluster with one member scores 0.

    Returns
    -------
    scores : ndarray of shape (n_k,): mean silhouette over the sample for each clustering.
    per_image : ndarray of shape (n_k, n_images), float32.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric={metric!r} should be 'euclidean' or 'cosine'.")
    # float64 and centred: |q|^2 - 2q.r + |r|^2 cancels badly in float32 and far from 0, and
    # the square root turns a tiny error in a small distance into a large one
    X = X.astype(np.float64)
    X = unit_rows(X) if metric == "cosine" else X - X[sample].mean(0)
    n = len(X)
    R = X[sample]
    R_sq = (R * R).sum(1)
    ks = [int(labels.max()) + 1 for labels in labels_by_k]
    offsets = np.concatenate([[0], np.cumsum(ks)])
    onehot = np.zeros((len(sample), offsets[-1]), np.float32)
    for j, labels in enumerate(labels_by_k):
        onehot[np.arange(len(sample)), offsets[j] + labels[sample]] = 1.0
    counts = onehot.sum(0)
    in_sample = np.zeros(n, bool)
    in_sample[sample] = True
    per_image = np.zeros((len(ks), n), np.float32)
    spans = [(start, min(start + QUERY_BATCH, n)) for start in range(0, n, QUERY_BATCH)]
    shared = dict(X=X, R=R, R_sq=R_sq, onehot=onehot, counts=counts, in_sample=in_sample, metric=metric)
    # the batches on a process per core from SPREAD_FROM_IMAGES (32,000 dense images, k = 2..20: 3.8 s -> 2.5 s)
    batches = spread(_silhouettes_of_rows, spans, n, labels_by_k=list(labels_by_k), offsets=offsets, **shared)
    for (start, stop), block in zip(spans, batches, strict=True):
        per_image[:, start:stop] = block
        if on_progress is not None:
            on_progress(stop, n, "silhouette")
    scores = per_image[:, sample].mean(1).astype(np.float64)
    return scores, per_image


def _silhouettes_of_rows(
    span: tuple[int, int],
    X: np.ndarray,
    R: np.ndarray,
    R_sq: np.ndarray,
    onehot: np.ndarray,
    counts: np.ndarray,
    in_sample: np.ndarray,
    labels_by_k: list[np.ndarray],
    offsets: np.ndarray,
    metric: str,
) -> np.ndarray:
    """The silhouettes (n_k, stop - start) of rows ``span`` of X for every clustering (see silhouettes)."""
    start, stop = span
    sums = _pairwise(X[start:stop], R, R_sq, metric) @ onehot  # (batch, sum of k)
    self_count = in_sample[start:stop].astype(np.float32)
    rows = np.arange(stop - start)
    block_scores = np.zeros((len(labels_by_k), stop - start), np.float32)
    for j, labels in enumerate(labels_by_k):
        block = sums[:, offsets[j] : offsets[j + 1]]
        own = labels[start:stop]
        own_count = counts[offsets[j] + own] - self_count
        a = block[rows, own] / np.maximum(own_count, 1)
        means = block / np.maximum(counts[offsets[j] : offsets[j + 1]], 1)
        means[rows, own] = np.inf
        means[:, counts[offsets[j] : offsets[j + 1]] == 0] = np.inf
        b = means.min(1)
        s = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
        s[own_count < 1] = 0.0
        block_scores[j] = np.where(np.isfinite(s), s, 0.0)
    return block_scores


def stability(
    X: np.ndarray, labels: np.ndarray, k: int, algorithm: str, seed: int, n_init: int = STABILITY_N_INIT
) -> tuple[float, float]:
    """Mean and spread (standard deviation) of the ARI between ``labels`` and clusterings fit
    on STABILITY_RUNS other seeds' subsamples of X.

    1 means the same groups come back whatever the seed and whichever images are left out.
    """
    rng = np.random.default_rng(seed + 7919)
    n = len(X)
    size = max(k, int(round(STABILITY_FRACTION * n)))
    agreement = []
    for run in range(STABILITY_RUNS):
        rows = np.sort(rng.choice(n, size, replace=False))
        other = fit_clusters(X[rows], k, algorithm, seed + run + 1, n_init)
        predicted = distances_to_centres(X, other.centres, algorithm).argmin(1)
        agreement.append(adjusted_rand(labels, predicted))
    return float(np.mean(agreement)), float(np.std(agreement))


def separation_scores(X: np.ndarray, labels: np.ndarray, algorithm: str) -> tuple[float, float]:
    """(Davies-Bouldin, Calinski-Harabasz) in the clustering's own geometry."""
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    Y = unit_rows(X) if algorithm == "spherical" else X
    return float(davies_bouldin_score(Y, labels)), float(calinski_harabasz_score(Y, labels))


def recommend_k(ks: Sequence[int], silhouette: Sequence[float], stable: Sequence[float]) -> int:
    """The recommended k by :data:`RECOMMENDATION_RULE`.

    Silhouette alone merges near-alike groups (a circle and an ellipse score better together); a
    k that splits them costs it little. On the quality suite the best silhouette found the true k
    5 times in 30 (3 sets, 2 features, 5 seeds); the largest k within 0.02 of it, 14 times, and
    for the default features on every set and seed the same k.
    """
    ks, silhouette, stable = np.asarray(ks), np.asarray(silhouette), np.asarray(stable)
    candidates = np.flatnonzero(stable >= STABLE_ENOUGH)
    if len(candidates) == 0:
        candidates = np.arange(len(ks))
    best = silhouette[candidates].max()
    close = candidates[silhouette[candidates] >= best - SILHOUETTE_TOLERANCE]
    return int(ks[close].max())


def fit_and_score(k: int, X: np.ndarray, algorithm: str, seed: int) -> tuple[dict, dict]:
    """One k's clustering of X (n, d) and its scores, as a cache entry's arrays and meta (also a task)."""
    result = fit_clusters(X, k, algorithm, seed)
    db, ch = separation_scores(X, result.labels, algorithm)
    stable, spread = stability(X, result.labels, k, algorithm, seed)
    meta = {
        "inertia": result.inertia,
        "davies_bouldin": db,
        "calinski_harabasz": ch,
        "stability": stable,
        "stability_spread": spread,
    }
    arrays = {"labels": result.labels, "centres": result.centres}
    if result.weights is not None:
        arrays.update(weights=result.weights, covariances=result.covariances)
    return arrays, meta
