"""AppTest of the curation in the dashboard: start, name, merge, split, move, outliers, undo, restart, import,
a broken file, a changed folder; and the named groups on the Export and Classify pages.

The page reads the small demo set prepared once per session (``prepared_demo``). Each test has an
empty curations folder of its own (conftest). Selections on the map and in the members' table
cannot be simulated by AppTest: those moves are covered in the browser (tests/e2e/test_curate.py);
here images are moved by name, through the same move bar.
"""

import csv
import io
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.curation import file as curation_file
from core.curation.model import OUTLIER
from tests.apptest import assert_clean, open_page, texts

pytestmark = pytest.mark.slow

PAGE = "pages/4_Curate.py"


def started(recommended_k: int) -> AppTest:
    at = open_page(PAGE)
    assert_clean(at)
    assert "A curation is your own grouping" in texts(at, "info")
    at.button(key="k_curate_start_start").click().run()
    assert_clean(at)
    assert f"Started from the {recommended_k} clusters" in texts(at, "success")
    return at


def the_file() -> Path:
    (path,) = [
        p
        for p in curation_file.curations_dir().glob("*.json")
        if ".last-good" not in p.name and ".unreadable-" not in p.name
    ]
    return path


def saved() -> dict:
    return json.loads(the_file().read_text())


def group_names(at: AppTest) -> list[str]:
    return [g["name"] for g in saved()["groups"]]


def do(at: AppTest, group: int, part: str) -> AppTest:
    return at.segmented_control(key=f"do_{group}").set_value(part).run()


def move_by_name(at: AppTest, paths: list[str], target) -> AppTest:
    at.text_area(key="by_name").set_value("\n".join(paths)).run()
    at.selectbox(key="name_move_to").set_value(target).run()
    return at.button(key="name_move_go").click().run()


def test_start_from_the_recommended_k_and_restart_keeps_it(demo: Path, recommended_k: int) -> None:
    started(recommended_k)
    doc = saved()
    assert doc["format"] == "dotmap-curation" and doc["started_from_k"] == recommended_k
    assert len(doc["groups"]) == recommended_k
    again = open_page(PAGE)  # a new session: a restart of the browser or the server
    assert_clean(again)
    assert f"{recommended_k} groups · 0 outliers · 0 unassigned" in texts(again, "caption")


def test_rename_then_undo(demo: Path, recommended_k: int) -> None:
    at = do(started(recommended_k), 0, "Rename")
    (name,) = [t for t in at.text_input if t.label == "Name"]
    name.set_value("rings").run()
    at.button(key="rename_0").click().run()
    assert_clean(at)
    assert "renamed 'cluster 0' to 'rings'" in texts(at, "success")
    assert group_names(at)[0] == "rings"
    at.button(key="undo").click().run()
    assert "Undone: renamed" in texts(at, "success")
    assert group_names(at)[0] == "cluster 0"


def test_a_name_taken_is_refused_in_words(demo: Path, recommended_k: int) -> None:
    at = do(started(recommended_k), 0, "Rename")
    (name,) = [t for t in at.text_input if t.label == "Name"]
    name.set_value("Cluster 1").run()
    at.button(key="rename_0").click().run()
    assert "already a group named 'cluster 1'" in texts(at, "error")
    assert group_names(at)[0] == "cluster 0"


def test_merge_two_groups_then_undo(demo: Path, recommended_k: int) -> None:
    at = started(recommended_k)
    (merge,) = [m for m in at.multiselect if m.label.startswith("Merge groups")]
    merge.set_value([1, 0]).run()
    at.button(key="merge_go").click().run()
    assert_clean(at)
    assert "merged 'cluster 0' into 'cluster 1'" in texts(at, "success")
    assert len(saved()["groups"]) == recommended_k - 1
    at.button(key="undo").click().run()
    assert len(saved()["groups"]) == recommended_k


def test_split_is_previewed_then_applied(demo: Path, recommended_k: int) -> None:
    at = do(started(recommended_k), 0, "Split")
    size = len(saved()["groups"][0]["images"])
    at.button(key="split_0").click().run()
    assert_clean(at)
    assert "Preview: cluster 0 in 2 parts" in texts(at, "markdown")
    assert len(saved()["groups"]) == recommended_k  # a preview changes nothing
    at.button(key="split_apply_0").click().run()
    assert_clean(at)
    doc = saved()
    assert [g["name"] for g in doc["groups"]][-1] == "cluster 0 · 2"
    assert len(doc["groups"][0]["images"]) + len(doc["groups"][-1]["images"]) == size


def test_move_images_to_another_group_and_to_the_outliers(demo: Path, recommended_k: int) -> None:
    at = started(recommended_k)
    first = saved()["groups"][0]["images"][:3]
    at = move_by_name(at, first, 1)
    assert_clean(at)
    assert "moved 3 images to 'cluster 1'" in texts(at, "success")
    assert set(first) <= set(saved()["groups"][1]["images"])
    at = move_by_name(at, [f"./{first[0]}", "not-there.png"], OUTLIER)
    assert "1 names are not images of this set: not-there.png" in texts(at, "warning")
    assert saved()["outliers"] == [first[0]]
    assert "1 outliers" in texts(at, "caption")


def test_a_new_group_from_listed_images(demo: Path, recommended_k: int) -> None:
    at = started(recommended_k)
    some = saved()["groups"][2]["images"][:2]
    at.text_area(key="by_name").set_value("\n".join(some)).run()
    at.selectbox(key="name_move_to").set_value("new").run()
    at.text_input(key="name_move_name").set_value("odd ones").run()
    at.button(key="name_move_go").click().run()
    assert_clean(at)
    doc = saved()
    assert doc["groups"][-1] == {"id": recommended_k, "name": "odd ones", "images": sorted(some)}


def test_import_a_curation_file(demo: Path, recommended_k: int) -> None:
    at = started(recommended_k)
    doc = saved()
    doc["groups"][0]["name"] = "imported name"
    at.file_uploader(key="curation_upload").set_value(("mine.json", json.dumps(doc).encode(), "application/json"))
    at.run()
    assert_clean(at)
    assert "Imported mine.json" in texts(at, "success")
    assert group_names(at)[0] == "imported name"
    assert curation_file.last_good(the_file()).exists()  # the curation it replaced


def test_a_broken_file_is_said_and_the_last_good_version_opens(demo: Path, recommended_k: int) -> None:
    at = do(started(recommended_k), 0, "Rename")
    (name,) = [t for t in at.text_input if t.label == "Name"]
    name.set_value("rings").run()
    at.button(key="rename_0").click().run()
    path = the_file()
    path.write_text(path.read_text()[:200])  # cut short, as by a full disk or a bad edit
    at = open_page(PAGE)
    assert "it ends early" in texts(at, "error") and "last good version is kept" in texts(at, "error")
    at.button(key="restore").click().run()
    assert_clean(at)
    assert "Opened the last good version" in texts(at, "success")
    assert group_names(at)[0] == "cluster 0"  # the version before the rename
    (aside,) = path.parent.glob("*.unreadable-*.json")
    assert len(aside.read_text()) == 200  # the broken file is kept, not deleted


def test_images_gone_from_the_folder_and_new_ones_are_told(demo: Path, recommended_k: int) -> None:
    started(recommended_k)
    path = the_file()
    doc = json.loads(path.read_text())
    gone = doc["groups"][0]["images"].pop(0)
    doc["groups"][0]["images"].append("was-here.png")
    path.write_text(json.dumps(doc))
    at = open_page(PAGE)
    assert_clean(at)
    assert "1 images of the curation are no longer in the folder: was-here.png" in texts(at, "info")
    assert "1 images of the folder were not in the curation; they are unassigned" in texts(at, "info")
    assert "1 unassigned" in texts(at, "caption")
    assert gone  # unassigned, never filed into a group silently


def test_export_by_group_name(demo: Path, recommended_k: int, tmp_path: Path) -> None:
    at = do(started(recommended_k), 0, "Rename")
    (name,) = [t for t in at.text_input if t.label == "Name"]
    name.set_value("rings/ovals").run()
    at.button(key="rename_0").click().run()
    at.switch_page("pages/6_Export.py").run()
    assert_clean(at)
    assert at.radio(key="export_what").value == "groups"
    (download,) = [d for d in at.get("download_button") if d.proto.label.startswith("Assignments")]
    at.text_input(key="export_target").set_value(str(tmp_path / "out"))
    at.button(key="write").click().run()
    assert_clean(at)
    assert "group folders and groups.csv" in texts(at, "success")
    folders = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "rings_ovals" in folders and "groups.csv" in folders
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "groups.csv").read_text())))
    assert rows[0] == ["path", "group"] and any(r[1] == "rings/ovals" for r in rows[1:])
    assert download.proto.label.endswith(f"{len(rows) - 1:,} rows)")


def test_classify_into_the_named_groups(demo: Path, recommended_k: int) -> None:
    at = do(started(recommended_k), 0, "Rename")
    (name,) = [t for t in at.text_input if t.label == "Name"]
    name.set_value("rings").run()
    at.button(key="rename_0").click().run()
    member = saved()["groups"][0]["images"][0]
    at.switch_page("pages/5_Classify.py").run()
    assert_clean(at)
    assert at.radio(key="classify_into").value == "groups"
    upload = (demo / member).read_bytes()
    at.file_uploader(key="uploads").set_value(("new.png", upload, "image/png")).run()
    assert_clean(at)
    assert "<b>rings</b> · confidence" in texts(at, "markdown")
    at.radio(key="classify_into").set_value("clusters").run()
    assert_clean(at)
    assert "<b>Cluster 0</b> · confidence" in texts(at, "markdown")


def test_a_curation_made_with_other_settings_can_be_copied_here(demo: Path, recommended_k: int) -> None:
    started(recommended_k)
    path = the_file()
    doc = json.loads(path.read_text())
    doc["groups"][0]["name"] = "from other settings"
    other = path.with_name(path.name.rsplit("-", 1)[0] + "-0123456789.json")  # same folder, other settings
    other.write_text(json.dumps(doc))
    path.unlink()
    at = open_page(PAGE)
    assert "1 curation(s) made with other settings" in texts(at, "markdown")
    at.button(key="copy_other_0").click().run()
    assert_clean(at)
    assert "Copied the curation made with other settings" in texts(at, "success")
    assert json.loads(path.read_text())["groups"][0]["name"] == "from other settings"
    assert other.exists()  # the other settings keep theirs


def test_a_group_name_is_shown_as_text_never_as_html(demo: Path, recommended_k: int) -> None:
    at = do(started(recommended_k), 0, "Rename")
    (name,) = [t for t in at.text_input if t.label == "Name"]
    name.set_value("<img src=x onerror=alert(1)>").run()
    at.button(key="rename_0").click().run()
    assert_clean(at)
    source = "\n".join(str(m.value) for m in at.markdown)  # what Streamlit reads as Markdown and HTML
    assert "<b>&#60;img src&#61;x onerror&#61;alert&#40;1&#41;&#62;</b>" in source and "<img" not in source
    assert "<b><img src=x onerror=alert(1)></b>" in texts(at, "markdown")  # what the reader sees


def test_an_unreadable_curation_leaves_export_and_classify_on_the_clusters(demo: Path, recommended_k: int) -> None:
    started(recommended_k)
    the_file().write_text("{ cut short")
    for path in ("pages/6_Export.py", "pages/5_Classify.py"):
        at = open_page(path)
        assert not at.exception
        assert "Your named groups cannot be used now" in texts(at, "warning")
        assert not [r for r in at.radio if r.key in ("export_what", "classify_into")]
