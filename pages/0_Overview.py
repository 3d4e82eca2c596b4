"""Overview: choose the data and the settings, prepare every stage with progress, and see the data set."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.clustering.scoring import RECOMMENDATION_RULE
from core.engine import disk
from core.engine.backends import BACKEND_WORDS, BACKENDS, Where
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError
from core.reading import folders
from core.reading.decode import POLARITIES
from core.reading.images import pack_masks
from core.reading.names import shown
from core.representation.features import FRAME, HAND_MADE_KINDS, LEARNED_KINDS, NETWORK_KINDS, feature_view
from pages.ui import charts, data, page, render, state, timing
from pages.ui import jobs as ui_jobs
from pages.ui import settings_widgets as widgets

SAMPLE_GRID = 24

page.setup("Overview")
st.title("Dotmap")
st.caption(
    "Groups black-and-white images of dots by the general shape of their pattern: pick the data and "
    "what should not count, then explore the clusters on the other pages (left)."
)


def settings_form() -> None:
    """The data folder and the settings; applied together with the button."""
    current = state.current_settings()
    with st.form("settings_form", border=True):
        st.markdown("#### Data and settings")
        folder = st.text_input(
            "Image folder on this computer (searched recursively), or an array file (.npy, .npz)",
            value=st.session_state["data_dir"],
            placeholder="empty: the built-in demo set (2,000 images of 8 shape families)",
            key="form_folder",
            help="An array file holds images as (n, height, width) or (n, height * width) square rows: bool "
            "(True is ink), integers 0..255 or floats 0..1. Names and labels: the members names and labels of "
            "an .npz, or NAME.names.txt and NAME.labels.txt beside NAME.npy.",
        )
        left, right = st.columns([3, 2], gap="large")
        with left:
            features = widgets.features(current.features, key="form_features")
        with right:
            components = widgets.components(current.components, key="form_components")
            k_range = st.slider(
                "Range of k (number of clusters) to try", 2, state.K_LIMIT, (current.k_min, current.k_max), key="form_k"
            )
            algorithm = widgets.algorithm(current.algorithm, key="form_algorithm")
        with st.expander("More settings"):
            a, b, c, d = st.columns(4)
            with a:
                space = widgets.cluster_space(current.cluster_space, key="form_space")
            polarity = b.selectbox(
                "Ink", POLARITIES, index=POLARITIES.index(current.polarity), key="form_polarity",
                help="auto: each image's majority tone is its ground.",
            )  # fmt: skip
            grid = c.number_input("Working grid (px)", 8, 1024, current.grid, key="form_grid")
            seed = d.number_input("Seed", 0, 2**31 - 1, current.seed, key="form_seed")
            where = state.current_where()
            e, f = st.columns([1, 3])
            backend = e.selectbox(
                "Prepare on", BACKENDS, index=BACKENDS.index(where.backend), key="form_backend",
                format_func=BACKEND_WORDS.get,
                help="A Dask cluster reads, computes features, PCA, neighbours and every k as tasks; "
                "the results are the same and land in the same cache.",
            )  # fmt: skip
            scheduler = f.text_input(
                "Dask scheduler (empty: start a cluster on this machine)", where.scheduler or "",
                placeholder="tcp://host:8786", key="form_scheduler",
                help="Its workers must read the image folder and the cache at the same paths as this machine.",
            )  # fmt: skip
        if st.form_submit_button("Apply and prepare", type="primary", key="apply"):
            try:
                chosen = Settings(
                    features=features,
                    components=int(components),
                    k_min=int(k_range[0]),
                    k_max=int(k_range[1]),
                    algorithm=algorithm,
                    cluster_space=space,
                    grid=int(grid),
                    polarity=polarity,
                    seed=int(seed),
                )
                chosen_where = Where(backend, scheduler.strip() or None) if backend == "dask" else Where()
            except DotmapError as exc:
                st.error(render.text(exc))
                return
            missing = widgets.features_unavailable(chosen.features)
            if missing is not None:
                st.error(render.text(missing))
                return
            state.set_where(chosen_where)
            state.set_settings(chosen, folder.strip())


def feature_preview(mask: np.ndarray, name: str, chosen: str) -> None:
    st.markdown("#### What each kind of features sees of one image")
    cols = st.columns(4)
    cols[0].image(render.montage(mask[None], side=max(192, mask.shape[0])), caption=f"the image: {render.text(name)}")
    packed = pack_masks(mask[None])
    titles = {
        "pixels": "pixels: ink per block, where it is drawn",
        "shape": "shape: centred and scaled",
        "shape-rotation": "shape-rotation: ink per ring (rows) by angle; only its variation around a ring counts",
    }
    for col, kind in zip(cols[1:], HAND_MADE_KINDS, strict=True):
        view = feature_view(packed, mask.shape[0], kind)
        picked = " (chosen)" if kind == chosen else ""
        if chosen in NETWORK_KINDS and kind == "shape":
            turned = ", turned to the dots' principal axes" if FRAME[chosen] == "shape-rotation" else ""
            network = "encoder" if chosen in LEARNED_KINDS else "network"
            picked = f" (the `{chosen}` {network} is given this{turned})"
        stretch = 3.0 if kind == "shape-rotation" else 1.0  # 10 rings by 32 angles: taller rows read better
        col.image(render.density_image(view, 192, stretch), caption=titles[kind] + picked)


def map_status(pipeline: Pipeline) -> None:
    """The 2-D map is made after the clustering: its progress here (the page is usable meanwhile), or why it failed."""
    if pipeline.is_cached("map"):
        return
    job, status = data.job_status(pipeline)
    if status.active:
        ui_jobs.follow(
            job, lambda: pipeline.is_cached("map"), "The 2-D map is still being made (every other result is ready)",
            key="map_job", rerun_when_ready=False,
        )  # fmt: skip
    elif status.state.stopped:
        why = render.text(status.error)
        st.warning(f"The 2-D map was not made: {why} The Map page shows the PCA layout meanwhile.")


def large_folder_confirmed(pipeline: Pipeline) -> bool:
    """Whether a folder of more than LARGE_FOLDER_FILES files may be prepared: the user says so once per
    session (``/`` typed for a folder would start reading the whole disk); else a question is drawn."""
    inventory, confirmed = pipeline.inventory, st.session_state.get("large_confirmed", [])
    if len(inventory.files) <= folders.LARGE_FOLDER_FILES or inventory.array is not None:
        return True
    if str(inventory.root) in confirmed or not pipeline.missing() or data.job_status(pipeline)[1].active:
        return True
    size = disk.size_words(sum(entry.size for entry in inventory.files))
    st.warning(
        f"{render.text(inventory.root)} holds {len(inventory.files):,} files ({size}), more than "
        f"{folders.LARGE_FOLDER_FILES:,}: preparing reads every one of them, and can take hours. "
        "Is this the folder you meant? Choose another above, or prepare this one."
    )
    if st.button(f"Prepare all {len(inventory.files):,} files", key="confirm_large", type="primary"):
        st.session_state["large_confirmed"] = [*confirmed, str(inventory.root)]
        st.rerun()
    return False


with timing.timed("overview"):
    settings_form()
    pipeline = data.open_pipeline()
    demo = data.is_demo(pipeline)
    page.sidebar(pipeline, demo)
    st.markdown(
        f"**Data**: {'the built-in demo set' if demo else ''} {render.text(pipeline.inventory.root)} · "
        f"{len(pipeline.inventory.files):,} {pipeline.inventory.kind}s"
    )
    if len(pipeline.inventory.files) > data.RESCAN_ABOVE and pipeline.inventory.array is None:
        st.caption(
            "A folder this large is listed again only when a file is added, removed or renamed in it: "
            "an image overwritten under the same name is seen after a new look."
        )
        if st.button("Look at the folder again", key="rescan", icon=":material/refresh:"):
            data.forget_scan(str(pipeline.data_dir))
            st.rerun()
    if not pipeline.inventory.files:
        st.error(f"{render.text(folders.no_files_words(pipeline.inventory))} Choose a folder of images above.")
        st.stop()
    if not large_folder_confirmed(pipeline):
        st.stop()

    preview = st.container()  # filled last: its first drawing imports scipy, and the data set comes first
    sample, sample_names = data.sample_images(pipeline, SAMPLE_GRID)
    if not data.wait_for(pipeline, ("sweep",), stop=False):
        st.markdown("**A sample of the images** (spread evenly over the folder), while they are prepared")
        st.image(render.montage(sample, [n.rsplit("/", 1)[-1] for n in sample_names], columns=8, side=84))
        st.stop()

    meta = pipeline.image_meta()
    sweep = data.sweep(pipeline)
    best = sweep.table[sweep.row(sweep.recommended_k)]
    st.markdown("#### The data set")
    m = st.columns(5)
    m[0].metric("Images used", f"{len(meta['paths']):,}")
    m[1].metric(f"{pipeline.inventory.kind.capitalize()}s skipped", f"{len(meta['skipped']):,}")
    m[2].metric("Distinct images", f"{meta['distinct']:,}")
    m[3].metric("Recommended k", sweep.recommended_k, help=f"The rule: {RECOMMENDATION_RULE}.")
    m[4].metric(
        "Silhouette at that k", f"{best['silhouette']:.2f}", help="From -1 to 1; above 0.5 is a clear grouping."
    )

    if meta["skipped"]:
        st.warning(f"{len(meta['skipped'])} file(s) are not usable images and were skipped; each is listed with why.")
        skipped = {"file": [shown(f) for f, _ in meta["skipped"]], "reason": [r for _, r in meta["skipped"]]}
        st.dataframe(skipped, hide_index=True, width="stretch")  # no pandas import on the first page

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown("**A sample of the images** (spread evenly over the folder)")
        st.image(render.montage(sample, [n.rsplit("/", 1)[-1] for n in sample_names], columns=8, side=84))
    with right:
        ratio = data.reduction(pipeline).explained_variance_ratio
        st.plotly_chart(charts.explained_variance(ratio), key="variance")
        st.caption(
            f"{len(ratio)} components keep {ratio.sum():.0%} of the variance "
            f"of the `{pipeline.settings.features}` features."
        )

    if len(sample):
        with preview:
            feature_preview(sample[0], sample_names[0], pipeline.settings.features)
    map_status(pipeline)
    st.markdown("#### Next")
    for column, path in zip(st.columns(len(page.PAGES) - 1), page.PAGES[1:], strict=True):
        column.page_link(path)
