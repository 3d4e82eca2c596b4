"""Array sets (.npy, .npz): the same clusters as the folder of their images, their values, names, labels and
every bad array said in words."""

import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.demo import make_demo
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError, NoImagesError
from core.outputs.export import export
from core.outputs.truth import truth_of
from core.reading import arrays, rows
from core.reading.arrays import open_source, scan_array, scan_data
from core.reading.decode import decode_image

FAST = Settings(cluster_space="pca", k_max=6)  # no UMAP: these tests are about the input
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder_and_gray(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, list[str]]:
    """A demo folder of 240 PNGs, and the grey levels of its images (n, 200, 200) uint8 with their paths."""
    folder = make_demo(tmp_path_factory.mktemp("arrays") / "images", n=240, seed=3)
    paths = sorted(p.name for p in folder.glob("*.png"))
    gray = np.stack([np.asarray(Image.open(folder / p).convert("L")) for p in paths])
    return folder, gray, paths


def prepared(data: Path, cache: Path, **options) -> Pipeline:
    pipeline = Pipeline(data, FAST, cache, **options)
    pipeline.prepare(with_map=False)
    return pipeline


def same_results(a: Pipeline, b: Pipeline) -> None:
    assert np.array_equal(a.images().packed, b.images().packed)
    assert np.array_equal(a.features(), b.features())
    assert np.array_equal(a.sweep().labels, b.sweep().labels)
    assert a.sweep().recommended_k == b.sweep().recommended_k
    for x, y in zip(a.cluster_means(), b.cluster_means(), strict=True):
        assert np.array_equal(x, y)


def test_an_array_of_a_folders_images_gives_its_clusters_bit_for_bit(folder_and_gray, tmp_path: Path) -> None:
    folder, gray, paths = folder_and_gray
    np.save(tmp_path / "x.npy", gray)
    (tmp_path / "x.names.txt").write_text("\n".join(paths) + "\n")
    a, b = prepared(folder, tmp_path / "c1"), prepared(tmp_path / "x.npy", tmp_path / "c2")
    same_results(a, b)
    assert b.image_meta()["paths"] == a.image_meta()["paths"]


def test_flat_rows_npz_and_every_dtype_give_the_same_masks(folder_and_gray, tmp_path: Path) -> None:
    _, gray, _ = folder_and_gray
    small = gray[:40]
    base = prepared(_save(tmp_path / "u8.npy", small), tmp_path / "c").images().packed
    variants = {
        "flat.npy": small.reshape(40, -1),
        "f32.npy": small.astype(np.float32) / 255,
        "i64.npy": small.astype(np.int64),
        "bool.npy": small < 128,  # True is ink
    }
    for name, values in variants.items():
        assert np.array_equal(prepared(_save(tmp_path / name, values), tmp_path / "c").images().packed, base), name
    np.savez_compressed(tmp_path / "z.npz", images=small, names=np.array([f"n{i}" for i in range(40)]))
    z = prepared(tmp_path / "z.npz", tmp_path / "c")
    assert np.array_equal(z.images().packed, base)
    assert z.image_meta()["paths"][:2] == ["n0", "n1"]


def _save(path: Path, values: np.ndarray) -> Path:
    np.save(path, values)
    return path


def test_rows_match_decoding_the_same_pixels_as_a_file(rng: np.random.Generator, tmp_path: Path) -> None:
    gray = np.where(rng.random((3, 37, 53)) < 0.05, 0, 255).astype(np.uint8)  # not square, any grid
    for i, image in enumerate(gray):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    masks = rows.masks_of_array(gray, grid=24, polarity="auto")
    for i in range(3):
        assert np.array_equal(masks[i], decode_image(tmp_path / f"{i}.png", 24, "auto"))
    ink = gray < 128  # bool: True is ink, whatever the polarity asked
    assert np.array_equal(rows.masks_of_array(ink, 24, "dark-on-light"), rows.masks_of_array(gray, 24, "dark-on-light"))


def test_square_side_is_inferred_and_another_shape_must_be_given(tmp_path: Path) -> None:
    assert open_source(_save(tmp_path / "sq.npy", np.zeros((4, 36 * 36), np.uint8))).height == 36
    path = _save(tmp_path / "wide.npy", np.zeros((4, 20 * 30), np.uint8))
    with pytest.raises(DotmapError, match=r"not a square image: give the image shape \(--image-shape HxW"):
        open_source(path)
    source = open_source(path, image_shape=(20, 30))
    assert (source.height, source.width) == (20, 30)
    with pytest.raises(DotmapError, match=r"rows of 600 values, not 10x10"):
        open_source(path, image_shape=(10, 10))
    with pytest.raises(DotmapError, match="An image shape is given for arrays"):
        scan_data(tmp_path, image_shape=(20, 30))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: np.save(p, np.zeros((2, 3, 4, 5), np.uint8)), r"shape \(2, 3, 4, 5\); an array of images is"),
        (lambda p: np.save(p, np.array([[1, "a"]], dtype=object), allow_pickle=True), "holds Python objects"),
        (lambda p: np.save(p, np.zeros((3, 4, 4), np.complex64)), "complex64 values; images are bool"),
        (lambda p: np.save(p, np.asfortranarray(np.zeros((3, 4, 5), np.uint8))), "Fortran order"),
        (lambda p: p.write_bytes(b"not an array at all"), "not a readable numpy array"),
        (lambda p: p.write_bytes(_npy_bytes(np.zeros((50, 8, 8), np.uint8))[:-100]), "truncated"),
        (lambda p: np.save(p, np.zeros((2, 9000, 2), np.uint8)), r"images of 9000x2 pixels; a side should be"),
    ],
    ids=["4-d", "objects", "complex", "fortran", "not-npy", "truncated", "huge-side"],
)
def test_a_bad_npy_is_said_in_words(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(DotmapError, match=message):
        scan_array(path)
    assert path.exists()  # the user's file is only read


def _npy_bytes(values: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    np.save(out, values)
    return out.getvalue()


def test_a_bad_npz_is_said_in_words(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 4, 4)), b=np.zeros((2, 4, 4)))
    with pytest.raises(DotmapError, match=r"holds the arrays \['a', 'b'\]; name the images 'images'"):
        scan_array(tmp_path / "two.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DotmapError, match=r"not a readable \.npz file"):
        scan_array(tmp_path / "broken.npz")
    with pytest.raises(NoImagesError, match="does not exist"):
        scan_array(tmp_path / "missing.npy")
    os.mkfifo(tmp_path / "pipe.npy")
    with pytest.raises(DotmapError, match="not a regular file"):
        scan_data(tmp_path / "pipe.npy")  # refused at once, not a read that never ends


def test_rows_with_nan_or_values_out_of_range_are_named_and_skipped(tmp_path: Path) -> None:
    values = np.ones((6, 16, 16), np.float32)
    values[:, 4:8, 4:8] = 0
    values[1, 0, 0] = np.nan
    values[3] *= 255  # 0..255 floats
    block = rows.gray_of(values)[1]
    assert block[0] == (1, "holds NaN or infinite values")
    assert block[1][0] == 3 and "values from 0 to 255: floats should be 0..1" in block[1][1]
    ints = np.full((2, 4, 4), 300, np.int32)
    assert "integers should be 0..255" in rows.gray_of(ints)[1][0][1]
    path = _save(tmp_path / "x.npy", values)
    meta = Pipeline(path, FAST, tmp_path / "c").image_meta()
    assert [name for name, _ in meta["skipped"]] == ["row_1", "row_3"]
    assert meta["skipped"][0][1] == "row 1: holds NaN or infinite values"
    assert len(meta["paths"]) == 4


def test_names_and_labels_beside_an_npy_and_inside_an_npz(tmp_path: Path) -> None:
    values = np.full((6, 8, 8), 255, np.uint8)
    path = _save(tmp_path / "x.npy", values)
    assert [e.path for e in scan_array(path).files] == [f"row_{i}" for i in range(6)]
    (tmp_path / "x.names.txt").write_text("a\nb\nc\nd\ne\nf\n")
    (tmp_path / "x.labels.txt").write_text("1\n1\n2\n\n2\n1\n")
    inventory = scan_array(path)
    assert [e.path for e in inventory.files] == list("abcdef")
    assert arrays.labels_of(inventory.array) == ["1", "1", "2", "", "2", "1"]
    np.savez(tmp_path / "z.npz", images=values, labels=np.arange(6) % 2)
    z = scan_array(tmp_path / "z.npz")
    assert arrays.labels_of(z.array) == ["0", "1", "0", "1", "0", "1"] and z.labels_path == tmp_path / "z.npz"


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("a\nb\n", "has 2 names for 3 images"),
        ("a\nb\na\n", "rows 0 and 2 have the same name 'a'"),
        ("a\n \nc\n", "the name of row 1 is empty"),
    ],
)
def test_bad_names_are_said_in_words(tmp_path: Path, names: str, message: str) -> None:
    path = _save(tmp_path / "x.npy", np.zeros((3, 8, 8), np.uint8))
    (tmp_path / "x.names.txt").write_text(names)
    with pytest.raises(DotmapError, match=message):
        scan_array(path)


def test_labels_score_the_clusters_and_a_wrong_count_is_said(folder_and_gray, tmp_path: Path) -> None:
    _, gray, _ = folder_and_gray
    path = _save(tmp_path / "x.npy", gray[:60])
    (tmp_path / "x.labels.txt").write_text("".join(f"{i % 3}\n" for i in range(60)))
    truth = truth_of(prepared(path, tmp_path / "c"))
    assert truth is not None and truth.known == 60 and truth.names == ["0", "1", "2"]
    (tmp_path / "x.labels.txt").write_text("1\n2\n")
    with pytest.raises(DotmapError, match="has 2 labels for 60 images"):
        truth_of(Pipeline(path, FAST, tmp_path / "c"))


def test_an_array_set_exports_rows_and_names_not_files(folder_and_gray, tmp_path: Path) -> None:
    _, gray, _ = folder_and_gray
    values = gray[:50].astype(np.float32) / 255
    values[2, 0, 0] = np.nan  # skipped: the rows after it keep their own row numbers
    pipeline = prepared(_save(tmp_path / "x.npy", values), tmp_path / "c")
    (csv_path,) = export(pipeline, 3, csv_path=tmp_path / "out.csv")
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "row,name,cluster,distance,silhouette"
    assert [line.split(",")[:2] for line in lines[2:4]] == [["1", "row_01"], ["3", "row_03"]]
    with pytest.raises(DotmapError, match="its images are rows, not files"):
        export(pipeline, 3, folders=tmp_path / "folders")
    assert not (tmp_path / "folders").exists()


def test_reading_an_array_holds_a_block_not_the_array(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.full((3000, 64, 64), 255, np.uint8)  # 12 MB
    values[:, 30:34, 30:34] = 0
    inventory = scan_array(_save(tmp_path / "x.npy", values))
    del values
    monkeypatch.setenv("DOTMAP_BLOCK_MB", "1")
    tracemalloc.start()
    read = rows.stream_array(inventory, tmp_path / "packed.npy", grid=64, workers=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(read.paths) == 3000
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MB traced while reading a 12 MB array"


def test_cli_prepares_exports_and_predicts_an_array(folder_and_gray, tmp_path: Path) -> None:
    _, gray, _ = folder_and_gray
    path = _save(tmp_path / "x.npy", gray[:60].reshape(60, -1))
    common = ["--cache", str(tmp_path / "c"), "--cluster-space", "pca", "--k-max", "5", "--quiet"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=ROOT)

    assert run("prepare", str(path), "--no-map", *common).returncode == 0
    done = run("export", str(path), *common, "--csv", str(tmp_path / "a.csv"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.csv").read_text().startswith("row,name,cluster")
    refused = run("export", str(path), *common, "--folders", str(tmp_path / "f"))
    assert refused.returncode == 1 and "its images are rows, not files" in refused.stderr
    new = _save(tmp_path / "new.npy", gray[:2])
    predicted = run("predict", str(path), str(new), *common)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.count("cluster") == 2 and f"{new}: row_0" in predicted.stdout
    bad = run("prepare", str(path), "--image-shape", "20x", *common)
    assert bad.returncode == 2 and "should be HEIGHTxWIDTH" in bad.stderr


def test_an_npz_member_is_read_in_order_in_one_pass(folder_and_gray, tmp_path: Path) -> None:
    _, gray, _ = folder_and_gray
    np.savez_compressed(tmp_path / "z.npz", images=gray[:30])
    with zipfile.ZipFile(tmp_path / "z.npz") as archive:
        assert archive.getinfo("images.npy").compress_type == zipfile.ZIP_DEFLATED
    masks, kept = rows.sample_masks(open_source(tmp_path / "z.npz"), [25, 3, 10], 200, "auto")
    assert kept == [3, 10, 25]
    assert np.array_equal(masks, rows.masks_of_array(gray[[3, 10, 25]], 200, "auto"))
