"""Cached access to core's results, and core's stages run with their progress shown on the page.

Every ``st.cache_*`` of the app lives here. Keys are content hashes (a stage's cache key, a folder
fingerprint), and big objects are passed as ``_``-prefixed arguments so Streamlit never hashes them.
Stages are never run inside a cached function: the page loops over them and draws the progress.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import streamlit as st

from core import demo, export
from core.cache import default_cache_dir
from core.errors import DotmapError, UmapUnavailableError
from core.images import ImageReadError, ImageSet, Inventory, decode_image, read_labels, scan_folder
from core.pipeline import Pipeline, Settings, Sweep
from core.predict import Predictor
from core.reduction import Reduction
from core.scoring import agreement_with_truth
from pages.ui import state

UMAP_NOTE = "UMAP shows no progress while it runs; the first UMAP in a fresh server also compiles (10-40 s)."
PCA_HINT = "If UMAP cannot run here, choose **Cluster space: PCA** under *More settings* on the Overview page."


# ---- opening the data -----------------------------------------------------------------------
@st.cache_resource(max_entries=6, show_spinner=False)
def _pipeline(data_dir: str, settings_json: str, fingerprint: str, _inventory: Inventory) -> Pipeline:
    return Pipeline(data_dir, Settings(**json.loads(settings_json)), inventory=_inventory)


def demo_folder() -> str:
    """The built-in demo set, made on first start with a progress bar."""
    root = default_cache_dir()
    if demo.builtin_demo_ready(root):
        return str(demo.builtin_demo_path(root))
    bar = st.progress(0.0, text="Making the built-in demo set (first start only)")

    def show(done: int, total: int, stage: str) -> None:
        bar.progress(done / max(total, 1), text=f"Making the built-in demo set: {done} of {total} images")

    folder = demo.builtin_demo_dir(root, on_progress=show)
    bar.empty()
    return str(folder)


def open_pipeline() -> Pipeline:
    """The pipeline of the session's folder and settings; a wrong folder stops the page with a message."""
    data_dir = st.session_state["data_dir"] or demo_folder()
    settings = state.current_settings()
    try:
        inventory = scan_folder(data_dir)  # every full page run: a changed folder is a new pipeline
        return _pipeline(data_dir, json.dumps(asdict(settings), sort_keys=True), inventory.fingerprint, inventory)
    except DotmapError as exc:
        st.error(str(exc))
        st.info("Choose another folder on the **Overview** page.")
        st.stop()


def is_demo(pipeline: Pipeline) -> bool:
    return pipeline.inventory.root == demo.builtin_demo_path(default_cache_dir())


# ---- a sample, without loading the set ------------------------------------------------------
def sample_images(pipeline: Pipeline, limit: int) -> tuple[np.ndarray, list[str]]:
    """Up to ``limit`` images spread evenly over the folder, decoded straight from their files.

    Cheaper than loading the whole image set on the first page. Returns masks (m, grid, grid) and paths.
    """
    files = pipeline.inventory.files
    picks = np.unique(np.linspace(0, len(files) - 1, min(limit, len(files))).astype(int)) if files else []
    masks, names = [], []
    s = pipeline.settings
    for i in picks:
        try:
            masks.append(decode_image(pipeline.inventory.root / files[i].path, s.grid, s.polarity))
            names.append(files[i].path)
        except ImageReadError:
            continue  # listed with its reason among the skipped files
    return (np.stack(masks) if masks else np.zeros((0, s.grid, s.grid), bool)), names


# ---- running the stages with progress --------------------------------------------------------
def _steps(pipeline: Pipeline, with_map: bool) -> list[tuple[str, str, Callable[[], Any]]]:
    """(stage, what the user reads, run it), upstream first."""
    p = pipeline
    steps = [
        ("images", "Read the images", p.images),
        ("features", f"Compute `{p.settings.features}` features", p.features),
        ("reduction", f"PCA to {p.settings.components} components", p.reduction),
    ]
    if p.settings.cluster_space == "umap":
        steps += [
            ("neighbours", "Find each image's nearest neighbours", p.neighbours),
            ("space", "UMAP cluster space", p.space),
        ]
    steps += [
        ("sweep", f"{p.settings.algorithm} for k = {p.settings.k_min}..{p.settings.k_max}, and scores", p.sweep),
        ("typical", "Typical shape of every cluster", p.cluster_means),
    ]
    if with_map:
        if p.settings.cluster_space != "umap":
            steps.append(("neighbours", "Find each image's nearest neighbours", p.neighbours))
        steps.append(("map", "2-D map (UMAP)", p.map))
    return steps


def run_stages(pipeline: Pipeline, with_map: bool = False) -> None:
    """Run what is not cached yet, one stage at a time, with a status box and a progress bar.

    A problem with the data or with UMAP stops the page with the message of core's error.
    """
    if all(pipeline.is_cached(stage) for stage, _, _ in _steps(pipeline, with_map)):
        return
    started = time.perf_counter()
    with st.status("Preparing the data set: each stage is cached, so this happens once", expanded=True) as box:
        bar = st.progress(0.0)

        def show(done: int, total: int, stage: str) -> None:
            if total <= 1:
                bar.progress(
                    0.0 if done == 0 else 1.0, text=f"{stage}: running. {UMAP_NOTE if 'UMAP' in stage else ''}"
                )
            else:
                bar.progress(min(done / total, 1.0), text=f"{stage}: {done} of {total}")

        # a pipeline of its own for this page's progress: the shared one may serve other sessions meanwhile;
        # what it computes lands in the disk cache, where the shared one finds it
        runner = Pipeline(pipeline.data_dir, pipeline.settings, pipeline.cache_dir, show, pipeline.inventory)
        try:
            for stage, words, run in _steps(runner, with_map):
                if runner.is_cached(stage):
                    continue
                box.update(label=f"Preparing: {words}")
                start = time.perf_counter()
                run()
                st.write(f"{words}: {time.perf_counter() - start:.1f} s")
        except UmapUnavailableError as exc:
            box.update(label="UMAP could not run", state="error", expanded=True)
            st.error(str(exc))
            st.info(PCA_HINT)
            st.stop()
        except DotmapError as exc:
            box.update(label="The data set cannot be prepared", state="error", expanded=True)
            st.error(str(exc))
            st.info("Change the folder or the settings on the **Overview** page.")
            st.stop()
        bar.empty()
        box.update(label=f"Prepared in {time.perf_counter() - started:.1f} s", state="complete", expanded=False)
    for note in runner.cache.notes:
        st.info(f"Cache: {note}")


def ready_pipeline(with_map: bool = False) -> Pipeline:
    """Open the session's data set and make sure it is prepared (with progress if it is not)."""
    pipeline = open_pipeline()
    run_stages(pipeline, with_map)
    pipeline.sweep()  # every page needs it; loading it first lets the sidebar tell of a broken cache entry
    return pipeline


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


def paths(pipeline: Pipeline) -> list[str]:
    return pipeline.image_meta()["paths"]


@st.cache_resource(max_entries=4, show_spinner=False)
def _path_array(key: str, _pipeline: Pipeline) -> np.ndarray:
    return np.asarray(_pipeline.image_meta()["paths"])


def path_array(pipeline: Pipeline) -> np.ndarray:
    """The paths as a numpy array of strings: plotly takes it 20x faster than a list (hover text of the map)."""
    return _path_array(pipeline.key("images"), pipeline)


def layout(pipeline: Pipeline, kind: str) -> np.ndarray:
    """The 2-D positions of every image: ``"umap"`` (must be prepared) or ``"pca"``."""
    return pipeline.map() if kind == "umap" else pipeline.pca_map()


@st.cache_resource(max_entries=4, show_spinner=False)
def _truth(key: str, _pipeline: Pipeline) -> dict[str, Any] | None:
    inventory = _pipeline.inventory
    if inventory.labels_path is None:
        return None
    codes, names = read_labels(inventory.labels_path, _pipeline.image_meta()["paths"])
    if (codes >= 0).sum() < 2:
        return None
    labels = _pipeline.sweep().labels
    pairs = [agreement_with_truth(codes, row) for row in labels]
    return {
        "names": names,
        "ari": [a for a, _ in pairs],
        "nmi": [b for _, b in pairs],
        "known": int((codes >= 0).sum()),
    }


def truth_scores(pipeline: Pipeline) -> dict[str, Any] | None:
    """ARI and NMI of every k against labels.csv, or None when the folder has no usable labels.

    A malformed labels.csv stops nothing: it is reported and the curves are left out.
    """
    try:
        labels = pipeline.inventory.labels_path
        stamp = "" if labels is None else f"{labels}:{labels.stat().st_size}:{labels.stat().st_mtime_ns}"
        return _truth(pipeline.key("sweep") + stamp, pipeline)  # an edited labels.csv is read again
    except (DotmapError, OSError) as exc:
        st.warning(f"labels.csv is not used: {exc}")
        return None


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


@st.cache_data(max_entries=16, show_spinner=False)
def _assignments_csv(key: str, k: int, _pipeline: Pipeline) -> str:
    return export.assignments_csv_text(_pipeline, k)


def assignments_csv(pipeline: Pipeline, k: int) -> str:
    return _assignments_csv(pipeline.key("sweep"), k, pipeline)
