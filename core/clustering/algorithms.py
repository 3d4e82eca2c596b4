"""k-means and spherical k-means for one k, assignment to centres, and cluster ids kept across k.

scikit-learn and SciPy are imported where they are used: a warm start reads cached results and
should not pay for importing them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from core.clustering.agreement import matched_clusters, overlap_table

ALGORITHMS = ("kmeans", "spherical", "gmm")
ALGORITHM_WORDS = {"kmeans": "k-means", "spherical": "spherical k-means (by angle)", "gmm": "Gaussian mixture"}
GMM_N_INIT = 1  # EM runs per k, from a k-means++ start: each costs as much as ~20 k-means starts
GMM_FULL_UP_TO = 16  # full covariances up to this many dimensions (the UMAP space); diagonal above
N_INIT = 10  # starts per k, the best kept: one start lost up to 0.1 ARI off the demo (quality suite)
MAX_ITER = 300
SPHERICAL_TOL = 1e-6


@dataclass
class Fit:
    """One clustering: labels (n,), centres (k, d), inertia (sum of squared distances to the centres).

    A Gaussian mixture also has ``weights`` (k,) and ``covariances``: (k, d, d) full, or (k, d)
    diagonal; its centres are the components' means.
    """

    labels: np.ndarray
    centres: np.ndarray
    inertia: float
    weights: np.ndarray | None = None
    covariances: np.ndarray | None = None

    def reordered(self, new_id: np.ndarray, order: np.ndarray) -> Fit:
        """The same clustering with cluster ``order[i]`` renamed ``i`` (new_id is order's inverse)."""
        return Fit(
            new_id[self.labels],
            self.centres[order],
            self.inertia,
            None if self.weights is None else self.weights[order],
            None if self.covariances is None else self.covariances[order],
        )


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.where(norms == 0, 1, norms)).astype(X.dtype, copy=False)


def distances_to_centres(X: np.ndarray, centres: np.ndarray, algorithm: str) -> np.ndarray:
    """Distances of rows X (n, d) to centres (k, d): (n, k) float32.

    Euclidean for k-means; cosine distance (1 - cosine similarity) for spherical k-means.
    """
    # float64 and centred on the centres' mean: |x|^2 - 2x.c + |c|^2 cancels badly in float32
    X = np.atleast_2d(X).astype(np.float64)
    centres = centres.astype(np.float64)
    if algorithm == "spherical":
        return np.clip(1.0 - unit_rows(X) @ unit_rows(centres).T, 0.0, 2.0).astype(np.float32)
    origin = centres.mean(0)
    X, centres = X - origin, centres - origin
    squared = (X * X).sum(1)[:, None] - 2 * X @ centres.T + (centres * centres).sum(1)[None, :]
    return np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)


def _spherical_kmeans(X: np.ndarray, k: int, seed: int, n_init: int) -> Fit:
    """k-means on the unit sphere: assign by cosine similarity, centres are normalised means."""
    from sklearn.cluster import kmeans_plusplus

    U = unit_rows(X.astype(np.float64))
    rng = np.random.RandomState(seed)
    best: Fit | None = None
    for _ in range(n_init):
        centres, _ = kmeans_plusplus(U, k, random_state=rng)
        previous = -np.inf
        for _ in range(MAX_ITER):
            similarity = U @ centres.T
            labels = similarity.argmax(1)
            objective = similarity[np.arange(len(U)), labels].sum()
            sums = np.zeros_like(centres)
            np.add.at(sums, labels, U)
            empty = np.bincount(labels, minlength=k) == 0
            if empty.any():  # reseed an empty cluster at the point least like its centre
                worst = np.argsort(similarity[np.arange(len(U)), labels])[: empty.sum()]
                sums[empty] = U[worst]
            centres = unit_rows(sums)
            if objective - previous <= SPHERICAL_TOL * len(U):
                break
            previous = objective
        labels = (U @ centres.T).argmax(1)
        inertia = float((1.0 - (U @ centres.T)[np.arange(len(U)), labels]).sum())
        if best is None or inertia < best.inertia:
            best = Fit(labels, centres.astype(np.float32), inertia)
    assert best is not None
    return best


def _gaussian_mixture(X: np.ndarray, k: int, seed: int, n_init: int) -> Fit:
    """A Gaussian mixture by EM (k-means++ start): soft memberships, so a confidence is a probability."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    kind = "full" if X.shape[1] <= GMM_FULL_UP_TO else "diag"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = GaussianMixture(
            k, covariance_type=kind, n_init=n_init, random_state=seed, init_params="k-means++", reg_covar=1e-6
        ).fit(X)
    labels = model.predict(X).astype(np.int64)
    means = model.means_
    inertia = float(((X - means[labels]) ** 2).sum())
    return Fit(labels, means.astype(np.float32), inertia, model.weights_.astype(np.float64), model.covariances_)


def membership(X: np.ndarray, fit: Fit) -> np.ndarray:
    """Posterior probabilities (n, k) of a Gaussian mixture's components for rows X (n, d)."""
    if fit.weights is None or fit.covariances is None:
        raise ValueError("membership needs a Gaussian mixture's weights and covariances.")
    X = np.atleast_2d(X).astype(np.float64)
    log_p = np.empty((len(X), len(fit.weights)))
    for j, (mean, cov) in enumerate(zip(fit.centres.astype(np.float64), fit.covariances, strict=True)):
        diff = X - mean
        if cov.ndim == 1:
            log_det, mahalanobis = np.log(cov).sum(), (diff * diff / cov).sum(1)
        else:
            chol = np.linalg.cholesky(cov)
            solved = np.linalg.solve(chol, diff.T)
            log_det, mahalanobis = 2 * np.log(np.diag(chol)).sum(), (solved * solved).sum(0)
        log_p[:, j] = np.log(fit.weights[j]) - 0.5 * (log_det + mahalanobis + X.shape[1] * np.log(2 * np.pi))
    log_p -= log_p.max(1, keepdims=True)
    p = np.exp(log_p)
    return p / p.sum(1, keepdims=True)


def fit_clusters(X: np.ndarray, k: int, algorithm: str = "kmeans", seed: int = 0, n_init: int = N_INIT) -> Fit:
    """Cluster rows X (n, d) into k groups with k-means++ seeding and a fixed seed.

    ``gmm`` fits a Gaussian mixture (at most GMM_N_INIT starts; full covariances up to
    GMM_FULL_UP_TO dimensions, diagonal above).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} should be one of {ALGORITHMS}.")
    if k < 1:
        raise ValueError(f"n_clusters={k} should be >= 1.")
    if k > len(X):
        raise ValueError(f"n_samples={len(X)} should be >= n_clusters={k}.")
    if algorithm == "spherical":
        return _spherical_kmeans(X, k, seed, n_init)
    if algorithm == "gmm":
        return _gaussian_mixture(X, k, seed, min(n_init, GMM_N_INIT))
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # duplicates can leave fewer distinct centres; callers check k against distinct images
        warnings.simplefilter("ignore", ConvergenceWarning)
        # in float64: scikit-learn's k-means++ computes float32 distances by upcasting them block by
        # block, which made its seeding 70% of a fit (1.7x faster whole: docs/speed.md)
        model = KMeans(k, n_init=n_init, max_iter=MAX_ITER, random_state=seed).fit(X.astype(np.float64, copy=False))
    return Fit(model.labels_.astype(np.int64), model.cluster_centers_.astype(np.float32), float(model.inertia_))


AUTO_MIN_SHARE = 0.01  # a group found automatically holds at least 1% of the images
AUTO_MIN_SIZE = 10
AUTO_FIT_UP_TO = 100_000  # more images: HDBSCAN on a seeded sample of this many, the others take their neighbours'


def auto_groups(
    X: np.ndarray, graph: np.ndarray | None = None, fit_up_to: int | None = None, seed: int = 0
) -> np.ndarray:
    """Groups found without a k: HDBSCAN on the rows of X (n, d); -1 marks noise (no group).

    The groups are the dense regions of the cluster space that hold at least AUTO_MIN_SHARE of
    the images; an image in none of them is left unassigned rather than forced into the
    nearest. Groups are numbered from the largest (0). Deterministic: HDBSCAN has no seed.

    Above ``fit_up_to`` images (default AUTO_FIT_UP_TO), given the kNN ``graph`` (n, k) of the
    images, HDBSCAN runs on a seeded sample of that many and every other image takes the group
    most of its neighbours have (:func:`spread_labels`): HDBSCAN's cost grows faster than linearly.

    Returns
    -------
    labels : ndarray of shape (n,), int64; -1 for noise.
    """
    from sklearn.cluster import HDBSCAN

    n = len(X)
    limit = AUTO_FIT_UP_TO if fit_up_to is None else fit_up_to
    if graph is not None and n > limit >= 2 * AUTO_MIN_SIZE:
        sample = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
        return spread_labels(sample, auto_groups(X[sample], fit_up_to=limit), graph)
    if n < 2 * AUTO_MIN_SIZE:
        return np.full(n, -1, np.int64)
    size = max(AUTO_MIN_SIZE, int(AUTO_MIN_SHARE * n))
    labels = HDBSCAN(min_cluster_size=size, copy=True).fit_predict(X).astype(np.int64)
    found = labels >= 0
    if not found.any():
        return labels
    sizes = np.bincount(labels[found])
    order = np.lexsort((np.arange(len(sizes)), -sizes))
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))
    return np.where(found, new_id[np.maximum(labels, 0)], -1)


def spread_labels(sample: np.ndarray, labels: np.ndarray, graph: np.ndarray) -> np.ndarray:
    """Every image's group from the groups ``labels`` of the rows ``sample``: in rounds, an image
    takes the group most of its labelled neighbours (kNN ``graph`` (n, k)) are in, -1 (noise)
    included but losing ties. An image no labelled neighbour ever reaches stays -1. Returns (n,) int64.
    """
    n, unset = len(graph), -2
    out = np.full(n, unset, np.int64)
    out[sample] = labels
    slots = int(labels.max()) + 2 if len(labels) else 1  # groups 0..g-1, then noise in the last slot
    while True:
        todo = np.flatnonzero(out == unset)
        if not len(todo):
            break
        near = out[graph[todo]]  # (m, k)
        known = near != unset
        ready = known.any(axis=1)
        if not ready.any():
            out[todo] = -1
            break
        rows, near, known = todo[ready], near[ready], known[ready]
        slot = np.where(near == -1, slots - 1, near)
        flat = (np.arange(len(rows))[:, None] * slots + slot)[known]
        votes = np.bincount(flat, minlength=len(rows) * slots).reshape(len(rows), slots)
        winner = votes.argmax(axis=1)  # the first of equal counts: a group before noise
        out[rows] = np.where(winner == slots - 1, -1, winner)
    return out


def order_by_size(fit: Fit) -> Fit:
    """Renumber clusters from the largest (0) to the smallest; ties by the lowest old id."""
    sizes = np.bincount(fit.labels, minlength=len(fit.centres))
    order = np.lexsort((np.arange(len(sizes)), -sizes))
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))
    return fit.reordered(new_id, order)


def match_to_previous(previous: np.ndarray, fit: Fit) -> tuple[Fit, np.ndarray]:
    """Renumber a clustering so its ids follow the previous clustering's wherever they overlap.

    Ids 0..k_prev-1 go to the clusters that share most images with the previous ones (an optimal
    one-to-one matching of the overlap table); the remaining clusters take the next ids, the
    larger first.

    Returns
    -------
    fit : the renumbered clustering.
    contingency : ndarray of shape (k_prev, k), int64: images in previous cluster i and new j.
    """
    k_prev, k = int(previous.max()) + 1, len(fit.centres)
    table = overlap_table(previous, fit.labels, k_prev, k)
    match = matched_clusters(table)
    rows = np.flatnonzero(match >= 0)
    new_id = np.full(k, -1, np.int64)
    new_id[match[rows]] = rows
    rest = np.flatnonzero(new_id < 0)
    rest = rest[np.argsort(-table[:, rest].sum(0), kind="stable")]
    new_id[rest] = np.arange(len(rows), len(rows) + len(rest))
    order = np.argsort(new_id)
    return fit.reordered(new_id, order), table[:, order]
