"""Refresh the README's screenshots from the built-in demo set (prepared first if it is not yet).

Run from the repository root, as a module (so that ``benchmarks`` imports):

    python -m docs.take_screenshots        # writes docs/map.png, docs/map-hover.png, docs/map-zoomed-in.png,
                                           # docs/cluster-card.png, docs/choose-k.png and docs/curate.png
                                           # (a curation named after the demo's families)
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.browser import CHROMIUM, busiest_point, healthy, open_page, start_server
from core.curation import file as curation_file
from core.curation import prepared
from core.demo import builtin_demo_dir
from core.engine.cache import default_cache_dir
from core.engine.pipeline import Pipeline, Settings
from core.reading.labels import read_labels

OUT = Path(__file__).resolve().parent
CARD = int(os.environ.get("CARD", "7"))  # the cluster whose card is shown: the triangles of the demo at k=8
MAP = ".dm-map[data-atlas='yes']"  # the map component once its points and its thumbnails are in
ZOOM_PAST = int(os.environ.get("ZOOM_PAST", "6"))  # wheel steps past the first images drawn


def main() -> None:
    from playwright.sync_api import sync_playwright

    folder = builtin_demo_dir(default_cache_dir())
    pipeline = Pipeline(folder, Settings())
    pipeline.prepare(with_map=True)
    pipeline.cluster_means()
    curations = tempfile.mkdtemp(prefix="dotmap-screenshot-curations-")
    os.environ["DOTMAP_CURATIONS"] = curations
    named_curation(pipeline)
    process, url = start_server(dict(os.environ, DOTMAP_DATA="", DOTMAP_CURATIONS=curations))
    try:
        while not healthy(url):
            time.sleep(0.1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1300, "height": 1250}, device_scale_factor=1)
            open_page(page, f"{url}/Map")
            page.wait_for_selector(MAP)
            page.wait_for_timeout(1500)
            page.locator("[data-testid='stMain']").screenshot(path=str(OUT / "map.png"))
            hover_and_zoom(page)

            open_page(page, f"{url}/Clusters")
            page.wait_for_timeout(1000)
            page.locator(f".st-key-card-{CARD}").screenshot(path=str(OUT / "cluster-card.png"))

            page.set_viewport_size({"width": 1300, "height": 1000})
            open_page(page, f"{url}/Choose_k")
            page.wait_for_timeout(1500)
            page.locator("[data-testid='stMain']").screenshot(path=str(OUT / "choose-k.png"))

            page.set_viewport_size({"width": 1300, "height": 1560})  # the map and the first group's card
            open_page(page, f"{url}/Curate")
            page.wait_for_selector(MAP)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(OUT / "curate.png"))
            browser.close()
    finally:
        process.terminate()
    print(f"screenshots written to {OUT}")


def hover_and_zoom(page) -> None:
    """docs/map-hover.png: the image under the cursor at a lone point near the middle of the map;
    docs/map-zoomed-in.png: zoomed in there until the points are drawn as their images."""
    stage = page.locator(f"{MAP} .dm-stage").first
    box = stage.bounding_box()
    points = np.array(page.locator(MAP).evaluate("el => Array.from(el.dotmap.data.x, (_, i) => el.dotmap.screenOf(i))"))
    points = points + [box["x"], box["y"]]
    gaps = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(gaps, np.inf)
    centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
    middle = np.linalg.norm(points - centre, axis=1) / box["width"]
    row = int(np.argmax(gaps.min(axis=1) - 40 * middle))  # lone, and not far from the middle
    page.mouse.move(*(points[row] + [6, 6]))
    page.mouse.move(*points[row], steps=3)
    page.wait_for_selector(f"{MAP}[data-hover-row='{row}']")
    page.wait_for_timeout(300)
    page.locator(MAP).screenshot(path=str(OUT / "map-hover.png"))
    page.locator(f"{MAP} .dm-mode", has_text="Reset view").click()
    page.mouse.move(*busiest_point(page, box))
    for _ in range(60):  # wheel steps, until the images are drawn, and more to spread them apart
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(60)
        if int(page.locator(MAP).get_attribute("data-thumbnails")) > 0:
            break
    for _ in range(ZOOM_PAST):
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(60)
    page.mouse.move(box["x"] + 2, box["y"] + 2)  # the cursor off the points: no hover card
    page.wait_for_timeout(800)
    page.locator(MAP).screenshot(path=str(OUT / "map-zoomed-in.png"))


def named_curation(pipeline: Pipeline) -> None:
    """A curation of the demo from the recommended k, each group named after the family most of it is."""
    sweep, paths = pipeline.sweep(), pipeline.image_meta()["paths"]
    k = sweep.recommended_k
    curation = prepared.from_k(pipeline, k)
    codes, families = read_labels(pipeline.inventory.labels_path, paths)
    for group in list(curation.names):
        family = Counter(codes[curation.members(group)].tolist()).most_common(1)[0][0]
        curation.rename(group, curation._unique_name(families[family]))
    curation.history.clear()
    curation_file.save(curation, prepared.default_path(pipeline))


if __name__ == "__main__":
    main()
