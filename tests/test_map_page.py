"""AppTest of the Map page: what it sends its map (the points, their colours, the typical shapes, the
thumbnail atlas once a session).

Hovering, zooming and selecting on the map happen in the browser: tests/e2e/test_map_component.py.
"""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.engine.pipeline import Pipeline, Settings
from tests.apptest import assert_clean, open_page

pytestmark = pytest.mark.slow


def map_data(at: AppTest) -> dict:
    """What the page sent its map component this run (pages/ui/mapview.py: the ``data`` of the mount)."""
    maps = at.get("bidi_component")
    assert len(maps) == 1
    return json.loads(maps[0].proto.json)


def shape_names(at: AppTest) -> list[str]:
    return [shape["name"] for shape in map_data(at)["shapes"]]


def test_the_map_shows_a_typical_shape_per_cluster_by_default(demo: Path, recommended_k: int) -> None:
    at = open_page("pages/1_Map.py")
    assert_clean(at)
    assert at.toggle(key="map_shapes").value is True
    assert shape_names(at) == [f"shape {c}" for c in range(recommended_k)]
    assert all(shape["png"].startswith("data:image/png;base64,") for shape in map_data(at)["shapes"])


def test_the_toggle_takes_the_shapes_off_and_back(demo: Path, recommended_k: int) -> None:
    at = open_page("pages/1_Map.py")
    at.toggle(key="map_shapes").set_value(False).run()
    assert_clean(at)
    assert shape_names(at) == []
    at.toggle(key="map_shapes").set_value(True).run()
    assert len(shape_names(at)) == recommended_k


def test_the_shapes_follow_the_k_slider(demo: Path) -> None:
    at = open_page("pages/1_Map.py")
    at.slider(key="k_map").set_value(7).run()
    assert_clean(at)
    assert len(shape_names(at)) == 7


def test_the_groups_found_without_a_k_get_their_own_shapes(demo: Path) -> None:
    _, found = Pipeline(demo, Settings()).auto_groups()
    assert found["groups"] >= 2
    at = open_page("pages/1_Map.py")
    at.radio(key="colour_by").set_value("auto").run()
    assert_clean(at)
    assert shape_names(at) == [f"shape {g}" for g in range(found["groups"])]


def test_every_image_is_a_point_in_the_colour_of_its_cluster(demo: Path, recommended_k: int) -> None:
    at = open_page("pages/1_Map.py")
    sent = map_data(at)
    sweep = Pipeline(demo, Settings()).sweep()
    labels = np.frombuffer(base64.b64decode(sent["labels"]), np.int16)
    rows = np.frombuffer(base64.b64decode(sent["rows"]), np.int32)
    assert np.array_equal(rows, np.arange(len(labels)))
    assert np.array_equal(labels, sweep.labels[sweep.row(recommended_k)])
    assert len(sent["colours"]) == recommended_k and sent["group_names"][0] == "cluster 0"


def test_the_atlas_travels_once_a_session_and_again_when_the_browser_asks(demo: Path) -> None:
    at = open_page("pages/1_Map.py")
    first = map_data(at)
    atlas_arrays, meta = Pipeline(demo, Settings()).atlas()
    assert first["atlas"]["tile"] == meta["tile"] and len(first["atlas"]["names"]) == len(atlas_arrays["rows"])
    tiles = np.frombuffer(base64.b64decode(first["tiles"]), np.int32)
    assert np.array_equal(tiles, np.arange(len(tiles)))
    at.slider(key="k_map").set_value(5).run()
    assert map_data(at)["atlas"] is None and map_data(at)["atlas_key"] == first["atlas_key"]
    at.session_state["map"] = {"need_atlas": first["atlas_key"]}  # as the trigger of a browser that lost it
    at.run()
    assert map_data(at)["atlas"] is not None
