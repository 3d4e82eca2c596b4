"""Tests of core.engine.stages: the stage table, and the keys, plan and missing stages derived from it."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from core.demo import make_demo
from core.engine import stages as stage_table
from core.engine.pipeline import Pipeline, Settings
from core.engine.stages import STAGES, Stage, plan_stages, stage_of

PCA = Settings(cluster_space="pca", k_max=4)


def plan(settings: Settings, with_map: bool = True) -> list[str]:
    return [stage.name for stage in plan_stages(settings, with_map)]


@pytest.mark.parametrize(
    ("settings", "with_map", "expected"),
    [
        (
            Settings(),
            True,
            ["images", "features", "reduction", "neighbours", "space", "sweep", "typical", "atlas", "map", "auto"],
        ),
        (Settings(), False, ["images", "features", "reduction", "neighbours", "space", "sweep", "typical", "auto"]),
        # the PCA cluster space: the neighbours only for the map, after the clustering the pages show first
        (PCA, True, ["images", "features", "reduction", "sweep", "typical", "atlas", "neighbours", "map"]),
        (PCA, False, ["images", "features", "reduction", "sweep", "typical"]),
    ],
    ids=["umap", "umap-no-map", "pca", "pca-no-map"],
)
def test_the_plan_is_derived_from_the_table(settings: Settings, with_map: bool, expected: list[str]) -> None:
    assert plan(settings, with_map) == expected


@pytest.mark.parametrize("settings", [Settings(), PCA], ids=["umap", "pca"])
def test_every_stage_of_the_plan_comes_after_its_inputs(settings: Settings) -> None:
    order = plan(settings)
    for i, name in enumerate(order):
        for up in STAGES[name].inputs:
            if not STAGES[up].per_k:
                assert stage_of(up, settings).name in order[:i], f"{name} runs before its input {up}"


def test_the_pca_cluster_space_is_the_pca_itself(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    pipeline = Pipeline(tmp_path / "d", PCA, tmp_path / "c")
    assert pipeline.key("space") == pipeline.key("reduction")
    assert Pipeline(tmp_path / "d", Settings(), tmp_path / "c").key("space") != pipeline.key("reduction")


KEYED = ["images", "features", "reduction", "neighbours", "space", "sweep", "typical", "map", "auto", "atlas"]
# each setting: another value, and the stages whose keys it changes (itself and what is downstream)
CHANGES = {
    "grid": (100, KEYED),
    "polarity": ("dark-on-light", KEYED),
    "features": ("pixels", KEYED[1:-1]),  # the thumbnails are of the images alone
    "components": (20, KEYED[2:-1]),
    "seed": (1, KEYED[2:-1]),
    "k_min": (3, ["sweep", "typical"]),
    "k_max": (6, ["sweep", "typical"]),
    "algorithm": ("spherical", ["sweep", "typical"]),
    "cluster_space": ("pca", ["space", "sweep", "typical", "auto"]),  # its space is then the PCA
}


def test_every_setting_is_covered_below() -> None:
    assert set(CHANGES) == {f.name for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_setting_changes_the_keys_of_the_stages_that_use_it_and_downstream_only(tmp_path: Path, name: str) -> None:
    (tmp_path / "d").mkdir()
    base = Settings(k_max=5)
    value, moved = CHANGES[name]
    a = Pipeline(tmp_path / "d", base, tmp_path / "c")
    b = Pipeline(tmp_path / "d", dataclasses.replace(base, **{name: value}), tmp_path / "c")
    assert [stage for stage in KEYED if a.key(stage) != b.key(stage)] == moved


def test_a_per_k_stage_needs_its_k(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    pipeline = Pipeline(tmp_path / "d", PCA, tmp_path / "c")
    with pytest.raises(ValueError, match="one result per k"):
        pipeline.key("fit")
    assert pipeline.key("fit", 2) != pipeline.key("fit", 3)


def test_every_stage_has_words_for_a_person() -> None:
    for stage in STAGES.values():
        words = stage.words(Settings())
        assert words.strip() and not words.endswith("."), stage.name


def ink_total(p: Pipeline) -> tuple[dict, dict]:
    return {"total": p.ink_counts().astype(np.int64).cumsum()}, {"images": len(p.ink_counts())}


def test_adding_a_stage_is_one_entry_in_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = Stage("ink_total", lambda s: "Running total of ink", ink_total, ("images",), ("grid",))
    monkeypatch.setitem(STAGES, "ink_total", extra)
    stage_table.stage_version.cache_clear()
    folder = make_demo(tmp_path / "d", n=24, seed=0)
    try:
        pipeline = Pipeline(folder, PCA, tmp_path / "c")
        assert [s.stage for s in pipeline.plan()][-1] == "ink_total"
        assert "ink_total" in [s.stage for s in pipeline.missing()]
        entry = pipeline.entry("ink_total")
        assert entry.meta == {"images": 24}
        assert entry.arrays["total"][-1] == pipeline.ink_counts().sum()
        again = Pipeline(folder, PCA, tmp_path / "c")
        assert again.is_cached("ink_total") and not again.is_cached("map")
        assert again.key("ink_total") != Pipeline(folder, dataclasses.replace(PCA, grid=100), tmp_path / "c").key(
            "ink_total"
        )
    finally:
        stage_table.stage_version.cache_clear()
