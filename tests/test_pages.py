"""AppTest of every page: it runs, its widgets act, bad input gets a message, downloads hold the data.

The pages read a small demo set prepared once per session (``prepared_demo``, which runs UMAP).
Selections on the plotly map cannot be simulated here: the browser tests (tests/e2e) cover them,
and the pure selection -> rows function is tested in test_ui_helpers.py.
"""

import csv
import io
import os
import re
import signal
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.demo import make_demo
from core.engine import jobs
from core.engine.cache import default_cache_dir
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError
from tests.apptest import ROOT, TIMEOUT, assert_clean, open_page, settle, texts

pytestmark = pytest.mark.slow

PAGES = {
    "menu.py": "Dotmap",
    "pages/1_Map.py": "Map of the images",
    "pages/2_Choose_k.py": "Which k?",
    "pages/3_Clusters.py": "The clusters",
    "pages/4_Curate.py": "Curate your groups",
    "pages/5_Classify.py": "Classify new images",
    "pages/6_Export.py": "Export the clusters or your groups",
}


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def cards(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "<b>Cluster " in m.value and "images &#40;" in m.value]


# ---- every page ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES)
def test_every_page_runs_cleanly(demo: Path, path: str) -> None:
    at = open_page(path)
    assert_clean(at)
    assert at.title[0].value == PAGES[path]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_runs_twice_from_the_caches(demo: Path, path: str) -> None:
    at = open_page(path)
    at.run()
    assert_clean(at)
    assert at.title[0].value == PAGES[path]


# ---- overview --------------------------------------------------------------------------------
def test_overview_counts_the_images(demo: Path) -> None:
    at = open_page()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images used"] == "240"
    assert metrics["Files skipped"] == "4"


def test_overview_lists_each_skipped_file_with_its_reason(demo: Path) -> None:
    at = open_page()
    assert "4 file(s) are not usable images" in texts(at, "warning")
    table = at.dataframe[0].value
    assert sorted(table["file"]) == ["empty.png", "evil\\x1b[31m\\x0aname.txt", "notes.txt", "truncated.png"]
    assert all(reason.strip() for reason in table["reason"])


def test_overview_shows_preview_sample_and_variance(demo: Path) -> None:
    at = open_page()
    assert "What each kind of features sees of one image" in texts(at, "markdown")
    assert len(at.image) >= 5  # the image, three feature views, the sample grid
    assert "components keep" in texts(at, "caption")


def test_overview_missing_folder_is_an_error_on_every_page(demo: Path, tmp_path: Path) -> None:
    at = open_page()
    at.text_input(key="form_folder").set_value(str(tmp_path / "nowhere"))
    at.button(key="apply").click().run()
    assert not at.exception
    assert "does not exist" in texts(at, "error")
    at.switch_page("pages/1_Map.py").run()
    assert not at.exception
    assert "does not exist" in texts(at, "error")


def test_overview_empty_folder_is_an_error(demo: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    at = open_page()
    at.text_input(key="form_folder").set_value(str(tmp_path / "empty"))
    at.button(key="apply").click().run()
    assert not at.exception
    assert "holds no files" in texts(at, "error")


def test_overview_too_few_images_for_the_k_range(demo: Path, tmp_path: Path) -> None:
    few = make_demo(tmp_path / "few", n=6, seed=1)
    at = open_page()
    at.text_input(key="form_folder").set_value(str(few))
    at.button(key="apply").click().run()
    assert "Preparing the data set in the background" in texts(at, "markdown")
    settle(at)
    assert not at.exception
    assert "k_max=20 is more than the data allows" in texts(at, "error")
    assert "Change the folder or the settings" in texts(at, "info")


def test_overview_applies_new_settings(demo: Path) -> None:
    at = open_page()
    at.radio(key="form_features").set_value("shape")
    at.slider(key="form_k").set_value((2, 6))
    at.selectbox(key="form_space").set_value("pca")
    at.button(key="apply").click().run()
    settle(at)
    assert_clean(at)
    assert at.session_state["settings"]["features"] == "shape"
    assert at.session_state["settings"]["k_max"] == 6
    assert "k 2..6" in texts(at, "caption")


def test_overview_without_torch_says_what_to_install_for_learned_features(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a machine without the extra
    at = open_page()
    before = dict(at.session_state["settings"])
    at.radio(key="form_features").set_value("learned")
    at.button(key="apply").click().run()
    assert "python3 -m pip install -r requirements-learned.txt" in texts(at, "error")
    assert at.session_state["settings"] == before  # nothing was started
    assert not jobs.active_jobs(default_cache_dir())


def test_overview_prepares_learned_features(demo: Path) -> None:
    """The encoder trains in the background job (the demo's 240 images: 60 small epochs), then the page shows
    the clustering of its features."""
    at = open_page()
    at.radio(key="form_features").set_value("learned")
    at.slider(key="form_k").set_value((2, 6))
    at.selectbox(key="form_space").set_value("pca")
    at.button(key="apply").click().run()
    settle(at)
    assert_clean(at)
    assert at.session_state["settings"]["features"] == "learned"
    assert "features `learned`" in texts(at, "markdown") + texts(at, "caption")
    assert "Recommended k" in [m.label for m in at.metric]


def test_overview_prepares_on_a_dask_scheduler_it_cannot_reach_and_says_so(demo: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{free.getsockname()[1]}"
    few = make_demo(tmp_path / "few", n=30, seed=2)
    at = open_page()
    at.text_input(key="form_folder").set_value(str(few))
    at.selectbox(key="form_backend").set_value("dask")
    at.text_input(key="form_scheduler").set_value(address)
    at.button(key="apply").click().run()
    settle(at)
    assert not at.exception
    assert at.session_state["where"] == {"backend": "dask", "scheduler": address, "workers": None}
    assert f"Could not reach the Dask scheduler at {address}" in texts(at, "error")


def test_overview_lists_a_large_folder_again_only_when_it_changes(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pages.ui import data

    monkeypatch.setattr(data, "RESCAN_ABOVE", 10)  # as if these 30 files were more than 100,000
    few = make_demo(tmp_path / "few", n=30, seed=3)
    at = open_page()
    at.text_input(key="form_folder").set_value(str(few))
    at.button(key="apply").click().run()
    assert "30 files" in texts(at, "markdown")
    before = data._last_scan(str(few))["inventory"]
    (few / "dots_00.png").write_bytes((few / "dots_01.png").read_bytes())  # in place: the folder is the same
    at.run()
    assert data._last_scan(str(few))["inventory"] is before
    (few / "new.png").write_bytes((few / "dots_01.png").read_bytes())  # a new file: the folder changed
    at.run()
    assert "31 files" in texts(at, "markdown")
    after_new = data._last_scan(str(few))["inventory"]
    assert after_new is not before
    at.button(key="rescan").click().run()
    assert not at.exception
    assert data._last_scan(str(few))["inventory"] is not after_new


@pytest.mark.slow
def test_overview_prepares_on_a_local_dask_cluster(demo: Path, tmp_path: Path) -> None:
    few = make_demo(tmp_path / "few", n=60, seed=2)
    at = open_page()
    at.text_input(key="form_folder").set_value(str(few))
    at.slider(key="form_k").set_value((2, 5))
    at.selectbox(key="form_backend").set_value("dask")
    at.button(key="apply").click().run()
    settle(at)
    assert_clean(at)
    assert "60 files" in texts(at, "markdown")
    settings = Settings(**at.session_state["settings"])
    assert Pipeline(few, settings).missing() == []  # the cluster's results, in the cache the pages read
    log = jobs.job_folder(default_cache_dir(), jobs.job_id(str(few), settings)) / jobs.LOG_FILE
    assert "preparing on Dask (a local cluster" in log.read_text()


# ---- map -------------------------------------------------------------------------------------
def test_map_starts_at_the_recommended_k(demo: Path, recommended_k: int) -> None:
    at = open_page("pages/1_Map.py")
    assert at.slider(key="k_map").value == recommended_k


def test_map_slider_sets_k_for_every_page(demo: Path) -> None:
    at = open_page("pages/1_Map.py")
    at.slider(key="k_map").set_value(5).run()
    assert_clean(at)
    assert at.session_state["k"] == 5
    at.switch_page("pages/3_Clusters.py").run()
    assert at.slider(key="k_clusters").value == 5
    assert len(cards(at)) == 5


# ---- choose k --------------------------------------------------------------------------------
def test_choose_k_states_the_recommendation_and_its_rule(demo: Path, recommended_k: int) -> None:
    at = open_page("pages/2_Choose_k.py")
    message = texts(at, "success")
    assert f"Recommended: k = {recommended_k}" in message
    assert "stability" in message


def test_choose_k_table_has_truth_scores_from_labels(demo: Path) -> None:
    at = open_page("pages/2_Choose_k.py")
    table = at.dataframe[0].value
    assert {"silhouette", "davies_bouldin", "calinski_harabasz", "inertia", "stability", "ARI", "NMI"} <= set(
        table.columns
    )
    assert list(table.index) == list(range(2, 21))


def test_choose_k_same_k_twice_asks_for_two(demo: Path) -> None:
    at = open_page("pages/2_Choose_k.py")
    at.selectbox(key="k2").set_value(at.selectbox(key="k1").value).run()
    assert not at.exception
    assert "Pick two different k" in texts(at, "info")


def test_choose_k_shows_how_clusters_split(demo: Path) -> None:
    at = open_page("pages/2_Choose_k.py")
    at.selectbox(key="k1").set_value(2)
    at.selectbox(key="k2").set_value(8).run()
    assert_clean(at)
    assert "splits into" in texts(at, "markdown")


# ---- clusters --------------------------------------------------------------------------------
def test_clusters_one_card_per_cluster(demo: Path, recommended_k: int) -> None:
    at = open_page("pages/3_Clusters.py")
    assert_clean(at)
    assert len(cards(at)) == recommended_k
    assert len(at.image) >= 3 * recommended_k  # typical shape, typical members, borderline


def test_clusters_all_members_in_pages(demo: Path) -> None:
    at = open_page("pages/3_Clusters.py")
    at.slider(key="k_clusters").set_value(2).run()
    before = len(at.image)
    at.toggle(key="all_2_0").set_value(True).run()
    assert_clean(at)
    assert len(at.image) == before + 1  # one montage for the page, not one widget per image
    pages = at.number_input(key="page_2_0")
    pages.set_value(2).run()
    assert_clean(at)


# ---- classify --------------------------------------------------------------------------------
def test_classify_asks_for_images_first(demo: Path) -> None:
    at = open_page("pages/5_Classify.py")
    assert "Drop one or more images" in texts(at, "info")


def test_classify_a_good_image(demo: Path) -> None:
    at = open_page("pages/5_Classify.py")
    at.file_uploader(key="uploads").set_value(("new.png", (demo / "dots_001.png").read_bytes(), "image/png")).run()
    assert_clean(at)
    assert "<b>Cluster " in texts(at, "markdown")
    assert "confidence" in texts(at, "markdown")


def test_classify_flags_an_image_unlike_every_cluster(demo: Path) -> None:
    noise = np.where(np.random.default_rng(0).random((200, 200)) < 0.3, 0, 255).astype(np.uint8)
    at = open_page("pages/5_Classify.py")
    at.file_uploader(key="uploads").set_value(("noise.png", png(noise), "image/png")).run()
    assert_clean(at)
    assert "Unlike every cluster" in texts(at, "warning")
    at.file_uploader(key="uploads").set_value(("new.png", (demo / "dots_001.png").read_bytes(), "image/png")).run()
    assert "Unlike every cluster" not in texts(at, "warning")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("junk.png", b"this is text, not a picture", "not a PNG, JPEG"),
        ("empty.png", b"", "empty"),
    ],
)
def test_classify_bad_upload_is_named_and_the_rest_classified(demo: Path, name, content, reason) -> None:
    good = (demo / "dots_002.png").read_bytes()
    at = open_page("pages/5_Classify.py")
    at.file_uploader(key="uploads").set_value([(name, content, "image/png"), ("good.png", good, "image/png")]).run()
    assert not at.exception
    errors = texts(at, "error")
    assert name in errors and reason in errors
    assert "<b>Cluster " in texts(at, "markdown")


def test_classify_truncated_upload_is_named(demo: Path) -> None:
    good = (demo / "dots_003.png").read_bytes()
    at = open_page("pages/5_Classify.py")
    at.file_uploader(key="uploads").set_value(("cut.png", good[: len(good) // 2], "image/png")).run()
    assert not at.exception
    assert "cut.png" in texts(at, "error")
    assert "truncated" in texts(at, "error").lower() or "damaged" in texts(at, "error").lower()


def test_classify_too_large_upload_is_refused(demo: Path) -> None:
    huge = io.BytesIO()
    Image.new("1", (7000, 6000), 1).save(huge, format="PNG")  # 42 million pixels, a few kB on disk
    at = open_page("pages/5_Classify.py")
    at.file_uploader(key="uploads").set_value(("huge.png", huge.getvalue(), "image/png")).run()
    assert not at.exception
    assert "huge.png" in texts(at, "error")
    assert "pixels" in texts(at, "error")


def test_classify_several_give_a_table_and_a_csv(demo: Path) -> None:
    uploads = [(f"n{i}.png", (demo / f"dots_{i:03d}.png").read_bytes(), "image/png") for i in range(3)]
    at = open_page("pages/5_Classify.py")
    at.file_uploader(key="uploads").set_value(uploads).run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["file"]) == ["n0.png", "n1.png", "n2.png"]
    assert [b.label for b in at.download_button] == ["Download the table (CSV)"]


# ---- export ----------------------------------------------------------------------------------
def test_export_csv_download_holds_every_image(demo: Path, downloads: dict, recommended_k: int) -> None:
    at = open_page("pages/6_Export.py")
    assert_clean(at)
    rows = list(csv.reader(io.StringIO(downloads[f"dotmap-k{recommended_k}.csv"].decode())))
    assert rows[0] == ["path", "cluster", "distance", "silhouette"]
    assert len(rows) == 1 + 240
    assert {int(r[1]) for r in rows[1:]} == set(range(recommended_k))


def test_export_csv_follows_the_chosen_k(demo: Path, downloads: dict) -> None:
    at = open_page("pages/6_Export.py")
    at.selectbox(key="k_export").set_value(3).run()
    rows = list(csv.reader(io.StringIO(downloads["dotmap-k3.csv"].decode())))
    assert {int(r[1]) for r in rows[1:]} == {0, 1, 2}


def test_export_writes_a_new_folder(demo: Path, tmp_path: Path, recommended_k: int) -> None:
    target = tmp_path / "out"
    at = open_page("pages/6_Export.py")
    at.text_input(key="export_target").set_value(str(target))
    at.button(key="write").click().run()
    assert_clean(at)
    assert "Wrote 240 images" in texts(at, "success")
    assert (target / "clusters.csv").is_file()
    assert len([p for p in target.iterdir() if p.is_dir()]) == recommended_k
    assert len(list(target.rglob("*.png"))) == 240


def test_export_never_overwrites_a_folder(demo: Path, tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "keep.txt").write_text("my work")
    at = open_page("pages/6_Export.py")
    at.text_input(key="export_target").set_value(str(target))
    at.button(key="write").click().run()
    assert not at.exception
    assert "already exists" in texts(at, "error")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "my work"


def test_export_refuses_a_folder_inside_the_image_folder(demo: Path) -> None:
    before = sorted(p.name for p in demo.iterdir())
    at = open_page("pages/6_Export.py")
    at.text_input(key="export_target").set_value(str(demo / "by-cluster"))
    at.button(key="write").click().run()
    assert not at.exception
    assert "is inside the image folder" in texts(at, "error")
    assert sorted(p.name for p in demo.iterdir()) == before


def test_a_cache_that_cannot_be_written_is_said_in_words(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(data_dir, settings, root, where):
        raise PermissionError(13, "Permission denied", str(root / "jobs"))

    monkeypatch.setattr("core.engine.jobs._start_job", read_only)
    at = open_page()
    at.session_state["settings"] = {**asdict(Settings()), "k_max": 7}  # not prepared: a job must start
    at.run()
    assert not at.exception
    assert "Cannot start preparing: the cache folder" in texts(at, "error")
    assert "cannot be written (Permission denied)" in texts(at, "error")


@pytest.mark.parametrize("target", ["", "relative/folder"])
def test_export_needs_a_full_path(demo: Path, target: str) -> None:
    at = open_page("pages/6_Export.py")
    at.text_input(key="export_target").set_value(target)
    at.button(key="write").click().run()
    assert not at.exception
    assert ("Type the path" if not target else "not a full path") in texts(at, "error")


def test_export_zip_is_made_on_request_and_holds_every_image(demo: Path, downloads: dict, recommended_k: int) -> None:
    at = open_page("pages/6_Export.py")
    assert f"dotmap-k{recommended_k}.zip" not in downloads  # nothing is packed before it is asked for
    at.button(key="export_zip_make").click().run()
    assert_clean(at)
    with zipfile.ZipFile(io.BytesIO(downloads[f"dotmap-k{recommended_k}.zip"])) as archive:
        names = archive.namelist()
    assert "clusters.csv" in names
    assert len([n for n in names if n.endswith(".png")]) == 240


def test_export_zip_problem_is_a_message(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def vanished(*args, **kwargs):
        raise DotmapError("Cannot add dots_007.png to the zip: No such file or directory.")

    monkeypatch.setattr("pages.ui.page.zip_of_files", vanished)
    at = open_page("pages/6_Export.py")
    at.button(key="export_zip_make").click().run()
    assert not at.exception
    assert "dots_007.png" in texts(at, "error")


# ---- when UMAP is missing or fails ----------------------------------------------------------------
UNMAPPED = Settings(k_max=8)
SMALL_PCA = Settings(cluster_space="pca", k_max=6)


def prepared_without_map(folder: Path, settings: Settings) -> Pipeline:
    """A set prepared with core up to its clusters and typical shapes, but without its 2-D map."""
    pipeline = Pipeline(folder, settings)
    pipeline.prepare(with_map=False)
    pipeline.cluster_means()
    return pipeline


def open_with(folder: Path, settings: Settings, path: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """A page of the app on this folder with these settings (as if applied on the Overview)."""
    monkeypatch.setenv("DOTMAP_DATA", str(folder))
    at = AppTest.from_file(str(ROOT / "menu.py"), default_timeout=TIMEOUT)
    at.session_state["settings"] = asdict(settings)
    return at.switch_page(path).run()


@pytest.fixture
def unmapped(tmp_path: Path) -> Path:
    folder = make_demo(tmp_path / "unmapped", n=80, seed=9)
    prepared_without_map(folder, UNMAPPED)
    return folder


def fail_umap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A broken umap-learn install, for the job processes too: a `umap` package that cannot be imported."""
    fake = tmp_path / "broken-site" / "umap"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("umap-learn is broken here (test)")\n')
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))


def test_map_page_shows_the_pca_layout_while_the_map_is_made(unmapped: Path, monkeypatch) -> None:
    at = open_with(unmapped, UNMAPPED, "pages/1_Map.py", monkeypatch)
    assert_clean(at)
    assert "quick PCA layout" in texts(at, "info")
    assert at.radio(key="layout").options == ["PCA (first two components)"]
    assert "Making the 2-D map" in texts(at, "markdown")
    settle(at)
    assert_clean(at)
    assert Pipeline(unmapped, UNMAPPED).is_cached("map")
    assert at.radio(key="layout").options == ["UMAP", "PCA (first two components)"]


def test_map_page_without_umap_says_so_and_shows_the_pca_layout(unmapped: Path, monkeypatch, tmp_path) -> None:
    fail_umap(monkeypatch, tmp_path)
    at = settle(open_with(unmapped, UNMAPPED, "pages/1_Map.py", monkeypatch))
    assert not at.exception
    assert "The UMAP map could not be made" in texts(at, "warning")
    assert "umap-learn is broken here (test)" in texts(at, "error")
    assert at.radio(key="layout").options == ["PCA (first two components)"]
    assert at.slider(key="k_map").value >= 2


def test_overview_without_umap_explains_the_way_out(demo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    fail_umap(monkeypatch, tmp_path)
    at = open_page()
    at.number_input(key="form_seed").set_value(1)  # another seed: a new UMAP cluster space must run
    at.button(key="apply").click().run()
    settle(at)
    assert not at.exception
    assert "UMAP could not be imported" in texts(at, "error")
    assert "Cluster space: PCA" in texts(at, "info")
    assert at.button(key="job_restart").label == "Start again"


def test_choose_k_with_a_malformed_labels_file_warns_and_goes_on(tmp_path: Path, monkeypatch) -> None:
    folder = make_demo(tmp_path / "labelled", n=60, seed=4)
    (folder / "labels.csv").write_text("name;family\nx;y\n")
    prepared_without_map(folder, SMALL_PCA)
    at = open_with(folder, SMALL_PCA, "pages/2_Choose_k.py", monkeypatch)
    assert_clean(at)
    assert "The labels are not used" in texts(at, "warning")
    assert "ARI" not in at.dataframe[0].value.columns


def test_first_start_makes_the_built_in_demo_and_prepares_it(tmp_path: Path, monkeypatch) -> None:
    """A newcomer's first start: an empty cache, the built-in demo exactly as shipped (2,000 images)."""
    monkeypatch.setenv("DOTMAP_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.setenv("DOTMAP_DATA", "")
    at = open_page()
    assert not at.exception
    assert "Preparing the data set in the background" in texts(at, "markdown")
    deadline = time.monotonic() + 60
    while not any(status.stages for status in jobs.active_jobs(default_cache_dir())):
        assert time.monotonic() < deadline, "the job never reported its stages"
        time.sleep(0.1)
    at.run()  # as the page's polling does
    assert "Make the built-in demo set (2,000 images)" in texts(at, "markdown")
    settle(at)
    assert_clean(at)
    assert "the built-in demo set" in texts(at, "markdown")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images used"] == "2,000"
    assert int(metrics["Recommended k"]) >= 2
    assert (tmp_path / "fresh-cache" / "demo-2000-seed0" / "labels.csv").is_file()


def test_two_sessions_share_one_job_and_both_show_its_result(tmp_path: Path, monkeypatch) -> None:
    folder = make_demo(tmp_path / "shared", n=150, seed=8)
    first = open_with(folder, SMALL_PCA, "menu.py", monkeypatch)
    pid = jobs.read_status(default_cache_dir(), jobs.job_id(folder, SMALL_PCA)).pid
    second = open_with(folder, SMALL_PCA, "pages/2_Choose_k.py", monkeypatch)
    assert jobs.read_status(default_cache_dir(), jobs.job_id(folder, SMALL_PCA)).pid == pid  # joined, not started
    for at in (first, second):
        assert not at.exception
        assert "Preparing the data set in the background" in texts(at, "markdown")
    settle(first)
    settle(second)
    assert_clean(first)
    assert_clean(second)
    assert {m.label: m.value for m in first.metric}["Images used"] == "150"
    assert "Recommended: k = " in texts(second, "success")


def test_cancel_stops_the_job_and_resume_completes_it(tmp_path: Path, monkeypatch) -> None:
    folder = make_demo(tmp_path / "cancelled", n=150, seed=9)
    at = open_with(folder, SMALL_PCA, "menu.py", monkeypatch)
    job = jobs.job_id(folder, SMALL_PCA)
    at.button(key="job_cancel").click().run()
    assert not at.exception
    assert jobs.read_status(default_cache_dir(), job).state == "cancelled"
    assert "Preparing was cancelled" in texts(at, "info")
    at.button(key="job_restart").click().run()
    assert jobs.read_status(default_cache_dir(), job).active
    settle(at)
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Images used"] == "150"


def test_a_broken_cache_entry_is_recomputed_and_said(tmp_path: Path, monkeypatch) -> None:
    folder = make_demo(tmp_path / "broken", n=60, seed=6)
    pipeline = prepared_without_map(folder, SMALL_PCA)
    entry = pipeline.cache.path("sweep", pipeline.key("sweep"))
    labels = next(entry.glob("labels*.npy"))
    content = bytearray(labels.read_bytes())
    content[-1] ^= 0xFF  # same size, other bytes: only the checksum can tell
    labels.write_bytes(bytes(content))
    at = open_with(folder, SMALL_PCA, "pages/2_Choose_k.py", monkeypatch)
    assert_clean(at)
    assert "was broken" in texts(at, "info")


def test_map_switches_to_the_pca_layout(demo: Path) -> None:
    at = open_page("pages/1_Map.py")
    at.radio(key="layout").set_value("pca").run()
    assert_clean(at)
    assert at.radio(key="layout").value == "pca"


def test_a_killed_job_is_said_in_words_and_start_again_completes(tmp_path: Path, monkeypatch) -> None:
    folder = make_demo(tmp_path / "killed", n=150, seed=10)
    at = open_with(folder, SMALL_PCA, "menu.py", monkeypatch)
    job = jobs.job_id(folder, SMALL_PCA)
    os.kill(jobs.read_status(default_cache_dir(), job).pid, signal.SIGKILL)  # as the out-of-memory killer would
    deadline = time.monotonic() + 5
    while jobs.read_status(default_cache_dir(), job).active:
        assert time.monotonic() < deadline, "a killed job was still reported as running after 5 s"
        time.sleep(0.1)
    at.run()
    assert not at.exception
    assert "killed by SIGKILL" in texts(at, "error")
    at.button(key="job_restart").click().run()
    settle(at)
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Images used"] == "150"


def test_map_can_show_the_groups_found_without_a_k(demo: Path) -> None:
    at = open_page("pages/1_Map.py")
    assert_clean(at)
    assert at.radio(key="colour_by").value == "clusters"
    at.radio(key="colour_by").set_value("auto").run()
    assert_clean(at)
    groups, found = Pipeline(demo, Settings()).auto_groups()
    strip = texts(at, "markdown")
    assert f"{found['groups'] - 1}: " in strip  # a chip per group
    assert ("none: " in strip) == bool(np.any(groups < 0))


def test_report_tells_the_groups_found_without_a_k(prepared_demo, capsys: pytest.CaptureFixture) -> None:
    from core.cli.commands import main

    folder, cache = prepared_demo
    assert main(["report", str(folder), "--cache", str(cache), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"groups found without a k \(HDBSCAN\): \d+, with [\d.]+% of the images in no group \(ARI", out)
