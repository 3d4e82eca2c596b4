"""The map of a large set in Chromium: a density image of every image under a sample of points, and a box
that selects every image under it, shown page by page.

A server of its own with DOTMAP_DENSITY_ABOVE=100 and DOTMAP_DENSITY_SAMPLE=100, so the small test set is
drawn as a large one would be: 100 of its images as points over the density image of all of them.
"""

import os
import re

import numpy as np
import pytest
from browsing import MAP, assert_no_exception, drag_box, goto, map_title, shoot
from conftest import new_tab, streamlit_server

from core.engine.pipeline import Pipeline, Settings
from pages.ui.mapview import selected_rows, world

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
