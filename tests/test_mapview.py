"""The map component's Python side: the world the points are drawn in, a selection made rows, the region
of a density map the browser asks for."""

import numpy as np
import pytest

from pages.ui.mapview import WORLD_SPAN, asked_box, point_size, rows_in_box, selected_rows, world
from pages.ui.selection import rows_in_polygon


def test_the_world_keeps_the_shape_of_the_layout_and_fits_its_larger_axis() -> None:
    xy = np.array([[10.0, 5.0], [14.0, 5.0], [12.0, 6.0]])
    placed, centre, scale = world(xy)
    assert placed.dtype == np.float32
    np.testing.assert_allclose(centre, [12.0, 5.5])
    assert scale == pytest.approx(WORLD_SPAN / 4)
    np.testing.assert_allclose(placed[:, 0], [-WORLD_SPAN / 2, WORLD_SPAN / 2, 0], atol=1e-6)
    np.testing.assert_allclose(placed[:, 1], [-0.5 * scale, -0.5 * scale, 0.5 * scale], atol=1e-6)
    assert world(np.zeros((0, 2)))[0].shape == (0, 2)


@pytest.mark.parametrize(
    "value", [None, "rows", {}, {"rows": None}, {"rows": []}], ids=["none", "text", "empty", "null", "no-rows"]
)
def test_nothing_selected_gives_no_rows(value) -> None:
    rows = selected_rows(value, np.zeros((10, 2), np.float32), np.arange(10))
    assert rows.dtype == np.int64 and rows.shape == (0,)


def test_the_points_picked_are_the_rows_unique_sorted_and_in_range() -> None:
    value = {"rows": [5, 1, 5, 3, 12, -1, "7", 2.5, None], "polygon": None}
    assert selected_rows(value, np.zeros((10, 2), np.float32), np.arange(10)).tolist() == [1, 3, 5]


def test_on_a_density_map_a_lasso_takes_every_image_inside_it_not_only_the_points_drawn() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 0.5], [0.5, 3.0]], np.float32)
    triangle = [[1.5, 0.0], [4.0, 0.0], [4.0, 3.0]]  # below the line y = x - 1.5
    value = {"rows": [3], "polygon": triangle}
    assert selected_rows(value, xy, np.array([3])).tolist() == [3]  # a sample drawn: the polygon decides
    box = {"rows": [0], "polygon": [[-0.5, -0.5], [1.5, -0.5], [1.5, 1.5], [-0.5, 1.5]]}
    assert selected_rows(box, xy, np.array([0])).tolist() == [0, 1]
    assert selected_rows(box, xy, np.arange(5)).tolist() == [0]  # every point drawn: the points picked


def test_rows_in_polygon_tests_only_the_points_in_its_bounding_box() -> None:
    xy = np.random.default_rng(0).uniform(-1, 1, (2000, 2))
    square = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    expected = np.flatnonzero(np.all(np.abs(xy) < 0.5, axis=1))
    assert rows_in_polygon(xy, square).tolist() == expected.tolist()


@pytest.mark.parametrize(
    "value",
    [None, {}, {"box": None}, {"box": [0, 0, 1]}, {"box": [0, 0, "1", 1]}, {"box": [1, 0, 0, 1]},
     {"box": [0, 0, float("nan"), 1]}, {"box": [0, 0, float("inf"), 1]}, {"box": [0, 0, True, 1]}],
    ids=["none", "empty", "null", "three", "text", "inverted", "nan", "inf", "bool"],
)  # fmt: skip
def test_a_region_that_is_not_one_is_refused(value) -> None:
    assert asked_box(value) is None


def test_a_region_takes_every_image_inside_it() -> None:
    assert asked_box({"box": [0, -1.5, 1, 0.5], "serial": 3}) == (0.0, -1.5, 1.0, 0.5)
    xy = np.random.default_rng(1).uniform(-1, 1, (5000, 2)).astype(np.float32)
    expected = np.flatnonzero((xy[:, 0] >= 0) & (xy[:, 0] <= 1) & (xy[:, 1] >= -1.5) & (xy[:, 1] <= 0.5))
    assert rows_in_box(xy, (0.0, -1.5, 1.0, 0.5)).tolist() == expected.tolist()


def test_points_get_smaller_as_there_are_more() -> None:
    assert point_size(10) > point_size(2_000) > point_size(10_000) > point_size(50_000)


def test_the_bundle_the_browser_gets_is_built_from_the_source_in_the_repository() -> None:
    import hashlib

    from pages.ui.mapview import WEB

    header = (WEB / "map.bundle.js").read_text(encoding="utf-8").splitlines()[0]
    source = hashlib.sha256((WEB / "map.js").read_bytes()).hexdigest()[:16]
    assert f"sha256 {source}..." in header, "map.js changed: run pages/ui/web/build.sh and commit map.bundle.js"
    licences = (WEB / "THIRD_PARTY.txt").read_text(encoding="utf-8")
    assert "=== regl-scatterplot 1.16.0 (MIT) ===" in licences and "=== regl " in licences
