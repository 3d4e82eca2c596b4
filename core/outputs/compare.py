"""Two settings of one folder compared: ARI/NMI at every k, the overlap table at one k, the images they disagree on.

The scores themselves live in core.clustering.agreement. Pipelines and sweeps are described by the
Protocols below, not imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.clustering.agreement import (
    DISAGREE_RULE,
    agreement_of_table,
    disagreeing_rows,
    matched_clusters,
    overlap_table,
)
from core.errors import DotmapError

DISAGREEMENTS_SHOWN = 10


class SweepLike(Protocol):
    """What is read of a core.engine.pipeline.Sweep."""

    ks: list[int]
    labels: np.ndarray  # (n_k, n_images)
    silhouette: np.ndarray  # (n_k, n_images)
    recommended_k: int


class ResultLike(Protocol):
    """What is read of a core.engine.pipeline.Pipeline."""

    inventory: Any  # core.reading.folders.Inventory: its root
    settings: Any  # core.engine.pipeline.Settings: its ks

    def sweep(self) -> SweepLike: ...

    def image_meta(self) -> dict[str, Any]: ...


# ---- two results compared ---------------------------------------------------------------------
@dataclass
class Comparison:
    """Two clusterings of the same images (A and B) compared for every k both have, and at one k in detail.

    ks : list of the k both results have, ascending.
    ari, nmi : list of float, the agreement of A and B at each k of ks.
    k : the k of what follows.
    overlap : ndarray of shape (k, k), int64; images in cluster i of A and cluster j of B.
    match : ndarray of shape (k,), int64; the B cluster matched to each A cluster (:func:`matched_clusters`).
    labels_a, labels_b : ndarray of shape (n_images,); the clusters at k.
    disagreeing : ndarray of shape (m,), int64; row ids of the images that disagree, most first
        (:data:`DISAGREE_RULE`).
    surety : ndarray of shape (m,), float32; the smaller of their two silhouettes, which ranks them.
    recommended_a, recommended_b : each result's recommended k.
    """

    ks: list[int]
    ari: list[float]
    nmi: list[float]
    k: int
    overlap: np.ndarray
    match: np.ndarray
    labels_a: np.ndarray
    labels_b: np.ndarray
    disagreeing: np.ndarray
    surety: np.ndarray
    recommended_a: int
    recommended_b: int

    def to_dict(self, paths: Sequence[str], top: int = DISAGREEMENTS_SHOWN) -> dict[str, Any]:
        """Plain JSON values; the first ``top`` disagreeing images with their ``paths`` (as they are to be shown)."""
        return {
            "per_k": [{"k": k, "ari": a, "nmi": b} for k, a, b in zip(self.ks, self.ari, self.nmi, strict=True)],
            "recommended_k": {"a": self.recommended_a, "b": self.recommended_b},
            "k": self.k,
            "overlap": self.overlap.tolist(),
            "match": self.match.tolist(),
            "n_disagreeing": len(self.disagreeing),
            "disagree_rule": DISAGREE_RULE,
            "disagreeing": [
                {
                    "path": paths[row],
                    "a": int(self.labels_a[row]),
                    "b": int(self.labels_b[row]),
                    "b_matched": int(self.match[self.labels_a[row]]),
                    "surety": round(float(surety), 4),
                }
                for row, surety in zip(self.disagreeing[:top], self.surety[:top], strict=True)
            ],
        }


def shared_ks(ks_a: Sequence[int], ks_b: Sequence[int]) -> list[int]:
    """The k both results have; none is an error in words."""
    shared = sorted(set(ks_a) & set(ks_b))
    if not shared:
        raise DotmapError(
            f"A has k = {min(ks_a)}..{max(ks_a)} and B k = {min(ks_b)}..{max(ks_b)}: they share no k, "
            "so there is nothing to compare. Give them overlapping k ranges."
        )
    return shared


def _check_k(k: int, shared: list[int]) -> None:
    if k not in shared:
        raise DotmapError(f"k={k} is not prepared in both results; they share k = {_span(shared)}.")


def _span(ks: list[int]) -> str:
    return f"{ks[0]}..{ks[-1]}" if ks == list(range(ks[0], ks[-1] + 1)) else ", ".join(map(str, ks))


def compare_sweeps(sweep_a: SweepLike, sweep_b: SweepLike, k: int | None = None) -> Comparison:
    """Compare two sweeps of the same images; ``k`` defaults to A's recommended k (or the shared k nearest it)."""
    if sweep_a.labels.shape[1] != sweep_b.labels.shape[1]:
        raise DotmapError(
            f"A clustered {sweep_a.labels.shape[1]} images and B {sweep_b.labels.shape[1]}: "
            "only two results of the same images can be compared."
        )
    shared = shared_ks(sweep_a.ks, sweep_b.ks)
    if k is None:  # A's recommended k, or the shared k nearest to it
        k = min(shared, key=lambda s: (abs(s - sweep_a.recommended_k), s))
    _check_k(k, shared)
    scores = [
        agreement_of_table(overlap_table(sweep_a.labels[sweep_a.ks.index(s)], sweep_b.labels[sweep_b.ks.index(s)]))
        for s in shared
    ]
    ra, rb = sweep_a.ks.index(k), sweep_b.ks.index(k)
    labels_a, labels_b = sweep_a.labels[ra], sweep_b.labels[rb]
    table = overlap_table(labels_a, labels_b, k, k)
    match = matched_clusters(table)
    surety = np.minimum(sweep_a.silhouette[ra], sweep_b.silhouette[rb])
    rows = disagreeing_rows(labels_a, labels_b, match, surety)
    return Comparison(
        ks=shared,
        ari=[ari for ari, _ in scores],
        nmi=[nmi for _, nmi in scores],
        k=k,
        overlap=table,
        match=match,
        labels_a=labels_a,
        labels_b=labels_b,
        disagreeing=rows,
        surety=surety[rows].astype(np.float32),
        recommended_a=sweep_a.recommended_k,
        recommended_b=sweep_b.recommended_k,
    )


def compare_results(a: ResultLike, b: ResultLike, k: int | None = None) -> Comparison:
    """Compare two pipelines of the same data folder with different settings (see :class:`Comparison`).

    Whatever is not cached of their clusterings is computed (their sweeps; never the 2-D map).
    The folders and the k ranges are checked first, so a wrong request computes nothing.
    """
    root_a, root_b = Path(a.inventory.root), Path(b.inventory.root)
    if root_a.resolve() != root_b.resolve():
        raise DotmapError(
            f"A reads {root_a} and B reads {root_b}: only two results of the same folder can be compared."
        )
    shared = shared_ks(a.settings.ks, b.settings.ks)
    if k is not None:
        _check_k(k, shared)
    paths_a, paths_b = a.image_meta()["paths"], b.image_meta()["paths"]
    if paths_a != paths_b:
        raise DotmapError(
            f"A clustered {len(paths_a)} images of {root_a} and B {len(paths_b)}, not the same ones "
            "(the folder changed, or the settings skip other files): prepare both again to compare them."
        )
    return compare_sweeps(a.sweep(), b.sweep(), k)
