"""Tests of core.outputs.export: the assignment CSV and per-cluster folders, never overwriting anything."""

import csv
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.demo import make_demo
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError
from core.outputs.export import (
    CSV_COLUMNS,
    assignment_rows,
    assignments_csv_text,
    cluster_folder,
    export,
    export_csv,
    export_folders,
    zip_of_files,
)

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


# ---------------------------------------------------------------- a selection of rows, and a zip

SOME_ROWS = [17, 0, 5]


def zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def expected_members(pipeline: Pipeline, k: int, rows: list[int]) -> dict[str, bytes]:
    """cluster_<id>/<path> -> the original bytes, for the given rows, worked out from the sweep."""
    labels = pipeline.sweep().labels[pipeline.sweep().row(k)]
    paths = pipeline.image_meta()["paths"]
    root = pipeline.inventory.root
    return {f"cluster_{labels[i]}/{paths[i]}": (root / paths[i]).read_bytes() for i in rows}


def test_assignment_rows_of_some_rows_are_those_rows_in_order(pipeline: Pipeline) -> None:
    every = assignment_rows(pipeline, K)
    assert assignment_rows(pipeline, K, SOME_ROWS) == [every[17], every[0], every[5]]
    assert assignment_rows(pipeline, K, np.array(SOME_ROWS, np.int64)) == [every[17], every[0], every[5]]


def test_assignment_rows_of_no_rows_are_empty(pipeline: Pipeline) -> None:
    assert assignment_rows(pipeline, K, []) == []


def test_selection_csv_holds_the_header_and_exactly_those_rows(pipeline: Pipeline) -> None:
    header, *rows = list(csv.reader(io.StringIO(assignments_csv_text(pipeline, K, SOME_ROWS))))
    every = list(csv.reader(io.StringIO(assignments_csv_text(pipeline, K))))[1:]
    assert header == list(CSV_COLUMNS)
    assert rows == [every[17], every[0], every[5]]


def test_selection_csv_of_nothing_is_the_header_alone(pipeline: Pipeline) -> None:
    assert assignments_csv_text(pipeline, K, np.zeros(0, np.int64)) == "path,cluster,distance,silhouette\n"


@pytest.mark.parametrize(
    ("cluster", "k", "name"),
    [(3, 8, "cluster_3"), (0, 2, "cluster_0"), (3, 12, "cluster_03"), (10, 11, "cluster_10"), (7, 101, "cluster_007")],
)
def test_cluster_folder_is_zero_padded_to_the_widest_id(cluster: int, k: int, name: str) -> None:
    assert cluster_folder(cluster, k) == name


def test_zip_holds_the_csv_and_every_image_byte_for_byte(pipeline: Pipeline) -> None:
    members = zip_members(zip_of_files(pipeline, K))
    assert members.pop("clusters.csv").decode() == assignments_csv_text(pipeline, K)
    assert members == expected_members(pipeline, K, list(range(N_IMAGES)))


def test_zip_of_some_rows_holds_only_those(pipeline: Pipeline) -> None:
    members = zip_members(zip_of_files(pipeline, K, SOME_ROWS))
    assert members.pop("clusters.csv").decode() == assignments_csv_text(pipeline, K, SOME_ROWS)
    assert members == expected_members(pipeline, K, SOME_ROWS)


def test_zip_stores_images_without_recompressing(pipeline: Pipeline) -> None:
    with zipfile.ZipFile(io.BytesIO(zip_of_files(pipeline, K, SOME_ROWS))) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_zip_keeps_the_sub_folders_of_the_images(tmp_path: Path) -> None:
    data = tmp_path / "d"
    make_demo(data / "a", n=N_IMAGES // 2, seed=0)
    make_demo(data / "b", n=N_IMAGES // 2, seed=1)
    pipeline = Pipeline(data, Settings(cluster_space="pca", k_min=2, k_max=3), tmp_path / "cache")
    pipeline.prepare(with_map=False)
    members = zip_members(zip_of_files(pipeline, 3, [0, N_IMAGES - 1]))
    labels = pipeline.sweep().labels[pipeline.sweep().row(3)]
    assert sorted(members) == sorted(
        ["clusters.csv", f"cluster_{labels[0]}/a/dots_00.png", f"cluster_{labels[-1]}/b/dots_23.png"]
    )


def test_zip_of_a_file_gone_since_preparing_names_it(pipeline: Pipeline) -> None:
    gone = pipeline.image_meta()["paths"][5]
    (pipeline.inventory.root / gone).unlink()
    with pytest.raises(DotmapError, match=rf"Cannot add {re.escape(gone)} to the zip"):
        zip_of_files(pipeline, K)


def test_zip_of_other_rows_does_not_miss_a_gone_file(pipeline: Pipeline) -> None:
    (pipeline.inventory.root / pipeline.image_meta()["paths"][5]).unlink()
    assert len(zip_members(zip_of_files(pipeline, K, [0, 17]))) == 3


def test_zip_reports_progress_to_the_end(pipeline: Pipeline) -> None:
    calls = []
    zip_of_files(pipeline, K, SOME_ROWS, on_progress=lambda *a: calls.append(a))
    assert calls == [(3, 3, "zip")]


def test_zip_of_images_dated_before_1980_holds_them(pipeline: Pipeline) -> None:
    """Files extracted with zeroed dates (mtime 0, 1970) are common; export_folders copies them fine.

    Fails today: zipfile refuses timestamps before 1980 (ValueError) unless ``strict_timestamps=False``.
    """
    paths = pipeline.image_meta()["paths"]
    for i in SOME_ROWS:
        os.utime(pipeline.inventory.root / paths[i], (0, 0))
    members = zip_members(zip_of_files(pipeline, K, SOME_ROWS))
    del members["clusters.csv"]
    assert members == expected_members(pipeline, K, SOME_ROWS)


# ---------------------------------------------------------------- hostile names and outputs


@pytest.fixture
def formula_names(tmp_path: Path) -> Pipeline:
    """A demo folder where some images are named like spreadsheet formulas."""
    data = make_demo(tmp_path / "d", n=24, seed=0)
    for old, new in [
        ("dots_00.png", "=HYPERLINK(1).png"),
        ("dots_01.png", "+1+1.png"),
        ("dots_02.png", "@SUM(A1).png"),
    ]:
        (data / old).rename(data / new)
        (data / "sub").mkdir(exist_ok=True)
    (data / "dots_03.png").rename(data / "sub" / "-2.png")
    prepared = Pipeline(data, Settings(cluster_space="pca", k_max=4), tmp_path / "cache")
    prepared.prepare(with_map=False)
    return prepared


def test_csv_cells_never_start_a_formula_and_still_open_the_file(formula_names: Pipeline, tmp_path: Path) -> None:
    out = export_csv(formula_names, 3, tmp_path / "out.csv")
    _, *rows = read_csv(out)
    paths = [row[0] for row in rows]
    assert {"./=HYPERLINK(1).png", "./+1+1.png", "./@SUM(A1).png", "sub/-2.png"} <= set(paths)
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row[:1])
    for path in paths:
        assert (formula_names.inventory.root / path).is_file()


def test_the_classify_csv_makes_upload_names_inert() -> None:
    from core.outputs.export import predictions_csv_text
    from core.outputs.predict import Prediction

    p = Prediction(
        name="=cmd|' /C calc'!A0.png",
        k=3,
        cluster=1,
        distance=0.5,
        confidence=0.25,
        novelty=0.5,
        unusual=False,
        neighbours=[0],
        neighbour_paths=["@x.png"],
        neighbour_distances=[0.1],
        map_xy=(0.0, 0.0),
        map_layout="pca",
    )
    _, row = list(csv.reader(io.StringIO(predictions_csv_text([p]))))
    assert row[0] == "./=cmd|' /C calc'!A0.png"
    assert row[-1] == "./@x.png"


def test_zip_entry_names_carry_no_backslash(tmp_path: Path) -> None:
    data = make_demo(tmp_path / "d", n=12, seed=0)
    (data / "dots_00.png").rename(data / "..\\..\\outside.png")
    (data / "dots_01.png").rename(data / "a\\b.png")
    (data / "dots_02.png").rename(data / "a_b.png")  # the same entry name once made safe
    pipeline = Pipeline(data, Settings(cluster_space="pca", k_max=3), tmp_path / "cache")
    pipeline.prepare(with_map=False)
    with zipfile.ZipFile(io.BytesIO(zip_of_files(pipeline, 2))) as archive:
        names = archive.namelist()
        stored = sorted(archive.read(name) for name in names if name != "clusters.csv")
    assert not any("\\" in name or ".." in name.split("/") for name in names)
    assert any(name.endswith("/.._.._outside.png") for name in names)
    assert len(names) == len(set(names)) == 13
    assert stored == sorted(p.read_bytes() for p in data.glob("*.png"))


@pytest.mark.parametrize(
    ("csv_name", "folder_name"),
    [("d/out.csv", None), (None, "d/by-cluster"), ("d/sub/new/out.csv", None), ("d", None), (None, "d")],
    ids=["csv in it", "folders in it", "csv in a new sub-folder", "csv is it", "folders is it"],
)
def test_any_output_inside_the_data_folder_is_refused(
    pipeline: Pipeline, tmp_path: Path, csv_name, folder_name
) -> None:
    before = tree_bytes(tmp_path / "d")
    with pytest.raises(DotmapError, match=r"inside the image folder .* only reads"):
        export(
            pipeline,
            K,
            csv_path=None if csv_name is None else tmp_path / csv_name,
            folders=None if folder_name is None else tmp_path / folder_name,
        )
    assert tree_bytes(tmp_path / "d") == before
    assert sorted(p.name for p in (tmp_path / "d").rglob("*") if p.is_dir()) == []


def test_a_link_into_the_data_folder_is_seen(pipeline: Pipeline, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(tmp_path / "d", target_is_directory=True)
    with pytest.raises(DotmapError, match=r"inside the image folder"):
        export_folders(pipeline, K, tmp_path / "alias" / "out")


def test_a_k_outside_the_sweep_creates_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(DotmapError, match=r"k=50 is outside the prepared range"):
        export(pipeline, 50, csv_path=tmp_path / "new.csv", folders=tmp_path / "new")
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.csv").exists()


def test_the_same_name_for_the_csv_and_the_folders_writes_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(DotmapError, match=r"outside the export folder"):
        export(pipeline, K, csv_path=tmp_path / "x", folders=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_failure_half_way_removes_what_the_export_created(pipeline: Pipeline, tmp_path: Path, monkeypatch) -> None:
    import shutil

    copied = []
    real_copy = shutil.copy2

    def copy_then_fail(source, destination):
        if len(copied) == 10:
            raise OSError(28, "No space left on device")
        copied.append(destination)
        return real_copy(source, destination)

    monkeypatch.setattr("core.outputs.export.shutil.copy2", copy_then_fail)
    full = r"The disk holding the export folder .* is full: .*What this export wrote was removed"
    with pytest.raises(DotmapError, match=full):
        export(pipeline, K, csv_path=tmp_path / "new" / "out.csv", folders=tmp_path / "out")
    assert len(copied) == 10
    assert not (tmp_path / "out").exists() and not (tmp_path / "new").exists()
    monkeypatch.undo()
    written = export(pipeline, K, csv_path=tmp_path / "new" / "out.csv", folders=tmp_path / "out")
    assert written == [tmp_path / "new" / "out.csv", tmp_path / "out"]  # the retry is not refused
