"""Tests of core.engine.versions: every stage's cache key follows its code and its libraries."""

from pathlib import Path

import pytest

import core.engine.versions
from core.engine.pipeline import Pipeline, Settings
from core.engine.versions import STAGE_CODE, code_fingerprint, stage_version

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


def test_every_stage_of_the_plan_has_its_code_listed(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for settings in (Settings(), Settings(cluster_space="pca")):
        stages = {step.stage for step in Pipeline(tmp_path / "d", settings, tmp_path / "c").plan()}
        assert stages | {"fit"} <= set(STAGE_CODE)


def test_a_stage_follows_the_core_modules_it_imports() -> None:
    features_modules = core.engine.versions._modules_with_imports(STAGE_CODE["features"][1])
    assert {"core.representation.features", "core.reading.images"} <= set(features_modules)


def test_an_unknown_stage_is_an_error() -> None:
    with pytest.raises(KeyError, match=r"no entry in core.engine.versions.STAGE_CODE"):
        stage_version("colour")


def test_stage_versions_differ_between_stages() -> None:
    versions = {stage_version(stage) for stage in STAGE_CODE}
    assert len(versions) == len(STAGE_CODE)


@pytest.mark.parametrize(("changed", "unchanged"), [("features", "images"), ("images", None), ("map", "sweep")])
def test_a_new_code_version_changes_its_key_and_every_key_downstream(
    tmp_path: Path, monkeypatch, changed: str, unchanged: str | None
) -> None:
    (tmp_path / "d").mkdir()
    pipeline = Pipeline(tmp_path / "d", Settings(), tmp_path / "c")
    stages = ["images", "features", "reduction", "neighbours", "space", "sweep", "typical", "map"]
    before = {stage: pipeline.key(stage) for stage in stages}
    real = core.engine.versions.stage_version
    monkeypatch.setattr("core.engine.pipeline.stage_version", lambda stage: real(stage) + ("-new" if stage == changed else ""))
    after = {stage: pipeline.key(stage) for stage in stages}
    assert after[changed] != before[changed]
    downstream = {"images": stages, "features": stages[1:], "map": ["map"]}[changed]
    assert all(after[s] != before[s] for s in downstream)
    if unchanged is not None:
        assert after[unchanged] == before[unchanged]


def test_a_library_upgrade_changes_the_version(monkeypatch) -> None:
    before, typical_before = stage_version("reduction"), stage_version("typical")
    stage_version.cache_clear()
    real = core.engine.versions._library_version
    monkeypatch.setattr(core.engine.versions, "_library_version", lambda lib: "99.0" if lib == "scikit-learn" else real(lib))
    try:
        assert stage_version("reduction") != before
        assert stage_version("typical") == typical_before  # it does not call scikit-learn
    finally:
        stage_version.cache_clear()


def test_where_a_stage_runs_is_not_part_of_its_key():
    from core.engine.versions import _modules_with_imports

    followed = _modules_with_imports(("core.reading.images", "core.representation.features", "core.representation.reduction", "core.representation.typical"))
    assert "core.reading.ondisk" in followed  # how arrays are read and blocked: it counts
    assert "core.engine.backends" not in followed  # this machine or a Dask cluster: the same results
