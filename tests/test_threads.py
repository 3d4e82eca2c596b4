"""The numeric libraries' threads: one a stage unless DOTMAP_THREADS says more, set in one place
(core/engine/threads.py) for the command line's processes and around every stage that computes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from core.demo import make_demo
from core.engine import stages as stage_table
from core.engine import threads
from core.engine.pipeline import Pipeline, Settings
from core.engine.stages import STAGES, Stage
from core.errors import SettingError

ROOT = Path(__file__).resolve().parents[1]


def pool_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] in ("blas", "openmp")}


@pytest.mark.parametrize(("given", "expected"), [("", 1), (" ", 1), ("3", 3), ("1", 1)])
def test_the_threads_are_one_unless_the_variable_says_more(monkeypatch, given: str, expected: int) -> None:
    monkeypatch.setenv(threads.THREADS_ENV, given)
    assert threads.numeric_threads() == expected


@pytest.mark.parametrize("given", ["abc", "0", "-2", "2.5", "100000"])
def test_a_bad_thread_count_is_said_in_words(monkeypatch, given: str) -> None:
    monkeypatch.setenv(threads.THREADS_ENV, given)
    with pytest.raises(SettingError, match=rf"DOTMAP_THREADS='{given}' should be a whole number of threads, 1\.\.1024"):
        threads.numeric_threads()


@pytest.mark.parametrize("count", [1, 2])
def test_inside_a_limit_every_pool_runs_that_many_threads(monkeypatch, count: int) -> None:
    monkeypatch.setenv(threads.THREADS_ENV, str(count))
    with threads.limited():
        assert pool_threads() == {count}


def pools_seen(p: Pipeline) -> tuple[dict, dict]:
    return {"threads": np.array(sorted(pool_threads()))}, {}


def test_a_stage_computes_on_the_chosen_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STAGES, "pools_seen", Stage("pools_seen", lambda s: "Looking at the pools", pools_seen, (), ()))
    stage_table.stage_version.cache_clear()
    try:
        pipeline = Pipeline(make_demo(tmp_path / "d", n=12, seed=0), Settings(cluster_space="pca"), tmp_path / "c")
        assert pipeline.entry("pools_seen").arrays["threads"].tolist() == [1]
    finally:
        stage_table.stage_version.cache_clear()


def run_core_help(extra: dict[str, str]) -> list[str]:
    """``python -m core --help`` in a fresh process: then the thread variables its module set."""
    script = (
        "import os, runpy, sys\n"
        "sys.argv = ['core', '--help']\n"
        "try:\n    runpy.run_module('core', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "import numpy\n"
        "from numpy._core.multiarray import _get_madvise_hugepage\n"
        "print(os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'], _get_madvise_hugepage())\n"
    )
    ours = (*threads.POOL_VARIABLES, threads.THREADS_ENV, threads.HUGE_PAGES_VARIABLE)
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update(extra)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    return done.stdout.split()[-3:]


def test_the_command_lines_pools_start_with_one_thread_and_numpy_asks_no_huge_pages() -> None:
    assert run_core_help({}) == ["1", "1", "False"]
    assert run_core_help({"DOTMAP_THREADS": "2"}) == ["2", "2", "False"]
    assert run_core_help({"OMP_NUM_THREADS": "4"}) == ["4", "1", "False"]  # a value the user set is kept
    if sys.platform == "linux":  # elsewhere numpy never asks
        assert run_core_help({"NUMPY_MADVISE_HUGEPAGE": "1"}) == ["1", "1", "True"]


def test_a_bad_thread_count_stops_the_command_line_in_words() -> None:
    env = {**os.environ, "DOTMAP_THREADS": "many"}
    done = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 1 and done.stderr.startswith("error: DOTMAP_THREADS='many' should be a whole number")
