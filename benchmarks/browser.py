"""The dashboard served and opened in Chromium: a Streamlit server on a free port, its health, its pages.

It imports nothing from the other benchmarks, so docs/take_screenshots.py (run as a module from the
repository root) and the browser tests can import it as ``benchmarks.browser``; the benchmarks
import it as ``browser``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np

APP_FOLDER = Path(__file__).resolve().parent.parent  # the repository root, where app.py is
CHROMIUM = os.environ.get("DOTMAP_CHROMIUM", "/usr/bin/chromium")
PAGE_TIMEOUT_MS = 300_000  # a first run on a large set can take minutes


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str, timeout: float = 1.0) -> bool:
    """Whether the Streamlit server at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=timeout) as response:
            return response.read().strip() == b"ok"
    except OSError:
        return False


def start_server(env: dict, cwd: Path = APP_FOLDER) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` in ``cwd`` on a free port of 127.0.0.1: (the process, its URL)."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}"


FOLDER_BOX = "Image folder on this computer"  # the start of the Overview's folder box label


def folder_box(page):
    """The Overview's folder box (by role: its help button carries the same label)."""
    return page.get_by_role("textbox", name=FOLDER_BOX)


def settle(page) -> None:
    page.wait_for_selector("[data-test-script-state='notRunning']", timeout=PAGE_TIMEOUT_MS)


def open_page(page, url: str) -> None:
    """Go to a page and wait for its first run to end (before it starts, the state also says notRunning)."""
    page.goto(url)
    page.locator("h1").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    settle(page)


def busiest_point(page, box: dict) -> tuple[float, float]:
    """The page position of the map's drawn point with the most others within 40 px, near the middle of
    its stage (``box``, the stage's bounding box): where to zoom in to reach the images, not into a gap."""
    positions = "el => Array.from(el.dotmap.data.x, (_, i) => el.dotmap.screenOf(i))"
    points = np.array(page.locator(".dm-map[data-ready='yes']").evaluate(positions))
    middle = np.all(np.abs(points - [box["width"] / 2, box["height"] / 2]) < [box["width"] / 4, box["height"] / 4], 1)
    near = points[middle] if middle.any() else points
    candidates = near[:: max(1, len(near) // 500)]
    counts = [(np.abs(points - c).max(axis=1) < 40).sum() for c in candidates]
    x, y = candidates[int(np.argmax(counts))]
    return box["x"] + float(x), box["y"] + float(y)
