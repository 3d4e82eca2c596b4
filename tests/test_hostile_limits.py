"""Limits of the machine and the file system: each is said in words, nothing half-made is left, the data is untouched.

Paths that cannot be looked at (a folder the user may not enter, a name over 255 bytes), a full disk
(bytes or inodes) under the cache or an export, a read-only file system, settings out of range,
names Windows keeps for devices, an empty HOME, a system folder of devices, and a folder so large
that the dashboard asks first. Full and read-only disks are real tmpfs mounts made by the test.
"""

import contextlib
import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.cli.commands import main
from core.curation.model import from_clusters
from core.demo import make_demo
from core.engine import disk
from core.engine.cache import MANIFEST, Cache, default_cache_dir
from core.engine.pipeline import Pipeline, Settings
from core.errors import DiskFullError, DotmapError, PathError
from core.outputs.export import export, group_folders, zip_of_files
from core.reading import folders
from core.reading.names import NAME_MAX_BYTES, name_too_long, zip_entry
from tests.unprivileged import permissions_bind, run_cli

SEED = 0
N_IMAGES = 48
N_FULL = 400  # 2.0 MB of packed images at the default grid: more than a 1 MB disk holds
K_MAX = 4
PAGE = 4096  # tmpfs counts whole pages
FAST = ["--cluster-space", "pca", "--k-max", str(K_MAX), "--quiet"]
LONG_NAME = "a" * 300
EMOJI_NAME = "\U0001f600" * 80  # 80 characters, 320 bytes of UTF-8


# ---------------------------------------------------------------- helpers


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry below ``folder`` with its kind, size, mtime and (for a file) its bytes; links not followed."""
    entries = {}
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in ["", *dirs, *files]:
            path = os.path.join(parent, name) if name else parent
            st = os.lstat(path)
            content = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else None
            entries[os.path.relpath(path, folder)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, content)
    return entries


def entries_of(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) if cache.exists() else []


def leftovers(cache: Path) -> list[str]:
    """Temporary folders a write left in a cache (there must be none once a command has ended)."""
    return sorted(p.name for p in cache.glob(".tmp-*")) if cache.exists() else []


def manifests(cache: Path) -> dict[str, dict]:
    return {name: json.loads((cache / name / MANIFEST).read_text()) for name in entries_of(cache)}


def pages_of(entry: Path) -> int:
    """What a cache entry takes on a tmpfs: whole pages per file."""
    return sum(-(-f.stat().st_size // PAGE) * PAGE for f in entry.iterdir())


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` for the block (as root; CI runs as root in a container)."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        pytest.fail("the mount command (util-linux) is needed to make a small disk for this test")
    if mounted.returncode != 0:  # a container without CAP_SYS_ADMIN: the one case a test may skip
        pytest.skip(f"mount -t tmpfs is refused here ({mounted.stderr.strip()}); this test needs a small real disk")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)


def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True, capture_output=True)


def prepare(data: Path, cache: Path, *more: str) -> list[str]:
    return ["prepare", str(data), "--cache", str(cache), *FAST, "--no-map", *more]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small demo folder prepared without UMAP: (folder, cache). Tests only read both."""
    root = tmp_path_factory.mktemp("limits")
    data = make_demo(root / "d", n=N_IMAGES, seed=SEED)
    assert main(prepare(data, root / "cache")) == 0
    return data, root / "cache"


@pytest.fixture(scope="module")
def four_hundred(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("full") / "d400", n=N_FULL, seed=SEED)


@pytest.fixture
def pipeline(prepared: tuple[Path, Path]) -> Pipeline:
    data, cache = prepared
    return Pipeline(data, Settings(cluster_space="pca", k_max=K_MAX), cache)


@pytest.fixture(autouse=True)
def _reopen(tmp_path: Path):
    """Whatever a test closed is opened again, so pytest can remove its temp folder."""
    yield
    for folder, _, _ in os.walk(tmp_path):
        os.chmod(folder, 0o755)


# ---------------------------------------------------------------- 3. paths that cannot be looked at


def test_a_folder_name_over_255_bytes_is_said_in_words(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    before = snapshot(tmp_path)
    assert main(prepare(tmp_path / LONG_NAME, tmp_path / "cache")) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: The name {'a' * 24}... in {tmp_path} is 300 bytes long: a file or folder name may be at most "
        f"{NAME_MAX_BYTES} bytes. Use a shorter name.\n"
    )
    assert snapshot(tmp_path) == before  # not even the cache folder was made


def test_an_export_name_over_255_bytes_is_refused_before_anything_is_written(
    pipeline: Pipeline, prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    data_before = snapshot(prepared[0])
    for target in ({"csv_path": tmp_path / f"{LONG_NAME}.csv"}, {"folders": tmp_path / "new" / LONG_NAME}):
        with pytest.raises(PathError, match=r"is 30\d bytes long: a file or folder name may be at most 255 bytes"):
            export(pipeline, 3, **target)
    assert list(tmp_path.iterdir()) == []
    assert snapshot(prepared[0]) == data_before


def test_the_setup_binds_permissions() -> None:
    assert permissions_bind()


@pytest.mark.parametrize("name", ["images", "images.npy"])
def test_a_data_path_under_a_folder_that_may_not_be_entered(tmp_path: Path, name: str) -> None:
    closed = tmp_path / "closed"
    data = make_demo(closed / "images", n=6, seed=SEED)
    before = snapshot(closed)
    closed.chmod(0)
    run = run_cli(prepare(closed / name, tmp_path / "cache"))
    closed.chmod(0o755)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr == (
        f"error: Cannot look at {closed / name}: this user may not enter the folder {closed} (permission denied). "
        f"Choose a place you may open, or ask the folder's owner for access.\n"
    )
    assert snapshot(closed) == before
    assert not (tmp_path / "cache").exists()
    assert data.exists()


def test_an_export_into_a_folder_that_may_not_be_entered(prepared: tuple[Path, Path], tmp_path: Path) -> None:
    data, cache = prepared
    closed = tmp_path / "closed"
    closed.mkdir()
    data_before, cache_before = snapshot(data), manifests(cache)
    closed.chmod(0)
    for target in (["--csv", str(closed / "out.csv")], ["--folders", str(closed / "out")]):
        run = run_cli(["export", str(data), "--cache", str(cache), *FAST, "--k", "3", *target])
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr
        assert run.stderr.startswith(
            f"error: Cannot look at {target[1]}: this user may not enter the folder {closed} (permission denied)."
        )
    closed.chmod(0o755)
    assert list(closed.iterdir()) == []
    assert snapshot(data) == data_before
    assert manifests(cache) == cache_before and leftovers(cache) == []


# ---------------------------------------------------------------- 4. a full disk under the cache


FULL_WORDS = (
    r"error: The disk holding the cache folder {cache} is full: the {stage} stage needs about [\d.]+ (kB|MB) "
    r"there, and [\d.]+ (bytes|kB|MB) is free\. Nothing half-written was kept; what the cache already holds is "
    r"still used\. Free some space on that disk, or choose a cache folder on another disk with --cache DIR or "
    r"the DOTMAP_CACHE variable\.\n"
)


@pytest.mark.parametrize(
    ("stage", "more"),
    [("images", []), ("features", ["--features", "pixels"]), ("typical", [])],
    ids=["read", "features", "typical"],
)
def test_a_full_cache_disk_is_said_and_a_rerun_with_room_equals_a_fresh_run(
    four_hundred: Path, tmp_path: Path, capsys: pytest.CaptureFixture, stage: str, more: list[str]
) -> None:
    data_before = snapshot(four_hundred)
    fresh = tmp_path / "fresh"
    assert main(prepare(four_hundred, fresh, *more)) == 0
    # a disk that holds every entry made before the stage's and half of the stage's own
    by_age = sorted((fresh / name for name in entries_of(fresh)), key=lambda entry: entry.stat().st_mtime_ns)
    first = next(i for i, entry in enumerate(by_age) if entry.name.startswith(f"{stage}-"))
    room = sum(pages_of(entry) for entry in by_age[:first]) + pages_of(by_age[first]) // 2
    capsys.readouterr()

    with tmpfs(tmp_path / "small", f"size={-(-room // PAGE) * PAGE}") as small:
        cache = small / "c"
        assert main(prepare(four_hundred, cache, *more)) == 1
        err = capsys.readouterr().err
        assert re.fullmatch(FULL_WORDS.format(cache=re.escape(str(cache)), stage=stage), err), err
        assert leftovers(cache) == []
        kept = manifests(cache)
        assert not any(name.startswith(f"{stage}-") for name in kept)  # no half entry of the failed stage
        assert all(manifests(fresh)[name] == manifest for name, manifest in kept.items())
        assert all(Cache(cache).load(*name.rsplit("-", 1)) is not None for name in kept)  # each one whole

        remount(small, "size=64m")
        assert main(prepare(four_hundred, cache, *more)) == 0
        assert manifests(cache) == manifests(fresh)
        assert leftovers(cache) == []
    assert snapshot(four_hundred) == data_before


def test_a_cache_disk_out_of_inodes_is_said_as_such(
    prepared: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data, _ = prepared
    with tmpfs(tmp_path / "few", "size=64m,nr_inodes=6") as few:
        assert main(prepare(data, few / "c")) == 1
        err = capsys.readouterr().err
        assert re.match(
            rf"error: The file system holding the cache folder {re.escape(str(few / 'c'))} can hold no more files: "
            r"every one of its inodes \(its table of files\) is in use, though [\d.]+ MB are free, so the \w+ stage "
            r"could not be written\. .* Remove some files from that file system, or choose a cache folder",
            err,
        ), err
        assert leftovers(few / "c") == []


# ---------------------------------------------------------------- 5. export folders: long names, no inodes


def test_a_group_name_over_255_bytes_is_refused_at_export(pipeline: Pipeline, tmp_path: Path) -> None:
    sweep = pipeline.sweep()
    curation = from_clusters(pipeline.image_meta()["paths"], sweep.labels[sweep.row(3)], 3)
    curation.names[0] = EMOJI_NAME  # as an older curation file may hold it
    words = r"becomes a folder name when exported, and a folder name may be at most 255 bytes; this one is 320 bytes"
    with pytest.raises(DotmapError, match=words):
        export(pipeline, None, folders=tmp_path / "out", curation=curation)
    with pytest.raises(DotmapError, match=words):
        zip_of_files(pipeline, None, curation=curation)
    assert list(tmp_path.iterdir()) == []


def test_the_name_check_a_curation_calls_when_a_group_is_named() -> None:
    assert name_too_long("a" * NAME_MAX_BYTES) is None
    assert name_too_long("\U0001f600" * 63) is None  # 252 bytes
    assert name_too_long(EMOJI_NAME) == (
        "A group name becomes a folder name when exported, and a folder name may be at most 255 bytes; this one "
        "is 320 bytes (80 characters: an emoji takes 4 bytes, an accented letter 2). Choose a shorter name."
    )


def test_group_folders_made_alike_stay_within_255_bytes() -> None:
    folders_made = group_folders(["é" * 127, "É" * 127])  # 254 bytes each, alike without regard to case
    assert folders_made[0] == "é" * 127
    assert folders_made[1].endswith("~2") and len(folders_made[1].encode()) <= NAME_MAX_BYTES


def test_an_export_disk_out_of_inodes_is_said_and_nothing_is_left(
    prepared: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data, cache = prepared
    data_before = snapshot(data)
    with tmpfs(tmp_path / "few", "size=64m,nr_inodes=50") as few:  # 48 images and 3 folders need 52
        command = ["export", str(data), "--cache", str(cache), *FAST, "--k", "3", "--folders", str(few / "out")]
        assert main(command) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert re.fullmatch(
            rf"error: The file system holding the export folder {re.escape(str(few / 'out'))} can hold no more "
            r"files: every one of its inodes \(its table of files\) is in use, though [\d.]+ MB are free, so the "
            r"export could not be written\. What this export wrote was removed; nothing else was touched\. Remove "
            r"some files from that file system, or export to another disk\.\n",
            err,
        ), err
        assert list(few.iterdir()) == []
    assert snapshot(data) == data_before


def test_an_export_disk_full_of_bytes_says_what_the_export_needs(pipeline: Pipeline, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "size=64k") as small:
        full = r"The disk holding the export folder .* is full: the export needs about [\d.]+ kB there, and "
        with pytest.raises(DiskFullError, match=full):
            export(pipeline, 3, folders=small / "out")
        assert list(small.iterdir()) == []
        with contextlib.suppress(OSError), open(small / "filler", "wb") as filler:
            filler.write(b"x" * 128 * 1024)  # fills the disk: not one page is left for the CSV
        full = rf"The disk holding the export CSV file {re.escape(str(small / 'out.csv'))} is full: the export needs"
        with pytest.raises(DiskFullError, match=full):
            export(pipeline, 3, csv_path=small / "out.csv")
        assert [p.name for p in small.iterdir()] == ["filler"]


# ---------------------------------------------------------------- 9. arguments out of range


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--seed", "-1"], "seed=-1 should be 0..4,294,967,295 (2^32 - 1)."),
        (["--seed", str(2**32)], "seed=4294967296 should be 0..4,294,967,295 (2^32 - 1)."),
        (
            ["--grid", "6000"],
            "grid=6000 should be 8..1024 pixels: every image is worked on as grid x grid pixels, and 1024 "
            "already takes 131 kB per image in the cache.",
        ),
    ],
)
def test_a_setting_out_of_range_is_said_with_its_range(
    prepared: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture, flags: list[str], words: str
) -> None:
    data, _ = prepared
    assert main([*prepare(data, tmp_path / "cache"), *flags]) == 1
    assert capsys.readouterr().err == f"error: {words}\n"
    assert not (tmp_path / "cache").exists()


def test_the_ends_of_the_ranges_are_taken() -> None:
    Settings(seed=2**32 - 1, grid=1024)
    Settings(seed=0, grid=8)


def test_a_demo_seed_out_of_range_is_said_and_makes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", str(tmp_path / "d"), "--n", "5", "--seed", "-1", "--quiet"]) == 1
    assert capsys.readouterr().err == "error: --seed -1 should be 0..4,294,967,295 (2^32 - 1).\n"
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("value", "words"), [("abc", "should be a number of megabytes"), ("nan", "should be more than 0 megabytes")]
)
def test_a_block_size_that_is_no_number_is_said_before_any_work(
    prepared: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch, value: str, words: str
) -> None:
    data, _ = prepared
    monkeypatch.setenv("DOTMAP_BLOCK_MB", value)
    assert main(prepare(data, tmp_path / "cache")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: DOTMAP_BLOCK_MB={value!r} {words}") and "Traceback" not in err
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- 10. smaller limits


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("CON", "CON_"),
        ("NUL", "NUL_"),
        ("com1", "com1_"),
        ("con.txt", "con_.txt"),
        ("Lpt9.tar.gz", "Lpt9_.tar.gz"),
        ("aux ", "aux_"),
        ("console", "console"),
        ("com10", "com10"),
    ],
)
def test_windows_device_names_are_made_safe(name: str, safe: str) -> None:
    assert group_folders([name]) == [safe]
    assert zip_entry(f"{name}/{name}") == f"{safe}/{safe}"


def test_groups_named_as_windows_devices_export_to_safe_folders(pipeline: Pipeline, tmp_path: Path) -> None:
    sweep = pipeline.sweep()
    curation = from_clusters(pipeline.image_meta()["paths"], sweep.labels[sweep.row(3)], 3)
    curation.names.update({0: "CON", 1: "nul", 2: "com1.txt"})
    (out,) = export(pipeline, None, folders=tmp_path / "out", curation=curation)
    assert sorted(p.name for p in out.iterdir()) == ["CON_", "com1_.txt", "nul_"]


def test_an_empty_home_is_taken_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    monkeypatch.delenv("DOTMAP_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "")
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert default_cache_dir() == home / ".cache" / "dotmap"


def test_no_home_folder_at_all_is_said_in_words(
    prepared: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import pwd

    def no_entry(uid: int):
        raise KeyError(uid)

    monkeypatch.delenv("DOTMAP_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "")
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert main(["prepare", str(prepared[0]), *FAST, "--no-map"]) == 1
    assert capsys.readouterr().err == (
        "error: There is no home folder (HOME is empty and this user has none of their own), so there is no "
        "default cache folder (~/.cache/dotmap). Choose one: set DOTMAP_CACHE=DIR, or give --cache DIR.\n"
    )
    assert not Path("/.cache/dotmap").exists()


def devices_folder(root: Path) -> Path:
    """A folder of two character devices (/dev/null's numbers) and a named pipe: entries, but no files."""
    folder = root / "devices"
    folder.mkdir()
    for name in ("null", "zero"):
        os.mknod(folder / name, stat.S_IFCHR | 0o600, os.makedev(1, 3 if name == "null" else 5))
    os.mkfifo(folder / "pipe")
    return folder


def test_a_folder_of_devices_is_said_to_be_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = devices_folder(tmp_path)
    before = snapshot(folder)
    assert main(prepare(folder, tmp_path / "cache")) == 1
    assert capsys.readouterr().err == (
        f"error: The folder {folder} holds no file that could be an image: none of its 3 entries is a regular file "
        f"Dotmap can read (a device: 2; a named pipe: 1). It looks like a system folder of devices, not a folder "
        f"of images.\n"
    )
    assert entries_of(tmp_path / "cache") == [] and leftovers(tmp_path / "cache") == []
    assert snapshot(folder) == before


def test_an_export_onto_a_read_only_file_system_says_so(
    prepared: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data, cache = prepared
    data_before = snapshot(data)
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        for target in (["--csv", str(ro / "out.csv")], ["--folders", str(ro / "out")]):
            assert main(["export", str(data), "--cache", str(cache), *FAST, "--k", "3", *target]) == 1
            assert capsys.readouterr().err == (
                f"error: Cannot write into {ro}: it is on a read-only file system. Choose a place on a disk that "
                f"can be written.\n"
            )
        assert list(ro.iterdir()) == []
    assert snapshot(data) == data_before


def test_a_path_that_cannot_be_looked_at_is_a_path_error(tmp_path: Path) -> None:
    assert disk.exists(tmp_path)
    assert not disk.exists(tmp_path / "nothing" / "here")
    with pytest.raises(PathError, match=r"is 300 bytes long"):
        disk.exists(tmp_path / LONG_NAME)


def test_the_overview_asks_before_preparing_a_very_large_folder(tmp_path: Path, monkeypatch) -> None:
    from core.engine import jobs
    from tests.apptest import assert_clean, open_page, settle, texts

    monkeypatch.setattr(folders, "LARGE_FOLDER_FILES", 10)  # as if these 30 files were more than 200,000
    few = make_demo(tmp_path / "few", n=30, seed=SEED)
    monkeypatch.setenv("DOTMAP_DATA", str(few))
    at = open_page()
    at.slider(key="form_k").set_value((2, K_MAX))
    at.selectbox(key="form_space").set_value("pca")
    at.button(key="apply").click().run()
    assert not at.exception
    assert "holds 30 files" in texts(at, "warning") and "more than 10" in texts(at, "warning")
    mine = [job for job in jobs.active_jobs(default_cache_dir()) if job.data_dir and Path(job.data_dir) == few]
    assert mine == []  # nothing is read before the user says so (another test's job may still be running)
    assert not Pipeline(few, Settings(**at.session_state["settings"])).is_cached("images")

    at.button(key="confirm_large").click().run()
    settle(at)
    assert_clean(at)
    assert "confirm_large" not in [b.key for b in at.button]
    assert Pipeline(few, Settings(**at.session_state["settings"])).missing(with_map=False) == []
