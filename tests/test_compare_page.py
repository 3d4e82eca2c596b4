"""AppTest of the Compare page: B chosen in its form, prepared by a background job, then compared with A.

The page reads the small demo set prepared once per session (``prepared_demo``, default settings, so A
is clustered in UMAP space). B is clustered in PCA space here, so no test waits for a UMAP.
Helpers are copied from test_pages.py.
"""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.engine.pipeline import Pipeline, Settings
from tests.apptest import assert_clean, open_page, settle, texts

pytestmark = pytest.mark.slow

PAGE = "pages/7_Compare.py"
PREPARED_B = Settings(cluster_space="pca")  # same features and components as A: B's 2-D map is A's


@pytest.fixture
def prepared_b(demo: Path) -> Pipeline:
    pipeline = Pipeline(demo, PREPARED_B)
    pipeline.prepare(with_map=False)
    return pipeline


def choose_b(at: AppTest, space: str = "pca", algorithm: str = "kmeans", features: str = "shape-rotation") -> AppTest:
    at.radio(key="b_features").set_value(features)
    at.selectbox(key="b_space").set_value(space)
    at.selectbox(key="b_algorithm").set_value(algorithm)
    return at.button(key="compare").click().run()


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def has_sankey(at: AppTest) -> bool:
    return any(trace.get("type") == "sankey" for figure in figures(at) for trace in figure["data"])


def test_the_page_asks_for_b_first(demo: Path) -> None:
    at = open_page(PAGE)
    assert_clean(at)
    assert at.title[0].value == "Compare two settings"
    assert "features `shape-rotation` · cluster space umap" in texts(at, "markdown")
    assert "press **Compare**" in texts(at, "info")
    assert at.radio(key="b_features").value == "shape"  # the first offer differs from A


def test_b_the_same_as_a_says_so(demo: Path) -> None:
    at = choose_b(open_page(PAGE), space="umap")
    assert_clean(at)
    assert "B is the same as A" in texts(at, "info")


def test_a_prepared_b_is_compared_at_once(prepared_b: Pipeline, recommended_k: int) -> None:
    at = choose_b(open_page(PAGE))
    assert_clean(at)
    assert "Preparing the data set in the background" not in texts(at, "markdown")
    assert at.selectbox(key="k_compare").value == recommended_k
    metrics = {m.label: m.value for m in at.metric}
    assert -1 <= float(metrics["ARI at this k"]) <= 1
    assert has_sankey(at)
    disagreeing = int(metrics["Images that disagree"].replace(",", ""))
    if disagreeing:
        assert "The images they disagree on most" in texts(at, "markdown")
        assert len(at.image) == 1  # one montage
        assert len(at.dataframe[0].value) == min(20, disagreeing)


def test_the_k_picker_redraws_the_comparison(prepared_b: Pipeline) -> None:
    at = choose_b(open_page(PAGE))
    at.selectbox(key="k_compare").set_value(3).run()
    assert_clean(at)
    assert at.session_state["k"] == 3  # one chosen k for every page
    sankey = next(t for f in figures(at) for t in f["data"] if t.get("type") == "sankey")
    assert len(sankey["node"]["label"]) == 6
    assert sankey["node"]["label"][:1] == ["0 (A)"] and sankey["node"]["label"][3:4] == ["0 (B)"]


def test_b_not_prepared_shows_the_job_then_the_comparison(demo: Path) -> None:
    settings_b = Settings(cluster_space="pca", algorithm="spherical")
    assert not Pipeline(demo, settings_b).is_cached("sweep")
    at = choose_b(open_page(PAGE), algorithm="spherical")
    assert not at.exception
    assert "Preparing the data set in the background" in texts(at, "markdown")
    assert at.button(key="job_cancel").label == "Cancel"
    settle(at)
    assert_clean(at)
    assert Pipeline(demo, settings_b).is_cached("sweep")
    assert has_sankey(at)
    assert "spherical k-means" in texts(at, "markdown")
    assert at.session_state["compare_b"]["algorithm"] == "spherical"
