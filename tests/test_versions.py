"""Tests of core.engine.versions: every stage's cache key follows its code and its libraries, derived from its code."""

import json
import os
import time
from pathlib import Path

import pytest

import core.engine.versions
from core.engine import stages as stage_table
from core.engine.pipeline import Pipeline, Settings
from core.engine.stages import STAGES, stage_version
from core.engine.versions import code_fingerprint, code_reached, code_state, core_modules_reached, libraries_of

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


@pytest.fixture
def fresh_versions(monkeypatch):
    """code_version derived anew in this test, the memo folder as the test sets it, then as before."""
    monkeypatch.setattr(core.engine.versions, "_memo_folder", None)
    for cached in (stage_version, core.engine.versions.code_version, core.engine.versions._memo):
        cached.cache_clear()
    yield
    for cached in (stage_version, core.engine.versions.code_version, core.engine.versions._memo):
        cached.cache_clear()


def test_remembered_versions_are_the_derived_ones_and_skip_the_derivation(
    tmp_path: Path, monkeypatch, fresh_versions
) -> None:
    derived = {stage: stage_version(stage) for stage in STAGES}
    core.engine.versions.remember_in(tmp_path)
    for cached in (stage_version, core.engine.versions.code_version):
        cached.cache_clear()
    assert {stage: stage_version(stage) for stage in STAGES} == derived  # and written down
    assert (tmp_path / core.engine.versions.MEMO_FILE).exists()

    for cached in (stage_version, core.engine.versions.code_version, core.engine.versions._memo):
        cached.cache_clear()  # as in a new process

    def no_derivation(fn):
        raise AssertionError(f"{fn.__qualname__} was derived again")

    monkeypatch.setattr(core.engine.versions, "_code_parts", no_derivation)
    assert {stage: stage_version(stage) for stage in STAGES} == derived


def test_a_remembered_version_still_reads_the_libraries_versions(tmp_path: Path, monkeypatch, fresh_versions) -> None:
    core.engine.versions.remember_in(tmp_path)
    before = stage_version("reduction")
    for cached in (stage_version, core.engine.versions.code_version, core.engine.versions._memo):
        cached.cache_clear()
    real = core.engine.versions._library_version
    monkeypatch.setattr(core.engine.versions, "_library_version", lambda lib: "99.0" if lib == "scipy" else real(lib))
    assert stage_version("reduction") != before


@pytest.mark.parametrize(
    "saved", ["{not json", '{"states": 1}', '{"states": {"S": 3}}', '{"states": {"S": {"x": [1, 2]}}}', "[]"]
)
def test_a_memo_that_is_not_ours_is_derived_anew(tmp_path: Path, monkeypatch, fresh_versions, saved: str) -> None:
    derived = stage_version("features")
    stage_version.cache_clear()
    core.engine.versions.code_version.cache_clear()
    monkeypatch.setattr(core.engine.versions, "code_state", lambda: "S")
    (tmp_path / core.engine.versions.MEMO_FILE).write_text(saved.replace('"x"', '"core.engine.stages:features"'))
    core.engine.versions.remember_in(tmp_path)
    assert stage_version("features") == derived


def test_a_memo_of_another_state_of_the_code_is_not_used(tmp_path: Path, monkeypatch, fresh_versions) -> None:
    core.engine.versions.remember_in(tmp_path)
    monkeypatch.setattr(core.engine.versions, "code_state", lambda: "before the edit")
    derived = stage_version("features")
    for cached in (stage_version, core.engine.versions.code_version, core.engine.versions._memo):
        cached.cache_clear()
    monkeypatch.setattr(core.engine.versions, "code_state", lambda: "after the edit")
    calls = []
    real = core.engine.versions._code_parts
    monkeypatch.setattr(core.engine.versions, "_code_parts", lambda fn: calls.append(fn) or real(fn))
    assert stage_version("features") == derived and len(calls) == 1


def test_environments_sharing_a_cache_keep_their_memos(tmp_path: Path, monkeypatch, fresh_versions) -> None:
    core.engine.versions.remember_in(tmp_path)
    calls = []
    real = core.engine.versions._code_parts
    monkeypatch.setattr(core.engine.versions, "_code_parts", lambda fn: calls.append(fn) or real(fn))
    for env in ["a venv", "a PYTHONPATH", "a venv", "a PYTHONPATH"]:  # as two processes taking turns
        for cached in (stage_version, core.engine.versions.code_version, core.engine.versions._memo):
            cached.cache_clear()
        monkeypatch.setattr(core.engine.versions, "code_state", lambda env=env: env)
        stage_version("features")
    assert len(calls) == 2  # once in each environment
    for n in range(core.engine.versions.MEMO_STATES):  # then as many others, and the first is forgotten
        for cached in (stage_version, core.engine.versions.code_version, core.engine.versions._memo):
            cached.cache_clear()
        monkeypatch.setattr(core.engine.versions, "code_state", lambda n=n: f"another {n}")
        stage_version("features")
    saved = json.loads((tmp_path / core.engine.versions.MEMO_FILE).read_text())
    assert list(saved["states"]) == [f"another {n}" for n in range(core.engine.versions.MEMO_STATES)]


@pytest.mark.parametrize(
    "change",
    [
        lambda root, lib: (root / "a.py").write_text("X = 2\n"),  # an edit of another length
        lambda root, lib: os.utime(root / "a.py", ns=(1, 1)),  # same length, another time
        lambda root, lib: (root / "sub" / "b.py").write_text(""),  # a new module
        lambda root, lib: (lib / "scipy-99.0.dist-info").mkdir(),  # a library installed or upgraded
    ],
    ids=["edit", "touch", "new module", "library"],
)
def test_the_code_state_follows_sources_folders_and_libraries(tmp_path: Path, change) -> None:
    root, lib = tmp_path / "core", tmp_path / "site-packages"
    (root / "sub").mkdir(parents=True)
    lib.mkdir()
    (root / "a.py").write_text("X = 1\n")
    (root / "__pycache__").mkdir()
    before = code_state(root, (str(lib),))
    assert code_state(root, (str(lib),)) == before
    (root / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"")  # compiled files do not count
    assert code_state(root, (str(lib),)) == before
    time.sleep(0.01)  # a folder's time moves on with its listing
    change(root, lib)
    assert code_state(root, (str(lib),)) != before
