"""From a plotly selection on the map to the row ids of the selected images (a pure function)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

IMAGES_TRACE = 0  # the map's first trace holds every image; later traces (new images) are not rows


def selected_rows(selection: Mapping[str, Any] | None, n_rows: int) -> np.ndarray:
    """Sorted unique row ids of the images selected on the map.

    Parameters
    ----------
    selection : the ``selection`` of ``st.plotly_chart(..., on_select="rerun")``: a mapping with
        ``points``, each a dict with ``curve_number`` and ``customdata`` (the row id, as a number
        or a one-element list) or at least ``point_index``. None or empty means nothing selected.
    n_rows : the number of images; ids outside 0..n_rows-1 are dropped.

    Returns
    -------
    rows : ndarray of shape (n_selected,), int64.
    """
    if not selection:
        return np.zeros(0, np.int64)
    rows = []
    for point in selection.get("points") or []:
        if point.get("curve_number", IMAGES_TRACE) != IMAGES_TRACE:
            continue
        value = point.get("customdata", point.get("point_index"))
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is None:
            continue
        try:
            row = int(value)
        except (TypeError, ValueError, OverflowError):
            continue
        if 0 <= row < n_rows:
            rows.append(row)
    return np.unique(np.asarray(rows, np.int64))


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


def rows_in_regions(selection: Mapping[str, Any] | None, xy: np.ndarray) -> np.ndarray:
    """Row ids of every image inside the selection's boxes and lassos (not only the points drawn).

    A map drawn as a density image shows a sample of the points; a box or lasso over it means all
    the images under it. ``xy`` (n, 2) are the map's positions. Returns sorted row ids (int64).
    """
    if not selection:
        return np.zeros(0, np.int64)
    xy = np.asarray(xy, np.float64)
    chosen = np.zeros(len(xy), bool)
    for box in selection.get("box") or []:
        xs, ys = sorted(box.get("x", [])[:2]), sorted(box.get("y", [])[:2])
        if len(xs) == 2 and len(ys) == 2:
            chosen |= (xy[:, 0] >= xs[0]) & (xy[:, 0] <= xs[1]) & (xy[:, 1] >= ys[0]) & (xy[:, 1] <= ys[1])
    for lasso in selection.get("lasso") or []:
        xs, ys = np.asarray(lasso.get("x", []), np.float64), np.asarray(lasso.get("y", []), np.float64)
        if len(xs) >= 3 and len(xs) == len(ys):
            near = (xy[:, 0] >= xs.min()) & (xy[:, 0] <= xs.max()) & (xy[:, 1] >= ys.min()) & (xy[:, 1] <= ys.max())
            candidates = np.flatnonzero(near)
            chosen[candidates[_inside_polygon(xy[candidates], xs, ys)]] = True
    return np.flatnonzero(chosen).astype(np.int64)


def map_rows(selection: Mapping[str, Any] | None, xy: np.ndarray, density_above: int) -> np.ndarray:
    """The images a map selection means: the points picked, or, on a density map (more than
    ``density_above`` images), every image inside its boxes and lassos."""
    if len(xy) > density_above:
        inside = rows_in_regions(selection, xy)
        if len(inside):
            return inside
    return selected_rows(selection, len(xy))


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
