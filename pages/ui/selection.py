"""From a selection on the map to the row ids of the selected images, and the k smallest values (pure functions)."""

from __future__ import annotations

import numpy as np


def _inside_polygon(xy: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Which points (n, 2) are inside the polygon (even-odd rule), as a boolean mask (n,)."""
    inside = np.zeros(len(xy), bool)
    x, y = xy[:, 0], xy[:, 1]
    j = len(xs) - 1
    for i in range(len(xs)):
        crosses = (ys[i] > y) != (ys[j] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (xs[j] - xs[i]) * (y - ys[i]) / (ys[j] - ys[i]) + xs[i]
        inside ^= crosses & (x < at)
        j = i
    return inside


def rows_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Sorted row ids (int64) of every point of ``xy`` (n, 2) inside ``polygon`` (m, 2), m >= 3: a lasso or
    a box on the map, in the same coordinates. Only the points in its bounding box are tested one by one."""
    xy, polygon = np.asarray(xy, np.float64), np.asarray(polygon, np.float64)
    low, high = polygon.min(axis=0), polygon.max(axis=0)
    candidates = np.flatnonzero(np.all((xy >= low) & (xy <= high), axis=1))
    inside = _inside_polygon(xy[candidates], polygon[:, 0], polygon[:, 1])
    return candidates[inside].astype(np.int64)


def smallest(values: np.ndarray, count: int) -> np.ndarray:
    """The positions of the ``count`` smallest values, smallest first: ``np.argsort(values,
    kind="stable")[:count]``, in time linear in len(values) rather than n log n."""
    values = np.asarray(values)
    if count >= len(values):
        return np.argsort(values, kind="stable")
    if count <= 0:
        return np.zeros(0, np.int64)
    kth = np.partition(values, count - 1)[count - 1]
    below = np.flatnonzero(values < kth)
    ties = np.flatnonzero(values == kth)[: count - len(below)]
    chosen = np.concatenate([below, ties])
    return chosen[np.argsort(values[chosen], kind="stable")]
