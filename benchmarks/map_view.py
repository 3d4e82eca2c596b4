"""The map component at 32,000 images: the atlas stage, and the Map page in Chromium.

Measured (medians over --repeats), on the sparse and the dense demo sets:
- atlas: seconds of the atlas stage (every image a 40-px tile, PNG pages) and its size in MB, the
  bytes the browser receives once a session; quiet and with another process keeping a core busy;
- first draw: from opening the Map page (the server warm, the set prepared) until every point is
  drawn and the atlas is decoded in the browser;
- k move: from the k slider's arrow key until the map shows the new k;
- frames while zooming and panning: the median time between two animation frames (requestAnimationFrame)
  zoomed out (every point drawn) and zoomed in until the images are drawn in place, and how many
  images were drawn.

With ``--before DIR`` (a checkout of the commit before the component, whose Map page was a plotly
chart: ``git worktree add DIR 9fbf9c1``) the first draw and the k move are measured on that app
too, in the same run, just before, on the same cache.

Run from the repository root (makes and prepares the sets in benchmarks/data on first use):

    python benchmarks/map_view.py                       # both sets, 32,000 images, 3 repeats
    python benchmarks/map_view.py --sets dense --repeats 5 --before /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from browser import CHROMIUM, busiest_point, healthy, open_page, settle, start_server
from harness import DATA, RESULTS, busy_core, make_demo_once

KINDS = {"sparse": "shapes", "dense": "dense"}
MAP = ".dm-map[data-ready='yes']"
FRAMES = 120  # animation frames recorded per gesture
RECORD = (
    "n => new Promise(done => { const t = []; const tick = s => { t.push(s); if (t.length < n)"
    " requestAnimationFrame(tick); else done(t.slice(1).map((v, i) => v - t[i])); }; requestAnimationFrame(tick); })"
)


def prepared(kind: str, n: int) -> tuple[Path, Path]:
    from core.engine.pipeline import Pipeline, Settings

    folder = make_demo_once(DATA / f"{KINDS[kind]}-{n}-seed1", n, 1, kind=KINDS[kind])
    cache = DATA / f"map-view-cache-{kind}-{n}"
    Pipeline(folder, Settings(), cache).prepare(with_map=True)
    return folder, cache


def atlas_runs(folder: Path, cache: Path, repeats: int, busy: bool) -> dict:
    from core.engine.pipeline import Pipeline, Settings
    from core.outputs.atlas import make_atlas

    loaded = Pipeline(folder, Settings(), cache).images()
    seconds, size = [], 0
    with busy_core(busy):
        for _ in range(repeats):
            start = time.perf_counter()
            arrays, _ = make_atlas(loaded.packed, loaded.grid)
            seconds.append(time.perf_counter() - start)
            size = arrays["png"].nbytes
    return {"atlas_s": statistics.median(seconds), "atlas_mb": size / 1e6}


def gesture_frames(page, centre: tuple[float, float], zoom_steps: int) -> list[float]:
    """Frame times (ms) while the mouse zooms in ``zoom_steps`` wheel steps at ``centre``, then pans."""
    page.mouse.move(*centre)
    record = page.evaluate_handle(RECORD, FRAMES)
    for _ in range(zoom_steps):
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(30)
    page.mouse.down()
    page.mouse.move(centre[0] + 200, centre[1] + 80, steps=40)
    page.mouse.up()
    return page.evaluate("p => p", record)


PLOTLY_TITLE = ".js-plotly-plot .gtitle"  # the map before the component: a plotly chart


def first_draw_and_k_move(page, url: str, plotly: bool) -> tuple[float, float]:
    """Seconds from opening the Map page until its map is drawn (the component: every point and the
    atlas; plotly: its title and WebGL points), and ms from the k slider's key press to the new k shown."""
    start = time.perf_counter()
    open_page(page, f"{url}/Map")
    if plotly:
        page.wait_for_selector(f"{PLOTLY_TITLE}", timeout=300_000)
        page.wait_for_selector(".js-plotly-plot .gl-canvas-context", state="attached", timeout=300_000)
    else:
        page.wait_for_selector(f"{MAP}[data-atlas='yes']", timeout=300_000)
    opened = time.perf_counter() - start
    settle(page)
    thumb = page.locator("[data-testid='stSlider'] input[type='range']").first
    k = int(thumb.get_attribute("aria-valuetext")) + 1
    thumb.focus()
    pressed = time.perf_counter()
    page.keyboard.press("ArrowRight")
    title = PLOTLY_TITLE if plotly else ".dm-title"
    page.wait_for_function(
        "a => { const k = a[0]; const t = document.querySelector(a[1]); return t !== null && "
        "(t.textContent.includes('k = ' + k + ' ') || t.textContent.endsWith('k = ' + k)); }",
        arg=[k, title],
        timeout=60_000,
    )
    moved = time.perf_counter() - pressed
    settle(page)
    return opened, 1000 * moved


def before_runs(env: dict, repeats: int, before: Path) -> dict:
    """First draw and k move of the app in ``before`` (the plotly map), the warm-up run left out."""
    from playwright.sync_api import sync_playwright

    first, moves = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        process, url = start_server(env, cwd=before)
        try:
            while not healthy(url):
                time.sleep(0.05)
            for run in range(repeats + 1):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                opened, moved = first_draw_and_k_move(page, url, plotly=True)
                if run:
                    first.append(opened)
                    moves.append(moved)
                page.close()
        finally:
            process.terminate()
            process.wait(20)
            browser.close()
    return {"before_first_draw_s": statistics.median(first), "before_k_move_ms": statistics.median(moves)}


def browser_runs(env: dict, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    first, moves, zoomed_out, zoomed_in, drawn = [], [], [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        process, url = start_server(env)
        try:
            while not healthy(url):
                time.sleep(0.05)
            for run in range(repeats + 1):  # the first run warms the server's caches and is left out
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                opened, moved = first_draw_and_k_move(page, url, plotly=False)
                stage = page.locator(f"{MAP} .dm-stage").first
                stage.scroll_into_view_if_needed()
                box = stage.bounding_box()
                out = gesture_frames(page, (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2), 1)
                page.locator(f"{MAP} .dm-mode", has_text="Reset view").click()
                at = busiest_point(page, box)  # zoomed in where the points are, not into an empty middle
                page.mouse.move(*at)
                steps = 0
                while int(page.locator(MAP).get_attribute("data-thumbnails")) == 0 and steps < 200:
                    page.mouse.wheel(0, -120)
                    page.wait_for_timeout(40)
                    steps += 1
                images = int(page.locator(MAP).get_attribute("data-thumbnails"))  # before the pan moves on
                inside = gesture_frames(page, at, 0)
                if run:
                    first.append(opened)
                    moves.append(moved)
                    zoomed_out.append(statistics.median(out))
                    zoomed_in.append(statistics.median(inside))
                    drawn.append(images)
                page.close()
        finally:
            process.terminate()
            process.wait(20)
            browser.close()
    return {
        "first_draw_s": statistics.median(first),
        "k_move_ms": statistics.median(moves),
        "frame_ms_zoomed_out": statistics.median(zoomed_out),
        "frame_ms_zoomed_in": statistics.median(zoomed_in),
        "images_drawn_zoomed_in": statistics.median(drawn),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sets", nargs="+", choices=sorted(KINDS), default=sorted(KINDS))
    parser.add_argument("--before", type=Path, help="a checkout whose Map page is the plotly chart, measured too")
    args = parser.parse_args()

    rows = []
    for kind in args.sets:
        folder, cache = prepared(kind, args.n)
        row = {"set": kind, "n": args.n, "repeats": args.repeats}
        row.update({f"quiet_{k}": v for k, v in atlas_runs(folder, cache, args.repeats, busy=False).items()})
        row.update({f"busy_{k}": v for k, v in atlas_runs(folder, cache, args.repeats, busy=True).items()})
        env = dict(os.environ, DOTMAP_DATA=str(folder), DOTMAP_CACHE=str(cache))
        if args.before:  # in the same run, just before this app: the same machine and cache
            row.update(before_runs(env, args.repeats, args.before.resolve()))
        row.update(browser_runs(env, args.repeats))
        rows.append(row)
        print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "map_view.jsonl", "a") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    print(f"\n{args.n:,} images, medians of {args.repeats}:")
    for row in rows:
        print(
            f"  {row['set']:6}  atlas {row['quiet_atlas_s']:.2f} s quiet, {row['busy_atlas_s']:.2f} s busy, "
            f"{row['quiet_atlas_mb']:.1f} MB; first draw {row['first_draw_s']:.2f} s; "
            f"k move {row['k_move_ms']:.0f} ms; "
            f"frames {row['frame_ms_zoomed_out']:.1f} ms zoomed out, {row['frame_ms_zoomed_in']:.1f} ms zoomed in "
            f"({row['images_drawn_zoomed_in']:.0f} images drawn)"
        )
        if "before_first_draw_s" in row:
            print(
                f"          before (plotly): first draw {row['before_first_draw_s']:.2f} s, "
                f"k move {row['before_k_move_ms']:.0f} ms"
            )


if __name__ == "__main__":
    main()
