"""Tests of core.engine.versions: every stage's cache key follows its code and its libraries, derived from its code."""

from pathlib import Path

import pytest

import core.engine.versions
from core.engine import stages as stage_table
from core.engine.pipeline import Pipeline, Settings
from core.engine.stages import STAGES, stage_version
from core.engine.versions import code_fingerprint, code_reached, core_modules_reached, libraries_of

SOURCE = '''
"""A module."""

RADIAL_BINS = 10  # rings


def f(x):
    """Docstring."""
    return x * RADIAL_BINS
'''


def test_a_changed_constant_changes_the_fingerprint() -> None:
    assert code_fingerprint(SOURCE.replace("RADIAL_BINS = 10", "RADIAL_BINS = 12")) != code_fingerprint(SOURCE)


def test_a_changed_expression_changes_the_fingerprint() -> None:
    assert code_fingerprint(SOURCE.replace("x * RADIAL_BINS", "x + RADIAL_BINS")) != code_fingerprint(SOURCE)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("# rings", "# rings from the centre"),
        lambda s: s.replace('"""Docstring."""', '"""Another docstring, longer."""'),
        lambda s: s.replace('"""A module."""', ""),
        lambda s: s.replace("\n\n\ndef", "\n\ndef"),
    ],
    ids=["comment", "docstring", "module docstring", "blank lines"],
)
def test_comments_docstrings_and_layout_keep_the_fingerprint(edit) -> None:
    assert code_fingerprint(edit(SOURCE)) == code_fingerprint(SOURCE)


def libraries(stage: str) -> set[str]:
    return set(code_reached(STAGES[stage].compute)[2])


def modules(stage: str) -> set[str]:
    return set(code_reached(STAGES[stage].compute)[1])


def test_a_stage_follows_the_core_modules_its_code_reaches() -> None:
    assert {"core.representation.features", "core.reading.images", "core.reading.ondisk"} <= modules("features")
    assert "core.clustering.sweep" in modules("sweep") and "core.clustering.agreement" in modules("sweep")
    assert not any(m.startswith("core.representation") for m in modules("fit"))  # clustering alone


@pytest.mark.parametrize(
    ("stage", "library"),
    [
        ("images", "pillow"),
        ("features", "scipy"),  # scipy.ndimage, imported by the features module
        ("neighbours", "pynndescent"),  # above 100,000 images the neighbours are pynndescent's
        ("neighbours", "scikit-learn"),
        ("space", "umap-learn"),
        ("space", "numba"),  # what umap-learn needs counts too
        ("sweep", "scipy"),  # the Hungarian matching of ids from k to k+1
        ("auto", "scikit-learn"),
    ],
)
def test_the_libraries_of_a_stage_are_derived_from_the_imports_its_code_reaches(stage: str, library: str) -> None:
    assert library in libraries(stage)


def test_a_stage_lists_no_library_its_code_does_not_reach() -> None:
    assert "umap-learn" not in libraries("sweep")
    assert "scikit-learn" not in libraries("typical") and "pillow" not in libraries("fit")
    assert not {"streamlit", "dask", "distributed", "plotly"} & set().union(*(libraries(s) for s in STAGES))


def test_libraries_follow_what_a_library_needs() -> None:
    assert {"scikit-learn", "scipy", "numpy", "joblib", "threadpoolctl"} <= set(libraries_of({"sklearn"}))
    assert libraries_of({"json", "os"}) == ()  # the standard library has no version of its own


def test_an_unknown_stage_is_an_error() -> None:
    with pytest.raises(KeyError, match=r"not in the stage table"):
        stage_version("colour")


def test_stage_versions_differ_between_stages() -> None:
    versions = {stage_version(stage) for stage in STAGES}
    assert len(versions) == len(STAGES)


@pytest.mark.parametrize(("changed", "unchanged"), [("features", "images"), ("images", None), ("map", "sweep")])
def test_a_new_code_version_changes_its_key_and_every_key_downstream(
    tmp_path: Path, monkeypatch, changed: str, unchanged: str | None
) -> None:
    (tmp_path / "d").mkdir()
    pipeline = Pipeline(tmp_path / "d", Settings(), tmp_path / "c")
    stages = ["images", "features", "reduction", "neighbours", "space", "sweep", "typical", "map"]
    before = {stage: pipeline.key(stage) for stage in stages}
    real = stage_table.stage_version
    monkeypatch.setattr(
        "core.engine.pipeline.stage_version", lambda stage: real(stage) + ("-new" if stage == changed else "")
    )
    after = {stage: pipeline.key(stage) for stage in stages}
    assert after[changed] != before[changed]
    downstream = {"images": stages, "features": stages[1:], "map": ["map"]}[changed]
    assert all(after[s] != before[s] for s in downstream)
    if unchanged is not None:
        assert after[unchanged] == before[unchanged]


def test_a_library_upgrade_changes_the_version(monkeypatch) -> None:
    before, typical_before = stage_version("reduction"), stage_version("typical")
    stage_version.cache_clear()
    core.engine.versions.code_version.cache_clear()
    real = core.engine.versions._library_version
    monkeypatch.setattr(core.engine.versions, "_library_version", lambda lib: "99.0" if lib == "scipy" else real(lib))
    try:
        assert stage_version("reduction") != before  # scikit-learn's PCA needs scipy
        assert stage_version("typical") != typical_before  # the features module imports scipy.ndimage
    finally:
        stage_version.cache_clear()
        core.engine.versions.code_version.cache_clear()


def test_a_library_no_stage_reaches_changes_no_version(monkeypatch) -> None:
    before = {stage: stage_version(stage) for stage in STAGES}
    stage_version.cache_clear()
    core.engine.versions.code_version.cache_clear()
    real = core.engine.versions._library_version
    monkeypatch.setattr(
        core.engine.versions, "_library_version", lambda lib: "99.0" if lib == "umap-learn" else real(lib)
    )
    try:
        after = {stage: stage_version(stage) for stage in STAGES}
        assert {s for s in STAGES if after[s] != before[s]} == {"space", "map"}
    finally:
        stage_version.cache_clear()
        core.engine.versions.code_version.cache_clear()


def test_where_a_stage_runs_is_not_part_of_its_key() -> None:
    followed = core_modules_reached(
        ("core.reading.images", "core.representation.features", "core.representation.reduction")
    )
    assert "core.reading.ondisk" in followed  # how arrays are read and blocked: it counts
    assert "core.engine.backends" not in followed  # this machine or a Dask cluster: the same results


def test_a_helper_of_the_stage_table_counts_as_part_of_the_stage_that_calls_it() -> None:
    functions = code_reached(STAGES["map"].compute)[0]
    assert "_umap" in functions and "two_d_map" in functions
    assert "read_images" not in functions  # another stage's work is not this one's
