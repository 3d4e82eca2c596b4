"""A real server and a real browser: `streamlit run app.py` on a free port, driven by Playwright + Chromium.

Chromium is Debian's (`apt-get install -y chromium`, which `.ci/run` does); Playwright never downloads
one. A missing browser fails these tests: set DOTMAP_SKIP_BROWSER=1 to skip them on purpose.
Screenshots of every page go to SCREENSHOTS (printed at the end of the run) to be looked at.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.browser import free_port, healthy

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("DOTMAP_SCREENSHOTS", ROOT / "tests" / "e2e" / "screenshots"))
CHROMIUM = os.environ.get("DOTMAP_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-extensions"]
SERVER_START_S = 90
SCRIPT_RUN_MS = 180_000  # a page that prepares something may take a while on a loaded machine


@contextlib.contextmanager
def streamlit_server(env: dict[str, str], log: Path):
    """`streamlit run app.py` from the repository on a free local port with this environment; yields its URL.

    It runs in a process group of its own, and the whole group is ended afterwards: whatever the
    server started (preparation jobs and their workers) ends with it.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not healthy(url, timeout=2):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start on {url}; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def server(prepared_demo, tmp_path_factory: pytest.TempPathFactory):
    """The app reading the prepared demo set."""
    folder, cache = prepared_demo
    curations = tmp_path_factory.mktemp("no-curations")  # stays empty: these pages show clusters, not groups
    env = dict(os.environ, DOTMAP_DATA=str(folder), DOTMAP_CACHE=str(cache), DOTMAP_CURATIONS=str(curations))
    with streamlit_server(env, tmp_path_factory.mktemp("server") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if os.environ.get("DOTMAP_SKIP_BROWSER") == "1":
        pytest.skip("DOTMAP_SKIP_BROWSER=1: browser tests skipped on purpose")
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.fail(f"No Chromium at {CHROMIUM}: install it with 'apt-get install -y chromium' (as .ci/run does).")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -r requirements.txt")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield launched
        launched.close()


@contextlib.contextmanager
def new_tab(browser):
    """A fresh browser session (its own Streamlit session) with a desktop-sized window."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(SCRIPT_RUN_MS)
    tab.screenshots_folder = SCREENSHOTS
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def page(browser, server):
    with new_tab(browser) as tab:
        yield tab


def pytest_terminal_summary(terminalreporter) -> None:
    if SCREENSHOTS.exists() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")
