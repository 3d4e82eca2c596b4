"""AppTest of the pages on an array set (.npy): the folder box takes it, every page runs, Export offers the CSV."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.demo import make_demo
from tests.apptest import assert_clean, open_page, settle, texts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def array_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 demo images as one (n, h * w) uint8 array, with names beside it."""
    folder = make_demo(tmp_path_factory.mktemp("array-pages") / "images", n=60, seed=4)
    paths = sorted(p.name for p in folder.glob("*.png"))
    gray = np.stack([np.asarray(Image.open(folder / p).convert("L")) for p in paths])
    out = folder.parent / "dots.npy"
    np.save(out, gray.reshape(len(gray), -1))
    (folder.parent / "dots.names.txt").write_text("".join(f"{p}\n" for p in paths))
    return out


def test_an_array_set_is_prepared_shown_and_exported_by_rows(demo: Path, array_file: Path, downloads: dict) -> None:
    at = open_page()
    at.text_input(key="form_folder").set_value(str(array_file))
    at.slider(key="form_k").set_value((2, 5))
    at.button(key="apply").click().run()
    settle(at)
    assert_clean(at)
    assert "60 rows" in texts(at, "markdown")
    for page in ("pages/1_Map.py", "pages/3_Clusters.py", "pages/4_Curate.py", "pages/5_Classify.py"):
        at.switch_page(page).run()
        assert_clean(at)
    at.switch_page("pages/6_Export.py").run()
    assert_clean(at)
    (csv_file,) = [name for name in downloads if name.endswith(".csv")]
    lines = downloads[csv_file].decode().splitlines()
    assert lines[0] == "row,name,cluster,distance,silhouette" and len(lines) == 61
    assert lines[1].startswith("0,dots_00.png,")
    assert "Columns: row (in the array), name" in texts(at, "caption")
    assert "rows, not files" in texts(at, "caption")  # no zip of files, no folders to write
    assert not [b for b in at.button if b.key == "export_zip_make"]
    assert not [t for t in at.text_input if t.key == "export_target"]
