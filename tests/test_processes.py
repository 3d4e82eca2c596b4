"""Work spread over a process per core: in order, the same results as here, a worker's error told."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.clustering import scoring
from core.demo import make_demo
from core.engine import processes
from core.engine.pipeline import Pipeline, Settings
from core.representation import features, typical

SETTINGS = Settings(k_min=2, k_max=7, cluster_space="pca")


def _pid_and_sum(i: int, v: np.ndarray) -> tuple[int, int]:
    return os.getpid(), i + int(v.sum())


def _fails_on_three(i: int) -> int:
    if i == 3:
        raise ValueError(f"item {i} is bad")
    return i


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_demo(tmp_path_factory.mktemp("spread") / "images", n=600, seed=5)


def test_items_come_back_in_order_from_other_processes_with_shared_inputs():
    n_images = processes.SPREAD_FROM_IMAGES
    results = list(processes.spread(_pid_and_sum, range(12), n_images=n_images, workers=2, v=np.ones(3)))
    assert [total for _, total in results] == [i + 3 for i in range(12)]
    assert os.getpid() not in {pid for pid, _ in results}


@pytest.mark.parametrize("n_images, workers", [(processes.SPREAD_FROM_IMAGES - 1, 2), (10**6, 1)])
def test_small_work_or_one_worker_runs_here(n_images: int, workers: int):
    results = list(processes.spread(_pid_and_sum, range(3), n_images=n_images, workers=workers, v=np.ones(2)))
    assert results == [(os.getpid(), 2), (os.getpid(), 3), (os.getpid(), 4)]


def test_a_workers_error_reaches_the_caller():
    with pytest.raises(ValueError, match="item 3 is bad"):
        list(processes.spread(_fails_on_three, range(8), n_images=10**6, workers=2))


def test_a_pipeline_spread_over_processes_gives_what_it_gives_here(images, tmp_path, monkeypatch):
    """Features, typical shapes and silhouettes by blocks of images, and k-means by k: the same bytes
    either way."""
    monkeypatch.setattr(features, "CHUNK_IMAGES", 150)
    monkeypatch.setattr(typical, "CHUNK_IMAGES", 150)
    monkeypatch.setattr(scoring, "QUERY_BATCH", 128)
    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 10**9)
    here = Pipeline(images, SETTINGS, tmp_path / "here")
    here.prepare(with_map=False)
    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 0)
    spread = Pipeline(images, SETTINGS, tmp_path / "spread")
    spread.prepare(with_map=False)
    assert np.array_equal(here.features(), spread.features())
    a, b = here.sweep(), spread.sweep()
    assert np.array_equal(a.labels, b.labels)
    assert [row["stability"] for row in a.table] == [row["stability"] for row in b.table]
    assert np.array_equal(a.silhouette, b.silhouette) and a.recommended_k == b.recommended_k
    for x, y in zip(here.cluster_means(), spread.cluster_means(), strict=True):
        assert np.array_equal(x, y)
