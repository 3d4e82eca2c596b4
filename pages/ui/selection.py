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
