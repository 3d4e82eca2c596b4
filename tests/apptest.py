"""What the AppTest files share: opening a page, reading its texts, waiting for its jobs, clean runs."""

import html
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.engine import jobs
from core.engine.cache import default_cache_dir
from pages.ui.render import WORD_JOINER

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180  # a run that prepares a new setting computes stages (UMAP included)


MENU = "menu.py"  # the dashboard's script (app.py is the server in front of it)


def open_page(path: str = MENU) -> AppTest:
    at = AppTest.from_file(str(ROOT / MENU), default_timeout=TIMEOUT)
    if path != MENU:
        at.switch_page(path)
    return at.run()


def texts(at: AppTest, kind: str) -> str:
    """The texts of every element of a kind as a reader sees them: AppTest gives their Markdown source, in
    which a text from a file has its signs as character references (pages.ui.render.text)."""
    return "\n".join(html.unescape(str(e.value)).replace(WORD_JOINER, "") for e in getattr(at, kind))


def settle(at: AppTest, timeout: float = TIMEOUT) -> AppTest:
    """Let the preparation jobs of the default cache end, then run the page again, as its polling would.

    A page never prepares in its script thread: it starts (or joins) a background job and shows its
    progress. AppTest cannot run the polling fragment's timer, so the test waits for the job itself.
    """
    deadline = time.monotonic() + timeout
    while jobs.active_jobs(default_cache_dir()):
        assert time.monotonic() < deadline, f"a preparation job ran for more than {timeout} s"
        time.sleep(0.2)
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
