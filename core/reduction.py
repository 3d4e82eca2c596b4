"""Reduction of feature rows to a few principal components, and nearest neighbours there."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

N_NEIGHBORS = 15  # of the kNN graph behind UMAP, and the neighbours a prediction reports
# Up to this many images the kNN graph is exact (brute force, n^2: 3.3 s at 32,000 and 40 s at
# 100,000 on 2 shared cores); above it, approximate (pynndescent: 0.7 s and 9 s, recall@15 0.99, but
# its numba JIT costs 35-80 s once per process, so it pays off only from about here on;
# benchmarks/neighbours.py)
EXACT_NEIGHBOURS_UP_TO = 100_000
NEIGHBOUR_METHODS = ("auto", "exact", "approximate")
# candidates NN-descent keeps per row and round (pynndescent's default is n_neighbors, 15): 60, as
# UMAP itself uses, lifts recall@15 on 100,000 points from 0.959 to 0.992 at about the same time
APPROXIMATE_MAX_CANDIDATES = 60
APPROXIMATE_WORDS = (
    f"neighbours: an approximate index (more than {EXACT_NEIGHBOURS_UP_TO:,} images); "
    "its first build in a process compiles code (30-80 s)"
)


@dataclass
class Reduction:
    """A fitted PCA and the reduced data.

    Z : ndarray of shape (n_images, n_components), float32.
    components : ndarray of shape (n_components, n_features), float32.
    mean : ndarray of shape (n_features,), float32.
    explained_variance_ratio : ndarray of shape (n_components,), float64.
    """

    Z: np.ndarray
    components: np.ndarray
    mean: np.ndarray
    explained_variance_ratio: np.ndarray

    def project(self, X: np.ndarray) -> np.ndarray:
        """Reduce new feature rows X (m, n_features) to (m, n_components) float32."""
        return ((np.atleast_2d(X) - self.mean) @ self.components.T).astype(np.float32)


def reduce_features(X: np.ndarray, n_components: int = 50, seed: int = 0) -> Reduction:
    """PCA of X (n_images, n_features) to at most ``n_components`` components.

    Fewer components are kept when the data cannot carry so many (fewer images or features);
    the number actually kept is ``Z.shape[1]``.
    """
    from sklearn.decomposition import PCA

    n, d = X.shape
    if n_components < 1:
        raise ValueError(f"n_components={n_components} should be >= 1.")
    if n < 2:
        raise ValueError(f"n_images={n} should be >= 2 for a reduction.")
    kept = min(n_components, n - 1, d)
    # exact eigen-decomposition of the covariance when features are few (it is then the
    # faster one), randomized SVD when they are many: scikit-learn's "auto" rule
    pca = PCA(n_components=kept, svd_solver="auto", random_state=seed)
    Z = pca.fit_transform(X).astype(np.float32)
    ratio = np.nan_to_num(pca.explained_variance_ratio_, nan=0.0)
    return Reduction(Z, pca.components_.astype(np.float32), pca.mean_.astype(np.float32), ratio)


def nearest_neighbors(
    Z: np.ndarray,
    n_neighbors: int = N_NEIGHBORS,
    queries: np.ndarray | None = None,
    method: str = "auto",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean nearest neighbours among the rows of Z (n_images, n_components).

    Without ``queries``: the kNN graph of Z, each row its own first neighbour, as UMAP expects.
    ``method="auto"`` searches exactly (brute force on BLAS; no JIT to warm up) up to
    ``EXACT_NEIGHBOURS_UP_TO`` images and approximately above (NN-descent, pynndescent);
    ``"exact"`` and ``"approximate"`` force one. The approximate graph is the same for the same
    ``seed`` and the same number of numba threads.

    With ``queries`` (new images): always exact. They cost m * n (0.1 s for 10 queries, 4 s for
    1,000 against a million rows), far less than building an index over Z for them.

    Returns
    -------
    indices : ndarray of shape (n_queries, n_neighbors), int64.
        Nearest first; ``n_neighbors`` is capped at n_images.
    distances : ndarray of shape (n_queries, n_neighbors), float32.
        Ascending.
    """
    if method not in NEIGHBOUR_METHODS:
        raise ValueError(f"method={method!r} should be one of {NEIGHBOUR_METHODS}.")
    if queries is not None and method == "approximate":
        raise ValueError("method='approximate' is for the kNN graph of Z; queries are always searched exactly.")
    n_neighbors = min(n_neighbors, len(Z))
    if queries is not None:
        return _exact(Z, n_neighbors, np.atleast_2d(queries))
    approximate = method == "approximate" or (method == "auto" and len(Z) > EXACT_NEIGHBOURS_UP_TO)
    indices, distances = _approximate_graph(Z, n_neighbors, seed) if approximate else _exact(Z, n_neighbors, Z)
    _put_self_first(indices, distances)
    return indices, distances


def _exact(Z: np.ndarray, n_neighbors: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force neighbours of queries (m, d) among Z (n, d): int64 and float32, each (m, n_neighbors)."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute").fit(Z)
    distances, indices = index.kneighbors(queries)
    return indices.astype(np.int64), distances.astype(np.float32)


def _approximate_graph(Z: np.ndarray, n_neighbors: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """NN-descent kNN graph of Z (n, d) with self in column 0: int64 and float32, each (n, n_neighbors).

    pynndescent's own sizes (n_trees 9 at 32,000 rising to 12 at a million, n_iters log2 n) with
    ``APPROXIMATE_MAX_CANDIDATES``; only the graph is used, so no search index is prepared.
    """
    try:
        from pynndescent import NNDescent
    except ImportError:
        raise ImportError("Approximate neighbours need pynndescent: pip install pynndescent") from None

    with warnings.catch_warnings():
        # rows it could not fill are padded with -1 and mended below
        warnings.filterwarnings("ignore", message="Failed to correctly find n_neighbors", category=UserWarning)
        index = NNDescent(
            Z,
            metric="euclidean",
            n_neighbors=n_neighbors,
            max_candidates=APPROXIMATE_MAX_CANDIDATES,
            random_state=seed,
            n_jobs=1,  # the same graph on every machine: with more threads it depends on their number
            compressed=False,
        )
        indices, distances = index.neighbor_graph
    indices, distances = indices.astype(np.int64), distances.astype(np.float32)
    # a row NN-descent could not fill (padded with -1) is searched exactly instead
    unfilled = np.flatnonzero((indices < 0).any(axis=1))
    if len(unfilled):
        indices[unfilled], distances[unfilled] = _exact(Z, n_neighbors, Z[unfilled])
    return indices, distances


def _put_self_first(indices: np.ndarray, distances: np.ndarray) -> None:
    """An exact duplicate can tie with a row itself; UMAP's graph wants the row first."""
    for i in np.flatnonzero(indices[:, 0] != np.arange(len(indices))):
        row = indices[i]
        at = np.flatnonzero(row == i)
        end = at[0] if len(at) else len(row) - 1  # not among the ties: it displaces the last
        row[1 : end + 1] = row[:end].copy()
        distances[i, 1 : end + 1] = distances[i, :end].copy()
        row[0], distances[i, 0] = i, 0.0
