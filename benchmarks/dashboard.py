"""How fast the dashboard answers with a large data set already prepared in the cache.

Measured (medians over --repeats):
- first page: from launching `streamlit run app.py` to the Overview's content (its sample of images)
  on screen in Chromium, for a fresh server process each time; and the same for a one-line
  Streamlit app (the floor), alternated with it, so the ratio stands when the machine is noisy;
- k slider: server time of the slider's fragment on the Map and the Clusters page (logged by the
  app to $DOTMAP_TIMING_LOG, see pages/ui/timing.py), and in the browser from the key press until
  the page shows the new k (the map's title, or the cards of the new k);
- prediction: server time of the Classify page from the upload to its results drawn, core alone
  (Predictor.predict), and in the browser from choosing the file to its cluster shown;
- typical shapes on the map, side by side: the Map's k slider as above with the shapes on and off
  (the page's toggle), in the same server and tab, the order alternated run by run, and the ratio
  on / off of the medians.

Run from the repository root (prepares the set in benchmarks/data on first use, ~1 min at 32k):

    python benchmarks/dashboard.py               # 32,000 images, 5 repeats
    python benchmarks/dashboard.py --n 4000 --repeats 3
    python benchmarks/dashboard.py --folder /work/data/d32k --part map-shapes   # a folder of your own
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

from browser import CHROMIUM, healthy, open_page, settle, start_server
from harness import DATA, RESULTS, demo_folder


def prepare(folder: Path, cache: Path) -> None:
    from core.engine.pipeline import Pipeline, Settings

    pipeline = Pipeline(folder, Settings(), cache)
    start = time.perf_counter()
    pipeline.prepare(with_map=True)
    pipeline.cluster_means()
    print(f"prepared {folder.name} in {time.perf_counter() - start:.1f} s (cache {cache})", flush=True)


def n_images(folder: Path) -> int:
    from core.engine.pipeline import Pipeline, Settings

    return len(Pipeline(folder, Settings()).image_meta()["paths"])


FLOOR_APP = 'import streamlit as st\nst.title("floor")\n'  # the least a Streamlit page can cost


def timings(log: Path, part: str, since: int = 0) -> list[float]:
    """Milliseconds of the logged runs of one part, from line ``since`` on."""
    if not log.exists():
        return []
    lines = log.read_text().splitlines()[since:]
    return [entry["ms"] for entry in map(json.loads, lines) if entry["part"] == part]


def log_length(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


SHOWN = {  # JavaScript: is the page showing k = v yet?
    "map fragment": "v => { const t = document.querySelector('.dm-map[data-ready=\"yes\"] .dm-title');"
    " return t !== null && (t.textContent.includes('k = ' + v + ' ') || t.textContent.endsWith('k = ' + v)); }",
    "cards fragment": "v => document.querySelector('.st-key-card-' + (v - 1)) !== null"
    " && document.querySelector('.st-key-card-' + v) === null",
}


def move_slider(page, log: Path, part: str, moves: int) -> tuple[list[float], list[float]]:
    """Press the k slider's arrows; (server ms of each fragment run, ms until the page shows the new k)."""
    server, browser = [], []
    thumb = page.locator("[data-testid='stSlider'] input[type='range']").first
    for i in range(moves):
        before = log_length(log)
        k = int(thumb.get_attribute("aria-valuetext")) + (1 if i % 2 == 0 else -1)
        thumb.focus()
        pressed = time.perf_counter()
        page.keyboard.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        page.wait_for_function(SHOWN[part], arg=k, timeout=60_000)
        browser.append(1000 * (time.perf_counter() - pressed))
        settle(page)
        while not timings(log, part, before):  # the log line is written as the fragment ends
            time.sleep(0.005)
        server.extend(timings(log, part, before))
    return server, browser


SHAPES_DRAWN = "() => Number((document.querySelector('.dm-map') || {dataset: {}}).dataset.shapes || 0)"
SHAPES_TOGGLE = "Typical shapes on the map"


def set_shapes(page, log: Path, on: bool) -> None:
    """Turn the Map's typical shapes on or off with its toggle and wait until the map shows it."""
    if (page.evaluate(SHAPES_DRAWN) > 0) == on:
        return
    before = log_length(log)
    page.get_by_text(SHAPES_TOGGLE).click()
    page.wait_for_function(f"on => ({SHAPES_DRAWN})() > 0 === on", arg=on, timeout=60_000)
    settle(page)
    while not timings(log, "map fragment", before):
        time.sleep(0.005)


def shapes_runs(env: dict, repeats: int, logs: Path, moves: int = 6) -> dict:
    """The Map's k slider with the typical shapes off and on: server and browser ms of each, medians and ratios.

    Each run is a fresh server and tab measuring both, the order alternated run by run, so both see
    the same noise and the same warm caches (the first run of a k is left out of neither).
    """
    from playwright.sync_api import sync_playwright

    server = {"off": [], "on": []}
    browser_ms = {"off": [], "on": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        for run in range(repeats):
            log = logs / f"timing-shapes-{run}.jsonl"
            log.unlink(missing_ok=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            process, url = start_server(dict(env, DOTMAP_TIMING_LOG=str(log)))
            try:
                while not healthy(url):
                    time.sleep(0.02)
                open_page(page, f"{url}/Map")
                page.wait_for_function(f"() => ({SHAPES_DRAWN})() > 0", timeout=300_000)
                move_slider(page, log, "map fragment", moves=2)  # warm: every k the runs visit is loaded once
                for state in ("off", "on") if run % 2 == 0 else ("on", "off"):
                    set_shapes(page, log, state == "on")
                    ms_server, ms_browser = move_slider(page, log, "map fragment", moves)
                    server[state] += ms_server
                    browser_ms[state] += ms_browser
            finally:
                page.close()
                process.terminate()
                process.wait(20)
        browser.close()
    report = {}
    for state in ("off", "on"):
        report[f"map_shapes_{state}_server_ms"] = statistics.median(server[state])
        report[f"map_shapes_{state}_browser_ms"] = statistics.median(browser_ms[state])
    for where in ("server", "browser"):
        report[f"map_shapes_{where}_ratio"] = report[f"map_shapes_on_{where}_ms"] / report[f"map_shapes_off_{where}_ms"]
    return report


def floor_run(browser, folder: Path) -> float:
    """Seconds from launching a one-line Streamlit app to its title on screen, measured like the Overview."""
    (folder / "app.py").write_text(FLOOR_APP)
    page = browser.new_page()
    start = time.perf_counter()
    process, url = start_server(dict(os.environ), cwd=folder)
    try:
        while not healthy(url):
            time.sleep(0.02)
        page.goto(url)
        page.get_by_text("floor").wait_for(timeout=60_000)
        return time.perf_counter() - start
    finally:
        page.close()
        process.terminate()
        process.wait(20)


def browser_runs(env: dict, repeats: int, sample_files: list[Path], logs: Path) -> dict:
    from playwright.sync_api import sync_playwright

    first, ready, overview, floor = [], [], [], []
    server = {"map": [], "cards": [], "classify": [], "classify_again": []}
    browser_ms = {"map": [], "cards": [], "classify": [], "classify_again": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        for run in range(repeats):
            floor.append(floor_run(browser, logs))  # alternated with the app's runs: both see the same noise
            log = logs / f"timing-{run}.jsonl"
            log.unlink(missing_ok=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            process, url = start_server(dict(env, DOTMAP_TIMING_LOG=str(log)))
            try:
                while not healthy(url):
                    time.sleep(0.02)
                ready.append(time.perf_counter() - start)
                page.goto(url)
                page.get_by_text("A sample of the images").wait_for(timeout=300_000)
                page.locator("[data-testid='stImage'] img").last.wait_for(timeout=300_000)
                first.append(time.perf_counter() - start)
                settle(page)
                overview += timings(log, "overview")[:1]

                for name, path, part in (("map", "Map", "map fragment"), ("cards", "Clusters", "cards fragment")):
                    open_page(page, f"{url}/{path}")
                    ms_server, ms_browser = move_slider(page, log, part, moves=4)
                    server[name] += ms_server
                    browser_ms[name] += ms_browser

                # a tab of its own, as a user opening the page: the map's WebGL work above slows a shared one
                classify = browser.new_page(viewport={"width": 1400, "height": 1000})
                open_page(classify, f"{url}/Classify")
                for attempt, image in enumerate(sample_files):  # the first upload of a tab, then another
                    before = log_length(log)
                    chosen = time.perf_counter()
                    classify.locator("input[type='file']").set_input_files(str(image))
                    cards = classify.get_by_text(re.compile(r"Cluster \d+ · confidence"))
                    cards.nth(attempt).wait_for(timeout=60_000)  # its own result card (uploads add up)
                    browser_ms["classify" if attempt == 0 else "classify_again"].append(
                        1000 * (time.perf_counter() - chosen)
                    )
                    settle(classify)
                    server["classify" if attempt == 0 else "classify_again"] += timings(log, "classify uploads", before)
                classify.close()
            finally:
                page.close()
                process.terminate()
                process.wait(20)
        browser.close()
    report = {
        "first_page_s": statistics.median(first),
        "first_page_runs_s": [round(x, 2) for x in first],
        "server_ready_s": statistics.median(ready),
        "first_page_after_ready_s": statistics.median([f - r for f, r in zip(first, ready, strict=True)]),
        "overview_server_ms": statistics.median(overview),
        "floor_first_page_s": statistics.median(floor),
        "first_page_over_floor": statistics.median(first) / statistics.median(floor),
    }
    for name in server:
        report[f"{name}_server_ms"] = statistics.median(server[name])
        report[f"{name}_server_ms_max"] = max(server[name])
        report[f"{name}_browser_ms"] = statistics.median(browser_ms[name])
    return report


def predict_core_ms(folder: Path, sample_file: Path, repeats: int) -> float:
    from core.engine.pipeline import Pipeline, Settings
    from core.outputs.predict import Predictor

    predictor = Predictor(Pipeline(folder, Settings()))
    content = sample_file.read_bytes()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(content, "new.png")
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folder", type=Path, help="a folder of images to use instead of the generated demo set")
    parser.add_argument(
        "--part", choices=("all", "map-shapes"), default="all", help="map-shapes: only the shapes side by side"
    )
    args = parser.parse_args()

    folder = args.folder.resolve() if args.folder else demo_folder(args.n, args.seed)
    cache = DATA / (f"dashboard-cache-{folder.name}" if args.folder else f"dashboard-cache-{args.n}")
    os.environ.update(DOTMAP_DATA=str(folder), DOTMAP_CACHE=str(cache))
    prepare(folder, cache)
    samples = sorted(folder.glob("*.png"))[123:125]
    env = dict(os.environ)
    name = folder.name if args.folder else str(args.n)
    report = {"folder": str(folder), "n_images": n_images(folder), "repeats": args.repeats}
    RESULTS.mkdir(parents=True, exist_ok=True)
    report.update(shapes_runs(env, args.repeats, RESULTS))
    shapes_line = (
        f"  map shapes   k slider with the typical shapes off / on: {report['map_shapes_off_server_ms']:.0f} / "
        f"{report['map_shapes_on_server_ms']:.0f} ms server (ratio {report['map_shapes_server_ratio']:.2f}), "
        f"{report['map_shapes_off_browser_ms']:.0f} / {report['map_shapes_on_browser_ms']:.0f} ms until drawn "
        f"(ratio {report['map_shapes_browser_ratio']:.2f}; target 1.5)"
    )
    if args.part == "map-shapes":
        (RESULTS / f"dashboard-shapes-{name}.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
        print(f"\n{folder}, medians of {args.repeats} fresh servers:\n{shapes_line}")
        return
    report.update(browser_runs(env, args.repeats, samples, RESULTS))
    report["predict_core_ms"] = predict_core_ms(folder, samples[0], 20)
    (RESULTS / f"dashboard-{name}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(shapes_line)
    print(
        f"\n{report['n_images']:,} images prepared, medians of {args.repeats} fresh servers:\n"
        f"  first page   {report['first_page_s']:.2f} s from launching the server "
        f"({report['server_ready_s']:.2f} s to start, {report['first_page_after_ready_s']:.2f} s to draw, "
        f"of which {report['overview_server_ms']:.0f} ms server time); target 3 s; a one-line Streamlit app: "
        f"{report['floor_first_page_s']:.2f} s (ratio {report['first_page_over_floor']:.1f})\n"
        f"  k slider     map {report['map_server_ms']:.0f} ms, cards {report['cards_server_ms']:.0f} ms server time "
        f"(target 300 ms); {report['map_browser_ms']:.0f} / {report['cards_browser_ms']:.0f} ms until drawn\n"
        f"  prediction   {report['classify_server_ms']:.0f} ms server time for the page's results "
        f"(core alone {report['predict_core_ms']:.1f} ms; target 500 ms); "
        f"{report['classify_browser_ms']:.0f} ms until shown; another upload "
        f"{report['classify_again_server_ms']:.0f} ms server, {report['classify_again_browser_ms']:.0f} ms shown"
    )


if __name__ == "__main__":
    main()
