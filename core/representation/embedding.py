"""UMAP embeddings (the 2-D map and the optional 10-D cluster space) over a precomputed kNN graph.

umap-learn is imported only here and only when an embedding has to be computed: its numba JIT
costs 10-40 s in a fresh process, so the warm path reads the cached result instead.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np

from core.errors import UmapUnavailableError

MAP_EPOCHS = 200  # umap-learn's own choice for large sets; the map is looked at, so it gets them all
CLUSTER_SPACE_DIM = 10
CLUSTER_SPACE_EPOCHS = 100  # clustering needs the groups, not a polished layout: measured, same ARI
UMAP_MIN_IMAGES = 10
UMAP_FIT_UP_TO = 200_000  # more images: UMAP is fitted on a sample of this many, the others placed by neighbours
SETUP_WORDS = "building the graph; the first UMAP of a fresh install also compiles its code (10-40 s)"
EPOCH_TEXT = re.compile(r"(\d+)/(\d+)")


_disk_cache_on = False  # set once umap-learn's compiled functions have numba's disk cache on


def _enable_disk_cache(module: ModuleType) -> None:
    """numba's disk cache on for every compiled function of ``module`` that lacks it."""
    from numba.core.registry import CPUDispatcher

    for value in list(vars(module).values()):
        if isinstance(value, CPUDispatcher) and type(value._cache).__name__ == "NullCache":
            try:
                value.enable_caching()
            except RuntimeError:  # numba finds no folder to cache in: this one compiles as before
                continue


def import_umap() -> ModuleType:
    """umap-learn, with numba's disk cache on for its compiled functions (raises ImportError as umap does).

    umap-learn asks numba to keep the machine code of one of its functions only, so every fresh
    process compiled the rest again: 6-7 s of a 2,000-image UMAP, 1.5 s once they are on disk (next to
    umap-learn's sources, or in numba's user-wide cache where those cannot be written). A library
    upgrade changes their source files, which makes numba compile them anew.
    """
    import umap
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from tqdm import tqdm

    global _disk_cache_on
    if not _disk_cache_on:
        for module in (umap.umap_, umap.layouts, umap.spectral, umap.utils):
            _enable_disk_cache(module)
        _disk_cache_on = True
    # the epoch bar (see _epoch_bar) would start tqdm's monitor thread, which lives as long as the process:
    # a process with a second thread starts its workers from a fork server (processes.pool_context), each
    # importing scikit-learn again (a second of every later stage that spreads over the cores)
    tqdm.monitor_interval = 0
    return umap


WARM_UP_IMAGES = 300


def warm_up() -> None:
    """umap-learn imported and its compiled code loaded (compiled, on a fresh machine: 10-40 s) by a
    UMAP of a few random points of the types the pipeline's have, so the real one starts at once."""
    from core.representation.reduction import nearest_neighbors

    points = np.random.default_rng(0).normal(size=(WARM_UP_IMAGES, CLUSTER_SPACE_DIM)).astype(np.float32)
    indices, distances = nearest_neighbors(points, seed=0)
    umap_embedding(points, indices, distances, CLUSTER_SPACE_DIM, min_dist=0.0, n_epochs=10)


def umap_embedding(
    Z: np.ndarray,
    knn_indices: np.ndarray,
    knn_distances: np.ndarray,
    n_components: int = 2,
    seed: int = 0,
    min_dist: float = 0.1,
    n_epochs: int = MAP_EPOCHS,
    on_epoch: Callable[[int, int], None] | None = None,
    fit_up_to: int | None = None,
) -> np.ndarray:
    """Seeded UMAP of Z (n, c) from its kNN graph: ndarray of shape (n, n_components), float32.

    ``on_epoch(done, total)`` follows the layout's epochs; before the first one UMAP builds its
    graph and, in a fresh install, compiles its code (10-40 s), which cannot be counted.

    Above ``fit_up_to`` images (default UMAP_FIT_UP_TO) UMAP is fitted on a seeded sample of that
    many, with the sample's own kNN graph, and every other image is placed at the distance-weighted
    mean of its placed neighbours in the full graph (:func:`place_through_graph`).

    Raises
    ------
    UmapUnavailableError
        When umap-learn cannot be imported, there are too few images, or UMAP fails.
    """
    n = len(Z)
    limit = UMAP_FIT_UP_TO if fit_up_to is None else fit_up_to
    if n > limit >= UMAP_MIN_IMAGES:
        from core.representation.reduction import nearest_neighbors

        sample = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
        own_indices, own_distances = nearest_neighbors(Z[sample], knn_indices.shape[1], seed=seed)
        placed = umap_embedding(
            Z[sample], own_indices, own_distances, n_components, seed, min_dist, n_epochs, on_epoch, fit_up_to=limit
        )
        return place_through_graph(Z, sample, placed, knn_indices, knn_distances)
    if n < UMAP_MIN_IMAGES:
        raise UmapUnavailableError(
            f"UMAP needs at least {UMAP_MIN_IMAGES} images and there are {n}; "
            "use the PCA layout and --cluster-space pca."
        )
    try:
        umap = import_umap()
    except ImportError as exc:
        raise UmapUnavailableError(
            f"UMAP could not be imported ({exc}); install it with 'pip install -r requirements.txt', "
            "or use the PCA layout and --cluster-space pca."
        ) from None
    n_neighbors = knn_indices.shape[1]
    model = umap.UMAP(
        n_components=n_components,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        n_epochs=n_epochs,
        random_state=seed,
        precomputed_knn=(knn_indices, knn_distances, None),
        tqdm_kwds=None if on_epoch is None else _epoch_bar(on_epoch),
    )
    try:
        with warnings.catch_warnings():
            # a seed makes UMAP single-threaded (that is the point), and it says so every time
            warnings.filterwarnings("ignore", message=".*overridden to 1 by setting random_state.*")
            warnings.filterwarnings("ignore", message=".*precomputed_knn.*")
            embedding = model.fit_transform(Z)
    except Exception as exc:  # umap raises many kinds; the user needs words and a way out
        raise UmapUnavailableError(
            f"UMAP failed on {n} images ({type(exc).__name__}: {exc}); use the PCA layout and --cluster-space pca."
        ) from None
    embedding = np.asarray(embedding, dtype=np.float32)
    if not np.isfinite(embedding).all():
        raise UmapUnavailableError("UMAP returned non-finite positions; use --cluster-space pca.")
    return embedding


class _EpochCounter(io.TextIOBase):
    """A text stream for umap-learn's tqdm bar over the epochs: each redraw "n/total" goes to a callback."""

    def __init__(self, on_epoch: Callable[[int, int], None]) -> None:
        self.on_epoch = on_epoch

    def write(self, text: str) -> int:
        found = EPOCH_TEXT.findall(text)
        if found:
            done, total = found[-1]
            self.on_epoch(int(done), int(total))
        return len(text)


def _epoch_bar(on_epoch: Callable[[int, int], None]) -> dict:
    # umap-learn draws a tqdm bar over its epochs when asked; the bar's text is its only progress report
    return {"disable": False, "file": _EpochCounter(on_epoch), "bar_format": "{n}/{total}", "mininterval": 0.25}


def place_by_neighbours(positions: np.ndarray, indices: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Positions of new points as the distance-weighted mean of their neighbours' positions.

    positions : (n, c) of the known points; indices, distances : (m, n_neighbors).
    An exact duplicate (distance 0) takes its twin's position.
    """
    weights = 1.0 / np.maximum(distances.astype(np.float64), 1e-12)
    exact = distances <= 1e-12
    weights = np.where(exact.any(1, keepdims=True), exact.astype(np.float64), weights)
    weights /= weights.sum(1, keepdims=True)
    return np.einsum("mj,mjc->mc", weights, positions[indices]).astype(np.float32)


def place_through_graph(
    Z: np.ndarray, sample: np.ndarray, placed: np.ndarray, indices: np.ndarray, distances: np.ndarray
) -> np.ndarray:
    """Every image's position, from the positions ``placed`` (s, c) of the rows ``sample``.

    Each other image goes to the distance-weighted mean of its neighbours (kNN graph ``indices``,
    ``distances`` (n, k)) that have a position, in rounds, until all have one: with a sample of a
    tenth, most images have a placed neighbour at once, the rest in the next rounds. Images whose
    neighbours never get one (a part of the graph with no sampled image) are placed by their
    nearest sampled images in Z (exact search). Returns (n, c) float32.
    """
    n = len(indices)
    positions = np.zeros((n, placed.shape[1]), np.float64)
    done = np.zeros(n, bool)
    positions[sample], done[sample] = placed, True
    weights_all = 1.0 / np.maximum(distances.astype(np.float64), 1e-12)
    while not done.all():
        todo = np.flatnonzero(~done)
        known = done[indices[todo]]  # (m, k): which neighbours have a position
        ready = known.any(axis=1)
        if not ready.any():
            from core.representation.reduction import nearest_neighbors

            near, gaps = nearest_neighbors(Z[sample], indices.shape[1], queries=Z[todo])
            positions[todo] = place_by_neighbours(placed, near, gaps)
            break
        rows = todo[ready]
        weights = np.where(known[ready], weights_all[rows], 0.0)
        weights /= weights.sum(axis=1, keepdims=True)
        positions[rows] = np.einsum("mj,mjc->mc", weights, positions[indices[rows]])
        done[rows] = True
    return positions.astype(np.float32)
