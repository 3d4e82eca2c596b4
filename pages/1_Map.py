"""Map: every image as a point, coloured by cluster; slide k, select points and see their images."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.export import assignments_csv_text
from core.pipeline import Pipeline
from pages.ui import data, page, render, timing
from pages.ui import jobs as ui_jobs
from pages.ui.selection import selected_rows

SHOWN_SELECTED = 64  # thumbnails drawn for a selection; the export has all of it

pipeline = page.start("Map", "Map of the images")
names = data.paths(pipeline)

if not pipeline.is_cached("map"):
    job, status = data.job_status(pipeline)
    if status.active:
        st.info("This is the quick PCA layout: the UMAP map is made in the background and replaces it when ready.")
        ui_jobs.follow(job, lambda: pipeline.is_cached("map"), "Making the 2-D map", key="map_job")
    else:
        st.warning("The UMAP map could not be made, so the PCA layout (the first two components) is shown.")
        ui_jobs.draw_stopped(status, data.chosen_folder(), pipeline.settings, key="map_job")

layouts = ["umap", "pca"] if pipeline.is_cached("map") else ["pca"]


@st.fragment
def map_view(pipeline: Pipeline) -> None:
    """The k slider, the map and the selection: moving k or selecting reruns only this part."""
    with timing.timed("map fragment"):
        sweep = data.sweep(pipeline)
        top = st.columns([3, 1])
        with top[0]:
            k = page.k_slider(sweep, key="k_map")
        with top[1]:
            kind = st.radio(
                "Layout", layouts, horizontal=True, key="layout",
                format_func={"umap": "UMAP", "pca": "PCA (first two components)"}.get,
            )  # fmt: skip
        labels = sweep.labels[sweep.row(k)]
        sizes = np.bincount(labels, minlength=k)
        st.markdown(render.sizes_strip(sizes.tolist()), unsafe_allow_html=True)
        title = f"{len(names):,} images, k = {k}" + (" (recommended)" if k == sweep.recommended_k else "")
        fig = render.map_figure(data.layout(pipeline, kind), labels, k, data.path_array(pipeline), title)
        event = st.plotly_chart(
            fig,
            key="map",
            on_select="rerun",
            selection_mode=("points", "box", "lasso"),
            config={"displaylogo": False},
        )
        st.caption("Drag a box (or pick the lasso in the chart's toolbar) to select images; double-click to clear.")
        rows = selected_rows(event.selection if event else None, len(names))
        if len(rows) == 0:
            return
        picked = labels[rows]
        counts = np.bincount(picked, minlength=k)
        summary = ", ".join(f"cluster {c}: {n}" for c, n in enumerate(counts) if n)
        st.markdown(f"**{len(rows):,} images selected** ({summary})")
        shown = rows[:SHOWN_SELECTED]
        masks = data.image_set(pipeline).unpack(shown)
        captions = [f"{names[r].rsplit('/', 1)[-1]} ·{labels[r]}" for r in shown]
        st.image(render.montage(masks, captions, columns=12, frames=[render.colour(c) for c in labels[shown]]))
        if len(rows) > SHOWN_SELECTED:
            st.caption(f"The first {SHOWN_SELECTED} of {len(rows):,} are shown; the export has all of them.")
        left, right = st.columns(2)
        left.download_button(
            "Export the selection (CSV)",
            assignments_csv_text(pipeline, k, rows),
            file_name=f"selection-k{k}.csv",
            mime="text/csv",
            icon=":material/download:",
            on_click="ignore",
        )
        with right:
            page.zip_download(pipeline, k, rows, key="selection_zip", file_name=f"selection-k{k}.zip")


map_view(pipeline)
