"""Assigning new images to the clusters of a prepared set, with neighbours and a place on the map."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from core import features, images
from core.clustering import distances_to_centres
from core.embedding import place_by_neighbours
from core.pipeline import Pipeline
from core.reduction import N_NEIGHBORS, nearest_neighbors

N_SIMILAR = 10  # nearest images reported for a prediction


@dataclass
class Prediction:
    """Where one new image belongs for one k.

    confidence : 1 - d1/d2 from the two nearest centres: 0 on the border, 1 on the own centre.
    unusual : farther from its centre than 99% of that cluster's own members.
    neighbours : row ids of the nearest images in the set; neighbour_paths their paths.
    map_xy : its place on the map, from its neighbours' places.
    map_layout : which map: "umap" (the 2-D map), or "pca" (the first two components) when the
        map is not made or not wanted; prediction itself never needs the map.
    """

    name: str
    k: int
    cluster: int
    distance: float
    confidence: float
    unusual: bool
    neighbours: list[int]
    neighbour_paths: list[str]
    neighbour_distances: list[float]
    map_xy: tuple[float, float]
    map_layout: str

    def to_dict(self) -> dict:
        return asdict(self)


class Predictor:
    """Loads what prediction needs from a prepared pipeline once; then each call is fast."""

    def __init__(self, pipeline: Pipeline, k: int | None = None, use_umap_map: bool = True) -> None:
        self.pipeline = pipeline
        self.sweep = pipeline.sweep()
        self.k = self.sweep.recommended_k if k is None else k
        self.row = self.sweep.row(self.k)
        self.reduction = pipeline.reduction()
        self.paths = pipeline.image_meta()["paths"]
        self.space = pipeline.space() if pipeline.settings.cluster_space == "umap" else None
        self.map_layout = "umap" if use_umap_map else "pca"
        self.map_xy = pipeline.map() if use_umap_map else pipeline.pca_map()

    def predict_masks(self, masks: np.ndarray, names: list[str]) -> list[Prediction]:
        """Predictions for ink masks of shape (m, grid, grid)."""
        settings = self.pipeline.settings
        packed = images.pack_masks(masks)
        Z = self.reduction.project(features.features_from_packed(packed, settings.grid, settings.features))
        indices, distances = nearest_neighbors(self.reduction.Z, max(N_NEIGHBORS, N_SIMILAR), Z)
        points = (
            Z
            if self.space is None
            else place_by_neighbours(self.space, indices[:, :N_NEIGHBORS], distances[:, :N_NEIGHBORS])
        )
        to_centres = distances_to_centres(points, self.sweep.centres[self.row], settings.algorithm)
        xy = place_by_neighbours(self.map_xy, indices[:, :N_NEIGHBORS], distances[:, :N_NEIGHBORS])
        limit = self.sweep.outlier_distance[self.row]
        results = []
        for i, name in enumerate(names):
            order = np.argsort(to_centres[i])
            cluster = int(order[0])
            d1 = float(to_centres[i, order[0]])
            d2 = float(to_centres[i, order[1]]) if len(order) > 1 else d1
            confidence = 1.0 - d1 / d2 if d2 > 0 else 1.0
            results.append(
                Prediction(
                    name=name,
                    k=self.k,
                    cluster=cluster,
                    distance=d1,
                    confidence=float(confidence),
                    unusual=bool(d1 > limit[cluster]),
                    neighbours=[int(j) for j in indices[i, :N_SIMILAR]],
                    neighbour_paths=[self.paths[j] for j in indices[i, :N_SIMILAR]],
                    neighbour_distances=[float(d) for d in distances[i, :N_SIMILAR]],
                    map_xy=(float(xy[i, 0]), float(xy[i, 1])),
                    map_layout=self.map_layout,
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
