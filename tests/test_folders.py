"""Tests of core.reading.folders: listing a data folder, what is skipped while listing it, its fingerprint."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import NoImagesError
from core.reading.folders import scan_folder
from core.reading.images import load_images
from core.reading.names import shown


@pytest.fixture
def good_png(pattern: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.where(pattern, 0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small nested data folder with a labels file at the top."""
    root = tmp_path / "data"
    (root / "a" / "b").mkdir(parents=True)
    (root / "b.png").write_bytes(b"bb")
    (root / "a" / "z.png").write_bytes(b"zzz")
    (root / "a" / "b" / "c.png").write_bytes(b"c")
    (root / "notes.txt").write_bytes(b"hello")
    (root / "labels.csv").write_text("filename,label\nb.png,x\n")
    return root


def test_scan_folder_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(NoImagesError, match=r"does not exist"):
        scan_folder(tmp_path / "nowhere")


def test_scan_folder_refuses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "one.png"
    path.write_bytes(b"x")
    with pytest.raises(NoImagesError, match=r"is a file, not a folder"):
        scan_folder(path)


def test_scan_folder_lists_every_file_recursively_sorted(tree: Path) -> None:
    inventory = scan_folder(tree)
    assert [e.path for e in inventory.files] == [
        "a/b/c.png",
        "a/z.png",
        "b.png",
        "notes.txt",
    ]


def test_scan_folder_records_sizes(tree: Path) -> None:
    sizes = {e.path: e.size for e in scan_folder(tree).files}
    assert sizes == {"a/b/c.png": 1, "a/z.png": 3, "b.png": 2, "notes.txt": 5}


def test_scan_folder_finds_top_labels_file_but_not_as_a_candidate(tree: Path) -> None:
    inventory = scan_folder(tree)
    assert inventory.labels_path == tree / "labels.csv"
    assert "labels.csv" not in [e.path for e in inventory.files]


def test_scan_folder_treats_a_nested_labels_file_as_a_candidate(tree: Path) -> None:
    (tree / "a" / "labels.csv").write_text("filename,label\n")
    inventory = scan_folder(tree)
    assert "a/labels.csv" in [e.path for e in inventory.files]
    assert inventory.labels_path == tree / "labels.csv"


def test_scan_folder_without_labels_file(tree: Path) -> None:
    (tree / "labels.csv").unlink()
    assert scan_folder(tree).labels_path is None


def test_a_name_that_is_not_utf8_is_skipped_and_named_escaped(tmp_path: Path, good_png: bytes) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "fine.png").write_bytes(good_png)
    with open(os.path.join(os.fsencode(data), b"bad\xff\xfe.png"), "wb") as f:
        f.write(good_png)
    inventory = scan_folder(data)
    assert [e.path for e in inventory.files] == ["fine.png"]
    ((name, reason),) = inventory.skipped
    assert shown(name) == "bad\\xff\\xfe.png"
    assert "not valid UTF-8" in reason
    loaded = load_images(inventory, grid=16)
    assert loaded.paths == ["fine.png"]
    assert [shown(p) for p, _ in loaded.skipped] == ["bad\\xff\\xfe.png"]


def test_links_and_special_files_are_listed_with_their_reason(tmp_path: Path, good_png: bytes) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "far.png").write_bytes(good_png)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "real.png").write_bytes(good_png)
    (data / "to-far.png").symlink_to(outside / "far.png")
    (data / "to-real.png").symlink_to(data / "sub" / "real.png")
    (data / "dangling.png").symlink_to(tmp_path / "gone.png")
    (data / "to-folder").symlink_to(outside, target_is_directory=True)
    (data / "loop").symlink_to(data, target_is_directory=True)
    os.mkfifo(data / "pipe.png")
    inventory = scan_folder(data)
    assert [e.path for e in inventory.files] == ["sub/real.png", "to-far.png", "to-real.png"]
    reasons = dict(inventory.skipped)
    assert reasons["dangling.png"] == "a link to nothing (its target is missing)"
    assert reasons["to-folder"].startswith("a link to a folder (not followed")
    assert reasons["loop"].startswith("a link to a folder (not followed")
    assert reasons["pipe.png"] == "a named pipe (FIFO), not an image file"
    loaded = load_images(inventory, grid=16)
    assert loaded.paths == ["sub/real.png", "to-far.png", "to-real.png"]
    assert [p for p, _ in loaded.skipped] == ["dangling.png", "loop", "pipe.png", "to-folder"]


def test_a_socket_is_listed_as_a_socket(tmp_path: Path) -> None:
    import socket

    data = tmp_path / "d"
    data.mkdir()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(data / "s.png"))
        assert dict(scan_folder(data).skipped) == {"s.png": "a socket, not an image file"}


def test_the_fingerprint_changes_when_a_skipped_entry_is_mended(tmp_path: Path, good_png: bytes) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "a.png").write_bytes(good_png)
    (data / "link.png").symlink_to(tmp_path / "later.png")
    before = scan_folder(data).fingerprint
    (tmp_path / "later.png").write_bytes(good_png)
    assert scan_folder(data).fingerprint != before


def test_fingerprint_is_stable_when_nothing_changes(tree: Path, good_png: bytes) -> None:
    (tree / "good.png").write_bytes(good_png)
    before = scan_folder(tree)
    load_images(before, grid=16, workers=1)  # reading the files must not count as a change
    assert scan_folder(tree).fingerprint == before.fingerprint


def _rewrite_same_size_later(path: Path) -> None:
    mtime = path.stat().st_mtime_ns
    path.write_bytes(bytes(b ^ 0xFF for b in path.read_bytes()))
    os.utime(path, ns=(mtime, mtime + 1_000_000_000))  # as an editor saving a second later


def _touch_later(path: Path) -> None:
    mtime = path.stat().st_mtime_ns
    os.utime(path, ns=(mtime, mtime + 1_000_000_000))


def _grow_keeping_mtime(path: Path) -> None:
    mtime = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes() + b"!")
    os.utime(path, ns=(mtime, mtime))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda root: _rewrite_same_size_later(root / "a" / "z.png"), id="content"),
        pytest.param(lambda root: _touch_later(root / "b.png"), id="mtime"),
        pytest.param(lambda root: _grow_keeping_mtime(root / "a" / "b" / "c.png"), id="size"),
        pytest.param(lambda root: (root / "a" / "new.png").write_bytes(b"n"), id="added"),
        pytest.param(lambda root: (root / "notes.txt").unlink(), id="removed"),
        pytest.param(lambda root: (root / "b.png").rename(root / "bb.png"), id="renamed"),
    ],
)
def test_fingerprint_changes_with_the_files(tree: Path, change) -> None:
    before = scan_folder(tree).fingerprint
    change(tree)
    assert scan_folder(tree).fingerprint != before


def test_fingerprint_ignores_labels_csv(tree: Path) -> None:
    # nothing cached reads the labels: editing them must not recompute the images
    before = scan_folder(tree).fingerprint
    _grow_keeping_mtime(tree / "labels.csv")
    assert scan_folder(tree).fingerprint == before


def test_a_scan_sees_its_folders_unchanged_until_an_entry_comes_or_goes(tmp_path):
    import os
    import time

    from core.reading.folders import folders_unchanged, scan_folder

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.png").write_bytes(b"1")
    (tmp_path / "y.png").write_bytes(b"2")
    inventory = scan_folder(tmp_path)
    assert sorted(prefix for prefix, _ in inventory.folders) == ["", "a/", "a/b/"]
    assert folders_unchanged(inventory)
    time.sleep(0.01)
    (tmp_path / "a" / "b" / "x.png").write_bytes(b"changed in place")  # not seen: only a new scan sees it
    assert folders_unchanged(inventory)
    (tmp_path / "a" / "b" / "z.png").write_bytes(b"3")  # a new file deep down
    assert not folders_unchanged(inventory)
    inventory = scan_folder(tmp_path)
    os.rename(tmp_path / "y.png", tmp_path / "w.png")
    assert not folders_unchanged(inventory)
    inventory = scan_folder(tmp_path)
    (tmp_path / "a" / "b").rename(tmp_path / "a" / "c")
    assert not folders_unchanged(inventory)
