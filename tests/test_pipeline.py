"""Tests of core.engine.pipeline: stage reuse from the cache, keys, bad inputs, and the sweep's content."""

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.clustering.algorithms
import core.reading.images
import core.representation.features
import core.representation.typical
from core.demo import make_demo
from core.engine.pipeline import Pipeline, Settings, Sweep
from core.errors import DotmapError, NoImagesError, NoStructureError
from core.representation.typical import TYPICAL_CELLS

N_IMAGES = 48
PCA = Settings(cluster_space="pca", k_max=6)
TABLE_KEYS = {
    "k",
    "inertia",
    "silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "stability",
    "stability_spread",
    "sizes",
}
MATCHED_SHARE = 0.8  # of clusters whose largest overlap at k+1 keeps their id


def write_dots(path: Path, dots: list[tuple[int, int]], size: int = 32) -> Path:
    """A white PNG with one black pixel per (row, column) in ``dots``."""
    image = np.full((size, size), 255, np.uint8)
    for y, x in dots:
        image[y, x] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def distinct_dots(i: int) -> list[tuple[int, int]]:
    return [(4, 4), (20, 6 + 3 * i), (10 + i, 25)]


def stage_flags(records) -> dict[str, bool]:
    return {r.stage: r.computed for r in records}


def refuse(name: str):
    def refused(*args, **kwargs):
        raise AssertionError(f"{name} was called on a warm cache")

    return refused


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return make_demo(tmp_path / "d", n=N_IMAGES, seed=0)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """The PCA sweep of k = 2..6 of a demo folder, computed once for the content tests."""
    root = tmp_path_factory.mktemp("sweep")
    pipeline = Pipeline(make_demo(root / "d", n=N_IMAGES, seed=0), PCA, root / "cache")
    pipeline.prepare(with_map=False)
    return pipeline.sweep()


# ---------------------------------------------------------------- reuse of cached stages


def test_warm_pipeline_neither_decodes_nor_fits(demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cold = Pipeline(demo, PCA, tmp_path / "cache")
    cold.prepare(with_map=False)
    monkeypatch.setattr(core.reading.images, "load_images", refuse("load_images"))
    monkeypatch.setattr(core.representation.features, "compute_features", refuse("compute_features"))
    monkeypatch.setattr(core.clustering.algorithms, "fit_clusters", refuse("fit_clusters"))
    warm = Pipeline(demo, PCA, tmp_path / "cache")
    records = warm.prepare(with_map=False)
    warm.features()
    sweep = warm.sweep()
    assert all(not r.computed for r in records)
    assert warm.records and all(not r.computed for r in warm.records)
    np.testing.assert_array_equal(sweep.labels, cold.sweep().labels)
    assert warm.image_meta()["paths"] == cold.image_meta()["paths"]


def test_changing_components_reuses_images_and_features(demo: Path, tmp_path: Path) -> None:
    Pipeline(demo, PCA, tmp_path / "cache").prepare(with_map=False)
    changed = Pipeline(demo, dataclasses.replace(PCA, components=10), tmp_path / "cache")
    flags = stage_flags(changed.prepare(with_map=False))
    assert flags == {
        "images": False,
        "features": False,
        "reduction": True,
        **{f"fit-k{k}": True for k in PCA.ks},
        "sweep": True,
        "typical": True,
    }


def test_raising_k_max_reuses_the_fits_of_old_ks(demo: Path, tmp_path: Path) -> None:
    Pipeline(demo, dataclasses.replace(PCA, k_max=4), tmp_path / "cache").prepare(with_map=False)
    flags = stage_flags(Pipeline(demo, PCA, tmp_path / "cache").prepare(with_map=False))
    assert flags == {
        "images": False,
        "features": False,
        "reduction": False,
        "fit-k2": False,
        "fit-k3": False,
        "fit-k4": False,
        "fit-k5": True,
        "fit-k6": True,
        "sweep": True,
        "typical": True,
    }


def test_rewriting_an_image_recomputes_from_decoding(demo: Path, tmp_path: Path) -> None:
    first = Pipeline(demo, PCA, tmp_path / "cache")
    first.prepare(with_map=False)
    path = demo / "dots_00.png"
    before = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes())
    os.utime(path, ns=(before + 10**9, before + 10**9))  # coarse clocks may keep the old mtime
    second = Pipeline(demo, PCA, tmp_path / "cache")
    assert second.inventory.fingerprint != first.inventory.fingerprint
    flags = stage_flags(second.prepare(with_map=False))
    assert flags["images"] and flags["features"] and flags["sweep"]


def test_fresh_caches_give_identical_sweeps(demo: Path, tmp_path: Path) -> None:
    sweeps = []
    for name in ("one", "two"):
        pipeline = Pipeline(demo, PCA, tmp_path / name)
        pipeline.prepare(with_map=False)
        sweeps.append(pipeline.sweep())
    np.testing.assert_array_equal(sweeps[0].labels, sweeps[1].labels)
    np.testing.assert_array_equal(sweeps[0].silhouette, sweeps[1].silhouette)
    assert sweeps[0].recommended_k == sweeps[1].recommended_k


ALTERED = {
    "features": "pixels",
    "components": 10,
    "k_min": 3,
    "k_max": 5,
    "algorithm": "spherical",
    "cluster_space": "pca",
    "grid": 64,
    "polarity": "dark-on-light",
    "seed": 1,
}


def test_every_setting_is_covered_below() -> None:
    assert set(ALTERED) == {f.name for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize("name", sorted(ALTERED))
def test_sweep_key_changes_with_every_setting(demo: Path, tmp_path: Path, name: str) -> None:
    base = Settings(k_max=6)
    altered = dataclasses.replace(base, **{name: ALTERED[name]})
    key = Pipeline(demo, base, tmp_path / "cache").key("sweep")
    assert Pipeline(demo, altered, tmp_path / "cache").key("sweep") != key


# ---------------------------------------------------------------- bad inputs


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NoImagesError, match=r"nowhere does not exist"):
        Pipeline(tmp_path / "nowhere", PCA, tmp_path / "cache")


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    pipeline = Pipeline(tmp_path / "empty", PCA, tmp_path / "cache")
    with pytest.raises(NoImagesError, match=r"holds no files"):
        pipeline.prepare(with_map=False)


def test_folder_of_junk_is_refused_naming_the_skipped(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    (junk / "fake.png").write_bytes(b"not a png either")
    pipeline = Pipeline(junk, PCA, tmp_path / "cache")
    with pytest.raises(
        NoImagesError, match=r"No readable images .* 2 file\(s\) skipped: fake\.png: not a .*; notes\.txt: not a"
    ):
        pipeline.prepare(with_map=False)


def test_a_folder_of_many_bad_files_names_the_first_and_counts_the_rest(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(8):
        (junk / f"n{i}.txt").write_text("not an image")
    with pytest.raises(NoImagesError, match=r"8 file\(s\) skipped: n0\.txt: .*n4\.txt: [^;]*; and 3 more\.$"):
        Pipeline(junk, PCA, tmp_path / "cache").prepare(with_map=False)


def test_one_image_is_refused(tmp_path: Path) -> None:
    write_dots(tmp_path / "one" / "a.png", distinct_dots(0))
    pipeline = Pipeline(tmp_path / "one", PCA, tmp_path / "cache")
    with pytest.raises(NoImagesError, match=r"Only one readable image"):
        pipeline.prepare(with_map=False)


def test_identical_images_have_no_structure(tmp_path: Path) -> None:
    for i in range(5):
        write_dots(tmp_path / "same" / f"{i}.png", distinct_dots(0))
    pipeline = Pipeline(tmp_path / "same", PCA, tmp_path / "cache")
    with pytest.raises(NoStructureError, match=r"All 5 images are identical"):
        pipeline.prepare(with_map=False)


def test_k_max_above_the_distinct_images_suggests_a_k(tmp_path: Path) -> None:
    for i in range(8):
        write_dots(tmp_path / "few" / f"{i}.png", distinct_dots(i % 4))
    pipeline = Pipeline(tmp_path / "few", PCA, tmp_path / "cache")
    with pytest.raises(NoStructureError, match=r"k_max=6 .*8 images, 4 distinct\. Use --k-max 4 or lower"):
        pipeline.prepare(with_map=False)


def test_two_images_are_too_few_without_advice_that_cannot_be_followed(tmp_path: Path) -> None:
    data = make_demo(tmp_path / "d", n=2, seed=0)
    pipeline = Pipeline(data, PCA, tmp_path / "cache")
    with pytest.raises(
        NoStructureError, match=r"2 images \(2 distinct\) are too few to cluster: k=2 needs at least 3"
    ) as info:
        pipeline.prepare(with_map=False)
    assert "--k-max" not in str(info.value)


def test_k_max_of_every_image_suggests_one_less(tmp_path: Path) -> None:
    data = make_demo(tmp_path / "d", n=6, seed=0)
    pipeline = Pipeline(data, PCA, tmp_path / "cache")
    with pytest.raises(NoStructureError, match=r"6 images, 6 distinct\. Use --k-max 5 or lower"):
        pipeline.prepare(with_map=False)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"features": "colour"}, r"features='colour' should be one of"),
        ({"components": 1}, r"components=1 should be >= 2"),
        ({"k_min": 1}, r"k_min=1 should be >= 2"),
        ({"k_min": 5, "k_max": 4}, r"k_max=4 should be >= k_min=5"),
        ({"algorithm": "dbscan"}, r"algorithm='dbscan' should be one of"),
        ({"cluster_space": "tsne"}, r"cluster_space='tsne' should be one of"),
        ({"grid": 4}, r"grid=4 should be >= 8"),
        ({"polarity": "grey"}, r"polarity='grey' should be one of"),
    ],
)
def test_invalid_settings_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(DotmapError, match=message):
        Settings(**changes)


# ---------------------------------------------------------------- what a sweep holds


def test_sweep_labels_have_one_row_per_k(sweep: Sweep) -> None:
    assert sweep.ks == PCA.ks
    assert sweep.labels.shape == (len(PCA.ks), N_IMAGES)
    for k, labels in zip(sweep.ks, sweep.labels, strict=True):
        assert sorted(set(labels.tolist())) == list(range(k))


def test_sweep_transitions_are_the_overlap_of_consecutive_labels(sweep: Sweep) -> None:
    assert len(sweep.transitions) == len(sweep.ks) - 1
    for j, table in enumerate(sweep.transitions):
        expected = np.zeros((sweep.ks[j], sweep.ks[j + 1]), np.int64)
        np.add.at(expected, (sweep.labels[j], sweep.labels[j + 1]), 1)
        np.testing.assert_array_equal(np.array(table), expected)


def test_sweep_ids_follow_their_cluster_from_k_to_k_plus_one(sweep: Sweep) -> None:
    tables = [np.array(table) for table in sweep.transitions]
    kept = [table[i, i] == table[i].max() for table in tables for i in range(len(table))]
    assert np.mean(kept) >= MATCHED_SHARE


def test_sweep_silhouettes_and_distances_are_finite_and_in_range(sweep: Sweep) -> None:
    assert sweep.silhouette.shape == sweep.distance.shape == sweep.labels.shape
    assert np.isfinite(sweep.silhouette).all() and np.isfinite(sweep.distance).all()
    assert (sweep.silhouette >= -1).all() and (sweep.silhouette <= 1).all()
    assert (sweep.distance >= 0).all()


def test_sweep_recommends_a_k_in_range(sweep: Sweep) -> None:
    assert sweep.recommended_k in sweep.ks


def test_sweep_table_has_every_score_for_every_k(sweep: Sweep) -> None:
    assert [row["k"] for row in sweep.table] == sweep.ks
    for row, labels in zip(sweep.table, sweep.labels, strict=True):
        assert set(row) == TABLE_KEYS
        assert row["sizes"] == np.bincount(labels, minlength=row["k"]).tolist()
        assert all(np.isfinite(row[name]) for name in TABLE_KEYS - {"k", "sizes"})


# ---------------------------------------------------------------- junk and labels beside the images


def test_junk_files_are_listed_as_skipped_and_the_images_clustered(demo: Path, tmp_path: Path) -> None:
    (demo / "notes.txt").write_text("not an image")
    shutil.copy(demo / "dots_00.png", demo / "cut.png")
    (demo / "cut.png").write_bytes((demo / "cut.png").read_bytes()[:100])
    pipeline = Pipeline(demo, PCA, tmp_path / "cache")
    pipeline.prepare(with_map=False)
    skipped = dict(pipeline.image_meta()["skipped"])
    assert sorted(skipped) == ["cut.png", "notes.txt"]
    assert skipped["notes.txt"].startswith("not a PNG")
    assert skipped["cut.png"].startswith("damaged or truncated")
    assert pipeline.sweep().labels.shape == (len(PCA.ks), N_IMAGES)


def test_labels_file_does_not_change_the_clustering(demo: Path, tmp_path: Path) -> None:
    with_labels = Pipeline(demo, PCA, tmp_path / "one")
    with_labels.prepare(with_map=False)
    (demo / "labels.csv").unlink()
    without = Pipeline(demo, PCA, tmp_path / "two")
    without.prepare(with_map=False)
    np.testing.assert_array_equal(with_labels.sweep().labels, without.sweep().labels)
    assert with_labels.image_meta()["paths"] == without.image_meta()["paths"]


# ---------------------------------------------------------------- typical shapes of the clusters

SMALL = Settings(cluster_space="pca", k_min=2, k_max=4)


def test_cluster_means_give_one_image_per_cluster_of_every_k(demo: Path, tmp_path: Path) -> None:
    means = Pipeline(demo, SMALL, tmp_path / "cache").cluster_means()
    assert [m.shape for m in means] == [(k, TYPICAL_CELLS, TYPICAL_CELLS) for k in SMALL.ks] == [
        (2, 48, 48), (3, 48, 48), (4, 48, 48),
    ]  # fmt: skip
    for m in means:
        assert m.dtype == np.float32
        np.testing.assert_allclose(m.max(axis=(1, 2)), 1.0, rtol=1e-6)  # every cluster has ink


def test_cluster_means_are_those_of_the_sweep_labels(demo: Path, tmp_path: Path) -> None:
    pipeline = Pipeline(demo, SMALL, tmp_path / "cache")
    loaded = pipeline.images()
    labels = pipeline.sweep().labels
    expected = core.representation.typical.cluster_means(loaded.packed, loaded.grid, SMALL.features, labels, SMALL.ks)
    np.testing.assert_array_equal(np.concatenate(pipeline.cluster_means()), expected)


def test_cluster_means_are_computed_once_then_loaded(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = Pipeline(demo, SMALL, tmp_path / "cache")
    assert not cold.is_cached("typical")
    first = cold.cluster_means()
    assert (cold.records[-1].stage, cold.records[-1].computed) == ("typical", True)
    monkeypatch.setattr(core.representation.typical, "cluster_means", refuse("typical.cluster_means"))
    monkeypatch.setattr(core.reading.images, "load_images", refuse("load_images"))
    warm = Pipeline(demo, SMALL, tmp_path / "cache")
    assert warm.is_cached("typical")
    second = warm.cluster_means()
    assert stage_flags(warm.records) == {"typical": False}
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cluster_means_key_follows_the_sweep(demo: Path, tmp_path: Path) -> None:
    key = Pipeline(demo, SMALL, tmp_path / "cache").key("typical")
    assert Pipeline(demo, dataclasses.replace(SMALL, features="pixels"), tmp_path / "cache").key("typical") != key
    assert Pipeline(demo, dataclasses.replace(SMALL, k_max=3), tmp_path / "cache").key("typical") != key
