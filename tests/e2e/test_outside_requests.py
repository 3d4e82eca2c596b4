"""Texts from files are shown as text, and no page asks for anything outside this computer.

A folder whose file names are Markdown and HTML (an image, a link, a tag) and a curation file whose group
names and undo text are too (a colleague's file, imported as it is) are opened on every page in Chromium,
with every request the browser makes routed: any that is not for the server's own address is recorded and
refused. Each name must be on the page as the characters it is, never as a link, an image or a tag.
"""

import os
import re

import pytest
from browsing import assert_no_exception, drag_box, goto, settle, shoot
from conftest import new_tab, streamlit_server

from core.curation import file as curation_file
from core.curation import prepared
from core.demo import make_demo
from core.engine.cache import default_cache_dir
from core.engine.pipeline import Pipeline, Settings
from pages.ui.render import WORD_JOINER

pytestmark = pytest.mark.slow

# a scheme with one colon and no slashes is still a full address to a browser: http:beacon.invalid is
# http://beacon.invalid/, so a single file name (no "/" allowed) can carry one
IMAGE_NAME = "![b](http:beacon.invalid)"
LINK_NAME = "[click me](https:example.org)"
TAG_NAME = "<img src=http:beacon.invalid>"
GROUP_NAMES = (
    "![b](http://beacon.invalid/name.png)",
    "[click me](https://example.org/x)",
    "<img src='//beacon.invalid'>",
)
SKIPPED_NAME = "![s](http:beacon.invalid).txt"  # not an image: listed as skipped, with its name
PAGES = ("", "Map", "Choose_k", "Clusters", "Curate", "Classify", "Export", "Compare")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A prepared folder with hostile file names, its curation with hostile group names and undo text, a server."""
    folder = make_demo(tmp_path_factory.mktemp("hostile") / "images", n=120, seed=3)
    for old, new in (("dots_000.png", IMAGE_NAME), ("dots_001.png", LINK_NAME), ("dots_002.png", TAG_NAME)):
        (folder / old).rename(folder / f"{new}.png")
    (folder / SKIPPED_NAME).write_text("not an image")
    pipeline = Pipeline(folder, Settings(), default_cache_dir())
    pipeline.prepare(with_map=True)
    curations = tmp_path_factory.mktemp("curations")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(curation_file.CURATIONS_ENV, str(curations))
        curation = prepared.from_k(pipeline, pipeline.sweep().recommended_k)
        for group, name in zip(sorted(curation.names), GROUP_NAMES, strict=False):
            curation.rename(group, name)  # each rename is an undo text holding the name
        curation_file.save(curation, prepared.default_path(pipeline))
    env = dict(os.environ, DOTMAP_DATA=str(folder), DOTMAP_CACHE=str(default_cache_dir()))
    env[curation_file.CURATIONS_ENV] = str(curations)
    with streamlit_server(env, tmp_path_factory.mktemp("server") / "streamlit.log") as url:
        yield url, folder


def test_no_page_asks_for_an_outside_address_and_names_stay_text(browser, hostile) -> None:
    url, folder = hostile
    outside: list[str] = []

    def only_the_server(route) -> None:
        if route.request.url.startswith(url + "/") or route.request.url == url:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with new_tab(browser) as tab:
        tab.context.route("**/*", only_the_server)
        for path in PAGES:
            goto(tab, url, path)
            assert_no_exception(tab)
            if path in ("Map", "Curate"):
                drag_box(tab, 0.98)  # the selection's summary names the groups of what is selected
                settle(tab)
            if path == "Curate":
                undo = tab.get_by_role("button", name=re.compile("^Undo: renamed"))
                assert GROUP_NAMES[-1] in undo.inner_text().replace(WORD_JOINER, "")
                card = tab.locator(".st-key-group-0")
                card.get_by_role("radio", name="Across k").click()
                settle(tab)
            if path == "Classify":
                picture = (folder / "dots_003.png").read_bytes()
                tab.locator("input[type='file']").set_input_files(
                    [{"name": f"{IMAGE_NAME}.png", "mimeType": "image/png", "buffer": picture}]
                )
                tab.get_by_text(re.compile("confidence")).first.wait_for()
                settle(tab)
            assert_no_exception(tab)
            links = tab.locator("a[href*='example.org'], img[src*='beacon'], [href*='beacon']")
            found = [links.nth(i).evaluate("e => e.parentElement.outerHTML") for i in range(links.count())]
            assert not found, f"{path or 'Overview'}: {found}"
            shoot(tab, f"hostile-{path or 'Overview'}")
            shown = tab.locator("[data-testid='stMain']").inner_text().replace(WORD_JOINER, "")
            for name in GROUP_NAMES if path in ("Curate", "Export") else ():
                assert name in shown, f"{path}: {name} is not on the page as the characters it is"
        tab.wait_for_timeout(1000)  # an image asked for by the last page is on its way by now
    assert outside == [], f"the pages asked for addresses outside the server: {sorted(set(outside))}"
