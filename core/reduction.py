"""Reduction of feature rows to a few principal components, and exact nearest neighbours there."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_NEIGHBORS = 15  # of the kNN graph behind UMAP, and the neighbours a prediction reports


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
    Z: np.ndarray, n_neighbors: int = N_NEIGHBORS, queries: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean nearest neighbours (brute force on BLAS; no JIT to warm up).

    Without ``queries`` each row of Z is its own first neighbour, as UMAP expects.

    Returns
    -------
    indices : ndarray of shape (n_queries, n_neighbors), int64.
    distances : ndarray of shape (n_queries, n_neighbors), float32.
    """
    from sklearn.neighbors import NearestNeighbors

    n_neighbors = min(n_neighbors, len(Z))
    index = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute").fit(Z)
    distances, indices = index.kneighbors(Z if queries is None else np.atleast_2d(queries))
    indices, distances = indices.astype(np.int64), distances.astype(np.float32)
    if queries is None:
        _put_self_first(indices, distances)
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
