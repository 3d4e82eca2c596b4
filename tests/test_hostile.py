"""Hostile and unlucky inputs: each is reported in words, the good images are clustered, the folder is untouched."""

import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from core.cli.commands import main
from core.demo import make_demo
from core.engine.cache import FORMAT_VERSION, MANIFEST, Cache
from core.engine.pipeline import Pipeline, Settings
from core.reading.decode import decode_image
from core.reading.folders import scan_folder

REPO = Path(__file__).resolve().parents[1]
SEED = 0
GRID = 32  # the good images are drawn on the working grid, so a decoded mask is the drawn one
K_MAX = 3
N_GOOD = 12
DOT_SHARE = 0.1
SETTINGS = Settings(cluster_space="pca", k_max=K_MAX, grid=GRID)
N_MANY = 600  # enough for a prepare that runs a few seconds, read by a pool of workers
GRID_MANY = 64
SETTINGS_MANY = Settings(cluster_space="pca", k_max=K_MAX, grid=GRID_MANY)
RUN_TIMEOUT_S = 120
POLL_S = 0.005

NOT_AN_IMAGE = "not a PNG, JPEG, BMP, TIFF or GIF image"
DAMAGED = "damaged or truncated image"
BOMB = "a possible decompression bomb"


# ---------------------------------------------------------------- helpers


def sha256_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry below ``folder`` (the folder itself as "."): type, size, mtime_ns, and the sha256
    of a regular file or the target of a link. Links are recorded as links, never followed."""
    entries = {}

    def record(path: str) -> None:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            kind, content = "link", os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            kind, content = "file", sha256_of(path)
        elif stat.S_ISDIR(st.st_mode):
            kind, content = "dir", None
        else:
            kind, content = "other", None
        entries[os.path.relpath(path, folder)] = (kind, st.st_size, st.st_mtime_ns, content)

    record(str(folder))
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            record(os.path.join(parent, name))
    return entries


def gray_of(mask: np.ndarray) -> np.ndarray:
    """Black ink on white ground: (h, w) bool -> (h, w) uint8."""
    return np.where(mask, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def good_masks(n: int = N_GOOD, seed: int = SEED) -> np.ndarray:
    """``n`` distinct random dot masks of shape (n, GRID, GRID), bool."""
    return np.random.default_rng(seed).random((n, GRID, GRID)) < DOT_SHARE


def write_good_images(folder: Path, n: int = N_GOOD) -> list[str]:
    """``n`` distinct dot PNGs in ``folder``; returns their names, sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"good{i:02d}.png" for i in range(n)]
    for name, mask in zip(names, good_masks(n), strict=True):
        Image.fromarray(gray_of(mask)).save(folder / name)
    return names


def settings_args(folder: Path, cache: Path, grid: int = GRID) -> list[str]:
    """The data folder, its cache, and settings that never run UMAP, for any command."""
    fast = f"--cluster-space pca --k-max {K_MAX} --grid {grid} --quiet".split()
    return [str(folder), "--cache", str(cache), *fast]


def prepare_args(folder: Path, cache: Path, grid: int = GRID) -> list[str]:
    return ["prepare", *settings_args(folder, cache, grid), "--no-map"]


def image_meta(folder: Path, cache: Path) -> dict:
    """What the last run recorded: the paths read and the (path, reason) of every file skipped."""
    meta = Pipeline(folder, SETTINGS, cache).image_meta()
    return {"paths": meta["paths"], "skipped": [tuple(x) for x in meta["skipped"]]}


def manifests(cache: Path) -> dict[str, dict]:
    """Every entry of a cache by name, as its manifest (checksums of its arrays and its metadata)."""
    return {
        entry.name: json.loads((entry / MANIFEST).read_text())
        for entry in sorted(cache.iterdir())
        if not entry.name.startswith(".")
    }


def entries_of(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) if cache.exists() else []


def report_json(folder: Path, cache: Path, capsys: pytest.CaptureFixture, grid: int = GRID) -> tuple[dict, str]:
    """``report --json`` as data, and what it said on stderr."""
    assert main(["report", *settings_args(folder, cache, grid), "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def run_module(*argv: str) -> subprocess.Popen:
    """``python -m core ARGV`` in its own process, as a user starts it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "core", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(POLL_S)


# ---------------------------------------------------------------- image kinds that must be read

DRAWN = np.zeros((GRID, GRID), bool)  # blocks survive JPEG: every kind must give exactly these
DRAWN[4:12, 4:12] = True
DRAWN[20:28, 16:30] = True
DRAWN[14:17, 2:30] = True
SECOND = np.zeros((GRID, GRID), bool)  # a later frame or page, which must not be read
SECOND[2:30, 24:28] = True


def png_16bit() -> bytes:
    # values a cast to 8 bits would wrap or clip: ink 8000/65535 is dark, ground 60000/65535 light
    return encode(Image.fromarray(np.where(DRAWN, 8000, 60000).astype(np.uint16)), "PNG")


def png_rgba_transparent() -> bytes:
    # the ground is transparent *black*: only the alpha says it is ground
    rgba = np.zeros((GRID, GRID, 4), np.uint8)
    rgba[DRAWN, 3] = 255
    return encode(Image.fromarray(rgba), "PNG")


def png_palette() -> bytes:
    image = Image.new("P", (GRID, GRID))
    image.putpalette([255, 255, 255, 120, 0, 0])  # index 0 white ground, index 1 dark red ink
    image.putdata(DRAWN.astype(np.uint8).ravel().tolist())
    return encode(image, "PNG")


def jpeg_cmyk() -> bytes:
    return encode(Image.fromarray(gray_of(DRAWN)).convert("CMYK"), "JPEG", quality=95)


def png_1bit() -> bytes:
    return encode(Image.fromarray(gray_of(DRAWN)).convert("1", dither=Image.Dither.NONE), "PNG")


def gif_animated() -> bytes:
    first, second = (Image.fromarray(gray_of(m)).convert("P") for m in (DRAWN, SECOND))
    return encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def tiff_multipage() -> bytes:
    first, second = (Image.fromarray(gray_of(m)) for m in (DRAWN, SECOND))
    return encode(first, "TIFF", save_all=True, append_images=[second])


def bmp_rgb() -> bytes:
    return encode(Image.fromarray(gray_of(DRAWN)).convert("RGB"), "BMP")


def tiff_gray() -> bytes:
    return encode(Image.fromarray(gray_of(DRAWN)), "TIFF")


def png_la() -> bytes:
    la = np.zeros((GRID, GRID, 2), np.uint8)  # transparent black ground, opaque black ink
    la[DRAWN, 1] = 255
    return encode(Image.fromarray(la), "PNG")


def jpeg_gray() -> bytes:
    return encode(Image.fromarray(gray_of(DRAWN)), "JPEG", quality=95)


def jpeg_exif_rotated() -> bytes:
    # stored turned a quarter, with the EXIF orientation (6: turn 90 degrees clockwise) to show it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(gray_of(DRAWN)).transpose(Image.Transpose.ROTATE_90)
    return encode(stored, "JPEG", quality=95, exif=exif)


# name, bytes, format and mode Pillow opens it as, frames
READABLE = [
    pytest.param("deep.png", png_16bit, "PNG", "I;16", 1, id="png-16-bit"),
    pytest.param("clear.png", png_rgba_transparent, "PNG", "RGBA", 1, id="png-rgba-transparent"),
    pytest.param("palette.png", png_palette, "PNG", "P", 1, id="png-palette"),
    pytest.param("print.jpg", jpeg_cmyk, "JPEG", "CMYK", 1, id="jpeg-cmyk"),
    pytest.param("bits.png", png_1bit, "PNG", "1", 1, id="png-1-bit"),
    pytest.param("moving.gif", gif_animated, "GIF", "P", 2, id="gif-animated"),
    pytest.param("pages.tif", tiff_multipage, "TIFF", "L", 2, id="tiff-multipage"),
    pytest.param("old.bmp", bmp_rgb, "BMP", "RGB", 1, id="bmp"),
    pytest.param("scan.tiff", tiff_gray, "TIFF", "L", 1, id="tiff"),
    pytest.param("gray-alpha.png", png_la, "PNG", "LA", 1, id="png-la"),
    pytest.param("gray.jpeg", jpeg_gray, "JPEG", "L", 1, id="jpeg-gray"),
    pytest.param("turned.jpg", jpeg_exif_rotated, "JPEG", "L", 1, id="jpeg-exif-rotated"),
    pytest.param("lying.png", jpeg_gray, "JPEG", "L", 1, id="jpeg-named-png"),
    pytest.param("no-extension", png_1bit, "PNG", "1", 1, id="png-without-extension"),
]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A folder of N_GOOD distinct dot images, to which a test adds its hostile file."""
    folder = tmp_path / "data"
    write_good_images(folder)
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.mark.parametrize(("name", "make", "fmt", "mode", "frames"), READABLE)
def test_image_kind_is_read_with_its_drawn_ink(
    good: Path, cache: Path, capsys: pytest.CaptureFixture, name: str, make, fmt: str, mode: str, frames: int
) -> None:
    (good / name).write_bytes(make())
    with Image.open(good / name) as image:  # the file is of the kind the case names
        assert (image.format, image.mode, getattr(image, "n_frames", 1)) == (fmt, mode, frames)
    before = snapshot(good)

    assert main(prepare_args(good, cache)) == 0

    captured = capsys.readouterr()
    assert f"{N_GOOD + 1} images ready" in captured.out
    assert "skipped" not in captured.err
    meta = image_meta(good, cache)
    assert meta["skipped"] == []
    assert name in meta["paths"] and len(meta["paths"]) == N_GOOD + 1
    np.testing.assert_array_equal(decode_image(good / name, grid=GRID), DRAWN)
    assert snapshot(good) == before


# ---------------------------------------------------------------- files that must be skipped


def noisy_png(size: int = 48) -> bytes:
    """Scattered dots: compresses badly, so a cut falls inside the pixel data."""
    mask = np.random.default_rng(SEED + 1).random((size, size)) < 0.3
    return encode(Image.fromarray(gray_of(mask)), "PNG")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_black_rows(width: int, height: int) -> bytes:
    """A real, whole 1-bit PNG of width x height black pixels: a few kB that decode to a huge image."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte, then the packed row
    deflate = zlib.compressobj(9)
    data = b"".join(deflate.compress(row * 1000) for _ in range(height // 1000))
    data += deflate.compress(row * (height % 1000)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def chunk_crc_offset(png: bytes, kind: bytes) -> int:
    at = png.index(kind)
    (length,) = struct.unpack(">I", png[at - 4 : at])
    return at + 4 + length


def with_bad_crc(kind: bytes) -> Callable[[], bytes]:
    def make() -> bytes:
        data = bytearray(noisy_png())
        data[chunk_crc_offset(bytes(data), kind)] ^= 0xFF  # the chunk's data is whole, its checksum wrong
        return bytes(data)

    return make


def webp() -> bytes:
    if not features.check("webp"):
        pytest.skip("this Pillow cannot write WebP")
    return encode(Image.fromarray(gray_of(DRAWN)), "WEBP", lossless=True)


def first_half(make: Callable[[], bytes]) -> Callable[[], bytes]:
    def cut() -> bytes:
        data = make()
        return data[: len(data) // 2]

    return cut


def noisy_jpeg() -> bytes:
    mask = np.random.default_rng(SEED + 2).random((64, 64)) < 0.3
    return encode(Image.fromarray(gray_of(mask)), "JPEG", quality=90)


# name, bytes, a stable part of the reason (from core/reading/images.py)
SKIPPED = [
    pytest.param("empty.png", lambda: b"", "the file is empty (0 bytes)", id="empty-file"),
    pytest.param("words.png", lambda: b"only some words, not an image\n" * 4, NOT_AN_IMAGE, id="text-named-png"),
    pytest.param(
        "paper.pdf", lambda: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", NOT_AN_IMAGE, id="pdf"
    ),
    pytest.param("photo.webp", webp, NOT_AN_IMAGE, id="webp-not-accepted"),
    pytest.param("cut.png", first_half(noisy_png), DAMAGED, id="truncated-png"),
    pytest.param("cut.jpg", first_half(noisy_jpeg), DAMAGED, id="truncated-jpeg"),
    pytest.param("crc.png", with_bad_crc(b"IDAT"), DAMAGED, id="png-bad-crc-in-data"),
    # Pillow refuses to identify a PNG with a bad IHDR checksum: its signature tells it is a damaged PNG
    pytest.param(
        "header-crc.png",
        with_bad_crc(b"IHDR"),
        "damaged or truncated image (its PNG header cannot be read)",
        id="png-bad-crc-in-header",
    ),
    pytest.param("bomb.png", lambda: png_of_black_rows(20_000, 20_000), BOMB, id="bomb-400-megapixels"),
    pytest.param(
        "bomb-small.png",
        lambda: png_of_black_rows(7_000, 6_000),
        "over the limit of 40,000,000",
        id="bomb-42-megapixels",
    ),
]


@pytest.mark.parametrize(("name", "make", "reason"), SKIPPED)
def test_unusable_file_is_skipped_with_its_reason(
    good: Path, cache: Path, capsys: pytest.CaptureFixture, name: str, make, reason: str
) -> None:
    (good / name).write_bytes(make())
    before = snapshot(good)

    assert main(prepare_args(good, cache)) == 0

    err = capsys.readouterr().err
    assert "skipped 1 file(s) that are not usable images:" in err
    assert f"  {name}: " in err and reason in err
    meta = image_meta(good, cache)
    assert len(meta["skipped"]) == 1
    skipped_path, skipped_reason = meta["skipped"][0]
    assert skipped_path == name and reason in skipped_reason, skipped_reason
    assert meta["paths"] == sorted(p.name for p in good.iterdir() if p.name != name)
    assert snapshot(good) == before


def test_folder_named_like_an_image_is_searched_not_read(good: Path, cache: Path) -> None:
    (good / "x.png").mkdir()
    Image.fromarray(gray_of(DRAWN)).save(good / "x.png" / "inner.png")
    (good / "hollow.jpg").mkdir()  # an empty folder: nothing to read, nothing to report
    before = snapshot(good)

    assert main(prepare_args(good, cache)) == 0

    meta = image_meta(good, cache)
    assert meta["skipped"] == []
    assert "x.png/inner.png" in meta["paths"] and len(meta["paths"]) == N_GOOD + 1
    assert snapshot(good) == before


def vanish(path: Path) -> None:
    path.unlink()


def become_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def become_empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(vanish, "the file does not exist (or disappeared while reading)", id="removed"),
        pytest.param(become_folder, "it is a folder, not a file", id="replaced-by-a-folder"),
        pytest.param(become_empty, "the file is empty (0 bytes)", id="emptied"),
    ],
)
def test_file_changed_between_scan_and_read_is_skipped(good: Path, cache: Path, change, reason: str) -> None:
    inventory = scan_folder(good)
    victim = "good05.png"
    change(good / victim)
    before = snapshot(good)

    pipeline = Pipeline(good, SETTINGS, cache, inventory=inventory)
    pipeline.prepare(with_map=False)

    assert [tuple(x) for x in pipeline.image_meta()["skipped"]] == [(victim, reason)]
    assert pipeline.image_meta()["paths"] == [f"good{i:02d}.png" for i in range(N_GOOD) if i != 5]
    assert snapshot(good) == before


def test_link_to_an_image_outside_is_read_and_left_a_link(good: Path, cache: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.png"
    Image.fromarray(gray_of(DRAWN)).save(outside)
    (good / "linked.png").symlink_to(outside)
    before = snapshot(good)

    assert main(prepare_args(good, cache)) == 0

    meta = image_meta(good, cache)
    assert meta["skipped"] == []
    assert "linked.png" in meta["paths"] and len(meta["paths"]) == N_GOOD + 1
    assert snapshot(good) == before
    assert before["linked.png"][0] == "link"


# ---------------------------------------------------------------- folders


def test_empty_folder_is_an_error_in_words(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    before = snapshot(folder)

    assert main(prepare_args(folder, cache)) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: The folder {folder} holds no files.\n"
    assert entries_of(cache) == []  # nothing is clustered, nothing is cached
    assert snapshot(folder) == before


def test_folder_of_one_image_is_refused(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "one"
    write_good_images(folder, n=1)
    before = snapshot(folder)

    assert main(prepare_args(folder, cache)) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"error: Only one readable image in {folder}; clustering needs several.")
    assert "Traceback" not in err
    assert image_meta(folder, cache) == {"paths": ["good00.png"], "skipped": []}
    assert snapshot(folder) == before


def test_folder_of_identical_images_has_no_structure(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "same"
    folder.mkdir()
    one = Image.fromarray(gray_of(DRAWN))
    names = [f"copy{i:02d}.png" for i in range(N_GOOD)]
    for name in names:
        one.save(folder / name)
    before = snapshot(folder)

    assert main(prepare_args(folder, cache)) == 1

    err = capsys.readouterr().err
    assert f"error: All {N_GOOD} images are identical: there is no structure to cluster" in err
    assert "Traceback" not in err
    assert image_meta(folder, cache) == {"paths": names, "skipped": []}
    assert snapshot(folder) == before


def test_folder_without_images_names_what_it_skipped(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "notes.txt").write_text("a shopping list\n")
    (folder / "table.csv").write_text("a,b\n1,2\n")
    (folder / "empty.png").write_bytes(b"")
    before = snapshot(folder)

    assert main(prepare_args(folder, cache)) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"error: No readable images in {folder}.")
    assert "3 file(s) skipped" in err and "empty.png: the file is empty (0 bytes)" in err
    assert "Traceback" not in err
    meta = image_meta(folder, cache)
    assert meta["paths"] == []
    assert meta["skipped"] == [
        ("empty.png", "the file is empty (0 bytes)"),
        ("notes.txt", NOT_AN_IMAGE),
        ("table.csv", NOT_AN_IMAGE),
    ]
    assert snapshot(folder) == before


def test_nested_folders_are_all_read(tmp_path: Path, cache: Path) -> None:
    folder = tmp_path / "tree"
    names = write_good_images(folder, n=N_GOOD)
    for i, name in enumerate(names[:6]):  # spread half of them over three levels
        sub = folder / ("a" if i < 2 else "a/b" if i < 4 else "a/b/c")
        sub.mkdir(parents=True, exist_ok=True)
        (folder / name).rename(sub / name)
    before = snapshot(folder)

    assert main(prepare_args(folder, cache)) == 0

    meta = image_meta(folder, cache)
    assert meta["skipped"] == []
    assert meta["paths"] == [
        "a/b/c/good04.png",
        "a/b/c/good05.png",
        "a/b/good02.png",
        "a/b/good03.png",
        "a/good00.png",
        "a/good01.png",
        *names[6:],
    ]
    assert snapshot(folder) == before


def test_labels_file_is_not_counted_as_an_image(good: Path, cache: Path, capsys: pytest.CaptureFixture) -> None:
    rows = "".join(f"good{i:02d}.png,{'odd' if i % 2 else 'even'}\n" for i in range(N_GOOD))
    (good / "labels.csv").write_text("filename,label\n" + rows)
    before = snapshot(good)

    assert main(prepare_args(good, cache)) == 0

    captured = capsys.readouterr()
    assert f"{N_GOOD} images ready" in captured.out and "skipped" not in captured.err
    meta = image_meta(good, cache)
    assert meta["skipped"] == []
    assert meta["paths"] == [f"good{i:02d}.png" for i in range(N_GOOD)]
    assert snapshot(good) == before


ODD_NAMES = [
    pytest.param("n" * 251 + ".png", id="255-bytes"),
    pytest.param("日" * 83 + ".png", id="255-bytes-of-unicode"),  # 3 bytes each: 249 + 4
    pytest.param("with some spaces .png", id="spaces"),
    pytest.param("café.png", id="accent-nfc"),
    pytest.param("cafe\u0301.png", id="accent-nfd"),
    pytest.param("日本.png", id="japanese"),
    pytest.param("-x.png", id="leading-dash"),
    pytest.param("--help.png", id="looks-like-an-option"),
    pytest.param("=1+1.png", id="leading-equals"),
    pytest.param("+x.png", id="leading-plus"),
    pytest.param("@x.png", id="leading-at"),
    pytest.param(".hidden.png", id="hidden"),
    pytest.param("a'b\"c;$(x).png", id="quotes-and-shell"),
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_file_name_is_read(good: Path, cache: Path, name: str) -> None:
    Image.fromarray(gray_of(DRAWN)).save(good / name, "PNG")
    before = snapshot(good)

    assert main(prepare_args(good, cache)) == 0

    meta = image_meta(good, cache)
    assert meta["skipped"] == []
    assert name in meta["paths"] and len(meta["paths"]) == N_GOOD + 1
    assert snapshot(good) == before


# ---------------------------------------------------------------- many images: races and kills


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("many") / "images", n=N_MANY, seed=SEED)


@pytest.fixture(scope="module")
def clean_many(many: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache of one uninterrupted prepare of ``many``, in a fresh cache folder."""
    cache = tmp_path_factory.mktemp("clean-cache")
    Pipeline(many, SETTINGS_MANY, cache).prepare(with_map=False)
    return cache


@pytest.mark.slow
def test_two_prepares_at_once_both_succeed_with_one_result(many: Path, clean_many: Path, tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    before = snapshot(many)

    runs = [run_module(*prepare_args(many, cache, GRID_MANY)) for _ in range(2)]
    outputs = [run.communicate(timeout=RUN_TIMEOUT_S) for run in runs]

    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert f"{N_MANY} images ready" in out
        assert "Traceback" not in err
    assert manifests(cache) == manifests(clean_many)
    assert list(cache.glob(".tmp-*")) == []
    assert snapshot(many) == before


def lock_taken(stage: str) -> Callable[[Path], bool]:
    return lambda cache: any((cache / ".locks").glob(f"{stage}-*.lock"))


def entry_written(stage: str) -> Callable[[Path], bool]:
    return lambda cache: any(cache.glob(f"{stage}-*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(lock_taken("images"), id="while-reading"),
        pytest.param(entry_written("images"), id="after-reading"),
        pytest.param(entry_written("features"), id="during-pca"),
    ],
)
def test_prepare_killed_midway_is_finished_by_the_next_run(
    many: Path, clean_many: Path, tmp_path: Path, capsys: pytest.CaptureFixture, moment
) -> None:
    cache = tmp_path / "cache"
    before = snapshot(many)
    killed = run_module(*prepare_args(many, cache, GRID_MANY))
    wait_until(lambda: moment(cache) or killed.poll() is not None, RUN_TIMEOUT_S, "the moment to kill")
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=RUN_TIMEOUT_S)
    assert killed.returncode == -signal.SIGKILL, "prepare ended before it could be killed"

    rerun = run_module(*prepare_args(many, cache, GRID_MANY))
    out, err = rerun.communicate(timeout=RUN_TIMEOUT_S)

    assert rerun.returncode == 0, err
    assert f"{N_MANY} images ready" in out and "Traceback" not in err
    assert manifests(cache) == manifests(clean_many)
    assert list(cache.glob(".tmp-*")) == []  # a half-written entry of the killed run is gone
    assert report_json(many, cache, capsys, GRID_MANY)[0] == report_json(many, clean_many, capsys, GRID_MANY)[0]
    np.testing.assert_array_equal(
        Pipeline(many, SETTINGS_MANY, cache).sweep().labels, Pipeline(many, SETTINGS_MANY, clean_many).sweep().labels
    )
    assert snapshot(many) == before


# ---------------------------------------------------------------- a damaged cache


def npy_of(entry: Path) -> Path:
    return sorted(entry.glob("*.npy"))[0]


def truncate_npy(entry: Path) -> None:
    npy = npy_of(entry)
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])


def flip_npy_byte(entry: Path) -> None:
    npy = npy_of(entry)
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF  # same size: only the checksum can tell
    npy.write_bytes(bytes(data))


def delete_npy(entry: Path) -> None:
    npy_of(entry).unlink()


def delete_manifest(entry: Path) -> None:
    (entry / MANIFEST).unlink()


def garbage_manifest(entry: Path) -> None:
    (entry / MANIFEST).write_bytes(b"\x00\xffnot json{{{")


def wrong_format_version(entry: Path) -> None:
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["format"] = FORMAT_VERSION + 1
    (entry / MANIFEST).write_text(json.dumps(manifest))


def empty_entry_folder(entry: Path) -> None:
    shutil.rmtree(entry)
    entry.mkdir()


def entry_becomes_a_file(entry: Path) -> None:
    shutil.rmtree(entry)
    entry.write_text("not a folder")


WRONG_SIZE = r"\w+\.npy is missing or of the wrong size"
NO_MANIFEST = r"its manifest is missing or unreadable"

# stage damaged, damage, the problem the note names
DAMAGES = [
    pytest.param("sweep", truncate_npy, WRONG_SIZE, id="truncated-npy"),
    pytest.param("images", truncate_npy, WRONG_SIZE, id="truncated-npy-of-images"),
    # a same-size change passes prepare's quick check (sizes only); the next command that loads the
    # entry (report) verifies its checksum and recomputes it
    pytest.param("sweep", flip_npy_byte, r"\w+\.npy does not match its checksum", id="flipped-byte"),
    pytest.param("sweep", delete_npy, WRONG_SIZE, id="deleted-npy"),
    pytest.param("sweep", delete_manifest, NO_MANIFEST, id="deleted-manifest"),
    pytest.param("sweep", garbage_manifest, NO_MANIFEST, id="garbage-manifest"),
    pytest.param(
        "sweep",
        wrong_format_version,
        rf"its manifest is of cache format {FORMAT_VERSION + 1}, not {FORMAT_VERSION}",
        id="wrong-format-version",
    ),
    pytest.param("sweep", empty_entry_folder, NO_MANIFEST, id="empty-entry-folder"),
    pytest.param("sweep", entry_becomes_a_file, r"it is not a folder", id="entry-replaced-by-a-file"),
]


@pytest.mark.parametrize(("stage", "damage", "problem"), DAMAGES)
def test_damaged_cache_entry_is_noted_and_recomputed_to_the_same_result(
    good: Path, cache: Path, capsys: pytest.CaptureFixture, stage: str, damage, problem: str
) -> None:
    assert main(prepare_args(good, cache)) == 0
    capsys.readouterr()
    clean = manifests(cache)
    clean_report, _ = report_json(good, cache, capsys)
    (entry,) = cache.glob(f"{stage}-*")
    damage(entry)
    before = snapshot(good)

    assert main(prepare_args(good, cache)) == 0
    captured = capsys.readouterr()
    report, report_err = report_json(good, cache, capsys)

    notes = captured.err + report_err
    assert re.search(rf"^note: cache entry {entry.name} was broken \({problem}\); recomputed it$", notes, re.M), notes
    assert f"{N_GOOD} images ready" in captured.out
    assert report == clean_report
    assert manifests(cache) == clean
    checked = Cache(cache)
    assert checked.load(stage, entry.name.split("-", 1)[1]) is not None and checked.notes == []
    assert image_meta(good, cache)["paths"] == [f"good{i:02d}.png" for i in range(N_GOOD)]
    assert snapshot(good) == before


# ---------------------------------------------------------------- the cases of issue 8, end to end
# (the module tests hold the finer checks: test_images, test_export, test_cli, test_cache,
# test_versions, test_names, test_permissions for what needs a user whom permissions bind)


def add_bad_utf8_name(folder: Path) -> None:
    with open(os.path.join(os.fsencode(folder), b"bad\xff\xfe.png"), "wb") as f:
        f.write(noisy_png())


def add_links_and_pipe(folder: Path) -> None:
    (folder / "dangling.png").symlink_to(folder.parent / "gone.png")
    (folder / "to-folder").symlink_to(folder.parent, target_is_directory=True)
    os.mkfifo(folder / "pipe.png")


def add_short_png(folder: Path) -> None:
    header = struct.pack(">IIBBBBB", 6000, 6000, 8, 0, 0, 0, 0)
    row = zlib.compress(b"\0" + b"\xff" * 6000)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", row) + png_chunk(b"IEND", b"")
    (folder / "short.png").write_bytes(data)


def add_control_character_name(folder: Path) -> None:
    (folder / "evil\x1b[2J\nFAKE line.png").write_text("not an image")


# what is added, the skipped entries as `report --json` shows them, what the CLI prints
ISSUE_INPUTS = [
    pytest.param(
        add_bad_utf8_name,
        [["bad\\xff\\xfe.png", "its name is not valid UTF-8; rename the file to include it"]],
        "  bad\\xff\\xfe.png: its name is not valid UTF-8",
        id="1-name-not-utf8",
    ),
    pytest.param(
        add_links_and_pipe,
        [
            ["dangling.png", "a link to nothing (its target is missing)"],
            ["pipe.png", "a named pipe (FIFO), not an image file"],
            ["to-folder", "a link to a folder (not followed: no loops, no image counted twice)"],
        ],
        "  pipe.png: a named pipe (FIFO), not an image file",
        id="3-links-and-fifo",
    ),
    pytest.param(
        add_short_png,
        [
            [
                "short.png",
                "damaged or truncated image (the pixel data ends early: 35,999,999 bytes of the declared "
                "6000x6000 are missing)",
            ]
        ],
        "  short.png: damaged or truncated image (the pixel data ends early",
        id="5-short-png-data",
    ),
    pytest.param(
        add_control_character_name,
        [["evil\\x1b[2J\\x0aFAKE line.png", NOT_AN_IMAGE]],
        "  evil\\x1b[2J\\x0aFAKE line.png: not a PNG",
        id="12-control-characters",
    ),
]


@pytest.mark.parametrize(("add", "skipped", "printed"), ISSUE_INPUTS)
def test_issue_input_is_listed_with_its_reason_and_the_rest_clustered(
    good: Path, cache: Path, capsys: pytest.CaptureFixture, add, skipped: list, printed: str
) -> None:
    add(good)
    before = snapshot(good)
    assert main(prepare_args(good, cache)) == 0
    captured = capsys.readouterr()
    assert printed in captured.err
    assert "\x1b" not in captured.err and "\nFAKE" not in captured.err
    assert f"{N_GOOD} images ready" in captured.out
    report, _ = report_json(good, cache, capsys)
    assert report["skipped"] == skipped
    assert image_meta(good, cache)["paths"] == [f"good{i:02d}.png" for i in range(N_GOOD)]
    assert snapshot(good) == before


def test_issue_one_pixel_dot_of_a_big_scan_and_a_dense_disk_are_read_as_drawn(good: Path, cache: Path) -> None:
    scan = np.full((4600, 4600), 255, np.uint8)
    scan[2300, 1150] = 0
    Image.fromarray(scan).save(good / "scan.png")
    yy, xx = np.mgrid[:GRID, :GRID]
    disk = (yy - GRID / 2) ** 2 + (xx - GRID / 2) ** 2 < (0.425 * GRID) ** 2
    Image.fromarray(gray_of(disk)).save(good / "disk.png")
    before = snapshot(good)
    assert main(prepare_args(good, cache)) == 0
    assert {"scan.png", "disk.png"} <= set(image_meta(good, cache)["paths"])
    loaded = Pipeline(good, SETTINGS, cache).images()
    rows = {path: i for i, path in enumerate(loaded.paths)}
    assert loaded.unpack([rows["scan.png"]]).sum() == 1
    np.testing.assert_array_equal(loaded.unpack([rows["disk.png"]])[0], disk)
    assert snapshot(good) == before


def test_issue_formula_names_export_inert_and_nothing_lands_in_the_folder(
    good: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for old, new in [("good00.png", "=HYPERLINK(1).png"), ("good01.png", "+1+1.png"), ("good02.png", "@SUM(A1).png")]:
        (good / old).rename(good / new)
    (good / "good03.png").rename(good / "..\\..\\outside.png")
    before = snapshot(good)
    assert main(["export", *settings_args(good, cache), "--k", "2", "--csv", str(good / "in.csv")]) == 1
    assert "inside the image folder" in capsys.readouterr().err
    assert main(["export", *settings_args(good, cache), "--k", "2", "--csv", str(tmp_path / "out.csv")]) == 0
    cells = [row.split(",", 1)[0] for row in (tmp_path / "out.csv").read_text().splitlines()[1:]]
    assert {"./=HYPERLINK(1).png", "./+1+1.png", "./@SUM(A1).png"} <= set(cells)
    assert all((good / cell).is_file() for cell in cells)
    pipeline = Pipeline(good, SETTINGS, cache)
    from core.outputs.export import zip_of_files

    with zipfile.ZipFile(io.BytesIO(zip_of_files(pipeline, 2))) as archive:
        assert not any("\\" in name for name in archive.namelist())
    assert main(["export", *settings_args(good, cache), "--k", "50", "--folders", str(tmp_path / "new")]) == 1
    assert not (tmp_path / "new").exists()
    assert snapshot(good) == before


def test_issue_small_folders_get_advice_that_can_be_followed(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "two"
    write_good_images(folder, n=2)
    before = snapshot(folder)
    assert main(prepare_args(folder, cache)) == 1
    err = capsys.readouterr().err
    assert "2 images (2 distinct) are too few to cluster" in err and "--k-max" not in err
    few = tmp_path / "few"
    write_good_images(few, n=6)
    new = tmp_path / "new.png"
    Image.fromarray(gray_of(good_masks(7)[6])).save(new)
    assert main(["predict", *settings_args(few, cache), str(new), "--json"]) == 0
    (prediction,) = json.loads(capsys.readouterr().out)["predictions"]
    assert prediction["map_layout"] == "pca"
    assert snapshot(folder) == before
