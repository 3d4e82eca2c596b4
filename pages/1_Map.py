"""Map: every image as a point, coloured by cluster; slide k, select points and see their images."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.engine.pipeline import Pipeline
from core.outputs.export import assignments_csv_text
from pages.ui import data, mapview, page, render, thumbnails, timing
from pages.ui import jobs as ui_jobs

SHOWN_SELECTED = 64  # thumbnails drawn for a selection; the export has all of it
CLICKED_PX = 288  # one clicked image, drawn large
SHAPES_HELP = (
    "Each group's typical shape (the mean of its members, each first put in the pose the features ignore), "
    "drawn where the group is densest and framed in its colour. The mouse goes through it to the points."
)
AUTO_HELP = (
    "Groups found without a k: HDBSCAN finds the dense regions of the cluster space that hold at least 1% of "
    "the images and leaves the images in none of them as noise (grey), instead of forcing them into the "
    "nearest cluster. Use it when you do not know how many groups there are or expect strays. On the quality "
    "suite it found the 8 shape families exactly, but merged near-alike shapes (8 groups of 10) and digits "
    "(9 of 10), where the k-means clusters at the recommended k did better."
)

MAP_HELP = (
    "Hover over a point to see its image; scroll to zoom in, and past a few hundred images in view each "
    "is drawn in place, framed in its colour. Drag to pan; select with Lasso or Box (or shift + drag); click "
    "a point to see it large; double-click or Esc clears the selection."
)

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


def show_clicked(pipeline: Pipeline, row: int, label: int, word: str, shapes: np.ndarray | None) -> None:
    """One clicked image drawn large, with its file name and group, beside that group's typical shape."""
    where = f"{word} {label}" if label >= 0 else "in no group"
    mask = data.image_set(pipeline).unpack(np.array([row]))
    left, middle, _ = st.columns([2, 2, 3])
    picture = render.montage(mask, side=CLICKED_PX, frames=[render.colour(label)])
    left.image(picture, caption=f"{render.text(names[row])} · {where}")
    if shapes is not None and 0 <= label < len(shapes):
        middle.image(render.density_image(shapes[label], CLICKED_PX), caption=f"typical shape of {where}")


def show_selection(pipeline: Pipeline, rows: np.ndarray, labels: np.ndarray, shown_k: int, word: str) -> None:
    """How many images of each group are selected, and their thumbnails, ``SHOWN_SELECTED`` a page."""
    picked = labels[rows]
    counts = np.bincount(picked[picked >= 0], minlength=shown_k)
    summary = ", ".join(f"{word} {c}: {n}" for c, n in enumerate(counts) if n)
    if np.any(picked < 0):
        summary += f", in no group: {int(np.sum(picked < 0))}"
    st.markdown(f"**{len(rows):,} images selected** ({summary})")

    def tag(row: int) -> str:
        return str(labels[row]) if labels[row] >= 0 else "-"

    thumbnails.show_page(pipeline, rows, SHOWN_SELECTED, "selection_page", tag=tag, groups=labels)
    if len(rows) > SHOWN_SELECTED:
        st.caption(f"{SHOWN_SELECTED} images a page; the export has all {len(rows):,}.")


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
        labels, shown_k, word = sweep.labels[sweep.row(k)], k, "cluster"
        title = f"{len(names):,} images, k = {k}" + (" (recommended)" if k == sweep.recommended_k else "")
        if pipeline.is_cached("auto"):
            colour_by = st.radio(
                "Colour by", ["clusters", "auto"], horizontal=True, key="colour_by",
                format_func={"clusters": f"the {k} clusters", "auto": "groups found without a k"}.get,
                help=AUTO_HELP,
            )  # fmt: skip
            if colour_by == "auto":
                labels, found = data.auto_groups(pipeline)
                shown_k, word = found["groups"], "group"
                title = (
                    f"{len(names):,} images, {shown_k} groups found without a k, {found['noise']:.0%} in none (grey)"
                )
        sizes = np.bincount(labels[labels >= 0], minlength=shown_k)
        strip, switch = st.columns([2, 1], vertical_alignment="center")
        strip.markdown(render.sizes_strip(sizes.tolist(), int(np.sum(labels < 0))), unsafe_allow_html=True)
        show_shapes = switch.toggle("Typical shapes on the map", value=True, key="map_shapes", help=SHAPES_HELP)
        shapes = None
        if show_shapes:
            shapes = data.auto_group_means(pipeline) if word == "group" else data.cluster_means(pipeline, k)
        xy = data.layout(pipeline, kind)
        note = MAP_HELP
        if len(xy) > render.DENSITY_ABOVE:
            title += f" (every image in the colours, {min(len(xy), render.DENSITY_SAMPLE):,} of them as points)"
        if not pipeline.is_cached("atlas"):
            note += " The thumbnails are still being made: the images show on the map once they are."
        layout_key = f"{kind}:{pipeline.key('map' if kind == 'umap' else 'reduction')}"
        rows = mapview.show_map(
            pipeline, xy, labels, shown_k, title, "map", layout_key, word=word, shapes=shapes, note=note
        )
        if len(rows) == 0:
            return
        if len(rows) == 1:  # a click on a point
            show_clicked(pipeline, int(rows[0]), int(labels[rows[0]]), word, shapes)
        else:
            show_selection(pipeline, rows, labels, shown_k, word)
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
