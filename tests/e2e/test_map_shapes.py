"""The typical shapes on the map in Chromium: one framed image per cluster, the toggle, a click on a point."""

import re

import numpy as np
import pytest
from browsing import assert_no_exception, goto, settle, shoot

from core.engine.pipeline import Pipeline, Settings

pytestmark = pytest.mark.slow

SHAPES = ".js-plotly-plot .layer-above image"
CLOSEST_PX = 2  # plotly picks the point nearest the cursor: a click on a point's centre picks it if none is this close
POINTER_EVENTS = "images => images.map(i => getComputedStyle(i).pointerEvents)"

# JavaScript: the page position of each map point (plotly's own axes turn data into pixels)
POINT_PIXELS = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  const box = gd.getBoundingClientRect(), size = gd._fullLayout._size;
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, trace = gd._fullData[0];
  return Array.from(trace.x, (x, i) => [box.left + size.l + xa.d2p(x), box.top + size.t + ya.d2p(trace.y[i])]);
}"""


@pytest.fixture(scope="module")
def sweep(prepared_demo):
    folder, cache = prepared_demo
    return Pipeline(folder, Settings(), cache).sweep()


def open_map(page, server: str, k: int) -> None:
    goto(page, server, "Map")
    page.wait_for_function(f"() => document.querySelectorAll('{SHAPES}').length === {k}")
    settle(page)


def test_the_map_shows_one_framed_shape_per_cluster(page, server, sweep) -> None:
    k = sweep.recommended_k
    open_map(page, server, k)
    assert_no_exception(page)
    assert page.locator(SHAPES).count() == k
    sources = page.locator(SHAPES).evaluate_all("images => images.map(i => i.getAttribute('href'))")
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    shoot(page, "map-shapes")
    page.get_by_text("Typical shapes on the map").click()
    page.wait_for_function(f"() => document.querySelectorAll('{SHAPES}').length === 0")
    settle(page)
    assert_no_exception(page)
    assert page.locator(".js-plotly-plot .gtitle").first.text_content().endswith("(recommended)")


def test_a_click_on_a_point_shows_its_image_large(page, server, sweep, prepared_demo) -> None:
    k = sweep.recommended_k
    open_map(page, server, k)
    # the shapes let the mouse through to the points under them (plotly draws layout images that way)
    assert set(page.locator(SHAPES).evaluate_all(POINTER_EVENTS)) == {"none"}
    # Streamlit selects a clicked point only when the drag pans or zooms (in box mode a drag selects, a click not)
    chart = page.locator(".js-plotly-plot")
    chart.scroll_into_view_if_needed()
    chart.hover()
    page.locator(".modebar-btn[data-val='pan']").click()
    points = np.array(page.evaluate(POINT_PIXELS))
    gaps = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(gaps, np.inf)
    row = int(np.argmax(gaps.min(axis=1)))  # the point farthest from any other
    assert gaps[row].min() > CLOSEST_PX
    folder, cache = prepared_demo
    name = Pipeline(folder, Settings(), cache).image_meta()["paths"][row]
    cluster = int(sweep.labels[sweep.row(k)][row])
    page.mouse.move(*points[row])
    hover = page.locator(".hoverlayer .hovertext")
    hover.wait_for()
    assert hover.text_content().startswith(name)  # the point under the cursor is the one about to be clicked
    page.mouse.click(*points[row])
    page.get_by_text(f"{name} · cluster {cluster}", exact=True).wait_for(timeout=60_000)  # the fragment reran
    page.get_by_text(f"typical shape of cluster {cluster}").wait_for()
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text(re.compile(r"images selected")).count() == 0  # one image: the large view instead
    shoot(page, "map-clicked")
