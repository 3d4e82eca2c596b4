"""The map of a large set in Chromium: a density image of every image under a sample of points, a box
that selects every image under it, shown page by page, and, zoomed in, every image of the region in view
drawn in place (asked for from the server as the view settles).

A server of its own with DOTMAP_DENSITY_ABOVE=100 and DOTMAP_DENSITY_SAMPLE=100, so the small test set is
drawn as a large one would be: 100 of its images as points over the density image of all of them.
"""

import os
import re

import numpy as np
import pytest
from browsing import MAP, assert_no_exception, drag_box, goto, map_stage, map_title, settle, shoot
from conftest import new_tab, streamlit_server

from benchmarks.browser import busiest_point
from core.engine.pipeline import Pipeline, Settings
from pages.ui.mapview import rows_in_box, selected_rows, world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dense_server(prepared_demo, tmp_path_factory):
    folder, cache = prepared_demo
    env = dict(
        os.environ,
        DOTMAP_DATA=str(folder),
        DOTMAP_CACHE=str(cache),
        DOTMAP_CURATIONS=str(tmp_path_factory.mktemp("curations")),
        DOTMAP_DENSITY_ABOVE="100",
        DOTMAP_DENSITY_SAMPLE="100",
    )
    with streamlit_server(env, tmp_path_factory.mktemp("server") / "streamlit.log") as url:
        yield url


def test_the_map_is_a_density_image_and_a_box_takes_every_image_under_it(browser, dense_server, prepared_demo):
    folder, cache = prepared_demo
    xy = Pipeline(folder, Settings(), cache).map()
    with new_tab(browser) as tab:
        goto(tab, dense_server, "Map")
        assert "(every image in the colours" in map_title(tab)
        tab.wait_for_selector(f"{MAP}[data-density='yes']")  # the density image, drawn under the points
        drawn = tab.locator(MAP).evaluate("el => el.dotmap.data.rows.length")
        assert drawn == 100 < len(xy)  # only the sample is drawn as points (DOTMAP_DENSITY_SAMPLE=100)
        count = drag_box(tab, 0.98)
        polygon = tab.locator(MAP).evaluate("el => el.dotmap.lastPolygon")  # the box, in the map's coordinates
        inside = selected_rows({"polygon": polygon, "rows": []}, world(xy)[0], np.arange(drawn))
        assert count == len(inside) > drawn  # every image under the box, not only the points drawn
        tab.locator("[data-testid='stImage'] img").first.wait_for(timeout=60_000)
        assert_no_exception(tab)
        if count > 64:
            tab.get_by_text(re.compile(r"^Page \(of \d+\)")).wait_for()
        shoot(tab, "map-density")
        assert np.isfinite(xy).all()


def test_zoomed_in_every_image_of_the_region_is_drawn_not_only_the_sample(browser, dense_server, prepared_demo):
    folder, cache = prepared_demo
    xy_world = world(Pipeline(folder, Settings(), cache).map())[0]
    with new_tab(browser) as tab:
        goto(tab, dense_server, "Map")
        tab.wait_for_selector(f"{MAP}[data-density='yes']")
        box = map_stage(tab)
        tab.mouse.move(*busiest_point(tab, box))  # zoomed in where the points are
        for _ in range(40):  # wheel steps, each left to settle, until the region's images come
            tab.mouse.wheel(0, -120)
            tab.wait_for_timeout(250)
            if int(tab.locator(MAP).get_attribute("data-view-images") or 0) > 0:
                break
        tab.wait_for_function(f'() => Number(document.querySelector("{MAP}").dataset.viewImages) > 0', timeout=60_000)
        region = tab.locator(MAP).evaluate("el => ({box: el.dotmap.region.box, rows: [...el.dotmap.region.rows]})")
        assert region["rows"] == rows_in_box(xy_world, tuple(region["box"])).tolist()  # every image, not the sample
        corners = tab.locator(MAP).evaluate(
            "el => [el.dotmap.worldOf(0, el.dotmap.height), el.dotmap.worldOf(el.dotmap.width, 0)]"
        )
        on_screen = rows_in_box(xy_world, (*corners[0], *corners[1]))
        drawn = int(tab.locator(MAP).get_attribute("data-view-images"))
        sampled = int(tab.locator(MAP).get_attribute("data-in-view"))
        assert drawn >= len(on_screen) > sampled  # the sample's points in view are fewer than its images
        settle(tab)
        assert_no_exception(tab)
        shoot(tab, "map-density-zoomed-in")
