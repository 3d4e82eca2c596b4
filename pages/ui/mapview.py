"""The map component: every image a WebGL point, the image under the cursor, the images themselves zoomed in.

A Streamlit custom component (v2) around regl-scatterplot (pages/ui/web/: map.js, bundled with its
dependencies into map.bundle.js by build.sh, their licences in THIRD_PARTY.txt). The thumbnails come
from the atlas stage (core.outputs.atlas) and travel to the browser once a session; the points, their
colours and the typical shapes on every run. The selection (a lasso, a box, a click) comes back as row ids.
On a density map (above render.DENSITY_ABOVE images, a sample drawn as points), zoomed in until a few
thousand images are in view, the browser asks for the region in view and gets every image in it, as tiles
made from the images there and then.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import streamlit as st

from core.engine.pipeline import Pipeline
from core.outputs.atlas import region_tiles
from core.reading.names import shown
from pages.ui import data, render
from pages.ui.selection import rows_in_polygon

WEB = Path(__file__).with_name("web")
HEIGHT_PX = 640
SENT = "_mapview_atlases_sent"  # session state: the atlas keys this browser session has received
REGIONS = "_mapview_regions"  # session state: per map, the region of a density map last asked for
REGION_UP_TO = 4000  # images of a region sent as tiles at most (the browser draws up to 1,500 in view)
POINT_SIZES = ((20_000, 3), (5_000, 4), (1_000, 5))  # (from this many points, size in px)
WORLD_SPAN = 1.9  # the points fill [-0.95, 0.95] on their larger axis: a margin for the framed thumbnails


@st.cache_resource(show_spinner=False)
def _component():
    js = (WEB / "map.bundle.js").read_text(encoding="utf-8")
    css = (WEB / "map.css").read_text(encoding="utf-8")
    return st.components.v2.component("dotmap.map", js=js, css=css, isolate_styles=False)


def _b64(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")


@st.cache_resource(max_entries=2, show_spinner=False)
def _atlas_payload(key: str, _pipeline: Pipeline) -> dict:
    """The atlas as the browser takes it: each page base64, the tile layout, the names of its images."""
    arrays, meta = _pipeline.atlas()
    png, offsets = arrays["png"], arrays["offsets"]
    pages = [base64.b64encode(png[a:b].tobytes()).decode("ascii") for a, b in pairwise(offsets)]
    names = data.paths(_pipeline)
    return {**meta, "pages": pages, "names": [names[r] for r in arrays["rows"]], "rows": arrays["rows"]}


def _asked_for(key: str, trigger: str = "need_atlas") -> object:
    """What the browser asked for on the last run with the trigger ``trigger``, if anything."""
    value = st.session_state.get(key)
    if isinstance(value, Mapping):
        return value.get(trigger)
    return getattr(value, trigger, None)


def asked_box(value: object) -> tuple[float, float, float, float] | None:
    """The region (x0, y0, x1, y1) in world units of a ``need_view`` trigger, or None if it is not one."""
    box = value.get("box") if isinstance(value, Mapping) else None
    numbers = isinstance(box, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    if not numbers or len(box) != 4:
        return None
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0, y0, x1, y1) if all(map(math.isfinite, box)) and x0 < x1 and y0 < y1 else None


def rows_in_box(xy_world: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The rows whose point lies inside ``box`` (x0, y0, x1, y1), sorted."""
    x, y = xy_world[:, 0], xy_world[:, 1]
    return np.flatnonzero((x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3]))


def _region(pipeline: Pipeline, key: str, points_key: str, xy_world: np.ndarray, labels: np.ndarray) -> dict | None:
    """The region of a density map the browser asked for (now or on an earlier run), as it takes it:
    every image in it with its tile (the tiles only when just asked for), or ``too_many``."""
    regions = st.session_state.setdefault(REGIONS, {})
    box = asked_box(_asked_for(key, "need_view"))
    fresh = box is not None
    if fresh:
        regions[key] = {"points_key": points_key, "box": box, "rows": rows_in_box(xy_world, box)}
    region = regions.get(key)
    if region is None or region["points_key"] != points_key:
        return None
    rows = region["rows"]
    if len(rows) > REGION_UP_TO:
        return {"too_many": int(len(rows))} if fresh else None
    out = {
        "id": hashlib.sha256(f"{points_key}|{region['box']}".encode()).hexdigest()[:16],
        "box": list(region["box"]),
        "xy": _b64(xy_world[rows]),
        "rows": _b64(rows.astype(np.int32)),
        "labels": _b64(np.asarray(labels)[rows].astype(np.int16)),
        "atlas": None,
    }
    if fresh:  # asked for: the browser has not got these tiles (or lost them with a reload)
        loaded = data.image_set(pipeline)
        pages, columns, per_page, side = region_tiles(loaded.packed, loaded.grid, rows)
        out["atlas"] = {
            "pages": [base64.b64encode(page).decode("ascii") for page in pages],
            "tile": side,
            "columns": columns,
            "per_page": per_page,
        }
    return out


def world(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The layout moved and scaled into the map's world (centred, the larger axis across WORLD_SPAN):
    (world positions (n, 2) float32, the centre, the scale), one scale for both axes."""
    xy = np.asarray(xy, np.float64)
    if not len(xy):
        return np.zeros((0, 2), np.float32), np.zeros(2), 1.0
    low, high = xy.min(axis=0), xy.max(axis=0)
    centre = (low + high) / 2
    scale = WORLD_SPAN / max(float((high - low).max()), 1e-12)
    return ((xy - centre) * scale).astype(np.float32), centre, scale


@st.cache_resource(max_entries=8, show_spinner=False)
def _spacing(points_key: str, xy_world: np.ndarray) -> float:
    """The median distance from a drawn point to its nearest neighbour, in world units: the map draws
    the images in place once the zoom spreads the points this far apart on screen."""
    from scipy.spatial import cKDTree

    if len(xy_world) < 2:
        return 1.0
    distances, _ = cKDTree(xy_world).query(xy_world, k=2)
    return float(max(np.median(distances[:, 1]), 1e-6))


def point_size(n: int) -> int:
    return next((size for threshold, size in POINT_SIZES if n >= threshold), 7)


def selected_rows(value: object, xy_world: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """The images a selection on the map means, sorted: the points picked; on a density map (only a
    sample drawn), every image inside the lasso or box."""
    if not isinstance(value, dict):
        return np.zeros(0, np.int64)
    polygon = value.get("polygon")
    if len(drawn) < len(xy_world) and isinstance(polygon, list) and len(polygon) >= 3:
        return rows_in_polygon(xy_world, np.asarray(polygon, np.float64))
    rows = np.asarray([r for r in value.get("rows") or [] if isinstance(r, int)], np.int64)
    return np.unique(rows[(rows >= 0) & (rows < len(xy_world))])


def show_map(
    pipeline: Pipeline,
    xy: np.ndarray,
    labels: np.ndarray,
    k: int,
    title: str,
    key: str,
    layout_key: str,
    word: str = "cluster",
    shapes: np.ndarray | None = None,
    group_names: Sequence[str] | None = None,
    note: str = "",
    marks: np.ndarray | None = None,
    mark_names: Sequence[str] = (),
) -> np.ndarray:
    """Draw the map of ``xy`` (n, 2) coloured by ``labels`` (n,) (-1: in no group, grey); return the
    row ids the user selected on it (empty: none).

    ``shapes`` (k, cells, cells) draws each group's typical shape where it is densest; ``group_names``
    names the k groups (else "cluster 3"); ``layout_key`` says which layout ``xy`` is (the map keeps
    its zoom while it stays the same). ``marks`` (m, 2) draws starred points (new images) named by
    ``mark_names``. Above ``render.DENSITY_ABOVE`` images only a fixed sample is
    drawn as points, over a density image of all of them.
    """
    n = len(xy)
    dense = n > render.DENSITY_ABOVE
    drawn = render.map_sample(n) if dense else np.arange(n)
    xy_world, centre, scale = world(xy)
    atlas_key = pipeline.key("atlas") if pipeline.is_cached("atlas") else ""
    tiles = np.full(len(drawn), -1, np.int32)
    payload = None
    if atlas_key:
        payload = _atlas_payload(atlas_key, pipeline)
        at = np.searchsorted(payload["rows"], drawn)
        found = (at < len(payload["rows"])) & (payload["rows"][np.minimum(at, len(payload["rows"]) - 1)] == drawn)
        tiles[found] = at[found]
    sent = st.session_state.setdefault(SENT, set())
    if atlas_key and _asked_for(key) == atlas_key:  # this browser lost it (the page was reloaded)
        sent.discard(atlas_key)
    names = list(group_names) if group_names is not None else [f"{word} {c}" for c in range(k)]
    density = None
    if dense:
        layer = render.density_layer(xy_world, labels, k)
        x0, y1 = layer["x"], layer["y"]
        density = {"png": layer["source"], "x0": x0, "x1": x0 + layer["sizex"], "y0": y1 - layer["sizey"], "y1": y1}
    placed = []
    if shapes is not None:
        for image in render.shape_images(xy_world, labels, shapes):
            placed.append({"x": image["x"], "y": image["y"], "png": image["source"], "name": image["name"]})
    marked = (np.asarray(marks if marks is not None else [], np.float64).reshape(-1, 2) - centre) * scale
    points_key = hashlib.sha256(f"{layout_key}|{n}|{len(drawn)}".encode()).hexdigest()[:16]
    spacing = _spacing(points_key, xy_world[drawn])
    message = {
        "height": HEIGHT_PX,
        "title": title,
        "note": note,
        "xy": _b64(xy_world[drawn]),
        "rows": _b64(drawn.astype(np.int32)),
        "labels": _b64(np.asarray(labels)[drawn].astype(np.int16)),
        "tiles": _b64(tiles),
        "colours": [render.colour(c) for c in range(k)],
        "noise": render.NOISE_COLOUR,
        "group_names": [shown(name) for name in names],  # the browser sets them as text, never as HTML
        "point_size": point_size(len(drawn)),
        "points_key": points_key,
        "spacing": spacing,
        "n_total": n,
        # the median gap between all the images, from the sample's: a gap shrinks as the root of the density
        "spacing_all": spacing * math.sqrt(len(drawn) / max(n, 1)),
        "view": _region(pipeline, key, points_key, xy_world, labels) if dense else None,
        "shapes": placed,
        "density": density,
        "marks": [
            {"x": float(x), "y": float(y), "name": shown(name)} for (x, y), name in zip(marked, mark_names, strict=True)
        ],
        "atlas_key": atlas_key,
        "atlas": None,
    }
    if atlas_key and atlas_key not in sent:
        message["atlas"] = {name: payload[name] for name in ("pages", "tile", "columns", "per_page", "names")}
        sent.add(atlas_key)
    result = _component()(
        key=key,
        data=message,
        default={"selection": None},
        height=HEIGHT_PX + 70,
        on_selection_change=lambda: None,
        on_need_atlas_change=lambda: None,
        on_need_view_change=lambda: None,
    )
    return selected_rows(getattr(result, "selection", None), xy_world, drawn)
