"""The whole app in Chromium: every page, the k slider, box selection, an upload, downloads, a reload."""

import csv
import io
import os
import re
import zipfile

import pytest
from browsing import MAP, assert_no_exception, drag_box, goto, map_title, settle, shoot
from conftest import new_tab, streamlit_server

from core.engine.pipeline import Pipeline, Settings

pytestmark = pytest.mark.slow

PAGES = {
    "": "Dotmap",
    "Map": "Map of the images",
    "Choose_k": "Which k?",
    "Clusters": "The clusters",
    "Classify": "Classify new images",
    "Export": "Export the clusters or your groups",
    "Curate": "Curate your groups",
}
MENU = ["Overview", "Map", "Choose k", "Clusters", "Curate", "Classify", "Export", "Compare"]  # menu.py's, in order


@pytest.fixture(scope="module")
def recommended_k(prepared_demo) -> int:
    folder, cache = prepared_demo
    return Pipeline(folder, Settings(), cache).sweep().recommended_k


@pytest.mark.parametrize("path", PAGES)
def test_every_page_shows_its_content(page, server, path) -> None:
    goto(page, server, path)
    assert_no_exception(page)
    assert page.locator("h1").first.inner_text().strip() == PAGES[path]
    if path == "Map":
        page.wait_for_selector(MAP)
    if path == "Choose_k":
        page.wait_for_selector(".js-plotly-plot")
    shoot(page, f"page-{path or 'Overview'}")


def menu(page) -> list[str]:
    links = page.locator("[data-testid='stSidebarNavLink']").all_inner_texts()
    return [text.rsplit("\n", 1)[-1] for text in links]  # each text: its label (after an icon, if any)


def test_the_menu_names_every_page_in_the_order_of_its_file(page, server) -> None:
    goto(page, server, "Choose_k")
    assert menu(page) == MENU


def test_a_page_opened_first_by_its_address_has_the_menu_of_the_app(browser, prepared_demo, tmp_path) -> None:
    """A bookmark of a page, opened on a server just started: before menu.py has run there, Streamlit runs
    the page alone under a menu of its own made from the folder (with an "app" page); the page asks for
    its run again through menu.py."""
    folder, cache = prepared_demo
    env = dict(os.environ, DOTMAP_DATA=str(folder), DOTMAP_CACHE=str(cache), DOTMAP_CURATIONS=str(tmp_path))
    with streamlit_server(env, tmp_path / "streamlit.log") as url, new_tab(browser) as tab:
        goto(tab, url, "Clusters")
        assert_no_exception(tab)
        assert tab.locator("h1").first.inner_text().strip() == PAGES["Clusters"]
        assert menu(tab) == MENU
        assert tab.url.rstrip("/").endswith("/Clusters")


def test_a_page_loaded_twice_replays_its_caches(page, server, recommended_k) -> None:
    for _ in range(2):
        goto(page, server, "Clusters")
        assert_no_exception(page)
        page.get_by_text(re.compile(r"^Cluster \d+")).nth(recommended_k - 1).wait_for()
        page.reload()
        settle(page)
        assert_no_exception(page)


def test_the_slider_changes_k_on_the_map(page, server, recommended_k) -> None:
    goto(page, server, "Map")
    assert f"k = {recommended_k}" in map_title(page)
    page.locator("[data-testid='stSlider'] input[type='range']").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "k => { const t = document.querySelector('.dm-title');"
        " return t !== null && t.textContent.includes('k = ' + k); }",
        arg=str(recommended_k + 1),
    )
    settle(page)
    assert_no_exception(page)
    shoot(page, "map-after-slider")


def test_the_map_colours_by_the_groups_found_without_a_k(page, server) -> None:
    goto(page, server, "Map")
    map_title(page)
    page.get_by_text("groups found without a k").click()
    page.wait_for_function(
        "() => { const t = document.querySelector('.dm-title');"
        " return t !== null && t.textContent.includes('groups found without a k'); }"
    )
    settle(page)
    assert_no_exception(page)
    names = page.locator(MAP).evaluate("el => el.dotmap.data.group_names")
    assert names and all(name.startswith("group ") for name in names)
    shoot(page, "map-auto-groups")


def test_box_selection_shows_thumbnails_and_exports_them(page, server) -> None:
    goto(page, server, "Map")
    count = drag_box(page, 0.98)
    settle(page)
    assert_no_exception(page)
    assert count > 0
    # the selection reruns only the map's fragment, which the page's script-state marker does not follow:
    # the count can be on screen while the thumbnails (the image set loading) are still on their way
    thumbnails = page.locator("[data-testid='stImage'] img")
    thumbnails.first.wait_for(timeout=60_000)
    assert thumbnails.count() >= 1
    shoot(page, "map-selection")
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile("Export the selection")).click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert rows[0] == ["path", "cluster", "distance", "silhouette"]
    assert len(rows) - 1 == count


def test_an_upload_gets_its_cluster(page, server, prepared_demo) -> None:
    folder, _ = prepared_demo
    goto(page, server, "Classify")
    page.locator("input[type='file']").set_input_files([str(folder / "dots_010.png"), str(folder / "notes.txt")])
    page.get_by_text(re.compile(r"Cluster \d+ · confidence")).first.wait_for()
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text("notes.txt was not classified").count() == 1
    page.wait_for_selector(MAP)
    assert page.locator(MAP).evaluate("el => el.dotmap.data.marks.map(m => m.name)") == ["dots_010.png"]
    shoot(page, "classify-upload")


def test_the_zip_holds_every_image_by_cluster(page, server, recommended_k) -> None:
    goto(page, server, "Export")
    page.get_by_role("button", name=re.compile("Make a zip of 240 images")).click()
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile(r"Download dotmap-k\d+\.zip")).click()
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
    assert "clusters.csv" in names
    images = [n for n in names if n.endswith(".png")]
    assert len(images) == 240
    assert len({n.split("/")[0] for n in images}) == recommended_k
    assert_no_exception(page)


# ---- Compare: choose B, wait for its background job, see the Sankey and the thumbnails ----------------
COMPARE_RESULTS_MS = 180_000  # B's job prepares its clusters first (PCA space here: no UMAP to wait for)


def choose(page, label: str, option: str) -> None:
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_compare_two_settings_shows_the_sankey_and_the_images(page, server) -> None:
    goto(page, server, "Compare")
    assert_no_exception(page)
    assert page.locator("h1").first.inner_text().strip() == "Compare two settings"
    page.locator("[data-testid='stRadio'] label").filter(has_text=re.compile(r"^shape-rotation")).click()
    choose(page, "Cluster space", "pca")
    page.get_by_role("button", name="Compare").click()
    page.locator(".js-plotly-plot .sankey").first.wait_for(timeout=COMPARE_RESULTS_MS)
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text(re.compile(r"^B: features shape-rotation · cluster space pca")).count() == 1
    choose(page, "k (both", "20")  # at the recommended k the two agree fully on this set; at 20 they do not
    page.get_by_text("The images they disagree on most").first.wait_for()
    # the k picker reruns only its fragment, which the script-state marker does not follow: wait for what it draws
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .sankey-node').length === 40")
    page.locator("[data-testid='stImage'] img").first.wait_for()
    settle(page)
    assert_no_exception(page)
    assert page.locator("[data-testid='stImage'] img").count() == 1
    assert page.locator(".js-plotly-plot .sankey-node").count() == 40
    shoot(page, "page-Compare")
    choose(page, "k (both", "3")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .sankey-node').length === 6")
    settle(page)
    assert_no_exception(page)


# ---- Prepare on a Dask cluster: the Overview's choice, and a scheduler that cannot be reached -------
def test_preparing_on_a_dask_scheduler_it_cannot_reach_is_told_on_the_page(page, server) -> None:
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{free.getsockname()[1]}"
    goto(page, server, "")
    page.get_by_text("More settings").click()
    box = page.locator("[data-testid='stSelectbox']").filter(has_text="Prepare on")
    combobox = box.get_by_role("combobox")
    combobox.click()
    page.wait_for_timeout(300)  # a click may only focus it, and the arrow key then opens it
    if combobox.get_attribute("aria-expanded") != "true":
        combobox.press("ArrowDown")
    page.get_by_role("option", name="a Dask cluster", exact=True).click(timeout=10_000)
    page.get_by_role("textbox", name="Dask scheduler (empty: start a cluster on this machine)").fill(address)
    seed = page.locator("input[aria-label='Seed']")
    seed.fill("7")  # settings no other test prepares, so a job must start and reach for the cluster
    seed.press("Tab")
    page.get_by_role("button", name="Apply and prepare").click()
    page.get_by_text(re.compile(r"Could not reach the Dask scheduler at " + re.escape(address))).first.wait_for(
        timeout=60_000
    )
    settle(page)
    assert_no_exception(page)
    shoot(page, "dask-unreachable")


# ---- Learned features: chosen on the Overview, trained in the background job with its epochs shown --------
LEARNED_MS = 240_000  # the demo's 240 images: 60 small epochs, then the usual stages


def test_learned_features_train_with_their_epochs_shown_then_cluster(page, server) -> None:
    goto(page, server, "")
    page.locator("[data-testid='stRadio'] label").filter(has_text=re.compile(r"^learned-rotation")).click()
    page.get_by_role("button", name="Apply and prepare").click()
    page.get_by_text(re.compile(r"of \d+ epochs \(loss \d")).first.wait_for(timeout=120_000)
    shoot(page, "learned-training")
    page.get_by_text("Recommended k").first.wait_for(timeout=LEARNED_MS)
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text(re.compile(r"of the\s+learned-rotation\s+features")).count() == 1  # the variance's caption
    assert page.get_by_text(re.compile(r"the\s+learned-rotation\s+encoder is given this")).count() == 1
    shoot(page, "learned-done")
