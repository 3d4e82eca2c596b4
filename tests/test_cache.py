"""Tests of core.engine.cache: round trips, keys, broken entries, no pickle, locking, atomic writes."""

import ast
import hashlib
import json
import multiprocessing
import os
import pickle
import re
import shlex
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from core.engine import digests
from core.engine.cache import MANIFEST, Cache, default_cache_dir, make_key
from core.errors import DotmapError

CORE = Path(__file__).resolve().parents[1] / "core"
STAGE, KEY = "stage", "0123abcd"
RACE_SLEEP_S = 0.5
RACE_TIMEOUT_S = 60


class CountingCompute:
    """A compute function that counts its calls and returns fixed small arrays."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> tuple[dict[str, np.ndarray], dict]:
        self.calls += 1
        return {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2, 3], np.int16)}, {"n": 3}


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


@pytest.fixture
def stored(cache: Cache) -> CountingCompute:
    """An entry (STAGE, KEY) already in the cache, written by one call of its compute."""
    compute = CountingCompute()
    cache.get_or_compute(STAGE, KEY, compute)
    assert compute.calls == 1
    return compute


def rewrite_manifest_checksums(folder: Path) -> None:
    """Make the manifest agree with the files as they now are, as a forger would."""
    manifest = json.loads((folder / MANIFEST).read_text())
    for name in manifest["files"]:
        data = (folder / name).read_bytes()
        manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / MANIFEST).write_text(json.dumps(manifest))


# ---------------------------------------------------------------- round trip and keys


def test_round_trip_keeps_arrays_dtypes_and_meta(cache: Cache) -> None:
    arrays = {
        "X": np.linspace(0, 1, 12, dtype=np.float32).reshape(4, 3),
        "labels": np.array([[0, 1, 1, 0]], np.int16),
        "mask": np.array([True, False, True]),
        "packed": np.arange(6, dtype=np.uint8),
    }
    meta = {"paths": ["a.png", "b/c.png"], "skipped": [["x.txt", "not an image"]], "distinct": 4, "f": 0.5}
    cache.get_or_compute(STAGE, KEY, lambda: (arrays, meta))
    entry = Cache(cache.root).load(STAGE, KEY)
    assert entry is not None
    assert entry.meta == meta
    assert sorted(entry.arrays) == sorted(arrays)
    for name, array in arrays.items():
        assert entry.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(entry.arrays[name], array)


def test_second_call_loads_without_computing(cache: Cache, stored: CountingCompute) -> None:
    entry, computed = cache.get_or_compute(STAGE, KEY, stored)
    assert (computed, stored.calls) == (False, 1)
    np.testing.assert_array_equal(entry.arrays["b"], [1, 2, 3])
    assert cache.has(STAGE, KEY)
    assert cache.meta(STAGE, KEY) == {"n": 3}
    assert cache.notes == []


def test_missing_entry_is_none(cache: Cache) -> None:
    assert cache.load(STAGE, KEY) is None
    assert not cache.has(STAGE, KEY)
    assert cache.meta(STAGE, KEY) is None


BASE_PARTS = {"up": "abc", "grid": 200, "polarity": "auto", "ks": [2, 3, 4]}


def test_make_key_is_stable_and_ignores_argument_order() -> None:
    key = make_key("images", **BASE_PARTS)
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert make_key("images", **dict(reversed(list(BASE_PARTS.items())))) == key


@pytest.mark.parametrize(
    ("name", "value"),
    [("up", "abd"), ("grid", 201), ("polarity", "dark-on-light"), ("ks", [2, 3, 5]), ("seed", 0)],
)
def test_make_key_changes_with_any_part(name: str, value: object) -> None:
    assert make_key("images", **{**BASE_PARTS, name: value}) != make_key("images", **BASE_PARTS)


def test_make_key_changes_with_the_stage() -> None:
    assert make_key("images", **BASE_PARTS) != make_key("features", **BASE_PARTS)


# ---------------------------------------------------------------- broken entries


def truncate_npy(folder: Path) -> None:
    path = folder / "a.npy"
    path.write_bytes(path.read_bytes()[:-7])


def alter_npy_same_size(folder: Path) -> None:
    path = folder / "a.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def delete_manifest(folder: Path) -> None:
    (folder / MANIFEST).unlink()


def garble_manifest(folder: Path) -> None:
    (folder / MANIFEST).write_bytes(b"\x00{not json")


def cut_manifest(folder: Path) -> None:
    text = (folder / MANIFEST).read_text()
    (folder / MANIFEST).write_text(text[: len(text) // 2])


def future_manifest(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "format": 999}))


def delete_npy(folder: Path) -> None:
    (folder / "b.npy").unlink()


@pytest.mark.parametrize(
    ("damage", "note"),
    [
        (truncate_npy, r"a\.npy is missing or of the wrong size"),
        (alter_npy_same_size, r"a\.npy does not match its checksum"),
        (delete_manifest, r"manifest is missing or unreadable"),
        (garble_manifest, r"manifest is missing or unreadable"),
        (cut_manifest, r"manifest is missing or unreadable"),
        (future_manifest, r"its manifest is of cache format \d+, not 1"),
        (delete_npy, r"b\.npy is missing or of the wrong size"),
    ],
)
def test_broken_entry_is_noted_and_recomputed(cache: Cache, stored: CountingCompute, damage, note) -> None:
    damage(cache.path(STAGE, KEY))
    entry, computed = cache.get_or_compute(STAGE, KEY, stored)
    assert (computed, stored.calls) == (True, 2)
    assert len(cache.notes) == 1
    assert re.search(rf"{STAGE}-{KEY} was broken \(.*{note}.*\); recomputed", cache.notes[0])
    np.testing.assert_array_equal(entry.arrays["a"], np.arange(12, dtype=np.float32).reshape(3, 4))
    assert Cache(cache.root).load(STAGE, KEY) is not None  # the rewritten entry is whole again


# ---------------------------------------------------------------- large files known by their stat


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file counts as large (over HASH_WHOLE_UP_TO); returns the list of files hashed from now on."""
    monkeypatch.setattr(digests, "HASH_WHOLE_UP_TO", 16)
    hashed: list[Path] = []
    real = digests.sha256_of

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(digests, "sha256_of", counting)
    return hashed


def _older_than_a_tick() -> None:
    time.sleep(2 * digests.SAME_TICK_NS / 1e9)


def test_a_large_file_is_hashed_once_then_known_by_its_stat(cache: Cache, large: list[Path]) -> None:
    compute = CountingCompute()
    cache.get_or_compute(STAGE, KEY, compute)
    manifest = json.loads((cache.path(STAGE, KEY) / MANIFEST).read_text())
    assert all("stat" not in info for info in manifest["files"].values())  # written in this tick: not trusted
    _older_than_a_tick()
    large.clear()
    assert Cache(cache.root).load(STAGE, KEY) is not None
    assert sorted(path.name for path in large) == ["a.npy", "b.npy"]
    large.clear()
    entry = Cache(cache.root).load(STAGE, KEY)
    assert large == []
    np.testing.assert_array_equal(entry.arrays["a"], np.arange(12, dtype=np.float32).reshape(3, 4))


@pytest.mark.parametrize("damage", [alter_npy_same_size, truncate_npy])
def test_a_large_file_changed_after_its_stat_is_caught(cache: Cache, stored: CountingCompute, large, damage) -> None:
    _older_than_a_tick()
    assert Cache(cache.root).load(STAGE, KEY) is not None  # hashed, and its stat kept
    damage(cache.path(STAGE, KEY))
    again = Cache(cache.root)
    assert again.load(STAGE, KEY) is None
    assert re.search(r"a\.npy (does not match its checksum|is missing or of the wrong size)", again.notes[0])


def test_a_copied_cache_is_hashed_again(cache: Cache, stored: CountingCompute, large, tmp_path: Path) -> None:
    _older_than_a_tick()
    assert cache.load(STAGE, KEY) is not None
    copy = tmp_path / "copy"
    shutil.copytree(cache.root, copy)  # other inodes, even where the times are kept
    large.clear()
    assert Cache(copy).load(STAGE, KEY) is not None
    assert sorted(path.name for path in large) == ["a.npy", "b.npy"]


def test_broken_entry_is_removed_on_load(cache: Cache, stored: CountingCompute) -> None:
    truncate_npy(cache.path(STAGE, KEY))
    assert cache.load(STAGE, KEY) is None
    assert not cache.path(STAGE, KEY).exists()


def test_truncated_npy_is_not_reported_as_cached(cache: Cache, stored: CountingCompute) -> None:
    truncate_npy(cache.path(STAGE, KEY))
    assert not cache.has(STAGE, KEY)
    assert cache.meta(STAGE, KEY) is None


@pytest.mark.parametrize("files", [{"a.npy": 5}, {"a.npy": {}}], ids=["int-info", "empty-info"])
def test_malformed_manifest_files_are_treated_as_broken(cache: Cache, stored: CountingCompute, files) -> None:
    path = cache.path(STAGE, KEY) / MANIFEST
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "files": files}))
    assert not cache.has(STAGE, KEY)
    _, computed = cache.get_or_compute(STAGE, KEY, stored)
    assert computed


# ---------------------------------------------------------------- no pickle


def core_sources() -> dict[str, str]:
    sources = {p.relative_to(CORE).as_posix(): p.read_text() for p in sorted(CORE.rglob("*.py"))}
    assert "engine/cache.py" in sources
    return sources


def is_numpy_load(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "load"
        and (isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy"))
    )


def refuses_pickle(call: ast.Call) -> bool:
    return any(
        kw.arg == "allow_pickle" and isinstance(kw.value, ast.Constant) and kw.value.value is False
        for kw in call.keywords
    )


PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve", "marshal"}


def test_core_never_imports_a_pickler() -> None:
    found = []
    for name, source in core_sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found += [(name, a.name) for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
                found.append((name, node.module))
    assert found == []


def test_core_source_never_mentions_joblib_or_pickle_calls() -> None:
    pattern = re.compile(
        r"joblib|allow_pickle\s*=\s*True|read_pickle|to_pickle"
        r"|\b(?:c?[pP]ickle|dill|cloudpickle)\.(?:loads?|dumps?|Pickler|Unpickler)\b"
    )
    found = [(name, m.group()) for name, source in core_sources().items() for m in pattern.finditer(source)]
    assert found == []


def test_every_numpy_load_in_core_refuses_pickle() -> None:
    loads = [
        (name, node.lineno, refuses_pickle(node))
        for name, source in core_sources().items()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and is_numpy_load(node)
    ]
    assert loads, "the cache should read arrays with np.load"
    assert [(name, line) for name, line, safe in loads if not safe] == []


class Planted:
    """Unpickling this runs a shell command: the marker file shows whether it ever ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def plant_object_array(path: Path, marker: Path) -> None:
    np.save(path, np.array([Planted(marker), 1], dtype=object), allow_pickle=True)


def plant_raw_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Planted(marker)))


@pytest.mark.parametrize("plant", [plant_object_array, plant_raw_pickle], ids=["object-npy", "raw-pickle"])
def test_planted_pickle_is_never_loaded(cache: Cache, stored: CountingCompute, tmp_path: Path, plant) -> None:
    marker = tmp_path / "pickle-ran"
    folder = cache.path(STAGE, KEY)
    plant(folder / "a.npy", marker)
    rewrite_manifest_checksums(folder)  # the checksum passes: only the loader stands in the way
    entry, computed = cache.get_or_compute(STAGE, KEY, stored)
    assert not marker.exists()
    assert (computed, stored.calls) == (True, 2)
    assert re.search(r"a\.npy cannot be read", cache.notes[0])
    assert entry.arrays["a"].dtype == np.float32


def test_object_arrays_are_refused_on_write(cache: Cache) -> None:
    with pytest.raises(TypeError, match=r"array 'a' has dtype object"):
        cache.get_or_compute(STAGE, KEY, lambda: ({"a": np.array([{}, 1], dtype=object)}, {}))


# ---------------------------------------------------------------- two processes, one entry


def race_worker(root: str, counter: str, out: str, barrier) -> None:
    """Ask for the shared entry once both processes are ready; record what came back."""

    def compute() -> tuple[dict[str, np.ndarray], dict]:
        time.sleep(RACE_SLEEP_S)
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        return {"x": np.arange(10, dtype=np.int64) * 3}, {"computed_by": os.getpid()}

    cache = Cache(Path(root))
    barrier.wait(timeout=RACE_TIMEOUT_S)
    entry, computed = cache.get_or_compute("race", KEY, compute)
    np.save(out + ".npy", entry.arrays["x"])
    Path(out + ".json").write_text(json.dumps({"computed": computed, "meta": entry.meta}))


def test_two_processes_compute_an_entry_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    counter = tmp_path / "computes.txt"
    outs = [str(tmp_path / f"out{i}") for i in range(2)]
    processes = [
        context.Process(target=race_worker, args=(str(tmp_path / "cache"), str(counter), out, barrier)) for out in outs
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(RACE_TIMEOUT_S)
    assert [p.exitcode for p in processes] == [0, 0]
    assert len(counter.read_text().splitlines()) == 1
    results = [json.loads(Path(out + ".json").read_text()) for out in outs]
    assert sorted(r["computed"] for r in results) == [False, True]
    assert results[0]["meta"] == results[1]["meta"]
    for out in outs:
        np.testing.assert_array_equal(np.load(out + ".npy", allow_pickle=False), np.arange(10) * 3)


# ---------------------------------------------------------------- atomic writes


def leftovers(cache: Cache) -> list[str]:
    return sorted(p.name for p in cache.root.glob(".tmp-*"))


def test_compute_that_raises_leaves_no_entry(cache: Cache) -> None:
    def compute():
        raise RuntimeError("stage failed half way")

    with pytest.raises(RuntimeError, match=r"stage failed half way"):
        cache.get_or_compute(STAGE, KEY, compute)
    assert leftovers(cache) == []
    assert not cache.path(STAGE, KEY).exists()
    assert not cache.has(STAGE, KEY)


def test_write_that_fails_half_way_leaves_no_entry(cache: Cache) -> None:
    def compute():
        return {"good": np.zeros(3), "bad": np.array([None], dtype=object)}, {}

    with pytest.raises(TypeError, match=r"dtype object"):
        cache.get_or_compute(STAGE, KEY, compute)
    assert leftovers(cache) == []
    assert not cache.path(STAGE, KEY).exists()


def test_meta_that_is_not_json_leaves_no_entry(cache: Cache) -> None:
    with pytest.raises(TypeError, match=r"not JSON serializable"):
        cache.get_or_compute(STAGE, KEY, lambda: ({"a": np.zeros(2)}, {"when": object()}))
    assert leftovers(cache) == []
    assert not cache.path(STAGE, KEY).exists()


# ---------------------------------------------------------------- where the cache lives


def test_default_cache_dir_honours_dotmap_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOTMAP_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "mine"


def test_default_cache_dir_honours_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOTMAP_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dotmap"


def test_default_cache_dir_falls_back_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOTMAP_CACHE", "")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "dotmap"


def test_cache_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DotmapError, match=r"Cannot create the cache folder .*--cache DIR"):
        Cache(tmp_path / "file" / "cache")


def test_staging_left_by_a_dead_writer_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    import subprocess
    import sys

    from core.engine.cache import Cache, staging_prefix

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    cache = Cache(tmp_path / "cache")
    orphan = cache.root / f".tmp-sweep-pid{int(dead.stdout)}-abc123"
    live = cache.root / f"{staging_prefix('map')}xyz789"  # this process is writing it
    for folder in (orphan, live):
        folder.mkdir()
        (folder / "labels.npy").write_bytes(b"half")
    assert cache.remove_orphaned_staging() == [orphan.name]
    assert not orphan.exists()
    assert live.exists()
