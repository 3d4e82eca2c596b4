"""Tests of core.export: the assignment CSV and per-cluster folders, never overwriting anything."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from core.demo import make_demo
from core.errors import DotmapError
from core.export import CSV_COLUMNS, assignments_csv_text, export_csv, export_folders
from core.pipeline import Pipeline, Settings

N_IMAGES = 48
K = 4
PCA = Settings(cluster_space="pca", k_max=6)


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    prepared = Pipeline(make_demo(tmp_path / "d", n=N_IMAGES, seed=0), PCA, tmp_path / "cache")
    prepared.prepare(with_map=False)
    return prepared


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def exported_files(out: Path) -> dict[str, list[str]]:
    """Relative image path -> the cluster folders it was found in."""
    found: dict[str, list[str]] = {}
    for cluster_dir in sorted(out.iterdir()):
        for item in sorted(cluster_dir.rglob("*")):
            if item.is_file() or item.is_symlink():
                found.setdefault(item.relative_to(cluster_dir).as_posix(), []).append(cluster_dir.name)
    return found


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_csv_rows_match_the_sweep(pipeline: Pipeline, tmp_path: Path) -> None:
    out = export_csv(pipeline, K, tmp_path / "out.csv")
    header, *rows = read_csv(out)
    sweep, paths = pipeline.sweep(), pipeline.image_meta()["paths"]
    row = sweep.row(K)
    assert header == list(CSV_COLUMNS) == ["path", "cluster", "distance", "silhouette"]
    assert [r[0] for r in rows] == paths
    assert [int(r[1]) for r in rows] == sweep.labels[row].tolist()
    np.testing.assert_allclose([float(r[2]) for r in rows], sweep.distance[row], atol=1e-6)
    np.testing.assert_allclose([float(r[3]) for r in rows], sweep.silhouette[row], atol=1e-6)


def test_csv_text_is_what_the_file_holds(pipeline: Pipeline, tmp_path: Path) -> None:
    out = export_csv(pipeline, K, tmp_path / "out.csv")
    assert out.read_text() == assignments_csv_text(pipeline, K)


def test_csv_for_a_k_outside_the_sweep_is_refused(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(DotmapError, match=r"k=9 is outside the prepared range 2\.\.6"):
        export_csv(pipeline, 9, tmp_path / "out.csv")


def test_folders_hold_every_image_once_in_its_cluster(pipeline: Pipeline, tmp_path: Path) -> None:
    out = export_folders(pipeline, K, tmp_path / "out")
    labels = pipeline.sweep().labels[pipeline.sweep().row(K)]
    paths = pipeline.image_meta()["paths"]
    found = exported_files(out)
    assert sorted(found) == sorted(paths)
    for path, label in zip(paths, labels, strict=True):
        assert len(found[path]) == 1
        assert re.fullmatch(r"cluster_\d+", found[path][0])
        assert int(found[path][0].removeprefix("cluster_")) == label
    assert (out / found[paths[0]][0] / paths[0]).read_bytes() == (pipeline.inventory.root / paths[0]).read_bytes()


def test_folders_of_a_large_k_have_names_of_equal_width(tmp_path: Path) -> None:
    data = make_demo(tmp_path / "d", n=N_IMAGES, seed=0)
    pipeline = Pipeline(data, Settings(cluster_space="pca", k_min=11, k_max=12), tmp_path / "cache")
    out = export_folders(pipeline, 12, tmp_path / "out")
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"cluster_{c:02d}" for c in range(12)]


def test_link_makes_symlinks_to_the_originals(pipeline: Pipeline, tmp_path: Path) -> None:
    out = export_folders(pipeline, K, tmp_path / "out", link=True)
    links = [p for p in out.rglob("*") if not p.is_dir()]
    assert len(links) == N_IMAGES
    root = pipeline.inventory.root.resolve()
    for link in links:
        assert link.is_symlink()
        assert link.resolve() == root / link.name


def test_existing_csv_is_refused_and_left_alone(pipeline: Pipeline, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"precious,data\n")
    with pytest.raises(DotmapError, match=r"out\.csv already exists.*nothing was overwritten"):
        export_csv(pipeline, K, target)
    assert target.read_bytes() == b"precious,data\n"


@pytest.mark.parametrize("link", [False, True], ids=["copy", "link"])
def test_existing_folder_is_refused_and_left_alone(pipeline: Pipeline, tmp_path: Path, link: bool) -> None:
    target = tmp_path / "out"
    (target / "cluster_0").mkdir(parents=True)
    (target / "cluster_0" / "mine.txt").write_text("keep me")
    before = tree_bytes(target)
    with pytest.raises(DotmapError, match=r"out already exists.*nothing was overwritten"):
        export_folders(pipeline, K, target, link=link)
    assert tree_bytes(target) == before
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["cluster_0", "cluster_0/mine.txt"]
