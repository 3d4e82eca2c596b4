"""Folders and caches the user cannot read or write, run by a process that file permissions bind."""

import json
import os
from pathlib import Path

import pytest

from core.demo import make_demo
from tests.unprivileged import permissions_bind, run_cli

K_MAX = "4"


def settings(data: Path, cache: Path) -> list[str]:
    return [str(data), "--cluster-space", "pca", "--k-max", K_MAX, "--cache", str(cache), "--quiet", "--no-map"]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return make_demo(tmp_path / "d", n=30, seed=0)


@pytest.fixture(autouse=True)
def _reopen(tmp_path: Path):
    """Whatever a test closed is opened again, so pytest can remove its temp folder."""
    yield
    for folder, _, _ in os.walk(tmp_path):
        os.chmod(folder, 0o755)


def test_the_setup_really_binds_permissions() -> None:
    assert permissions_bind()


def test_an_unreadable_sub_folder_is_listed_and_the_rest_is_clustered(demo: Path, tmp_path: Path) -> None:
    locked = demo / "locked"
    locked.mkdir()
    (demo / "dots_00.png").rename(locked / "hidden.png")
    locked.chmod(0)
    run = run_cli(["prepare", *settings(demo, tmp_path / "cache")])
    assert run.returncode == 0, run.stderr
    assert "locked/: cannot list this folder (Permission denied); its files are left out" in run.stderr
    assert "29 images ready" in run.stdout
    assert "Traceback" not in run.stderr


def test_an_unreadable_file_is_skipped_as_permission_denied(demo: Path, tmp_path: Path) -> None:
    (demo / "dots_01.png").chmod(0)
    run = run_cli(["report", "--json", *settings(demo, tmp_path / "cache")[:-1]])
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["skipped"] == [["dots_01.png", "permission denied"]]
    assert report["n_images"] == 29


def test_an_unreadable_data_folder_is_an_error_in_words(demo: Path, tmp_path: Path) -> None:
    demo.chmod(0)
    run = run_cli(["prepare", *settings(demo, tmp_path / "cache")])
    assert run.returncode == 1
    assert run.stderr.strip() == f"error: Cannot list the folder {demo}: Permission denied."


def test_a_cold_read_only_cache_is_an_error_in_words(demo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    run = run_cli(["prepare", *settings(demo, cache)])
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith(
        f"error: Cannot write the images stage into the cache folder {cache}: Permission denied."
    )
    assert "choose another with --cache DIR" in run.stderr


def test_a_warm_read_only_cache_still_serves_what_it_holds(demo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_cli(["report", "--json", *settings(demo, cache)[:-1]])
    assert first.returncode == 0, first.stderr
    for folder, _, _ in os.walk(cache):
        os.chmod(folder, 0o555)
    again = run_cli(["report", "--json", *settings(demo, cache)[:-1]])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(first.stdout)
    more = run_cli(["report", *settings(demo, cache)[:-1], "--k-max", "5"])
    assert more.returncode == 1
    assert more.stderr.startswith("error: Cannot write the sweep stage into the cache folder")
