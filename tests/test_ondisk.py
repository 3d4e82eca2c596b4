"""Arrays on disk: streamed .npy files, mapped reads whose pages are let go, and the cache taking them."""

from __future__ import annotations

import numpy as np
import pytest

from core.demo import make_demo
from core.engine.cache import Cache
from core.engine.pipeline import Pipeline, Settings
from core.reading import ondisk
from core.reading.folders import scan_folder
from core.reading.images import load_images, stream_images


def test_a_streamed_file_is_a_plain_npy_of_every_block(tmp_path, rng):
    blocks = [rng.integers(0, 255, (n, 7), dtype=np.uint8) for n in (3, 0, 5)]
    with ondisk.RowWriter(tmp_path / "a.npy", (7,), np.uint8) as writer:
        for block in blocks:
            writer.append(block)
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.concatenate(blocks))


def test_a_stream_of_no_rows_is_an_empty_array(tmp_path):
    ondisk.RowWriter(tmp_path / "a.npy", (4,), np.float32).close()
    assert np.load(tmp_path / "a.npy").shape == (0, 4)
    assert ondisk.map_rows(tmp_path / "a.npy").shape == (0, 4)


def test_a_block_of_another_width_is_refused(tmp_path):
    writer = ondisk.RowWriter(tmp_path / "a.npy", (4,), np.uint8)
    with pytest.raises(ValueError, match="does not fit"):
        writer.append(np.zeros((2, 5), np.uint8))
    writer.close()


def test_mapped_rows_read_what_was_saved_and_survive_letting_go(tmp_path, rng):
    X = rng.normal(size=(1000, 13)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    mapped = ondisk.map_rows(tmp_path / "x.npy")
    assert ondisk.is_mapped(mapped) and ondisk.is_mapped(mapped[10:20])
    assert not ondisk.is_mapped(X)
    ondisk.let_go(mapped[10:20])  # the pages go back to the kernel; reading them again is still right
    assert np.array_equal(mapped[500:510], X[500:510])
    ondisk.let_go(X)  # an array in memory: nothing to do


def test_only_large_files_are_mapped(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.arange(100, dtype=np.int64))
    assert not ondisk.is_mapped(ondisk.load(tmp_path / "x.npy"))
    monkeypatch.setattr(ondisk, "MAP_ABOVE_BYTES", 10)
    assert ondisk.is_mapped(ondisk.load(tmp_path / "x.npy"))


@pytest.mark.parametrize(("text", "words"), [("abc", "a number of megabytes"), ("0", "more than 0")])
def test_a_bad_block_size_is_said_in_words(monkeypatch, text, words):
    monkeypatch.setenv(ondisk.MEMORY_ENV, text)
    with pytest.raises(ValueError, match=words):
        ondisk.block_bytes()


def test_images_go_2048_at_a_time_unless_the_block_is_set_smaller(monkeypatch):
    monkeypatch.delenv(ondisk.MEMORY_ENV, raising=False)
    assert ondisk.image_block_rows() == 2048  # what the stages took before the setting: the same results
    monkeypatch.setenv(ondisk.MEMORY_ENV, "24")
    assert ondisk.image_block_rows() == 512
    assert ondisk.row_blocks(5, 2) == [(0, 2), (2, 4), (4, 5)] and ondisk.row_blocks(0, 2) == []


def test_the_block_size_sets_the_rows_of_a_block(monkeypatch):
    monkeypatch.setenv(ondisk.MEMORY_ENV, "1")
    assert ondisk.block_rows(1024) == 1024
    assert ondisk.block_rows(2**30) == 256  # never fewer than a few rows


def test_the_cache_takes_over_a_streamed_file_and_checks_it(tmp_path):
    cache = Cache(tmp_path / "cache")

    def compute():
        out = cache.scratch_file("stage", "big")
        with ondisk.RowWriter(out, (3,), np.int32) as writer:
            writer.append(np.arange(12, dtype=np.int32).reshape(4, 3))
        return {"big": out, "small": np.ones(2)}, {"n": 4}

    entry, computed = cache.get_or_compute("stage", "k", compute)
    assert computed and entry.arrays["big"].shape == (4, 3) and entry.meta == {"n": 4}
    assert not list(tmp_path.joinpath("cache").glob(".tmp-*"))  # the scratch folder is gone
    again = cache.load("stage", "k")
    assert np.array_equal(again.arrays["big"], np.arange(12).reshape(4, 3))


def test_streamed_images_are_those_read_into_memory(tmp_path):
    folder = make_demo(tmp_path / "images", n=60, seed=3)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    inventory = scan_folder(folder)
    held = load_images(inventory, grid=64)
    streamed = stream_images(inventory, tmp_path / "packed.npy", grid=64)
    assert np.array_equal(np.load(tmp_path / "packed.npy"), held.packed)
    assert streamed.paths == held.paths and streamed.skipped == held.skipped
    assert [path for path, _ in streamed.skipped] == ["broken.png"]
    assert streamed.distinct == 60
    assert np.array_equal(streamed.ink, np.unpackbits(held.packed, axis=1).sum(axis=1))


def test_a_mapped_set_gives_the_same_results(tmp_path, monkeypatch):
    folder = make_demo(tmp_path / "images", n=120, seed=4)
    settings = Settings(k_min=2, k_max=4, cluster_space="pca", grid=64)
    held = Pipeline(folder, settings, tmp_path / "held")
    monkeypatch.setattr(ondisk, "MAP_ABOVE_BYTES", 0)  # every cached array is mapped, as a million images' are
    mapped = Pipeline(folder, settings, tmp_path / "mapped")
    mapped.prepare(with_map=False)
    assert ondisk.is_mapped(mapped.images().packed)
    held.prepare(with_map=False)
    assert np.array_equal(mapped.features(), held.features())
    assert np.array_equal(mapped.sweep().labels, held.sweep().labels)
    for a, b in zip(mapped.cluster_means(), held.cluster_means(), strict=True):
        assert np.allclose(a, b)


def test_pca_above_its_fit_sample_projects_every_row(tmp_path, monkeypatch, rng):
    from core.representation import reduction

    X = rng.normal(size=(500, 12)).astype(np.float32)
    monkeypatch.setattr(reduction, "PCA_FIT_UP_TO", 200)
    monkeypatch.setenv(ondisk.MEMORY_ENV, "0.001")  # blocks of the fewest rows
    r = reduction.reduce_features(X, 4, seed=0)
    assert r.Z.shape == (500, 4)
    assert np.allclose(r.Z, r.project(X), atol=1e-5)
    sample = reduction.fit_rows(500, 0)
    assert len(sample) == 200 and np.all(np.diff(sample) > 0)
    assert reduction.fit_rows(200, 0) is None


def test_a_stage_computed_inside_another_leaves_the_outer_scratch_file_be(tmp_path):
    cache = Cache(tmp_path / "cache")

    def inner():
        out = cache.scratch_file("inner", "a")
        np.save(out, np.zeros(3))
        return {"a": out}, {}

    def outer():
        out = cache.scratch_file("outer", "b")  # made before the stage above it is computed
        cache.get_or_compute("inner", "k1", inner)
        np.save(out, np.ones(4))
        return {"b": out}, {}

    entry, _ = cache.get_or_compute("outer", "k2", outer)
    assert np.array_equal(entry.arrays["b"], np.ones(4))
    assert not list((tmp_path / "cache").glob(".tmp-*"))
