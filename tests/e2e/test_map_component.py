"""The map component in Chromium: the image under the cursor, the images drawn in place when zoomed in,
a lasso, a click that opens one image, the typical shapes; and how fast it draws while zooming."""

import base64
import io
import re

import numpy as np
import pytest
from browsing import MAP, assert_no_exception, goto, map_stage, selected_count, settle, shoot
from PIL import Image

from core.engine.pipeline import Pipeline, Settings
from pages.ui.mapview import world
from pages.ui.selection import rows_in_polygon

pytestmark = pytest.mark.slow

HOVER_WITHIN_MS = 100
HOVER_TRIES = 3
FRAME_MS = 1000 / 30  # at least 30 frames a second while zooming, median frame
SCREEN_POSITIONS = "el => Array.from(el.dotmap.data.x, (_, i) => el.dotmap.screenOf(i))"


@pytest.fixture(scope="module")
def pipeline(prepared_demo):
    folder, cache = prepared_demo
    return Pipeline(folder, Settings(), cache)


def open_map(page, server: str) -> dict:
    goto(page, server, "Map")
    page.wait_for_selector(f"{MAP}[data-atlas='yes']")
    settle(page)
    return map_stage(page)


def loneliest(page) -> tuple[int, np.ndarray]:
    """The drawn point farthest from any other on screen, and every point's position on the page."""
    stage = map_stage(page)
    points = np.array(page.locator(MAP).evaluate(SCREEN_POSITIONS)) + [stage["x"], stage["y"]]
    inside = (points[:, 1] > stage["y"] + 20) & (points[:, 1] < stage["y"] + stage["height"] - 140)
    gaps = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(gaps, np.inf)
    nearest = np.where(inside, gaps.min(axis=1), -1)
    return int(np.argmax(nearest)), points


def atlas_tile(pipeline: Pipeline, row: int) -> np.ndarray:
    arrays, meta = pipeline.atlas()
    tile = int(np.searchsorted(arrays["rows"], row))
    page, at = divmod(tile, meta["per_page"])
    png = arrays["png"][arrays["offsets"][page] : arrays["offsets"][page + 1]].tobytes()
    sheet = np.asarray(Image.open(io.BytesIO(png)))
    r, c = divmod(at, meta["columns"])
    side = meta["tile"]
    return sheet[r * side : (r + 1) * side, c * side : (c + 1) * side]


def test_the_image_under_the_cursor_is_shown_at_once(page, server, pipeline) -> None:
    open_map(page, server)
    row, points = loneliest(page)
    delays = []
    for _ in range(HOVER_TRIES):  # a shared machine may be busy for one move: the best of a few
        page.mouse.move(*(points[row] + [5, 5]))
        page.mouse.move(*points[row], steps=3)
        page.wait_for_selector(f"{MAP}[data-hover-row='{row}']")
        delays.append(float(page.locator(MAP).get_attribute("data-hover-delay-ms")))
        if delays[-1] < HOVER_WITHIN_MS:
            break
        page.mouse.move(1, 1)  # off the map: the hover ends
        page.wait_for_selector(f"{MAP}[data-hover-row='']")
    hover = page.locator(f"{MAP} .dm-hover")
    name = pipeline.image_meta()["paths"][row]
    assert hover.is_visible() and hover.inner_text().startswith(f"{name} · cluster ")
    assert min(delays) < HOVER_WITHIN_MS, delays
    shown = page.locator(f"{MAP} .dm-hover-image").evaluate("c => c.toDataURL('image/png')")
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(shown.split(",", 1)[1]))).convert("L"))
    assert pixels.shape[0] >= 96
    scale = pixels.shape[0] // atlas_tile(pipeline, row).shape[0]
    assert np.array_equal(pixels[scale // 2 :: scale, scale // 2 :: scale], atlas_tile(pipeline, row))
    shoot(page, "map-hover")


def test_zoomed_in_each_image_is_drawn_in_place_and_the_zoom_stays_smooth(page, server) -> None:
    stage = open_map(page, server)
    assert page.locator(MAP).get_attribute("data-thumbnails") == "0"
    row, points = loneliest(page)
    page.mouse.move(*points[row])
    page.evaluate(
        "() => { window.__frames = []; const tick = t => { window.__frames.push(t);"
        " if (window.__frames.length < 400) requestAnimationFrame(tick); }; requestAnimationFrame(tick); }"
    )
    for _ in range(40):  # wheel steps of a mouse, until the points have room for their images
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(60)
        if int(page.locator(MAP).get_attribute("data-thumbnails")) > 0:
            break
    drawn = int(page.locator(MAP).get_attribute("data-thumbnails"))
    assert drawn > 0
    assert drawn == int(page.locator(MAP).get_attribute("data-in-view"))  # every point in view, as its image
    centre = [stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2]
    page.mouse.move(*centre)
    page.mouse.down()
    page.mouse.move(centre[0] + 150, centre[1] + 60, steps=30)  # panning with the images drawn
    page.mouse.up()
    frames = np.diff(page.evaluate("() => window.__frames"))
    assert len(frames) > 20 and np.median(frames) < FRAME_MS, f"median frame {np.median(frames):.1f} ms"
    page.mouse.move(stage["x"] + 2, stage["y"] + 2)
    shoot(page, "map-zoomed-in")


def test_a_lasso_selects_the_points_inside_it(page, server, pipeline) -> None:
    stage = open_map(page, server)
    page.locator(f"{MAP} .dm-mode[data-mode='lasso']").click()
    x, y, w, h = stage["x"], stage["y"], stage["width"], stage["height"]
    path = [(0.05, 0.05), (0.6, 0.1), (0.7, 0.6), (0.3, 0.8), (0.08, 0.5), (0.05, 0.06)]
    page.mouse.move(x + w * path[0][0], y + h * path[0][1])
    page.mouse.down()
    for px, py in path[1:]:
        page.mouse.move(x + w * px, y + h * py, steps=10)
    page.mouse.up()
    count = selected_count(page)
    polygon = np.array(page.locator(MAP).evaluate("el => el.dotmap.lastPolygon"))
    inside = rows_in_polygon(world(pipeline.map())[0], polygon)  # the points a plotly lasso took, the same way
    chosen = page.locator(MAP).evaluate("el => el.dotmap.selected.map(i => el.dotmap.data.rows[i])")
    assert count == len(inside) > 0
    assert sorted(chosen) == inside.tolist()
    settle(page)
    assert_no_exception(page)
    shoot(page, "map-lasso")


def test_a_click_on_a_point_shows_its_image_large(page, server, pipeline) -> None:
    open_map(page, server)
    row, points = loneliest(page)
    sweep = pipeline.sweep()
    cluster = int(sweep.labels[sweep.row(sweep.recommended_k)][row])
    name = pipeline.image_meta()["paths"][row]
    page.mouse.move(*points[row])
    page.wait_for_selector(f"{MAP}[data-hover-row='{row}']")
    page.mouse.click(*points[row])
    page.get_by_text(f"{name} · cluster {cluster}", exact=True).wait_for(timeout=60_000)
    page.get_by_text(f"typical shape of cluster {cluster}").wait_for()
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text(re.compile(r"images selected")).count() == 0  # one image: the large view instead
    shoot(page, "map-clicked")


def test_the_typical_shapes_are_drawn_and_the_toggle_takes_them_off(page, server, pipeline) -> None:
    open_map(page, server)
    k = pipeline.sweep().recommended_k
    page.wait_for_selector(f"{MAP}[data-shapes='{k}']")
    shoot(page, "map-shapes")
    page.get_by_text("Typical shapes on the map").click()
    page.wait_for_selector(f"{MAP}[data-shapes='0']")
    settle(page)
    assert_no_exception(page)
