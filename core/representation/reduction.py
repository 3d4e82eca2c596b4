"""Reduction of feature rows to a few principal components, and nearest neighbours there."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.engine.backends import Backend
from core.engine.processes import spread
from core.reading import ondisk

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

# Above this many images PCA is fitted on a seeded sample of this many: the components of 100,000
# rows of a few hundred features are settled, and the features of a million need not be in memory
PCA_FIT_UP_TO = 100_000
N_NEIGHBORS = 15  # of the kNN graph behind UMAP, and the neighbours a prediction reports
# Up to this many images the kNN graph is exact (brute force, n^2: 3.3 s at 32,000 and 40 s at
# 100,000 on 2 shared cores); above it, approximate (pynndescent: 0.7 s and 9 s, recall@15 0.99, but
# its numba JIT costs 35-80 s once per process, so it pays off only from about here on;
# benchmarks/neighbours.py)
EXACT_NEIGHBOURS_UP_TO = 100_000
NEIGHBOUR_METHODS = ("auto", "exact", "approximate")
EXACT_TASK_ROWS = 8192  # query rows of one block of the exact search (a task on a cluster or a local process)
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


def fit_rows(n: int, seed: int) -> np.ndarray | None:
    """The rows PCA is fitted on: None for all of them, else a seeded sample of PCA_FIT_UP_TO, sorted."""
    if n <= PCA_FIT_UP_TO:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, PCA_FIT_UP_TO, replace=False))


def reduce_features(
    X: np.ndarray,
    n_components: int = 50,
    seed: int = 0,
    backend: Backend | None = None,
    source: str | os.PathLike | None = None,
) -> Reduction:
    """PCA of X (n_images, n_features) to at most ``n_components`` components.

    Fewer components are kept when the data cannot carry so many (fewer images or features);
    the number actually kept is ``Z.shape[1]``. With a cluster ``backend`` the PCA is a Dask array
    SVD whose blocks are read by the workers from ``source``, X's .npy file in the cache.
    """
    n, d = X.shape
    if n_components < 1:
        raise ValueError(f"n_components={n_components} should be >= 1.")
    if n < 2:
        raise ValueError(f"n_images={n} should be >= 2 for a reduction.")
    kept = min(n_components, n - 1, d)
    if backend is not None and backend.name != "local":
        if source is None:
            raise ValueError("a cluster backend reads the features from a file: give source=.")
        return _reduce_on_cluster(n, kept, seed, backend, str(source))
    return _reduce_here(X, kept, seed)


def _reduce_here(X: np.ndarray, kept: int, seed: int) -> Reduction:
    from sklearn.decomposition import PCA

    n = len(X)
    # exact eigen-decomposition of the covariance when features are few (it is then the
    # faster one), randomized SVD when they are many: scikit-learn's "auto" rule
    pca = PCA(n_components=kept, svd_solver="auto", random_state=seed)
    sample = fit_rows(n, seed)
    if sample is None:
        Z = pca.fit_transform(X).astype(np.float32)
    else:  # fitted on a seeded sample, then every row projected a block at a time
        pca.fit(X[sample])
        ondisk.let_go(X)
        Z = np.empty((n, kept), np.float32)
        step = ondisk.block_rows(X.shape[1] * X.itemsize)
        for start in range(0, n, step):
            Z[start : start + step] = pca.transform(X[start : start + step])
            ondisk.let_go(X)
    return _reduction_of(pca, Z)


def _reduction_of(pca: PCA, Z: np.ndarray) -> Reduction:
    ratio = np.nan_to_num(pca.explained_variance_ratio_, nan=0.0)
    return Reduction(Z, pca.components_.astype(np.float32), pca.mean_.astype(np.float32), ratio)


def _reduce_on_cluster(n: int, kept: int, seed: int, backend: Backend, source: str) -> Reduction:
    """The same PCA as here, with the workers reading the features from ``source``: the fit is one task
    on the same rows (all, or the seeded sample), then every block of rows is projected as a task.

    Not Dask's own SVD: its randomized ``svd_compressed``, and even the exact TSQR in float64, give
    components that differ from scikit-learn's float32 PCA in the third decimal, and the UMAP and
    k-means downstream turn that into other clusters at an unstable k (ARI 0.49 at k=3 on the
    3,000-image demo). The fit is cheap; a sample of 100,000 rows at most is fitted.
    """
    sample = fit_rows(n, seed)
    threads = _blas_threads()
    if sample is None:
        return next(backend.map(_reduce_file, [source], kept=kept, seed=seed, threads=threads))
    pca = next(backend.map(_fit_on_rows, [source], rows=sample, kept=kept, seed=seed, threads=threads))
    spans = ondisk.row_blocks(n, _block_rows_of(source))
    Z = np.concatenate(list(backend.map(_project_rows, spans, source=source, pca=pca)))
    return _reduction_of(pca, Z)


def _block_rows_of(source: str) -> int:
    X = ondisk.map_rows(source)
    return ondisk.block_rows(X.shape[1] * X.itemsize)


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=1)


def _reduce_file(source: str, kept: int, seed: int, threads: int) -> Reduction:
    """A task: the PCA of a whole .npy file of features.

    It runs on as many BLAS threads as the process that asked for it (a Dask worker has one): the
    covariance's sums are split by thread, and other last bits of the components would become
    other clusters at a k where k-means is unstable.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads, user_api="blas"):
        return _reduce_here(ondisk.load(source), kept, seed)


def _fit_on_rows(source: str, rows: np.ndarray, kept: int, seed: int, threads: int) -> PCA:
    """A task: a PCA fitted on some rows of a .npy file of features (on ``threads`` BLAS threads)."""
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads, user_api="blas"):
        return PCA(n_components=kept, svd_solver="auto", random_state=seed).fit(ondisk.map_rows(source)[rows])


def _project_rows(span: tuple[int, int], source: str, pca: PCA) -> np.ndarray:
    """A task: rows ``span`` of a .npy file of features, reduced by a fitted PCA."""
    return pca.transform(ondisk.map_rows(source)[span[0] : span[1]]).astype(np.float32)


def nearest_neighbors(
    Z: np.ndarray,
    n_neighbors: int = N_NEIGHBORS,
    queries: np.ndarray | None = None,
    method: str = "auto",
    seed: int = 0,
    backend: Backend | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean nearest neighbours among the rows of Z (n_images, n_components).

    Without ``queries``: the kNN graph of Z, each row its own first neighbour, as UMAP expects.
    ``method="auto"`` searches exactly (brute force on BLAS; no JIT to warm up) up to
    ``EXACT_NEIGHBOURS_UP_TO`` images and approximately above (NN-descent, pynndescent);
    ``"exact"`` and ``"approximate"`` force one. The approximate graph is the same for the same
    ``seed`` and the same number of numba threads. With a cluster ``backend`` the exact graph is
    searched as tasks over blocks of rows; NN-descent runs here (it is one index, not blocks).

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
    if approximate:
        indices, distances = _approximate_graph(Z, n_neighbors, seed)
    else:
        # by blocks of query rows everywhere, so the bytes do not depend on where the blocks ran: tasks on
        # a cluster, or here on a process per core (32,000 dense images on 2 cores: 4.5 s -> 2.5 s)
        spans = ondisk.row_blocks(len(Z), EXACT_TASK_ROWS)
        if backend is not None and backend.name != "local":
            found = list(backend.map(_exact_rows, spans, Z=Z, n_neighbors=n_neighbors))
        else:
            found = list(spread(_exact_rows, spans, len(Z), Z=Z, n_neighbors=n_neighbors))
        indices, distances = np.concatenate([i for i, _ in found]), np.concatenate([d for _, d in found])
    _put_self_first(indices, distances)
    return indices, distances


def _exact(Z: np.ndarray, n_neighbors: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force neighbours of queries (m, d) among Z (n, d): int64 and float32, each (m, n_neighbors)."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute").fit(Z)
    distances, indices = index.kneighbors(queries)
    return indices.astype(np.int64), distances.astype(np.float32)


def _exact_rows(span: tuple[int, int], Z: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """A task: the exact neighbours of rows ``span`` of Z among all of Z."""
    return _exact(Z, n_neighbors, Z[span[0] : span[1]])


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
