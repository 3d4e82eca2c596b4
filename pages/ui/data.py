"""Cached access to core's results, and core's stages run with their progress shown on the page.

Every ``st.cache_*`` of the app lives here. Keys are content hashes (a stage's cache key, a folder
fingerprint), and big objects are passed as ``_``-prefixed arguments so Streamlit never hashes them.
Stages are never run inside a cached function: the page loops over them and draws the progress.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np
import streamlit as st

from core import demo
from core.engine.cache import default_cache_dir
from core.engine.jobs import JobStatus
from core.engine.pipeline import Pipeline, Settings, Sweep
from core.errors import DotmapError
from core.outputs import export
from core.outputs.predict import Predictor
from core.outputs.truth import Truth, truth_of
from core.reading.arrays import scan_data
from core.reading.decode import ImageReadError, decode_image
from core.reading.folders import Inventory, folders_unchanged
from core.reading.images import ImageSet
from core.reading.names import shown
from core.reading.rows import sample_masks
from core.representation import typical
from core.representation.reduction import Reduction
from pages.ui import jobs as ui_jobs
from pages.ui import render, state

# ---- opening the data -----------------------------------------------------------------------
RESCAN_ABOVE = 100_000  # files; see current_inventory


@st.cache_resource(max_entries=6, show_spinner=False)
def _pipeline(data_dir: str, settings_json: str, fingerprint: str, _inventory: Inventory) -> Pipeline:
    return Pipeline(data_dir, Settings(**json.loads(settings_json)), inventory=_inventory)


def chosen_folder() -> str | None:
    """The session's data folder; None means the built-in demo set (which a job makes on first start)."""
    return st.session_state["data_dir"] or None


def open_pipeline() -> Pipeline:
    """The pipeline of the session's folder and settings; a wrong folder stops the page with a message.

    The built-in demo set is made by a preparation job on first start: until it exists the page shows
    that job's progress and stops.
    """
    folder, settings = chosen_folder(), state.current_settings()
    try:
        cache = default_cache_dir()  # no home folder and no DOTMAP_CACHE: said in words
    except DotmapError as exc:
        st.error(render.text(exc))
        st.stop()
    if folder is None and not demo.builtin_demo_ready(cache):
        job = _job_for(None, settings, fingerprint="")
        ui_jobs.follow(job, lambda: demo.builtin_demo_ready(cache), PREPARING, key="demo_job")
        st.stop()
    data_dir = folder or str(demo.builtin_demo_path(cache))
    try:
        inventory = current_inventory(data_dir)  # a changed folder is a new pipeline
        return _pipeline(data_dir, json.dumps(asdict(settings), sort_keys=True), inventory.fingerprint, inventory)
    except DotmapError as exc:
        st.error(render.text(exc))
        st.info("Choose another folder on the **Overview** page.")
        st.stop()


@st.cache_resource(max_entries=4, show_spinner=False)
def _last_scan(data_dir: str) -> dict[str, Inventory]:
    return {}


def current_inventory(data_dir: str) -> Inventory:
    """The folder's listing: scanned again on every full page run, except above RESCAN_ABOVE files,
    where the last scan is kept while none of its folders changed (a scan of a million files takes
    12 s; a file overwritten in place is seen after *Look at the folder again* on the Overview)."""
    last = _last_scan(data_dir).get("inventory")
    if last is not None and len(last.files) > RESCAN_ABOVE and folders_unchanged(last):
        return last
    inventory = scan_data(data_dir)
    _last_scan(data_dir)["inventory"] = inventory
    return inventory


def forget_scan(data_dir: str) -> None:
    _last_scan(data_dir).clear()


def is_demo(pipeline: Pipeline) -> bool:
    return pipeline.inventory.root == demo.builtin_demo_path(default_cache_dir())


# ---- a sample, without loading the set ------------------------------------------------------
def sample_images(pipeline: Pipeline, limit: int) -> tuple[np.ndarray, list[str]]:
    """Up to ``limit`` images spread evenly over the folder, decoded straight from their files (an array
    set's rows read from the array).

    Cheaper than loading the whole image set on the first page. Returns masks (m, grid, grid) and paths.
    """
    files = pipeline.inventory.files
    picks = np.unique(np.linspace(0, len(files) - 1, min(limit, len(files))).astype(int)) if files else []
    masks, names = [], []
    s = pipeline.settings
    if pipeline.inventory.array is not None:
        sample, rows = sample_masks(pipeline.inventory.array, [int(i) for i in picks], s.grid, s.polarity)
        return sample, [shown(files[i].path) for i in rows]
    for i in picks:
        try:
            masks.append(decode_image(pipeline.inventory.root / files[i].path, s.grid, s.polarity))
            names.append(shown(files[i].path))
        except ImageReadError:
            continue  # listed with its reason among the skipped files
    return (np.stack(masks) if masks else np.zeros((0, s.grid, s.grid), bool)), names


# ---- preparing in a background job -----------------------------------------------------------
PREPARING = "Preparing the data set in the background (each stage is cached, so this happens once)"


def _job_for(folder: str | None, settings: Settings, fingerprint: str, needed: bool = True) -> str:
    """The job of this folder and settings, started unless it runs or its last run for this data stopped.

    A stopped job whose stages the page ``needed`` is shown (what happened, a button) and stops the page.
    """
    job = ui_jobs.job_of(folder, settings)
    status = ui_jobs.status_of(job)
    if ui_jobs.should_start(status, fingerprint):
        try:
            return ui_jobs.start(folder, settings)
        except DotmapError as exc:  # a cache folder that cannot be written
            st.error(render.text(exc))
            st.stop()
    if not status.active and needed:
        ui_jobs.draw_stopped(status, folder, settings, key="job")
        st.stop()
    return job


def ready_pipeline(need: tuple[str, ...] = ("sweep",)) -> Pipeline:
    """The session's data set with the stages ``need`` in the cache (see :func:`wait_for`)."""
    pipeline = open_pipeline()
    wait_for(pipeline, need)
    return pipeline


def wait_for(pipeline: Pipeline, need: tuple[str, ...], stop: bool = True) -> bool:
    """Whether the stages ``need`` are in the cache; until they are, the job's progress is shown.

    Anything of the plan not cached yet is prepared by a background job (started here, or joined).
    While ``need`` is missing the page shows the job's progress and stops (or, without ``stop``,
    goes on and gets False). Stages after ``need`` (the 2-D map) go on being made while the page is used.
    """
    missing = [step.stage for step in pipeline.missing()]
    waiting = [stage for stage in need if stage in missing]
    if missing:
        job = _job_for(chosen_folder(), pipeline.settings, pipeline.inventory.fingerprint, needed=bool(waiting))
    if waiting:
        ui_jobs.follow(job, lambda: all(pipeline.is_cached(stage) for stage in need), PREPARING, key="job")
        if stop:
            st.stop()
        return False
    _loaded(pipeline)
    return True


def _loaded(pipeline: Pipeline) -> None:
    pipeline.sweep()  # every page needs it; loading it first lets the sidebar tell of a broken cache entry


def job_status(pipeline: Pipeline) -> tuple[str, JobStatus]:
    """The preparation job of this data set (running, or how it last ended), and its status."""
    job = ui_jobs.job_of(chosen_folder(), pipeline.settings)
    return job, ui_jobs.status_of(job)


# ---- results, held in memory once per server ----------------------------------------------
def image_set(pipeline: Pipeline) -> ImageSet:
    return pipeline.images()  # the pipeline is a cached resource: it loads the packed images once


def sweep(pipeline: Pipeline) -> Sweep:
    return pipeline.sweep()  # the pipeline itself is a cached resource and keeps what it loaded


def reduction(pipeline: Pipeline) -> Reduction:
    return pipeline.reduction()


def cluster_means(pipeline: Pipeline, k: int) -> np.ndarray:
    """The typical shape of each cluster at k: (k, cells, cells), 0..1."""
    return pipeline.cluster_means()[pipeline.sweep().row(k)]


@st.cache_resource(max_entries=4, show_spinner=False)
def _shown_paths(key: str, _pipeline: Pipeline) -> list[str]:
    return [shown(path) for path in _pipeline.image_meta()["paths"]]


def auto_groups(pipeline: Pipeline) -> tuple[np.ndarray, dict]:
    """Groups found without a k (labels with -1 for none, and their count and noise share), from the cache."""
    return pipeline.auto_groups()


@st.cache_resource(max_entries=2, show_spinner=False)
def _auto_group_means(key: str, _pipeline: Pipeline) -> np.ndarray:
    labels, found = _pipeline.auto_groups()
    loaded = _pipeline.images()
    return typical.group_means(loaded.packed, loaded.grid, _pipeline.settings.features, labels, found["groups"])


def auto_group_means(pipeline: Pipeline) -> np.ndarray:
    """The typical shape of each group found without a k: (groups, cells, cells), 0..1; once per server
    (3.5 s at 32,000 images)."""
    return _auto_group_means(pipeline.key("auto"), pipeline)


def paths(pipeline: Pipeline) -> list[str]:
    """The image paths as shown to a person: a control character in a name is escaped, never obeyed."""
    return _shown_paths(pipeline.key("images"), pipeline)


@st.cache_resource(max_entries=4, show_spinner=False)
def _path_array(key: str, _pipeline: Pipeline) -> np.ndarray:
    return np.asarray(paths(_pipeline))


def path_array(pipeline: Pipeline) -> np.ndarray:
    """The shown paths as a numpy array: plotly takes it 20x faster than a list (hover text of the map)."""
    return _path_array(pipeline.key("images"), pipeline)


def layout(pipeline: Pipeline, kind: str) -> np.ndarray:
    """The 2-D positions of every image: ``"umap"`` (must be prepared) or ``"pca"``."""
    return pipeline.map() if kind == "umap" else pipeline.pca_map()


@st.cache_resource(max_entries=4, show_spinner=False)
def _truth(key: str, _pipeline: Pipeline) -> Truth | None:
    return truth_of(_pipeline)


def truth_scores(pipeline: Pipeline) -> Truth | None:
    """ARI and NMI of every k against labels.csv, or None when the folder has no usable labels.

    A malformed labels.csv stops nothing: it is reported and the curves are left out.
    """
    try:
        labels = pipeline.inventory.labels_path
        stamp = "" if labels is None else f"{labels}:{labels.stat().st_size}:{labels.stat().st_mtime_ns}"
        truth = _truth(pipeline.key("sweep") + stamp, pipeline)  # an edited labels.csv is read again
    except (DotmapError, OSError) as exc:
        st.warning(f"The labels are not used: {render.text(exc)}")
        return None
    for note in [] if truth is None else truth.notes:
        st.warning(render.text(note))
    return truth


@st.cache_resource(max_entries=8, show_spinner=False)
def _predictor(key: str, k: int, use_umap_map: bool, _pipeline: Pipeline) -> Predictor:
    predictor = Predictor(_pipeline, k, use_umap_map=use_umap_map)
    grid = _pipeline.settings.grid
    # a first prediction imports scikit-learn and SciPy (over a second): do it now, not at the first upload
    predictor.predict_masks(np.zeros((1, grid, grid), bool), ["warm-up"])
    return predictor


def predictor(pipeline: Pipeline, k: int) -> Predictor:
    use_umap = pipeline.is_cached("map")
    return _predictor(pipeline.key("sweep"), k, use_umap, pipeline)


@st.cache_resource(max_entries=4, show_spinner=False)
def _group_predictor(
    key: str, groups: str, method: str, use_umap_map: bool, _pipeline: Pipeline, _curation
) -> Predictor:
    predictor = Predictor(_pipeline, None, use_umap_map=use_umap_map, curation=_curation, method=method)
    grid = _pipeline.settings.grid
    predictor.predict_masks(np.zeros((1, grid, grid), bool), ["warm-up"])
    return predictor


def group_predictor(pipeline: Pipeline, curation, method: str) -> Predictor:
    """A predictor into the named groups of a curation, fitted once per state of its groups."""
    dense, names = curation.dense()
    groups = hashlib.sha256(dense.tobytes() + json.dumps(names).encode()).hexdigest()
    return _group_predictor(pipeline.key("sweep"), groups, method, pipeline.is_cached("map"), pipeline, curation)


@st.cache_data(max_entries=16, show_spinner=False)
def _assignments_csv(key: str, k: int, _pipeline: Pipeline) -> str:
    return export.assignments_csv_text(_pipeline, k)


def assignments_csv(pipeline: Pipeline, k: int) -> str:
    return _assignments_csv(pipeline.key("sweep"), k, pipeline)
