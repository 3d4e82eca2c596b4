"""The map of a large set in Chromium: a density image of every image under a sample of points, and a box
that selects every image under it, shown page by page.

A server of its own with DOTMAP_DENSITY_ABOVE=100, so the small test set is drawn as a large one would be.
"""

import os
import re

import numpy as np
import pytest
from browsing import assert_no_exception, drag_box, goto, shoot
from conftest import new_tab, streamlit_server

from core.engine.pipeline import Pipeline, Settings

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
    )
    with streamlit_server(env, tmp_path_factory.mktemp("server") / "streamlit.log") as url:
        yield url


def test_the_map_is_a_density_image_and_a_box_takes_every_image_under_it(browser, dense_server, prepared_demo):
    folder, cache = prepared_demo
    xy = Pipeline(folder, Settings(), cache).map()
    with new_tab(browser) as tab:
        goto(tab, dense_server, "Map")
        tab.wait_for_selector(".js-plotly-plot .gtitle")
        assert "(every image in the colours" in tab.locator(".js-plotly-plot .gtitle").first.text_content()
        # the density image, drawn under the points (plotly puts "below" images in the subplot's layer)
        assert tab.locator(".js-plotly-plot .layer-subplot .imagelayer image").count() == 1
        count = drag_box(tab, 0.98)
        assert 0 < count <= len(xy)
        tab.locator("[data-testid='stImage'] img").first.wait_for(timeout=60_000)
        assert_no_exception(tab)
        if count > 64:
            tab.get_by_text(re.compile(r"^Page \(of \d+\)")).wait_for()
        shoot(tab, "map-density")
        assert np.isfinite(xy).all()
