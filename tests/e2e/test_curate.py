"""The curation in Chromium: start from k, select on the map and mark outliers, undo, rename, pick images in a
group's table and move them, download the file, export by group name and classify into the groups.

A server of its own, with an empty curations folder, so the other browser tests never see a curation.
"""

import csv
import io
import json
import os
import re

import pytest
from browsing import MAP, assert_no_exception, drag_box, goto, settle, shoot
from conftest import streamlit_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def curate_server(prepared_demo, tmp_path_factory):
    folder, cache = prepared_demo
    curations = tmp_path_factory.mktemp("curations")
    timing = tmp_path_factory.mktemp("timing") / "timing.jsonl"
    env = dict(
        os.environ,
        DOTMAP_DATA=str(folder),
        DOTMAP_CACHE=str(cache),
        DOTMAP_CURATIONS=str(curations),
        DOTMAP_TIMING_LOG=str(timing),
    )
    with streamlit_server(env, tmp_path_factory.mktemp("server") / "streamlit.log") as url:
        yield url, curations, timing


@pytest.fixture(scope="module")
def tab(browser, curate_server):
    from conftest import new_tab

    with new_tab(browser) as page:
        yield page


def saved(curations) -> dict:
    (path,) = [p for p in curations.glob("*.json") if ".last-good" not in p.name]
    return json.loads(path.read_text())


def said(tab, pattern: str) -> None:
    """Wait for the success message of a change (a fragment rerun: the script-state marker does not follow it)."""
    tab.locator("[data-testid='stAlertContentSuccess']").filter(has_text=re.compile(pattern)).first.wait_for()
    assert_no_exception(tab)


def choose(tab, box, option: str) -> None:
    """Pick an option of a select box; after a fragment rerun a first click may only focus it (then a key opens it)."""
    box.click()
    tab.wait_for_timeout(300)
    if tab.get_by_role("option").count() == 0:
        tab.keyboard.press("ArrowDown")
    tab.get_by_role("option", name=option, exact=True).first.click()


def test_start_from_the_recommended_k(tab, curate_server, recommended_k) -> None:
    url, curations, _ = curate_server
    goto(tab, url, "Curate")
    assert_no_exception(tab)
    tab.get_by_role("button", name=f"Start from the {recommended_k} clusters").click()
    said(tab, f"Started from the {recommended_k} clusters")
    tab.get_by_text(f"{recommended_k} groups · 0 outliers").wait_for()
    tab.locator(MAP).first.wait_for()
    assert len(saved(curations)["groups"]) == recommended_k


def test_a_box_on_the_map_marks_outliers_and_undo_brings_them_back(tab, curate_server) -> None:
    _, curations, _ = curate_server
    count = drag_box(tab, 0.55)
    assert count > 0
    choose(
        tab,
        tab.locator("[data-testid='stSelectbox']").filter(has_text="selected images to").first,
        "outliers (in no group)",
    )
    tab.get_by_role("button", name="Move", exact=True).click()
    said(tab, f"moved {count:,} images? to outliers")
    tab.get_by_text(f"{count:,} outliers").first.wait_for()
    assert len(saved(curations)["outliers"]) == count
    shoot(tab, "curate-outliers")
    tab.get_by_role("button", name=re.compile("^Undo: moved")).click()
    said(tab, "Undone: moved")
    assert saved(curations)["outliers"] == []


def test_rename_a_group(tab, curate_server) -> None:
    _, curations, _ = curate_server
    card = tab.locator(".st-key-group-0")
    card.get_by_role("radio", name="Rename").click()
    field = card.get_by_label("Name")
    field.fill("rings")
    field.press("Enter")
    card.get_by_role("button", name="Rename").click()
    said(tab, "renamed 'cluster 0' to 'rings'")
    assert saved(curations)["groups"][0]["name"] == "rings"


def test_pick_images_in_a_groups_table_and_move_them(tab, curate_server) -> None:
    _, curations, _ = curate_server
    card = tab.locator(".st-key-group-1")
    card.get_by_role("radio", name="Browse and move").click()
    grid = card.locator("[data-testid='stDataFrame']")
    grid.wait_for()
    grid.scroll_into_view_if_needed()
    tab.wait_for_timeout(1000)  # the grid draws on a canvas after it is attached
    box = grid.bounding_box()
    first_member = saved(curations)["groups"][1]["images"][0]
    marker = (box["x"] + 14, box["y"] + 36 + 32)  # the row marker of the first row (header ~36 px, rows 64)
    tab.mouse.move(*marker)  # the marker's checkbox shows on hover
    tab.wait_for_timeout(300)
    tab.mouse.click(*marker)
    card.get_by_text("Move the 1 selected images to").wait_for()
    choose(tab, card.locator("[data-testid='stSelectbox']").first, "rings")
    card.get_by_role("button", name="Move", exact=True).click()
    said(tab, "moved 1 image to 'rings'")
    assert first_member in saved(curations)["groups"][0]["images"]
    shoot(tab, "curate-page")


def test_download_the_curation_and_export_by_name(tab, curate_server) -> None:
    url, _, timing = curate_server
    with tab.expect_download() as download:
        tab.get_by_role("button", name="Download the curation (JSON)").click()
    doc = json.loads(download.value.path().read_text())
    assert doc["format"] == "dotmap-curation" and doc["groups"][0]["name"] == "rings"
    goto(tab, url, "Export")
    assert_no_exception(tab)
    with tab.expect_download() as download:
        tab.get_by_role("button", name=re.compile("^Assignments")).click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert rows[0] == ["path", "group"] and any(r[1] == "rings" for r in rows[1:])
    parts = [json.loads(line) for line in timing.read_text().splitlines()]
    views = [p["ms"] for p in parts if p["part"] == "curate view"]
    print(f"server time of the curation view per run (ms): {sorted(views)}")


def test_classify_into_the_groups(tab, curate_server, prepared_demo) -> None:
    url, curations, _ = curate_server
    folder, _ = prepared_demo
    member = saved(curations)["groups"][0]["images"][0]
    goto(tab, url, "Classify")
    tab.locator("input[type='file']").set_input_files([str(folder / member)])
    tab.get_by_text(re.compile(r"rings · confidence")).first.wait_for()
    settle(tab)
    assert_no_exception(tab)
    shoot(tab, "classify-groups")
