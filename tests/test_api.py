"""The Python API (core.api): prepare a folder, an array file or an array in memory, and read the results;
the README's example runs as written."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.api import keep_array, prepare
from core.demo import make_demo
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError

FAST = {"cluster_space": "pca", "k_max": 6}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A demo folder of 200 PNGs and the grey levels of its images (n, 200, 200) uint8, in path order."""
    folder = make_demo(tmp_path_factory.mktemp("api") / "images", n=200, seed=6)
    paths = sorted(folder.glob("*.png"))
    return folder, np.stack([np.asarray(Image.open(p).convert("L")) for p in paths])


def test_an_array_in_memory_gives_the_clusters_of_its_folder(demo_set, tmp_path: Path) -> None:
    folder, gray = demo_set
    from_folder = prepare(folder, cache=tmp_path / "c", with_map=False, progress=False, **FAST)
    from_memory = prepare(gray, cache=tmp_path / "c", with_map=False, progress=False, **FAST)
    assert np.array_equal(from_folder.labels(4), from_memory.labels(4))
    assert from_folder.recommended_k == from_memory.recommended_k
    assert from_memory.data.parent == tmp_path / "c" / "arrays" and from_memory.data.suffix == ".npy"
    assert from_memory.names[:2] == ["row_000", "row_001"] and from_memory.rows[:3].tolist() == [0, 1, 2]
    assert from_folder.rows is None


def test_an_array_is_kept_once_by_its_content(demo_set, tmp_path: Path) -> None:
    _, gray = demo_set
    path = keep_array(gray[:10], tmp_path)
    stamp = path.stat().st_mtime_ns
    assert keep_array(gray[:10].copy(), tmp_path) == path and path.stat().st_mtime_ns == stamp
    assert keep_array(gray[1:11], tmp_path) != path
    named = keep_array(gray[:10], tmp_path, names=[f"n{i}" for i in range(10)])
    assert named != path and named.with_name(f"{named.stem}.names.txt").read_text().startswith("n0\nn1\n")
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_result_reads_like_the_dashboard(demo_set, tmp_path: Path) -> None:
    _, gray = demo_set
    seen: list[str] = []
    labels = [i % 3 for i in range(len(gray))]
    on_progress = lambda done, total, stage: seen.append(stage)  # noqa: E731
    result = prepare(gray, labels=labels, cache=tmp_path, with_map=False, progress=on_progress, **FAST)
    pipeline = Pipeline(result.data, Settings(**FAST), tmp_path)
    assert {"read", "features", "clustering"} <= set(seen)
    scores = result.scores
    assert list(scores.index) == result.ks == list(range(2, 7))
    assert scores.loc[result.recommended_k, "recommended"] and scores["recommended"].sum() == 1
    assert {"silhouette", "stability", "ari", "nmi"} <= set(scores.columns)
    assert np.array_equal(result.labels(), pipeline.sweep().labels[pipeline.sweep().row(result.recommended_k)])
    assert result.typical_shapes(5).shape[0] == 5
    with pytest.raises(DotmapError, match=r"k=9 was not prepared; the k range is 2\.\.6"):
        result.labels(9)


def test_a_labels_file_that_cannot_be_read_is_a_warning_and_the_scores_go_on(demo_set, tmp_path: Path) -> None:
    folder, _ = demo_set
    copy = tmp_path / "images"
    copy.mkdir()
    for path in sorted(folder.glob("*.png"))[:60]:
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "labels.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff binary")
    result = prepare(copy, cache=tmp_path / "c", with_map=False, progress=False, **FAST)
    with pytest.warns(UserWarning, match=r"labels\.csv.*The agreement scores \(ARI, NMI\) are left out"):
        scores = result.scores
    assert "silhouette" in scores.columns and "ari" not in scores.columns
    assert (copy / "labels.csv").read_bytes().startswith(b"\x89PNG")


def test_predict_takes_arrays_files_and_array_files(demo_set, tmp_path: Path) -> None:
    folder, gray = demo_set
    result = prepare(folder, cache=tmp_path, with_map=False, progress=False, **FAST)
    from_array = result.predict(gray[:3])
    from_files = result.predict(sorted(folder.glob("*.png"))[:3])
    np.save(tmp_path / "new.npy", gray[:3].reshape(3, -1))
    from_npy = result.predict(tmp_path / "new.npy")
    for other in (from_files, from_npy):
        assert other["cluster"].tolist() == from_array["cluster"].tolist()
    assert from_array["cluster"].tolist() == result.labels()[:3].tolist()
    assert list(from_array.columns) == ["name", "cluster", "confidence", "unusual", "distance", "novelty", "nearest"]
    assert len(result.predict(gray[0])) == 1  # one (h, w) image
    bad = gray[:2].astype(np.float32)  # 0..255 floats
    with pytest.raises(DotmapError, match=r"image 0 values from 0 to 255: floats should be 0\.\.1"):
        result.predict(bad)


def test_wrong_arguments_are_said_in_words(demo_set, tmp_path: Path) -> None:
    folder, gray = demo_set
    with pytest.raises(DotmapError, match="the settings are features, components"):
        prepare(gray, cache=tmp_path, colour="red")
    with pytest.raises(DotmapError, match="3 names for 200 images"):
        prepare(gray, cache=tmp_path, names=["a", "b", "c"])
    with pytest.raises(DotmapError, match="names and labels are for an array in memory"):
        prepare(folder, cache=tmp_path, labels=[1])
    with pytest.raises(DotmapError, match="images are"):
        prepare(np.zeros(5), cache=tmp_path)


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Your own array, and Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(
    demo_set, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _, gray = demo_set
    np.save(tmp_path / "images.npy", gray.reshape(len(gray), -1))  # a user's flattened images
    np.save(tmp_path / "new.npy", gray[:4])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOTMAP_CACHE", str(tmp_path / "cache"))
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "silhouette" in out and "confidence" in out
    assert (tmp_path / "clusters.csv").read_text().startswith("row,name,cluster,distance,silhouette\n")
    assert list((tmp_path / "cache").glob("map-*"))  # the map too: the dashboard opens it at once
