"""Refresh the README's screenshots from the built-in demo set (prepared first if it is not yet).

    python docs/take_screenshots.py        # writes docs/map.png, docs/cluster-card.png, docs/choose-k.png
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dashboard import CHROMIUM, healthy, open_page, start_server  # noqa: E402
from core.cache import default_cache_dir  # noqa: E402
from core.demo import builtin_demo_dir  # noqa: E402
from core.pipeline import Pipeline, Settings  # noqa: E402

OUT = ROOT / "docs"
CARD = int(os.environ.get("CARD", "7"))  # the cluster whose card is shown: the triangles of the demo at k=8


def main() -> None:
    from playwright.sync_api import sync_playwright

    folder = builtin_demo_dir(default_cache_dir())
    pipeline = Pipeline(folder, Settings())
    pipeline.prepare(with_map=True)
    pipeline.cluster_means()
    process, url = start_server(dict(os.environ, DOTMAP_DATA=""))
    try:
        while not healthy(url):
            time.sleep(0.1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1300, "height": 1250}, device_scale_factor=1)
            open_page(page, f"{url}/Map")
            page.wait_for_selector(".js-plotly-plot .gtitle")
            page.wait_for_timeout(1500)
            page.locator("[data-testid='stMain']").screenshot(path=str(OUT / "map.png"))

            open_page(page, f"{url}/Clusters")
            page.wait_for_timeout(1000)
            page.locator(f".st-key-card-{CARD}").screenshot(
                path=str(OUT / "cluster-card.png")
            )

            page.set_viewport_size({"width": 1300, "height": 1000})
            open_page(page, f"{url}/Choose_k")
            page.wait_for_timeout(1500)
            page.locator("[data-testid='stMain']").screenshot(path=str(OUT / "choose-k.png"))
            browser.close()
    finally:
        process.terminate()
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
