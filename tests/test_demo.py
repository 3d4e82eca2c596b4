"""Tests of core.demo: demo images and the demo folder with its labels."""

import csv
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.demo import FAMILIES, draw_demo_image, make_demo
from core.demo.glyphs import GLYPH_FONTS, GLYPH_LETTERS, draw_glyph, glyph_strokes
from core.errors import DotmapError
from core.reading.folders import scan_folder
from core.reading.images import load_images
from core.reading.labels import read_labels

SIZE = 48  # small canvas for speed, still above 2 * (MIN_RADIUS + MARGIN)


def read_rows(folder: Path) -> list[list[str]]:
    with open(folder / "labels.csv", newline="") as f:
        return list(csv.reader(f))


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_make_demo_writes_n_pngs_and_labels(tmp_path: Path) -> None:
    out = make_demo(tmp_path / "demo", n=12, seed=0, size=SIZE)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"dots_{i:02d}.png" for i in range(12)]
    assert sorted(p.name for p in out.iterdir()) == pngs + ["labels.csv"]
    rows = read_rows(out)
    assert rows[0] == ["filename", "label"]
    assert [r[0] for r in rows[1:]] == pngs


def test_make_demo_images_are_gray_canvases_of_the_size(tmp_path: Path) -> None:
    out = make_demo(tmp_path / "demo", n=3, seed=0, size=SIZE)
    for path in out.glob("*.png"):
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "L", (SIZE, SIZE))


@pytest.mark.parametrize(
    ("n", "families", "expected"),
    [
        (12, None, {name: 2 if i < 4 else 1 for i, name in enumerate(FAMILIES)}),
        (7, ["ring", "line", "disk"], {"ring": 3, "line": 2, "disk": 2}),
        (6, ["spiral", "square"], {"spiral": 3, "square": 3}),
    ],
)
def test_make_demo_balances_families(tmp_path: Path, n, families, expected) -> None:
    out = make_demo(tmp_path / "demo", n=n, seed=1, families=families, size=SIZE)
    assert Counter(label for _, label in read_rows(out)[1:]) == expected


def test_make_demo_families_take_turns(tmp_path: Path) -> None:
    out = make_demo(tmp_path / "demo", n=5, seed=0, families=["cross", "ring"], size=SIZE)
    assert [label for _, label in read_rows(out)[1:]] == ["cross", "ring"] * 2 + ["cross"]


def test_make_demo_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = make_demo(tmp_path / "first", n=4, seed=7, size=SIZE)
    second = make_demo(tmp_path / "second", n=4, seed=7, size=SIZE)
    assert folder_bytes(first) == folder_bytes(second)


def test_make_demo_other_seed_gives_other_images(tmp_path: Path) -> None:
    first = folder_bytes(make_demo(tmp_path / "first", n=4, seed=7, size=SIZE))
    second = folder_bytes(make_demo(tmp_path / "second", n=4, seed=8, size=SIZE))
    assert first["labels.csv"] == second["labels.csv"]
    assert all(first[name] != second[name] for name in first if name.endswith(".png"))


def test_make_demo_refuses_a_non_empty_folder_and_keeps_its_files(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    keep = out / "dots_0.png"
    keep.write_bytes(b"precious")
    stat = keep.stat()
    with pytest.raises(DotmapError, match=r"already exists and is not an empty folder"):
        make_demo(out, n=2, seed=0, size=SIZE)
    assert [p.name for p in out.iterdir()] == ["dots_0.png"]
    assert keep.read_bytes() == b"precious"
    assert keep.stat().st_mtime_ns == stat.st_mtime_ns


def test_make_demo_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.write_bytes(b"not a folder")
    with pytest.raises(DotmapError, match=r"already exists and is not an empty folder"):
        make_demo(out, n=2, seed=0, size=SIZE)
    assert out.read_bytes() == b"not a folder"


def test_make_demo_fills_an_existing_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    assert make_demo(out, n=2, seed=0, size=SIZE) == out
    assert len(list(out.glob("*.png"))) == 2


@pytest.mark.parametrize("n", [0, -3])
def test_make_demo_refuses_a_bad_count(tmp_path: Path, n: int) -> None:
    with pytest.raises(ValueError, match=rf"n={n} should be >= 1"):
        make_demo(tmp_path / "demo", n=n)
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    ("families", "match"),
    [
        (["ring", "blob"], r"unknown families \['blob'\]"),
        (["nope"], r"unknown families \['nope'\]"),
        ([], r"famil"),
    ],
    ids=["one-unknown", "all-unknown", "none"],
)
def test_make_demo_refuses_bad_families(tmp_path: Path, families, match) -> None:
    with pytest.raises(ValueError, match=match):
        make_demo(tmp_path / "demo", n=3, families=families, size=SIZE)
    assert not (tmp_path / "demo").exists()


def test_make_demo_reports_progress_to_the_end(tmp_path: Path) -> None:
    calls = []
    make_demo(tmp_path / "demo", n=3, size=SIZE, on_progress=lambda *a: calls.append(a))
    assert calls[-1] == (3, 3, "demo")


def test_make_demo_folder_loads_with_its_true_labels(tmp_path: Path) -> None:
    families = ["ring", "line", "two-blobs"]
    out = make_demo(tmp_path / "demo", n=6, seed=3, families=families, size=SIZE)
    inventory = scan_folder(out)
    images = load_images(inventory, grid=SIZE, workers=1)
    assert images.skipped == []
    assert len(images) == 6
    codes, names = read_labels(inventory.labels_path, images.paths)
    assert names == sorted(families)
    assert [names[c] for c in codes] == families * 2


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_draw_demo_image_is_black_dots_on_white(family: str) -> None:
    image = draw_demo_image(family, np.random.default_rng(0), size=SIZE)
    assert image.dtype == np.uint8
    assert image.shape == (SIZE, SIZE)
    assert set(np.unique(image)) == {0, 255}
    assert 0 < np.count_nonzero(image == 0) < image.size // 2  # some ink, ground in majority


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_draw_demo_image_is_repeatable_from_the_seed(family: str) -> None:
    first = draw_demo_image(family, np.random.default_rng(5), size=SIZE)
    second = draw_demo_image(family, np.random.default_rng(5), size=SIZE)
    np.testing.assert_array_equal(first, second)


def test_draw_demo_image_default_canvas() -> None:
    assert draw_demo_image("ring", np.random.default_rng(0)).shape == (200, 200)


def test_draw_demo_image_refuses_an_unknown_family() -> None:
    with pytest.raises(ValueError, match=r"family='blob' should be one of"):
        draw_demo_image("blob", np.random.default_rng(0))


def test_builtin_demo_is_made_once_in_the_cache(tmp_path, monkeypatch) -> None:
    import core.demo

    monkeypatch.setattr(core.demo, "BUILTIN_N", 24)
    folder = core.demo.builtin_demo_dir(tmp_path)
    assert folder.parent == tmp_path
    assert len(list(folder.glob("*.png"))) == 24 and (folder / "labels.csv").exists()
    stamp = (folder / "labels.csv").stat().st_mtime_ns
    assert core.demo.builtin_demo_dir(tmp_path) == folder
    assert (folder / "labels.csv").stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob(".tmp-*"))


def test_builtin_demo_path_is_named_for_its_size_and_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.demo

    monkeypatch.setattr(core.demo, "BUILTIN_N", 40)
    assert core.demo.builtin_demo_path(tmp_path) == tmp_path / "demo-40-seed0"
    assert not (tmp_path / "demo-40-seed0").exists()  # naming the place makes nothing


def test_builtin_demo_path_expands_the_home_folder() -> None:
    import core.demo

    assert core.demo.builtin_demo_path("~/cache").parent == Path.home() / "cache"


def test_builtin_demo_is_ready_only_once_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.demo

    monkeypatch.setattr(core.demo, "BUILTIN_N", 40)
    assert not core.demo.builtin_demo_ready(tmp_path)
    folder = core.demo.builtin_demo_dir(tmp_path)
    assert folder == core.demo.builtin_demo_path(tmp_path)
    assert core.demo.builtin_demo_ready(tmp_path)
    assert len(list(folder.glob("*.png"))) == 40


def test_builtin_demo_without_its_labels_is_not_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """labels.csv is written last: a folder of images without it is a demo cut short."""
    import core.demo

    monkeypatch.setattr(core.demo, "BUILTIN_N", 40)
    folder = core.demo.builtin_demo_path(tmp_path)
    folder.mkdir()
    (folder / "dots_00.png").write_bytes(b"half made")
    assert not core.demo.builtin_demo_ready(tmp_path)


def test_builtin_demo_cut_short_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.demo

    monkeypatch.setattr(core.demo, "BUILTIN_N", 40)
    folder = core.demo.builtin_demo_path(tmp_path)
    folder.mkdir()
    (folder / "stale.png").write_bytes(b"half made")
    assert core.demo.builtin_demo_dir(tmp_path) == folder
    assert core.demo.builtin_demo_ready(tmp_path)
    assert sorted(p.name for p in folder.glob("*.png")) == [f"dots_{i:02d}.png" for i in range(40)]


# ---------------------------------------------------------------- large sets: parallel, in sub-folders


@pytest.fixture
def large_from_20(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sets of more than 20 images are large, with 8 images per sub-folder and tasks of 5."""
    import core.demo

    monkeypatch.setattr(core.demo, "SUBFOLDER_FROM", 20)
    monkeypatch.setattr(core.demo, "FILES_PER_FOLDER", 8)
    monkeypatch.setattr(core.demo, "CHUNK_IMAGES", 5)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.usefixtures("large_from_20")
@pytest.mark.parametrize(("workers", "chunk"), [(2, 5), (2, 3), (1, 7)])
def test_large_demo_is_the_same_whatever_the_workers_and_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, chunk: int
) -> None:
    import core.demo

    reference = tree_bytes(make_demo(tmp_path / "one", n=23, seed=4, size=SIZE, workers=1))
    monkeypatch.setattr(core.demo, "CHUNK_IMAGES", chunk)
    assert tree_bytes(make_demo(tmp_path / "other", n=23, seed=4, size=SIZE, workers=workers)) == reference


@pytest.mark.usefixtures("large_from_20")
def test_large_demo_other_seed_gives_other_images(tmp_path: Path) -> None:
    first = tree_bytes(make_demo(tmp_path / "first", n=21, seed=7, size=SIZE, workers=2))
    second = tree_bytes(make_demo(tmp_path / "second", n=21, seed=8, size=SIZE, workers=2))
    assert all(first[name] != second[name] for name in first if name.endswith(".png"))


@pytest.mark.usefixtures("large_from_20")
def test_large_demo_goes_into_sub_folders(tmp_path: Path) -> None:
    out = make_demo(tmp_path / "demo", n=21, seed=0, size=SIZE, workers=2)
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2", "labels.csv"]
    assert sorted(p.name for p in (out / "0").iterdir()) == [f"dots_{i:02d}.png" for i in range(8)]
    assert sorted(p.name for p in (out / "2").iterdir()) == [f"dots_{i:02d}.png" for i in range(16, 21)]


@pytest.mark.usefixtures("large_from_20")
def test_demo_at_the_threshold_stays_flat(tmp_path: Path) -> None:
    out = make_demo(tmp_path / "demo", n=20, seed=0, size=SIZE, workers=2)
    assert all(p.is_file() for p in out.iterdir())
    assert len(list(out.glob("*.png"))) == 20


@pytest.mark.usefixtures("large_from_20")
@pytest.mark.parametrize(
    ("kind", "families", "expected"),
    [
        ("shapes", ["ring", "line", "two-blobs"], ["ring", "line", "two-blobs"] * 7),
        ("digits", ["3", "7"], None),  # scikit-learn's order of its threes and sevens
        ("glyphs", ["A", "J"], ["A", "J"] * 10 + ["A"]),
    ],
)
def test_large_demo_labels_name_every_image_with_its_group(tmp_path: Path, kind, families, expected) -> None:
    out = make_demo(tmp_path / "demo", n=21, seed=3, families=families, kind=kind, workers=2)
    inventory = scan_folder(out)
    rows = read_rows(out)[1:]
    assert [name for name, _ in rows] == [e.path for e in inventory.files]  # a/b paths, from the root
    images = load_images(inventory, grid=32, workers=1)
    assert images.skipped == []
    codes, names = read_labels(inventory.labels_path, images.paths)
    assert names == sorted(families) and (codes >= 0).all()
    if expected is not None:
        assert [names[c] for c in codes] == expected


@pytest.mark.usefixtures("large_from_20")
def test_large_demo_images_are_one_bit_pngs_of_their_seed(tmp_path: Path) -> None:
    size = 45  # not a multiple of 8: rows of bits are padded
    out = make_demo(tmp_path / "demo", n=21, seed=5, families=["cross", "ring"], size=size, workers=1)
    for i, (name, label) in enumerate(read_rows(out)[1:]):
        with Image.open(out / name) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "1", (size, size))
            pixels = np.asarray(im.convert("L"))
        expected = draw_demo_image(label, np.random.default_rng([5, i]), size=size)
        np.testing.assert_array_equal(pixels, expected)


@pytest.mark.usefixtures("large_from_20")
def test_large_demo_reports_progress_per_task(tmp_path: Path) -> None:
    calls = []
    make_demo(tmp_path / "demo", n=21, size=SIZE, workers=2, on_progress=lambda *a: calls.append(a))
    assert calls == [(done, 21, "demo") for done in (5, 10, 15, 20, 21)]


@pytest.mark.parametrize("workers", [0, -1])
def test_make_demo_refuses_a_bad_worker_count(tmp_path: Path, workers: int) -> None:
    with pytest.raises(ValueError, match=rf"workers={workers} should be >= 1"):
        make_demo(tmp_path / "demo", n=3, size=SIZE, workers=workers)
    assert not (tmp_path / "demo").exists()


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def _as_a_shell_starts_it() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="lists processes through /proc")
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_stopping_a_large_demo_leaves_no_workers(tmp_path: Path, how: signal.Signals) -> None:
    from core.engine.processes import WATCH_EVERY_S, process_alive

    out = tmp_path / "demo"
    code = (
        "import core.demo as d; d.SUBFOLDER_FROM = 10; d.CHUNK_IMAGES = 50; "
        f"d.make_demo({str(out)!r}, n=10**6, size=48, workers=2)"
    )
    # Ctrl-C as a terminal delivers it: whatever signal dispositions the test runner's process has
    # picked up by now (a full CI run stopped this owner twice, never a run of this file), the owner
    # starts with SIGINT at its default, as a person's shell starts it
    owner = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parent.parent,
        stderr=subprocess.PIPE,
        preexec_fn=_as_a_shell_starts_it,
    )
    try:
        deadline = time.monotonic() + 30
        while not list(out.glob("*/dots_*.png")) and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = child_pids(owner.pid)
        assert len(workers) == 2
        owner.send_signal(how)
        try:
            owner.wait(timeout=60)  # on a loaded machine (a full test run on 2 cores) the owner can take 10 s and more
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{owner.pid}/status").read_text()
            signals = [line for line in status.splitlines() if line.startswith(("State", "Sig", "Threads"))]
            pytest.fail(f"the owner did not end within 60 s of {how.name}: {signals}")
        deadline = time.monotonic() + 4 * WATCH_EVERY_S + 2
        while any(process_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if process_alive(w)]
        assert not (out / "labels.csv").exists()  # a set cut short is not taken for a finished one
    finally:
        owner.kill()
        owner.wait()


def test_the_dense_kind_carries_the_ink_of_real_scans(tmp_path: Path) -> None:
    dense, sparse = make_demo(tmp_path / "dense", n=40, seed=2, kind="dense"), make_demo(tmp_path / "s", n=40, seed=2)
    ink = {f: [int((np.asarray(Image.open(p)) == 0).sum()) for p in sorted(f.glob("*.png"))] for f in (dense, sparse)}
    assert np.median(ink[dense]) > 3 * np.median(ink[sparse]) and np.median(ink[dense]) > 1000
    labels = (dense / "labels.csv").read_text().splitlines()
    assert labels[0] == "filename,label" and {line.split(",")[1] for line in labels[1:]} == set(FAMILIES)


# ---------------------------------------------------------------- glyphs


@pytest.mark.parametrize("font", GLYPH_FONTS)
def test_every_glyph_font_has_every_letter_as_strokes_of_unit_height(font: str) -> None:
    for letter in GLYPH_LETTERS:
        strokes = glyph_strokes(font, letter)
        assert strokes.ndim == 3 and strokes.shape[1:] == (2, 2) and len(strokes) >= 1
        assert strokes[..., 1].min() == pytest.approx(0.0) and strokes[..., 1].max() == pytest.approx(1.0)


def test_a_glyph_is_upright_a_t_has_its_bar_on_top() -> None:
    """Hershey's y goes down as an image's rows do: a letter is not drawn upside down."""
    image = draw_glyph("J", "futural", np.random.default_rng(0), 200)
    rows = np.nonzero((image < 128).any(axis=1))[0]
    ink = image < 128
    top, bottom = ink[rows[0] : rows[0] + 10], ink[rows[-1] - 10 : rows[-1] + 1]
    columns = lambda part: np.ptp(np.nonzero(part.any(axis=0))[0])  # noqa: E731
    assert columns(bottom) > columns(top)  # J: its hook at the bottom is wider than its stem's top


def test_a_glyph_set_has_the_letters_in_turn_and_is_repeatable(tmp_path: Path) -> None:
    out = make_demo(tmp_path / "a", n=12, seed=2, size=SIZE * 4, kind="glyphs")
    labels = [label for _, label in read_rows(out)[1:]]
    assert labels == list(GLYPH_LETTERS) + list(GLYPH_LETTERS[:2])
    again = make_demo(tmp_path / "b", n=12, seed=2, size=SIZE * 4, kind="glyphs")
    assert folder_bytes(out) == folder_bytes(again)
    image = np.array(Image.open(out / labels_file_name(out, 0)))
    assert set(np.unique(image)) <= {0, 255} and (image == 0).any()


def test_a_glyph_set_refuses_a_canvas_too_small_for_its_letters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"size=100 is too small for glyphs"):
        make_demo(tmp_path / "a", n=4, size=100, kind="glyphs")


def labels_file_name(folder: Path, i: int) -> str:
    return read_rows(folder)[1 + i][0]
