"""Preparation jobs in their own processes: one per data set, progress on disk, cancel, death, no orphans.

These start real processes (``python -m core prepare --job``) and kill them for real; every job
ends with UMAP's 2-D map, so they are ``slow``.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.demo import make_demo
from core.engine import jobs
from core.engine.pipeline import Pipeline, Settings
from core.reading.images import PARALLEL_FROM

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FAST = Settings(cluster_space="pca", k_max=6)  # the map is still a UMAP: every job runs one
JOB_S = 240
GONE_S = 10  # processes of a killed job end within this


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More files than PARALLEL_FROM, so they are read by a pool of worker processes."""
    folder = make_demo(tmp_path_factory.mktemp("many") / "images", n=4000, seed=3)
    assert len(list(folder.glob("*.png"))) > 4 * PARALLEL_FROM
    return folder


@pytest.fixture
def few(tmp_path: Path) -> Path:
    return make_demo(tmp_path / "few", n=120, seed=4)


def processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live process (zombies left out)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            found.append((int(stat.parent.name), int(fields[1]), int(fields[2])))
    return found


def group_members(group: int) -> list[int]:
    """Processes whose process group is ``group`` (a job leads its own group; its workers are in it)."""
    return [pid for pid, _, pgrp in processes() if pgrp == group]


def children_of(parent: int) -> list[int]:
    return [pid for pid, ppid, _ in processes() if ppid == parent]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.02)


def reading_with_pool(cache: Path, job: str) -> bool:
    """The job is reading images and has finished a chunk (so its pool of workers is up)."""
    status = jobs.read_status(cache, job)
    images = status.stage("images")
    return images is not None and images.state == "running" and images.done > 0


def assert_consistent(folder: Path, settings: Settings, cache: Path) -> None:
    """Every stage is in the cache, each loads and verifies, and no temporary folder is left."""
    pipeline = Pipeline(folder, settings, cache)
    assert pipeline.missing() == []
    for step in pipeline.plan():
        step.run()
    assert pipeline.cache.notes == []  # nothing was found broken
    assert not any(pipeline.records[i].computed for i in range(len(pipeline.records)))
    assert list(cache.glob(".tmp-*")) == []


def test_a_job_prepares_every_stage_and_reports_each(few: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    job = jobs.start_job(few, FAST, cache)
    status = jobs.wait_for_job(cache, job, JOB_S)
    assert status.state == "done", status.error
    plan = [step.stage for step in Pipeline(few, FAST, cache).plan()]
    assert [s.stage for s in status.stages] == plan
    assert all(s.state == "done" and s.seconds >= 0 for s in status.stages)
    assert status.stage("map").total == 0 or status.stage("map").done == status.stage("map").total
    assert_consistent(few, FAST, cache)
    wait_until(lambda: group_members(status.pid) == [], GONE_S, "the finished job's processes to end")


def test_a_second_start_joins_the_running_job(few: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = jobs.start_job(few, FAST, cache)
    pid = jobs.read_status(cache, first).pid
    second = jobs.start_job(str(few) + "/", FAST, cache)  # the same folder, written another way
    assert second == first
    assert jobs.read_status(cache, second).pid == pid
    assert len(jobs.active_jobs(cache)) == 1
    assert jobs.wait_for_job(cache, first, JOB_S).state == "done"
    assert (jobs.job_folder(cache, first) / jobs.LOG_FILE).read_text().count("images ready") == 1


def test_another_setting_is_another_job(few: Path, tmp_path: Path) -> None:
    assert jobs.job_id(few, FAST) != jobs.job_id(few, Settings(cluster_space="pca", k_max=5))
    assert jobs.job_id(few, FAST) != jobs.job_id(tmp_path, FAST)
    assert jobs.job_id(None, FAST) != jobs.job_id(few, FAST)


def test_cancel_mid_read_ends_every_process_and_a_restart_completes(many: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    job = jobs.start_job(many, FAST, cache)
    wait_until(lambda: reading_with_pool(cache, job), 60, "the job to read with its pool")
    pid = jobs.read_status(cache, job).pid
    assert len(group_members(pid)) >= 2  # the job and its workers
    status = jobs.cancel_job(cache, job)
    assert status.state == "cancelled"
    assert status.failed_stage == "images"
    wait_until(lambda: group_members(pid) == [], GONE_S, "every process of the cancelled job to end")
    assert list(cache.glob(".tmp-*")) == []
    assert not Pipeline(many, FAST, cache).is_cached("images")

    again = jobs.start_job(many, FAST, cache)
    assert jobs.wait_for_job(cache, again, JOB_S).state == "done"
    assert_consistent(many, FAST, cache)


def test_a_killed_job_is_told_as_died_and_leaves_no_process(many: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    job = jobs.start_job(many, FAST, cache)
    wait_until(lambda: reading_with_pool(cache, job), 60, "the job to read with its pool")
    pid = jobs.read_status(cache, job).pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: jobs.read_status(cache, job).state == "died", 3, "the job to be told as died")
    status = jobs.read_status(cache, job)
    assert "SIGKILL" in status.error and "Finished stages are kept" in status.error
    wait_until(lambda: group_members(pid) == [], GONE_S, "the killed job's workers to end")

    again = jobs.start_job(many, FAST, cache)
    assert jobs.wait_for_job(cache, again, JOB_S).state == "done"
    assert_consistent(many, FAST, cache)


def test_a_killed_command_line_prepare_leaves_no_worker(many: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "core", "prepare", str(many), "--cache", str(tmp_path / "c"), "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(children_of(process.pid)) >= 1, 60, "prepare to start its pool")
        process.kill()
        process.wait()
        wait_until(lambda: group_members(process.pid) == [], GONE_S, "the pool workers to end")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_a_job_ends_when_the_process_that_started_it_dies(few: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    starter = (
        "import sys, time\nfrom core.engine import jobs\nfrom core.engine.pipeline import Settings\n"
        f"print(jobs.start_job({str(few)!r}, Settings(cluster_space='pca', k_max=6), {str(cache)!r}), flush=True)\n"
        "time.sleep(600)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", starter], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    job = server.stdout.readline().strip()
    pid = jobs.read_status(cache, job).pid
    server.kill()  # as a server killed with kill -9
    server.wait()
    wait_until(lambda: group_members(pid) == [], GONE_S, "the orphaned job to end")
    assert jobs.read_status(cache, job).state in ("cancelled", "died")


def test_a_job_that_cannot_prepare_says_why(tmp_path: Path) -> None:
    folder = make_demo(tmp_path / "six", n=6, seed=1)
    cache = tmp_path / "cache"
    job = jobs.start_job(folder, Settings(), cache)
    status = jobs.wait_for_job(cache, job, JOB_S)
    assert status.state == "failed"
    assert status.problem == jobs.Problem.DATA
    assert "k_max=20 is more than the data allows" in status.error
    assert status.failed_stage == "images"
    assert any("k_max=20" in line for line in status.log_tail)


def test_a_status_file_that_cannot_be_read_is_a_stopped_job(tmp_path: Path) -> None:
    folder = jobs.job_folder(tmp_path, "abc")
    folder.mkdir(parents=True)
    (folder / jobs.STATUS_FILE).write_text("{not json")
    status = jobs.read_status(tmp_path, "abc")
    assert status.state == "died" and "cannot be read" in status.error
    assert jobs.read_status(tmp_path, "never-ran").state == "none"


def test_a_status_file_of_an_older_version_is_still_read(tmp_path: Path) -> None:
    import json

    folder = jobs.job_folder(tmp_path, "old")
    folder.mkdir(parents=True)
    stage = {"stage": "images", "words": "Read the images", "state": "done", "seconds": 1.5, "gone": 1}
    old = {"job_id": "old", "state": "done", "error_kind": "", "stages": [stage]}  # error_kind: a field of before
    (folder / jobs.STATUS_FILE).write_text(json.dumps(old))
    status = jobs.read_status(tmp_path, "old")
    assert status.state == jobs.State.DONE and status.problem == jobs.Problem.NONE
    assert status.finished("images") and status.stages[0].seconds == 1.5


def test_job_states_say_what_a_page_needs_to_know() -> None:
    State = jobs.State
    assert [s for s in State if s.active] == [State.STARTING, State.RUNNING]
    assert [s for s in State if s.stopped] == [State.FAILED, State.CANCELLED, State.DIED]
    assert [s for s in State if s.finished] == [State.DONE, State.CACHED]
    assert json.loads(json.dumps({"state": State.DIED})) == {"state": "died"}  # the file holds the plain word


def test_an_error_is_a_kind_of_problem_by_its_class() -> None:
    from core.errors import NoStructureError, UmapUnavailableError

    assert jobs.problem_of(UmapUnavailableError("no umap")) == jobs.Problem.SETUP
    assert jobs.problem_of(NoStructureError("all the same")) == jobs.Problem.DATA
    assert jobs.problem_of(KeyError("x")) == jobs.Problem.INTERNAL


def test_a_job_killed_on_cancel_is_told_which_stage_was_cut_off(tmp_path: Path, monkeypatch) -> None:
    """A job too busy to end on SIGTERM within the grace time is killed; the status says what it was doing."""
    import json

    monkeypatch.setattr(jobs, "CANCEL_GRACE_S", 0.5)
    cache = tmp_path / "cache"
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"],
        start_new_session=True,
    )
    try:
        time.sleep(0.5)  # its handler is in place
        folder = jobs.job_folder(cache, "stubborn")
        folder.mkdir(parents=True)
        stages = [{"stage": "images", "words": "Read the images", "state": "running", "done": 5, "total": 9}]
        (folder / jobs.STATUS_FILE).write_text(
            json.dumps({"job_id": "stubborn", "state": "running", "pid": stubborn.pid, "stages": stages})
        )
        status = jobs.cancel_job(cache, "stubborn")
        assert (status.state, status.failed_stage, status.error) == ("cancelled", "images", "Cancelled.")
        assert stubborn.wait(5) == -signal.SIGKILL
    finally:
        stubborn.kill()
        stubborn.wait()
