"""AppTest of the Map page's typical shapes: the toggle, one image per group, the groups found without a k.

A click on a point (a plotly selection) cannot be simulated here: tests/e2e/test_map_shapes.py clicks one.
"""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.engine.pipeline import Pipeline, Settings
from tests.apptest import assert_clean, open_page

pytestmark = pytest.mark.slow


def map_layout(at: AppTest) -> dict:
    """The layout of the map as the page sent it to the browser (plotly's JSON)."""
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)["layout"]


def shape_names(at: AppTest) -> list[str]:
    return [image["name"] for image in map_layout(at).get("images", [])]


def test_the_map_shows_a_typical_shape_per_cluster_by_default(demo: Path, recommended_k: int) -> None:
    at = open_page("pages/1_Map.py")
    assert_clean(at)
    assert at.toggle(key="map_shapes").value is True
    assert shape_names(at) == [f"shape {c}" for c in range(recommended_k)]
    assert all(image["source"].startswith("data:image/png;base64,") for image in map_layout(at)["images"])


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
