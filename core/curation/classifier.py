"""Assigning new images to a person's named groups, learned from the images they curated (PCA space).

Two ways, measured by benchmarks/groups.py on held-out curated images: a vote of the nearest curated
images (the default: best or tied-best in every set, feature kind and curation measured, 5 points
ahead of the classifier on average, and the only one that predicts a group of 2 curated images)
and a logistic regression on the components. Every learned
state is plain arrays, so a model can be cached with ``np.save`` and predicts with numpy alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.representation.reduction import nearest_neighbors

METHODS: tuple[str, ...] = ("neighbours", "logistic")
DEFAULT_METHOD = "neighbours"  # measured by benchmarks/groups.py over all its sets
METHOD_WORDS: dict[str, str] = {
    "neighbours": "Each new image joins the group most common among its nearest curated images.",
    "logistic": "A logistic regression learned from the curated images gives each group a probability.",
}
GROUP_NEIGHBOURS = 10  # curated images that vote: best mean and worst case of 1, 5, 10, 15, 25 (measured)
GROUP_WEIGHTED = True  # a vote weighs 1 / distance: as good on full groups, and a near twin outvotes far members
GROUP_SIZE_POWER = 0.5  # a group's votes are divided by (its curated images) ** this: without it a group of 2
# is never predicted among groups of 160 (recall 0.02 -> 0.65 measured, accuracy elsewhere unchanged)
LOGISTIC_C = 1.0  # inverse strength of the L2 penalty, on standardised components
LOGISTIC_MAX_ITER = 300
_TINY = 1e-12  # a distance floor: an exact twin gets a very large but finite weight
_FEW_QUERIES = 32  # up to this many new images the own numpy search; more: scikit-learn's (parallel)


@dataclass
class GroupModel:
    """A fitted assignment of images to groups.

    method : one of METHODS.
    n_groups : group indices run 0..n_groups-1; an index without curated images is never predicted.
    classes_ : ndarray of shape (n_present,), int64, the group indices that have curated images.
    Z_, groups_ : "neighbours": the curated images, ndarray (n_curated, d) float32 and (n_curated,) int64.
    norms_ : "neighbours": ndarray of shape (n_curated,), float32, the squared length of each row of Z_.
    n_neighbours, weighted : "neighbours": how many vote, and whether a vote weighs 1 / distance.
    size_power, sizes_ : "neighbours": a group's votes are divided by sizes_ ** size_power, sizes_
        being ndarray of shape (n_present,), int64, the curated images of each group.
    mean_, scale_ : "logistic": the standardisation of the components, ndarrays of shape (d,).
    coef_, intercept_ : "logistic": ndarrays of shape (n_present, d) and (n_present,).
    """

    method: str
    n_groups: int
    classes_: np.ndarray
    Z_: np.ndarray | None = field(default=None, repr=False)
    groups_: np.ndarray | None = field(default=None, repr=False)
    norms_: np.ndarray | None = field(default=None, repr=False)
    n_neighbours: int = GROUP_NEIGHBOURS
    weighted: bool = GROUP_WEIGHTED
    size_power: float = GROUP_SIZE_POWER
    sizes_: np.ndarray | None = field(default=None, repr=False)
    mean_: np.ndarray | None = field(default=None, repr=False)
    scale_: np.ndarray | None = field(default=None, repr=False)
    coef_: np.ndarray | None = field(default=None, repr=False)
    intercept_: np.ndarray | None = field(default=None, repr=False)

    def predict(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The group of each new image and how sure the model is.

        Parameters
        ----------
        Z : ndarray of shape (m, d), PCA coordinates of new images (a single row (d,) is taken as m = 1).

        Returns
        -------
        group : ndarray of shape (m,), int64, a group index in 0..n_groups-1.
        confidence : ndarray of shape (m,), float64 in 0..1: for "neighbours" the winner's share of
            the votes (as weighed and divided by group size), for "logistic" its predicted probability; 1 when there is
            only one group to choose.
        """
        Z = np.atleast_2d(np.asarray(Z, dtype=np.float64))
        d = self._dimension()
        if Z.ndim != 2 or Z.shape[1] != d:
            raise ValueError(f"Z has shape {Z.shape}; it should be (m, {d}) like the curated images.")
        if len(Z) == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        if len(self.classes_) == 1:
            return np.full(len(Z), self.classes_[0], np.int64), np.ones(len(Z))
        share, column = self._vote(Z) if self.method == "neighbours" else self._probabilities(Z)
        return self.classes_[column], share

    def _dimension(self) -> int:
        for state in (self.Z_, self.coef_):
            if state is not None:
                return state.shape[1]
        raise ValueError(f"GroupModel(method={self.method!r}) has no learned state; make it with fit_groups.")

    def _vote(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vote shares of the nearest curated images; a tie goes to the group of the nearer image."""
        indices, distances = _nearest(self.Z_, self.norms_, Z.astype(np.float32), self.n_neighbours)
        weights = 1.0 / np.maximum(distances, _TINY) if self.weighted else np.ones(indices.shape)
        columns = np.searchsorted(self.classes_, self.groups_[indices])  # (m, k) into classes_
        rows = np.repeat(np.arange(len(Z)), indices.shape[1])
        votes = np.zeros((len(Z), len(self.classes_)))
        np.add.at(votes, (rows, columns.ravel()), weights.ravel())
        votes /= self.sizes_.astype(np.float64) ** self.size_power
        tied = np.isclose(votes, votes.max(axis=1, keepdims=True), rtol=1e-9, atol=0.0)
        first_seen = np.full(votes.shape, indices.shape[1])
        for j in range(indices.shape[1] - 1, -1, -1):  # backwards: the nearest occurrence is written last
            first_seen[np.arange(len(Z)), columns[:, j]] = j
        winner = np.argmin(np.where(tied, first_seen, indices.shape[1] + 1), axis=1)
        share = votes[np.arange(len(Z)), winner] / votes.sum(axis=1)
        return np.clip(share, 0.0, 1.0), winner

    def _probabilities(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = ((Z - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        winner = np.argmax(p, axis=1)
        return p[np.arange(len(Z)), winner], winner


def _nearest(Z: np.ndarray, norms: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of Z (n, d) to each query (m, d), nearest first (exact Euclidean).

    A few queries are searched here: core.representation.reduction.nearest_neighbors (scikit-learn) takes 3 ms for
    one image against 32,000, and 7-20 ms on a busy machine, one BLAS thread on kept norms under
    1 ms. Many go to it: its parallel search is about 4x faster per image in a batch of 1,000.

    Returns
    -------
    indices : ndarray of shape (m, k), int64.
    distances : ndarray of shape (m, k), float64.
    """
    k = min(k, len(Z))
    if len(queries) > _FEW_QUERIES:
        indices, _ = nearest_neighbors(Z, k, queries)
    else:
        with _one_blas_thread():
            gaps = norms[None, :] - 2.0 * (queries @ Z.T)  # |z - q|^2 - |q|^2: same order per query
        indices = (
            np.argpartition(gaps, k - 1, axis=1)[:, :k] if k < len(Z) else np.tile(np.arange(k), (len(queries), 1))
        )
    # exact distances of the few kept, free of the cancellation in the expansion above
    distances = np.sqrt(((Z[indices].astype(np.float64) - queries[:, None, :]) ** 2).sum(axis=2))
    order = np.argsort(distances, axis=1, kind="stable")
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(distances, order, axis=1)


@functools.cache
def _blas_pools() -> Any:
    """The BLAS libraries loaded, found once (threadpool_limits searches them again each call: 0.5 ms)."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS, used by the logistic fit, so it is limited too)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread: our products are small, and threaded OpenBLAS on a
    busy machine made them 10-20x slower (a logistic fit at 32,000 x 40: 0.15 s -> 2-4 s; measured)."""
    return _blas_pools().limit(limits=1, user_api="blas")


def fit_groups(
    Z: np.ndarray,
    groups: np.ndarray,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    *,
    n_neighbours: int = GROUP_NEIGHBOURS,
    weighted: bool = GROUP_WEIGHTED,
    size_power: float = GROUP_SIZE_POWER,
) -> GroupModel:
    """Learn the curated groups of a prepared set.

    Parameters
    ----------
    Z : ndarray of shape (n, d), PCA coordinates of the set's images.
    groups : ndarray of shape (n,), int; >= 0 a group index (0..n_groups-1, a group may be empty),
        < 0 not used (unassigned or an outlier).
    method : one of METHODS.
    seed : fixes any randomness of the fit (the fits are deterministic today; kept for new methods).
    n_neighbours, weighted, size_power : "neighbours" only: how many curated images vote, whether a
        vote weighs 1 / distance, and the power of its group's size that a group's votes are divided
        by (0: plain votes, 1: as if every group were equally common).

    Returns
    -------
    GroupModel, with n_groups = the largest group index + 1.

    Raises
    ------
    ValueError
        When the method is unknown, the shapes disagree, or no image is in any group.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} should be one of {METHODS}.")
    Z = np.asarray(Z)
    groups = np.asarray(groups)
    if Z.ndim != 2:
        raise ValueError(f"Z has shape {Z.shape}; it should be (n_images, n_components).")
    if groups.shape != (len(Z),):
        raise ValueError(f"groups has shape {groups.shape}; it should be ({len(Z)},), one per row of Z.")
    if not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(f"groups has dtype {groups.dtype}; it should hold integer group indices.")
    if not np.all(np.isfinite(Z)):
        raise ValueError(f"Z holds {int(np.count_nonzero(~np.isfinite(Z)))} non-finite value(s).")
    used = groups >= 0
    if not used.any():
        raise ValueError(f"No image is in any group (all {len(groups)} group indices are < 0); curate some first.")
    if method == "neighbours" and n_neighbours < 1:
        raise ValueError(f"n_neighbours={n_neighbours} should be >= 1.")
    if method == "neighbours" and not 0 <= size_power <= 1:
        raise ValueError(f"size_power={size_power} should be in 0..1.")
    options = {"n_neighbours": n_neighbours, "weighted": weighted, "size_power": size_power}
    return _fit_impl(Z[used], groups[used].astype(np.int64), method, seed, options)


def _fit_impl(Z: np.ndarray, groups: np.ndarray, method: str, seed: int, options: dict[str, Any]) -> GroupModel:
    """The fit on the curated rows only; assumes prior validation."""
    classes, sizes = np.unique(groups, return_counts=True)
    model = GroupModel(method, int(classes[-1]) + 1, classes, **options)
    if method == "neighbours" or len(classes) == 1:
        # one group needs no learning, but keeps Z_ so predict can check the dimension
        model.Z_, model.groups_, model.sizes_ = Z.astype(np.float32), groups, sizes.astype(np.int64)
        model.norms_ = np.einsum("ij,ij->i", model.Z_, model.Z_)
    else:
        model.mean_, model.scale_, model.coef_, model.intercept_ = _fit_logistic(Z, groups, seed)
    return model


def _fit_logistic(Z: np.ndarray, groups: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """Multinomial logistic regression on standardised components, as plain arrays for softmax."""
    from sklearn.linear_model import LogisticRegression

    Z64 = Z.astype(np.float64)
    mean = Z64.mean(axis=0)
    scale = Z64.std(axis=0)
    scale[scale == 0] = 1.0
    classifier = LogisticRegression(C=LOGISTIC_C, max_iter=LOGISTIC_MAX_ITER, random_state=seed)
    with _one_blas_thread():
        classifier.fit((Z64 - mean) / scale, groups)
    coef, intercept = classifier.coef_, classifier.intercept_
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row, p(second) = sigmoid(z) = softmax([0, z])
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return mean, scale, coef, intercept
