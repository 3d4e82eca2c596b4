"""Work spread over a process per core: in order, the same results as here, a worker's error told."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from core.clustering import scoring
from core.demo import make_demo
from core.engine import processes
from core.engine.beside import WAITING_WORDS
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError
from core.representation import features, reduction, typical

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
    monkeypatch.setattr(reduction, "EXACT_TASK_ROWS", 128)
    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 10**9)
    here = Pipeline(images, SETTINGS, tmp_path / "here")
    here.prepare(with_map=False)
    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 0)
    spread = Pipeline(images, SETTINGS, tmp_path / "spread")
    spread.prepare(with_map=False)
    assert np.array_equal(here.features(), spread.features())
    for x, y in zip(here.neighbours(), spread.neighbours(), strict=True):
        assert np.array_equal(x, y)
    a, b = here.sweep(), spread.sweep()
    assert np.array_equal(a.labels, b.labels)
    assert [row["stability"] for row in a.table] == [row["stability"] for row in b.table]
    assert np.array_equal(a.silhouette, b.silhouette) and a.recommended_k == b.recommended_k
    for x, y in zip(here.cluster_means(), spread.cluster_means(), strict=True):
        assert np.array_equal(x, y)


def test_a_process_running_threads_spreads_from_the_fork_server(images, tmp_path, monkeypatch):
    """A notebook's process (or a web server's) runs other threads: its workers come from the fork server,
    with the same results."""
    import threading

    monkeypatch.setattr(features, "CHUNK_IMAGES", 150)
    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 10**9)
    here = Pipeline(images, SETTINGS, tmp_path / "here")
    here.prepare(with_map=False)
    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 0)
    contexts = []
    real_context = processes.pool_context
    monkeypatch.setattr(processes, "pool_context", lambda: contexts.append(real_context()) or contexts[-1])
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        spread = Pipeline(images, SETTINGS, tmp_path / "spread")
        spread.prepare(with_map=False)
    finally:
        stop.set()
    assert contexts and {c.get_start_method() for c in contexts} == {"forkserver"}
    assert np.array_equal(here.features(), spread.features())
    assert np.array_equal(here.sweep().labels, spread.sweep().labels)


POOL_BESIDE_THREADS = """
import threading
from core.engine import processes
stop = threading.Event()
processes.start_fork_safe(stop.wait, "waits")
alone = processes.pool_context().get_start_method()
threading.Thread(target=stop.wait, daemon=True).start()
print(alone, processes.pool_context().get_start_method())
"""


def test_a_pool_forks_beside_fork_safe_threads_only():
    """The job's status writer and parent watch leave its pools forked (no scikit-learn imported again in
    every worker); any other thread sends them to the fork server. In a fresh process: this one may run
    threads of earlier tests."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", POOL_BESIDE_THREADS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["fork", "forkserver"]


def _counts_to(n: int, on_progress) -> None:
    for i in range(n):
        on_progress(i + 1, n, "counting")


def _fails_beside(on_progress) -> None:
    raise ValueError("the map is bad")


def _dies_beside(on_progress) -> None:
    os._exit(3)


def test_work_beside_hands_on_its_progress_and_says_it_succeeded():
    seen = []
    beside = processes.Beside(_counts_to, 300)
    assert beside.wait(lambda done, total, stage: seen.append((done, total, stage))) is None
    assert seen == [(i + 1, 300, "counting") for i in range(300)]


@pytest.mark.parametrize(
    "fn, said", [(_fails_beside, "ValueError: the map is bad"), (_dies_beside, "ended with exit code 3")]
)
def test_work_beside_that_fails_or_dies_says_what_happened(fn, said: str):
    problem = processes.Beside(fn).wait()
    assert problem is not None and said in problem


def _failing_stage_beside(stage: str, *args, on_progress) -> None:
    raise RuntimeError(f"no {stage} today")


def _warmed(on_progress) -> None:
    on_progress(1, 1, f"warmed {os.environ.get('DOTMAP_TEST_WARMED')}")


def _warm_up() -> None:
    os.environ["DOTMAP_TEST_WARMED"] = "first"


def test_work_beside_with_a_warm_up_waits_for_go_and_runs_after_it():
    beside = processes.Beside(_warmed, warm_up=_warm_up)
    time.sleep(1.0)
    assert beside._process.is_alive() and not beside.going  # warmed up, waiting
    seen = []
    assert beside.wait(lambda done, total, stage: seen.append(stage)) is None  # wait lets it go
    assert seen == ["warmed first"]


def test_closing_work_beside_ends_its_process():
    beside = processes.Beside(_warmed, warm_up=_warm_up)
    beside.close()
    assert not beside._process.is_alive()


@pytest.mark.slow
def test_the_umap_stages_made_beside_are_the_ones_made_here(images, tmp_path, monkeypatch):
    settings = Settings(k_min=2, k_max=4)
    here = Pipeline(images, settings, tmp_path / "here")
    here.prepare()
    assert not any(r.stage in ("space", "map") and not r.computed for r in here.records)
    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 0)
    beside = Pipeline(images, settings, tmp_path / "beside")
    seen, waited = [], []
    real_wait = processes.Beside.wait

    def wait(self, on_progress=None):  # when the wait ends, the other process has cached its stage
        waited.append((real_wait(self, on_progress), beside.is_cached("space"), beside.is_cached("map")))
        return waited[-1][0]

    monkeypatch.setattr(processes.Beside, "wait", wait)
    beside.on_progress = lambda done, total, stage: seen.append(stage)
    beside.prepare()
    assert waited == [(None, True, waited[0][2]), (None, True, True)]  # the cluster space first, the map last
    assert np.array_equal(here.space(), beside.space())
    assert np.array_equal(here.map(), beside.map())
    assert np.array_equal(here.sweep().labels, beside.sweep().labels)
    for stage in ("space", "map"):
        (record,) = [r for r in beside.records if r.stage == stage]
        assert record.computed and record.seconds > 0
    # the epochs came from the other processes
    assert any(stage.startswith("cluster space (UMAP): epochs") for stage in seen)
    # said from the moment it is waited for (it may be compiling), in the stage's own words, which come too
    space_lines = [stage for stage in seen if stage.startswith("cluster space (UMAP)")]
    assert space_lines[0] == space_lines[1] == WAITING_WORDS["space"]
    assert any(stage.startswith("map (UMAP): epochs") for stage in seen)
    assert not beside.cache.notes


def test_a_prepare_that_stops_ends_the_processes_beside(tmp_path, monkeypatch):
    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 0)
    folder = make_demo(tmp_path / "two", n=2)
    started = []
    real_init = processes.Beside.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(processes.Beside, "__init__", init)
    with pytest.raises(DotmapError):
        Pipeline(folder, Settings(k_min=2, k_max=4), tmp_path / "cache").prepare()
    assert started and not any(b._process.is_alive() for b in started)


@pytest.mark.slow
def test_a_map_that_fails_beside_is_said_and_made_here(images, tmp_path, monkeypatch):
    from core.engine import pipeline as pipeline_module

    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 0)
    monkeypatch.setattr(pipeline_module, "_stage_beside", _failing_stage_beside)
    p = Pipeline(images, Settings(k_min=2, k_max=4), tmp_path / "cache")
    p.prepare()
    assert p.map().shape == (600, 2)
    assert any("failed (RuntimeError: no map today)" in note and "made it here" in note for note in p.cache.notes)


@pytest.mark.slow
def test_a_jobs_map_made_beside_shows_running_while_the_groups_are_found(images, tmp_path, monkeypatch):
    from core.engine import jobs

    monkeypatch.setattr(processes, "SPREAD_FROM_IMAGES", 0)
    snapshots = []
    real_write = jobs._Reporter.write

    def write(self, force: bool = False) -> None:
        snapshots.append({s.stage: s.state.value for s in self.status.stages})
        real_write(self, force)

    monkeypatch.setattr(jobs._Reporter, "write", write)
    code = jobs.run_job(str(images), Settings(k_min=2, k_max=4), tmp_path / "cache", tmp_path / "job")
    assert code == 0
    assert any(s["map"] == "running" and s["auto"] == "running" for s in snapshots)
    final = snapshots[-1]
    assert final["map"] == "done" and all(state in ("done", "cached") for state in final.values())
