"""The Dask backend: the same results as here, a killed worker recovered from, an unreachable scheduler told."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from core.demo import make_demo
from core.engine.backends import Backend, DaskBackend, Where, open_backend
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError
from core.representation import reduction

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = Settings(k_min=2, k_max=8)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes, as CI runs it."""
    with DaskBackend(workers=2) as backend:
        yield backend


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    # more than one chunk of files and of feature rows, so the tasks are several
    return make_demo(tmp_path_factory.mktemp("dask") / "images", n=1200, seed=11)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_local_backend_is_a_plain_map():
    with Backend() as backend:
        assert list(backend.map(lambda x, add: x + add, [1, 2, 3], add=10)) == [11, 12, 13]


def test_a_local_cluster_listens_on_this_machine_only(cluster):
    import psutil

    workers = [psutil.Process(pid) for pid in cluster.client.run(os.getpid).values()]
    processes = [psutil.Process(), *workers, *(w.parent() for w in workers)]  # scheduler here, nannies, workers
    ports = [c.laddr for p in processes for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    assert ports and all(address.ip == "127.0.0.1" for address in ports), ports


def test_a_local_cluster_leaves_this_process_environment_as_it_was():
    before = dict(os.environ)
    with DaskBackend(workers=1):
        assert dict(os.environ) == before  # its nanny sets OMP_NUM_THREADS=1 here for the worker it spawns
    assert dict(os.environ) == before


def test_tasks_come_back_in_order_with_shared_inputs(cluster):
    got = list(cluster.map(_plus_sum, range(40), v=np.arange(5)))
    assert got == [i + 10 for i in range(40)]
    assert cluster.workers == 2 and "2 workers" in cluster.describe()


def _plus_sum(i: int, v: np.ndarray) -> int:
    return i + int(v.sum())


@pytest.mark.slow
def test_dask_gives_the_same_results_as_local(cluster, images, tmp_path):
    here = Pipeline(images, SETTINGS, tmp_path / "local")
    there = Pipeline(images, SETTINGS, tmp_path / "dask", backend=cluster)
    here.prepare(with_map=False)
    there.prepare(with_map=False)
    # the same functions on the same bytes: identical
    assert np.array_equal(here.images().packed, there.images().packed)
    assert np.array_equal(here.features(), there.features())
    # the same PCA, but the workers' BLAS runs one thread (Dask's default) and this one two: the last
    # bits of a float32 product differ, and so may a near tie among neighbours
    _assert_same_space(here, there)
    a, b = here.sweep(), there.sweep()
    assert a.recommended_k == b.recommended_k
    for k, x, y in zip(a.ks, a.labels, b.labels, strict=True):
        assert adjusted_rand_score(x, y) >= 0.99, k
    # the same keys: the local pipeline finds the stages the cluster computed
    assert Pipeline(images, SETTINGS, tmp_path / "dask").missing(with_map=False) == []


def test_the_pieces_above_their_thresholds_match_too(cluster, images, tmp_path, monkeypatch):
    """PCA fitted on a sample and projected by blocks, and the exact graph searched by blocks of rows."""
    monkeypatch.setattr(reduction, "PCA_FIT_UP_TO", 500)
    monkeypatch.setattr(reduction, "EXACT_TASK_ROWS", 250)
    settings = Settings(k_min=2, k_max=5, cluster_space="pca")
    here = Pipeline(images, settings, tmp_path / "local")
    there = Pipeline(images, settings, tmp_path / "dask", backend=cluster)
    _assert_same_space(here, there)
    for x, y in zip(here.sweep().labels, there.sweep().labels, strict=True):  # k-means per k: a task each
        assert adjusted_rand_score(x, y) >= 0.99
    for a, b in zip(here.cluster_means(), there.cluster_means(), strict=True):  # typical shapes: blocks of images
        assert np.allclose(a, b, atol=1e-6)


def _assert_same_space(here: Pipeline, there: Pipeline) -> None:
    a, b = here.reduction(), there.reduction()
    assert np.array_equal(a.Z, b.Z)
    assert np.array_equal(here.neighbours()[0], there.neighbours()[0])


def test_a_worker_killed_mid_run_is_recovered_from(images, tmp_path):
    settings = Settings(k_min=2, k_max=5, cluster_space="pca")
    with DaskBackend(workers=2) as backend:
        pids = list(backend.client.run(os.getpid).values())
        killed = []

        def kill_one(done: int, total: int, stage: str) -> None:
            if stage == "read" and 0 < done < total and not killed:
                os.kill(pids[0], signal.SIGKILL)  # mid-stage: its tasks are run again elsewhere
                killed.append(done)

        there = Pipeline(images, settings, tmp_path / "dask", on_progress=kill_one, backend=backend)
        there.prepare(with_map=False)
        assert killed
        assert pids[0] not in backend.client.run(os.getpid).values()  # the dead worker was replaced
    here = Pipeline(images, settings, tmp_path / "local")
    assert np.array_equal(here.images().packed, there.images().packed)
    assert here.image_meta()["paths"] == there.image_meta()["paths"]
    for x, y in zip(here.sweep().labels, there.sweep().labels, strict=True):
        assert adjusted_rand_score(x, y) >= 0.99


def test_an_unreachable_scheduler_is_told_in_words():
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(DotmapError, match=f"Could not reach the Dask scheduler at {address}") as caught:
        DaskBackend(address, timeout=2)
    assert "dask scheduler" in str(caught.value) and "give no scheduler" in str(caught.value)


def test_the_command_line_says_so_too(images, tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "core", "prepare", str(images), "--cache", str(tmp_path), "--quiet"]
        + ["--backend", "dask", "--scheduler", address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert f"Could not reach the Dask scheduler at {address}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("where", "words"),
    [
        (dict(backend="spark"), "should be one of"),
        (dict(scheduler="tcp://x:1"), "go with --backend dask"),
        (dict(workers=2), "go with --backend dask"),
    ],
)
def test_a_wrong_choice_is_refused_in_words(where, words):
    with pytest.raises(DotmapError, match=words):
        Where(**where)


def test_where_is_carried_on_the_job_command_line():
    assert Where().arguments() == []
    assert Where("dask", "tcp://h:8786").arguments() == ["--backend", "dask", "--scheduler", "tcp://h:8786"]
    assert Where("dask", workers=3).arguments() == ["--backend", "dask", "--workers", "3"]
    assert isinstance(open_backend("local"), Backend)


def test_a_job_on_an_unreachable_scheduler_fails_in_words(images, tmp_path):
    import json

    from core.engine.jobs import STATUS_FILE, run_job

    address = f"tcp://127.0.0.1:{_free_port()}"
    code = run_job(str(images), SETTINGS, tmp_path / "cache", tmp_path / "job", where=Where("dask", address))
    status = json.loads((tmp_path / "job" / STATUS_FILE).read_text())
    assert code == 1 and status["state"] == "failed"
    assert f"Could not reach the Dask scheduler at {address}" in status["error"]


def test_a_prepared_set_does_not_need_the_cluster(images, tmp_path):
    from core.engine.jobs import run_job

    settings = Settings(k_min=2, k_max=4, cluster_space="pca")
    Pipeline(images, settings, tmp_path / "cache").prepare(with_map=False)
    Pipeline(images, settings, tmp_path / "cache").prepare()  # the map too
    unreachable = Where("dask", f"tcp://127.0.0.1:{_free_port()}")
    assert run_job(str(images), settings, tmp_path / "cache", tmp_path / "job", where=unreachable) == 0
