"""Hostile curation files and failed saves: each is refused in words naming the file, nothing is left behind,
the user's file and images are unchanged; the memory of a curation follows its images, never its largest id.

A hand-edited file (100,000 nested ``[``, an id of 10^30, Infinity, NaN, a number of 5,000 digits) is
refused by the loader (CurationError, a DotmapError) with the last good version named, on the command
line (``curate``, ``export --curation``, ``predict --curation``) and on the Curate, Export and Classify
pages. A save that fails (a full disk on the write, the fsync, the rename or the copy of the last good
version) leaves no temporary file, however often it fails.
"""

import errno
import html
import json
import os
import re
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from core.cli.commands import main
from core.curation import file as curation_file
from core.curation.model import ID_LIMIT, OUTLIER, UNASSIGNED, Curation, CurationError, from_clusters
from core.demo import make_demo
from core.engine import atomic
from tests.test_cli import settings_args
from tests.test_hostile import snapshot

PATHS = [f"img_{i}.png" for i in range(10)]
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
K = 3
ID_WORDS = r'needs an "id" that is a whole number 0\.\.2,147,483,647, not '
NESTED_WORDS = "its lists and objects are nested more than 32 deep"
DENSE_PEAK_BYTES = 1_000_000  # dense() of 10 images: a few hundred bytes, never one slot per id up to the largest
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def good_doc() -> dict:
    return curation_file.to_dict(from_clusters(PATHS, LABELS, K, folder="/data", settings={"features": "shape"}))


def with_group_id(value) -> str:
    doc = good_doc()
    doc["groups"][1]["id"] = "ID"
    return json.dumps(doc).replace('"ID"', value)


def nested_inside(depth: int) -> str:
    doc = good_doc()
    doc["settings"] = "DEEP"
    return json.dumps(doc).replace('"DEEP"', "[" * depth + "]" * depth)


HOSTILE = [
    pytest.param(lambda: "[" * 100_000, NESTED_WORDS, id="100000-nested-brackets"),
    pytest.param(lambda: "[" * 100_000 + "]" * 100_000, NESTED_WORDS, id="100000-nested-closed"),
    pytest.param(lambda: nested_inside(500), NESTED_WORDS, id="500-deep-in-settings"),
    pytest.param(lambda: with_group_id("1" + "0" * 30), ID_WORDS + "a number of 31 digits", id="id-10^30"),
    pytest.param(lambda: with_group_id(str(10**15)), ID_WORDS + "1,000,000,000,000,000", id="id-10^15"),
    pytest.param(lambda: with_group_id(str(3 * 10**9)), ID_WORDS + "3,000,000,000", id="id-3x10^9"),
    pytest.param(lambda: with_group_id(str(ID_LIMIT)), ID_WORDS + "2,147,483,648", id="id-2^31"),
    pytest.param(lambda: with_group_id("-5"), ID_WORDS + "-5", id="id-negative"),
    pytest.param(lambda: with_group_id("1.5"), ID_WORDS + "1.5", id="id-fraction"),
    pytest.param(lambda: with_group_id("1e400"), "it holds the number 1e400, too large to be read", id="id-1e400"),
    pytest.param(lambda: with_group_id("Infinity"), "it holds Infinity, a number a curation never holds", id="inf"),
    pytest.param(lambda: with_group_id("-Infinity"), "it holds -Infinity", id="minus-inf"),
    pytest.param(lambda: with_group_id("NaN"), "it holds NaN", id="nan"),
    pytest.param(lambda: with_group_id("9" * 5000), "it holds a number too long to read", id="5000-digits"),
    pytest.param(
        lambda: with_group_id("0"), "has the \"id\" 0 of group 'cluster 0'; each id is used once", id="id-twice"
    ),
    pytest.param(
        lambda: json.dumps({**good_doc(), "version": 10**30}), "it is version a number of 31 digits", id="version-huge"
    ),
    pytest.param(lambda: json.dumps({**good_doc(), "version": 0}), "it is version 0", id="version-0"),
    pytest.param(
        lambda: json.dumps({**good_doc(), "history": [{"what": "x", "groups": [], "moved": [["img_0.png", 1e999]]}]}),
        "it holds Infinity",
        id="history-inf",
    ),
]


def with_last_good(folder: Path) -> Path:
    """A curation file saved twice (so its last good version is beside it), as the user's own."""
    curation = from_clusters(PATHS, LABELS, K, folder="/data")
    path = curation_file.save(curation, folder / "c.json")
    curation.rename(0, "rings")
    curation_file.save(curation, path)
    return path


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith("."))


# ---- the loader ------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "words"), HOSTILE)
def test_a_hostile_file_is_refused_in_words_and_the_last_good_one_is_named(tmp_path: Path, text, words) -> None:
    path = with_last_good(tmp_path)
    path.write_text(text())
    before = snapshot(tmp_path)
    with pytest.raises(CurationError, match=words) as error:
        curation_file.load(path, PATHS)
    message = str(error.value)
    assert message.startswith(f"{path} is not a usable curation: ")
    assert f"The last good version is kept as {curation_file.last_good(path)}." in message
    assert len(message) < 400  # the problem in a sentence, never the file's content
    assert snapshot(tmp_path) == before and temp_files(tmp_path) == []
    assert curation_file.load(curation_file.last_good(path), PATHS).names[0] == "cluster 0"


@pytest.mark.parametrize(("text", "words"), HOSTILE)
def test_a_hostile_upload_is_refused_in_words(text, words) -> None:
    with pytest.raises(CurationError, match=words) as error:
        curation_file.from_text(text().encode(), PATHS, "mine.json")
    assert str(error.value).startswith("mine.json is not a usable curation: ")


def test_a_huge_name_is_cut_short_in_the_message() -> None:
    doc = good_doc()
    doc["groups"][1]["id"] = -1
    doc["groups"][1]["name"] = "x" * 1_000_000
    with pytest.raises(CurationError, match=r"group 'xxx+\.\.\. needs an \"id\"") as error:
        curation_file.from_text(json.dumps(doc), PATHS, "c.json")
    assert len(str(error.value)) < 300


@pytest.mark.parametrize(
    "step",
    [
        {"what": "x", "groups": [{"id": 10**30, "name": "a"}], "moved": [["img_0.png", 10**30]]},
        {"what": "x", "groups": [{"id": 10**15, "name": "a"}], "moved": []},
        {"what": "x", "groups": [{"id": 1.5, "name": "a"}], "moved": []},
        {"what": "x", "groups": [{"id": "3", "name": "a"}], "moved": []},
        {"what": ["not", "text"], "groups": [], "moved": []},
        {"what": "x", "groups": [], "moved": [["img_0.png", True]]},
    ],
    ids=["id-10^30", "id-10^15", "id-fraction", "id-text", "what-a-list", "moved-to-true"],
)
def test_a_hostile_undo_history_is_dropped_with_a_note_and_the_groups_are_kept(tmp_path: Path, step: dict) -> None:
    doc = good_doc()
    doc["history"] = [step]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    again = curation_file.load(path, PATHS)
    assert again.history == [] and any("undo history in the file did not fit" in n for n in again.notes)
    np.testing.assert_array_equal(again.labels, LABELS)
    assert path.read_bytes() == before


def test_a_started_from_k_out_of_range_is_forgotten() -> None:
    again = curation_file.from_text(json.dumps({**good_doc(), "started_from_k": 10**30}), PATHS)
    assert again.started_from_k is None and again.names == {0: "cluster 0", 1: "cluster 1", 2: "cluster 2"}


# ---- memory follows the images, never the largest id -----------------------------------------
def test_the_largest_id_loads_and_dense_is_sized_by_the_images_not_the_id() -> None:
    doc = good_doc()
    doc["groups"][1]["id"] = ID_LIMIT - 1
    doc["groups"][2]["id"] = 7
    curation = curation_file.from_text(json.dumps(doc), PATHS)
    tracemalloc.start()
    try:
        dense, names = curation.dense()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < DENSE_PEAK_BYTES
    np.testing.assert_array_equal(dense, LABELS)  # listed order: 0, ID_LIMIT - 1, 7
    assert names == ["cluster 0", "cluster 1", "cluster 2"]


def test_dense_gives_minus_one_to_outliers_and_unassigned_and_follows_the_listed_order() -> None:
    curation = Curation(PATHS[:5], np.array([9, OUTLIER, 4, UNASSIGNED, 9]), {9: "nine", 4: "four"})
    dense, names = curation.dense()
    np.testing.assert_array_equal(dense, [0, -1, 1, -1, 0])
    assert names == ["nine", "four"]
    empty, none = Curation(PATHS[:2], np.array([UNASSIGNED, OUTLIER]), {}).dense()
    np.testing.assert_array_equal(empty, [-1, -1])
    assert none == []


def test_a_new_group_after_the_largest_id_stays_below_the_limit_and_the_file_reads_again(tmp_path: Path) -> None:
    curation = Curation(list(PATHS), LABELS.copy(), {0: "a", ID_LIMIT - 1: "b", 2: "c"})
    new = curation.new_group("d", [9])
    assert 0 <= new < ID_LIMIT and new not in (0, ID_LIMIT - 1, 2)
    path = curation_file.save(curation, tmp_path / "c.json")
    again = curation_file.load(path, PATHS)
    assert again.names == curation.names and again.labels[9] == new


# ---- failed saves leave nothing behind -------------------------------------------------------
@pytest.fixture
def saved(tmp_path: Path) -> tuple[Curation, Path]:
    """A curation saved once (the file the user has), then changed: the next save is the one that fails."""
    curation = from_clusters(PATHS, LABELS, K)
    path = curation_file.save(curation, tmp_path / "c.json")
    curation.rename(0, "rings")
    return curation, path


def full_disk_on_write(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)

        def write(text: str) -> int:
            raise ENOSPC

        f.write = write
        return f

    monkeypatch.setattr(atomic.os, "fdopen", fdopen)


def fail_on(name: str):
    def arrange(monkeypatch: pytest.MonkeyPatch) -> None:
        def refuse(*args, **kwargs):
            raise ENOSPC

        monkeypatch.setattr(os, name, refuse)

    return arrange


def full_disk_copying_the_last_good(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hard links (another file system), and the copy runs out of space half way."""

    def copy_half(source, target, **kwargs):
        Path(target).write_bytes(Path(source).read_bytes()[:10])
        raise ENOSPC

    monkeypatch.setattr(os, "link", fail_on_link)
    monkeypatch.setattr(shutil, "copy2", copy_half)


def fail_on_link(*args, **kwargs):
    raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))


FAILURES = [
    pytest.param(full_disk_on_write, id="write"),
    pytest.param(fail_on("fsync"), id="fsync"),
    pytest.param(fail_on("replace"), id="rename"),
    pytest.param(full_disk_copying_the_last_good, id="copy-of-the-last-good"),
]


@pytest.mark.parametrize("arrange", FAILURES)
def test_a_save_that_runs_out_of_space_leaves_no_temporary_file(saved, monkeypatch, arrange) -> None:
    curation, path = saved
    before = path.read_bytes()
    arrange(monkeypatch)
    for _ in range(3):  # one more temporary file per failed save was the bug
        with pytest.raises(CurationError, match=rf"Cannot save the curation to {path}: No space left on device\."):
            curation_file.save(curation, path)
    monkeypatch.undo()
    assert temp_files(path.parent) == []
    assert path.read_bytes() == before  # the user's file, as it was
    assert sorted(p.name for p in path.parent.iterdir()) in (["c.json"], ["c.json", "c.last-good.json"])
    curation_file.save(curation, path)  # the disk has room again: the change is saved
    assert "rings" in path.read_text() and curation_file.last_good(path).read_bytes() == before


def test_a_save_failed_after_the_last_good_was_linked_leaves_no_temporary_file_next_time(saved, monkeypatch) -> None:
    """After a failed save the last good version is a hard link to the file: linking it again must not leave
    the temporary link (a rename onto the same file does nothing)."""
    curation, path = saved
    full_disk_on_write(monkeypatch)
    for _ in range(3):
        with pytest.raises(CurationError, match="No space left on device"):
            curation_file.save(curation, path)
        assert temp_files(path.parent) == []


def test_the_atomic_file_removes_its_temporary_file_on_any_error(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic.atomic_file(target) as f:
        f.write("half")
        raise KeyboardInterrupt  # stopped half way
    with pytest.raises(LookupError), atomic.atomic_file(target, encoding="no-such-codec"):
        pass
    assert target.read_text() == "old" and temp_files(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A real 64 KB file system (tmpfs): needs root; skipped where a mount is not allowed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"tmpfs not mountable here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_for_real_leaves_the_file_and_no_temporary_file(tiny_disk: Path) -> None:
    small = from_clusters(PATHS, LABELS, K)
    path = curation_file.save(small, tiny_disk / "c.json")
    before = path.read_bytes()
    many = [f"folder_{'x' * 60}/img_{i:05d}.png" for i in range(3000)]  # ~200 KB of JSON: more than the disk
    big = from_clusters(many, np.arange(3000) % K, K)
    big.stamp = small.stamp
    for _ in range(3):
        with pytest.raises(CurationError, match="No space left on device"):
            curation_file.save(big, path)
        assert temp_files(tiny_disk) == []
    assert path.read_bytes() == before


# ---- the command line ------------------------------------------------------------------------
@pytest.fixture
def folder_and_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    monkeypatch.setenv("DOTMAP_CACHE", str(tmp_path / "default-cache"))
    folder = make_demo(tmp_path / "d", n=48, seed=0)
    return folder, settings_args(folder, tmp_path / "cache")


CLI_HOSTILE = [HOSTILE[0], HOSTILE[3], HOSTILE[4], HOSTILE[10]]  # nested, 10^30, 10^15, Infinity


@pytest.mark.parametrize(("text", "words"), CLI_HOSTILE)
def test_the_command_line_refuses_a_hostile_curation_in_words(folder_and_args, capsys, tmp_path, text, words) -> None:
    folder, args = folder_and_args
    assert main(["curate", *args, "--from-k", "3"]) == 0
    (path,) = curation_file.curations_dir().glob("*.json")
    shutil.copy2(path, curation_file.last_good(path))
    path.write_text(text())
    capsys.readouterr()
    before, user_file = snapshot(folder), path.read_bytes()
    image = next(folder.glob("*.png"))
    for command in (
        ["curate", *args],
        ["export", *args, "--curation", "--csv", str(tmp_path / "g.csv")],
        ["predict", *args, str(image), "--curation", str(path)],
    ):
        assert main(command) == 1, command
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path} is not a usable curation: ") and "Traceback" not in err
        assert f"The last good version is kept as {curation_file.last_good(path)}." in err
        assert re.search(words, err), err
    assert snapshot(folder) == before and path.read_bytes() == user_file
    assert not (tmp_path / "g.csv").exists() and temp_files(path.parent) == []


def test_predict_with_a_curation_of_the_largest_id_works(folder_and_args, capsys) -> None:
    folder, args = folder_and_args
    assert main(["curate", *args, "--from-k", "3"]) == 0
    (path,) = curation_file.curations_dir().glob("*.json")
    doc = json.loads(path.read_text())
    doc["groups"][2]["id"] = ID_LIMIT - 1  # loads; dense() once took a slot per id (16 GB here)
    path.write_text(json.dumps(doc))
    member = folder / doc["groups"][2]["images"][0]
    capsys.readouterr()
    assert main(["predict", *args, str(member), "--curation", str(path), "--json"]) == 0
    (prediction,) = json.loads(capsys.readouterr().out)["predictions"]
    assert prediction["group"] == doc["groups"][2]["name"] and prediction["cluster"] == 2


# ---- the pages -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("text", "words"), CLI_HOSTILE)
def test_the_pages_say_a_hostile_curation_and_offer_the_last_good_version(demo, recommended_k, text, words) -> None:
    from tests.apptest import open_page, texts
    from tests.test_curate_page import PAGE, do, group_names, started, the_file

    at = do(started(recommended_k), 0, "Rename")
    (name,) = [t for t in at.text_input if t.label == "Name"]
    name.set_value("rings").run()
    at.button(key="rename_0").click().run()
    path = the_file()
    path.write_text(text())
    before, user_file = snapshot(demo), path.read_bytes()
    at = open_page(PAGE)
    assert not at.exception
    error = html.unescape(texts(at, "error"))  # the page shows it inert: each sign as its entity
    assert f"{path} is not a usable curation" in error and "last good version is kept" in error
    assert re.search(words, error), error
    for other in ("pages/6_Export.py", "pages/5_Classify.py"):
        page = open_page(other)
        assert not page.exception
        warning = html.unescape(texts(page, "warning"))
        assert "Your named groups cannot be used now" in warning and f"{path} is not a usable curation" in warning
    assert path.read_bytes() == user_file  # nothing above changed it
    at.button(key="restore").click().run()
    assert not at.exception and "Opened the last good version" in texts(at, "success")
    assert group_names(at)[0] == "cluster 0"
    (aside,) = path.parent.glob("*.unreadable-*.json")
    assert aside.read_bytes() == user_file  # moved aside, never deleted
    assert snapshot(demo) == before and temp_files(path.parent) == []


def test_a_group_name_over_255_bytes_is_refused_when_it_is_given() -> None:
    from core.curation.model import from_clusters

    curation = from_clusters(["a.png", "b.png", "c.png"], np.array([0, 0, 1]), 2)
    with pytest.raises(CurationError, match=r"at most 255 bytes; this one is 320 bytes \(80 characters"):
        curation.rename(0, "😀" * 80)
    assert curation.names[0] == "cluster 0" and not curation.history
    curation.rename(0, "😀" * 63)  # 252 bytes: fits, and the parts of its split still do
    parts = curation.split(0, np.array([0, 1]))
    assert all(len(curation.names[g].encode()) <= 255 for g in parts)
