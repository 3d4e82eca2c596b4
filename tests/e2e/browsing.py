"""What every browser test does with a page: wait for the script, look for exceptions, take screenshots,
find the map and drag a selection box on it."""

import re

FULL_PAGE_MAX_PX = 6000


def settle(page) -> None:
    """Wait until the script has run and nothing is stale on screen."""
    page.wait_for_selector("[data-test-script-state='notRunning']")
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')")


def goto(page, server: str, path: str) -> None:
    page.goto(f"{server}/{path}")
    page.locator("h1").first.wait_for()  # the script has started (before it, the state is also "notRunning")
    settle(page)


def assert_no_exception(page) -> None:
    shown = page.locator("[data-testid='stException']")
    assert shown.count() == 0, shown.first.inner_text()


def shoot(page, name: str) -> None:
    """A screenshot of the whole page: the window grows to the height of Streamlit's scrolling area."""
    folder = page.screenshots_folder
    folder.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": min(max(height + 40, 800), FULL_PAGE_MAX_PX)})
    page.wait_for_timeout(800)  # plotly and the map redraw for the new size
    page.screenshot(path=str(folder / f"{name}.png"))
    page.set_viewport_size({"width": width, "height": 1000})


MAP = ".dm-map[data-ready='yes']"  # the map component (pages/ui/web/map.js) once it has drawn its points


def map_title(page) -> str:
    page.wait_for_selector(MAP)
    return page.locator(f"{MAP} .dm-title").first.text_content()


def map_stage(page):
    """The first map's drawing area, scrolled into view; returns its bounding box."""
    page.wait_for_selector(MAP)
    stage = page.locator(f"{MAP} .dm-stage").first
    stage.scroll_into_view_if_needed()
    return stage.bounding_box()


def selected_count(page) -> int:
    """The count of images the page says are selected (waiting for it)."""
    selected = page.get_by_text(re.compile(r"^[\d,]+ images selected"))
    selected.wait_for()
    return int(re.match(r"([\d,]+)", selected.inner_text()).group(1).replace(",", ""))


def drag_box(page, to: float) -> int:
    """Drag a box on the first map (its Box mode) from its top-left corner to ``to`` (a share of its
    width and height); returns the count of images the page then says are selected."""
    page.locator(f"{MAP} .dm-mode[data-mode='box']").first.click()
    box = map_stage(page)
    page.mouse.move(box["x"] + box["width"] * 0.02, box["y"] + box["height"] * 0.02)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * to / 2, box["y"] + box["height"] * to / 2, steps=12)
    page.mouse.move(box["x"] + box["width"] * to, box["y"] + box["height"] * to, steps=12)
    page.mouse.up()
    return selected_count(page)
