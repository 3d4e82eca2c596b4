"""A newcomer's first start, timed in a real browser: `streamlit run app.py` with nothing prepared.

Each run is a fresh server with a fresh HOME (so an empty cache); "cold" also gives it an empty
numba cache (UMAP compiles), "warm" reuses one numba cache across its runs. Chromium opens the
Overview and the clock stops when the recommended k is on screen. With --folder, the folder is
typed into the Overview instead of using the built-in demo, and the benchmark also times when the
2-D map is ready and how fast another page answers while the job runs. Run from the repository root:

    python benchmarks/first_start.py                           # built-in demo: 3 cold, 3 warm
    python benchmarks/first_start.py --folder DIR --repeats 1  # a folder of your own (32,000 images, say)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from browser import APP_FOLDER, CHROMIUM, folder_box, free_port, healthy

LIMIT_MS = 600_000


def one_run(numba_cache: Path, folder: str | None) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="dotmap-newcomer-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DOTMAP_CACHE", "DOTMAP_DATA", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), NUMBA_CACHE_DIR=str(numba_cache))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    launched = time.monotonic()
    server = subprocess.Popen(command, cwd=APP_FOLDER, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    out: dict[str, float] = {}
    try:
        while not healthy(url):
            time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(LIMIT_MS)
            page.goto(url)
            opened = time.monotonic()
            if folder is not None:
                page.get_by_text("Recommended k").first.wait_for()  # the demo first: the README's first command
                out["demo_s"] = time.monotonic() - opened
                folder_box(page).fill(folder)
                page.get_by_role("button", name="Apply and prepare").click()
                opened = time.monotonic()
                page.get_by_text("Read the images").first.wait_for()
                other = browser.new_page()  # another session and page (the demo's Choose k), while the job runs
                asked = time.monotonic()
                other.goto(f"{url}/Choose_k")
                other.get_by_text("Recommended: k").first.wait_for()
                out["other_page_s"] = time.monotonic() - asked
                other.close()
            page.get_by_text("Images used").first.wait_for()
            out["results_s"] = time.monotonic() - opened
            out["from_launch_s"] = time.monotonic() - launched
            if folder is not None:
                page.get_by_text("The 2-D map is still being made").first.wait_for(state="detached")
                out["map_s"] = time.monotonic() - opened
            browser.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
        shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", default=None, help="a folder typed into the Overview (default: the demo)")
    parser.add_argument("--no-warm", action="store_true", help="only cold runs (empty numba cache)")
    args = parser.parse_args()
    folder = str(Path(args.folder).resolve()) if args.folder else None
    kinds = ["cold"] if args.no_warm else ["cold", "warm"]
    warm_cache = Path(tempfile.mkdtemp(prefix="dotmap-numba-warm-"))
    for kind in kinds:
        runs = []
        for i in range(args.repeats):
            numba = Path(tempfile.mkdtemp(prefix="dotmap-numba-")) if kind == "cold" else warm_cache
            if kind == "warm" and i == 0:
                one_run(warm_cache, None)  # fills the numba cache; not counted
            runs.append(one_run(numba, folder))
            print(f"{kind} run {i + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in runs[-1].items()), flush=True)
            if kind == "cold":
                shutil.rmtree(numba, ignore_errors=True)
        medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{kind} median of {len(runs)}: " + ", ".join(f"{k} {v:.1f} s" for k, v in medians.items()))
    shutil.rmtree(warm_cache, ignore_errors=True)


if __name__ == "__main__":
    main()
