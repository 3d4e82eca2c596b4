"""Shared fixtures: one fixed seed and tiny synthetic ink masks, built fresh for every test."""

import numpy as np
import pytest

SEED = 0


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture
def pattern() -> np.ndarray:
    """An asymmetric ink mask of shape (16, 16), bool: a few ink pixels on plenty of ground."""
    mask = np.zeros((16, 16), bool)
    mask[2, 3:7] = True
    mask[3:9, 3] = True
    mask[7, 11] = True
    mask[13, 14] = True
    return mask


@pytest.fixture
def random_masks(rng: np.random.Generator) -> np.ndarray:
    """Five random ink masks of shape (5, 13, 13), bool: 13 is not a multiple of 8 on purpose."""
    return rng.random((5, 13, 13)) < 0.2


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: imports or runs UMAP (numba JIT, 10-20 s once per process); still run in CI"
    )


@pytest.fixture(autouse=True)
def _main_module_kept():
    """AppTest runs a page as ``__main__`` and leaves it there: a process pool started later by any
    test of this process would run the page again in every worker (multiprocessing's main-module
    fix-up under forkserver) and break. Every test leaves ``__main__`` as it found it."""
    import sys

    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True, scope="session")
def _cache_outside_home(tmp_path_factory: pytest.TempPathFactory):
    """No test may write into the user's own cache: the default cache points into a temp folder."""
    import os

    previous = os.environ.get("DOTMAP_CACHE")
    os.environ["DOTMAP_CACHE"] = str(tmp_path_factory.mktemp("default-cache"))
    yield
    if previous is None:
        os.environ.pop("DOTMAP_CACHE", None)
    else:
        os.environ["DOTMAP_CACHE"] = previous


APP_DEMO_N = 240
APP_DEMO_SEED = 5
APP_JUNK = {"notes.txt": b"not an image", "empty.png": b"", "evil\x1b[31m\nname.txt": b"a name that forges lines"}


@pytest.fixture(autouse=True)
def _curations_outside_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test may write into the user's own curations: each test gets an empty folder of its own."""
    monkeypatch.setenv("DOTMAP_CURATIONS", str(tmp_path_factory.mktemp("curations")))


@pytest.fixture(scope="session")
def prepared_demo(tmp_path_factory: pytest.TempPathFactory):
    """A small demo folder (with junk files) prepared with the app's default settings, map included.

    Returns (folder, cache folder). The cache is the default one the autouse fixture set, so the
    app finds everything prepared. Runs UMAP once per session: tests using it are ``slow``.
    """
    from core.demo import make_demo
    from core.engine.cache import default_cache_dir
    from core.engine.pipeline import Pipeline, Settings

    folder = make_demo(tmp_path_factory.mktemp("app-demo") / "images", n=APP_DEMO_N, seed=APP_DEMO_SEED)
    for name, content in APP_JUNK.items():
        (folder / name).write_bytes(content)
    good = (folder / "dots_000.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    pipeline = Pipeline(folder, Settings(), default_cache_dir())
    pipeline.prepare(with_map=True)
    pipeline.cluster_means()
    return folder, default_cache_dir()


@pytest.fixture
def demo(prepared_demo, monkeypatch: pytest.MonkeyPatch):
    """The prepared demo folder, as the dashboard's data (DOTMAP_DATA): what the AppTest files open."""
    folder, _ = prepared_demo
    monkeypatch.setenv("DOTMAP_DATA", str(folder))
    return folder


@pytest.fixture
def recommended_k(demo) -> int:
    from core.engine.pipeline import Pipeline, Settings

    return Pipeline(demo, Settings()).sweep().recommended_k


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """What the page hands to download buttons, by file name (AppTest keeps no media otherwise)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    captured: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        if isinstance(path_or_data, (bytes, str)) and filename:
            captured[filename] = path_or_data.encode() if isinstance(path_or_data, str) else path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    return captured
