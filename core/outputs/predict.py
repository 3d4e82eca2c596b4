"""Assigning new images to the clusters of a prepared set, or to the named groups of a curation, with
neighbours and a place on the map."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from core.clustering.algorithms import distances_to_centres, membership
from core.curation import classifier as group_model
from core.curation.model import Curation, CurationError
from core.engine.pipeline import Pipeline
from core.reading import images
from core.representation.embedding import place_by_neighbours
from core.representation.reduction import N_NEIGHBORS, nearest_neighbors

N_SIMILAR = 10  # nearest images reported for a prediction
NOVELTY_NEIGHBORS = 5  # a new image's typical gap: its mean distance to this many nearest images (PCA)
NOVELTY_PERCENTILE = 99.5  # unlike every cluster: beyond this share of the set's own images, on either
# measure: the gap to the nearest images in PCA space, or the amount of ink


@dataclass
class Prediction:
    """Where one new image belongs for one k.

    confidence : 1 - d1/d2 from the two nearest centres: 0 on the border, 1 on the own centre; for
        a Gaussian mixture, the posterior probability of its component (its cluster is the likeliest).
    novelty : the larger of two ratios, each to the set's own NOVELTY_PERCENTILE-th percentile:
        its mean distance to its NOVELTY_NEIGHBORS nearest images in PCA space, and its ink pixel
        count (against the set's most, or fewest: the features are densities and ignore how much
        ink there is, so a canvas full of noise would pass for a disk).
    unusual : novelty above 1, "unlike every cluster": measured in PCA and feature space, where a
        new point is not pulled into a cluster as it is when placed in the UMAP space by its neighbours.
    neighbours : row ids of the nearest images in the set; neighbour_paths their paths.
    map_xy : its place on the map, from its neighbours' places.
    map_layout : which map: "umap" (the 2-D map), or "pca" (the first two components) when the
        map is not made or not wanted; prediction itself never needs the map.
    group : into a curation's named groups: the group's name; ``cluster`` is then its index in the
        curation's list, ``confidence`` the group model's (core.curation.classifier), ``distance`` the one to
        the mean of the group's images in PCA space.
    """

    name: str
    k: int
    cluster: int
    distance: float
    confidence: float
    novelty: float
    unusual: bool
    neighbours: list[int]
    neighbour_paths: list[str]
    neighbour_distances: list[float]
    map_xy: tuple[float, float]
    map_layout: str
    group: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(values: np.ndarray, limit: float | np.ndarray) -> np.ndarray:
    """values / limit; where the set itself shows no spread (limit 0), any excess counts as infinite."""
    limit = np.broadcast_to(np.asarray(limit, np.float64), values.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(limit > 0, values / np.where(limit > 0, limit, 1.0), np.where(values > 1e-6, np.inf, 0.0))


class Predictor:
    """Loads what prediction needs from a prepared pipeline once; then each call is fast."""

    def __init__(
        self,
        pipeline: Pipeline,
        k: int | None = None,
        use_umap_map: bool = True,
        curation: Curation | None = None,
        method: str = group_model.DEFAULT_METHOD,
    ) -> None:
        """``curation``: assign to its named groups (``method``: see curation.classifier), not the clusters of k."""
        self.pipeline = pipeline
        self.sweep = pipeline.sweep()
        self.k = self.sweep.recommended_k if k is None else k
        self.row = self.sweep.row(self.k)
        self.reduction = pipeline.reduction()
        self.paths = pipeline.image_meta()["paths"]
        self.space = pipeline.space() if pipeline.settings.cluster_space == "umap" else None
        _, own = pipeline.neighbours()  # column 0 is each image itself
        gaps = own[:, 1 : 1 + NOVELTY_NEIGHBORS].mean(1) if own.shape[1] > 1 else np.zeros(len(own))
        self.gap_limit = float(np.percentile(gaps, NOVELTY_PERCENTILE)) if len(gaps) else 0.0
        ink = pipeline.ink_counts().astype(np.float64)
        self.ink_limits = (
            float(np.percentile(ink, 100 - NOVELTY_PERCENTILE)),
            float(np.percentile(ink, NOVELTY_PERCENTILE)),
        )
        self.map_layout = "umap" if use_umap_map else "pca"
        self.map_xy = pipeline.map() if use_umap_map else pipeline.pca_map()
        self.groups: tuple[group_model.GroupModel, list[str], np.ndarray] | None = None
        if curation is not None:
            self.groups = self._fit_groups(curation, method)

    def _fit_groups(self, curation: Curation, method: str) -> tuple[group_model.GroupModel, list[str], np.ndarray]:
        if curation.paths != self.paths:
            raise CurationError("The curation is of another set of images than this one; open it on its folder.")
        dense, names = curation.dense()
        if not np.any(dense >= 0):
            raise CurationError("No image is in a named group yet, so there is nothing to assign new images to.")
        Z = self.reduction.Z
        model = group_model.fit_groups(Z, dense, method, seed=self.pipeline.settings.seed)
        sums = np.zeros((len(names), Z.shape[1]))
        np.add.at(sums, dense[dense >= 0], Z[dense >= 0])
        means = sums / np.maximum(np.bincount(dense[dense >= 0], minlength=len(names)), 1)[:, None]
        return model, names, means

    def novelty_parts(self, distances: np.ndarray, ink: np.ndarray) -> dict[str, np.ndarray]:
        """The ratios behind ``novelty`` for new images, from the distances to their nearest images
        in PCA space (sorted) and their ink pixel counts: each (m,), 1 at the set's own limit."""
        low, high = self.ink_limits
        ink = ink.astype(np.float64)
        return {
            "gap": _ratio(distances[:, :NOVELTY_NEIGHBORS].mean(1), self.gap_limit),
            # the features ignore how much ink there is (densities): a canvas full of noise is a "disk"
            "ink": np.maximum(_ratio(ink, high), _ratio(np.full(len(ink), low), np.maximum(ink, 1.0))),
        }

    def predict_masks(self, masks: np.ndarray, names: list[str]) -> list[Prediction]:
        """Predictions for ink masks of shape (m, grid, grid)."""
        settings = self.pipeline.settings
        packed = images.pack_masks(masks)
        Z = self.reduction.project(self.pipeline.features_of(packed))
        indices, distances = nearest_neighbors(self.reduction.Z, max(N_NEIGHBORS, N_SIMILAR), Z)
        points = (
            Z
            if self.space is None
            else place_by_neighbours(self.space, indices[:, :N_NEIGHBORS], distances[:, :N_NEIGHBORS])
        )
        to_centres = distances_to_centres(points, self.sweep.centres[self.row], settings.algorithm)
        mixture = self.sweep.fit(self.k) if self.sweep.mixtures is not None else None
        memberships = membership(points, mixture) if mixture is not None else None
        xy = place_by_neighbours(self.map_xy, indices[:, :N_NEIGHBORS], distances[:, :N_NEIGHBORS])
        ink = np.count_nonzero(masks.reshape(len(masks), -1), axis=1)
        novelty = np.maximum.reduce(list(self.novelty_parts(distances, ink).values()))
        if self.groups is not None:
            model, group_names, means = self.groups
            in_group, group_confidence = model.predict(Z)
        results = []
        for i, name in enumerate(names):
            group = None
            if self.groups is not None:
                cluster = int(in_group[i])
                group = group_names[cluster]
                d1 = float(np.linalg.norm(Z[i] - means[cluster]))
                confidence = float(group_confidence[i])
            elif memberships is None:
                order = np.argsort(to_centres[i])
                cluster = int(order[0])
                d1 = float(to_centres[i, order[0]])
                d2 = float(to_centres[i, order[1]]) if len(order) > 1 else d1
                confidence = 1.0 - d1 / d2 if d2 > 0 else 1.0
            else:  # a mixture: its own posterior probability is the honest confidence
                cluster = int(memberships[i].argmax())
                d1 = float(to_centres[i, cluster])
                confidence = float(memberships[i, cluster])
            results.append(
                Prediction(
                    name=name,
                    k=self.k,
                    cluster=cluster,
                    distance=d1,
                    confidence=float(confidence),
                    novelty=float(novelty[i]),
                    unusual=bool(novelty[i] > 1.0),
                    neighbours=[int(j) for j in indices[i, :N_SIMILAR]],
                    neighbour_paths=[self.paths[j] for j in indices[i, :N_SIMILAR]],
                    neighbour_distances=[float(d) for d in distances[i, :N_SIMILAR]],
                    map_xy=(float(xy[i, 0]), float(xy[i, 1])),
                    map_layout=self.map_layout,
                    group=group,
                )
            )
        return results

    def predict(self, source: str | os.PathLike | bytes, name: str | None = None) -> Prediction:
        """Predict one image given as a path or as the bytes of a file.

        Raises
        ------
        images.ImageReadError
            When the file is not a usable image (the message says why).
        """
        settings = self.pipeline.settings
        mask = images.decode_image(source, settings.grid, settings.polarity)
        label = name if name is not None else (str(source) if not isinstance(source, bytes) else "upload")
        return self.predict_masks(mask[None], [label])[0]
