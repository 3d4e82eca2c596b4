"""Export: the assignments of one k (or the named groups of the curation) as a CSV, a zip of folders, or
folders written on this computer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core.errors import DotmapError
from core.outputs.export import FOLDER_CSV, GROUPS_CSV, array_rows, export, groups_csv_text
from pages.ui import curation as cur
from pages.ui import data, page, render

pipeline = page.start("Export", "Export the clusters or your groups")
sweep = data.sweep(pipeline)
n = sweep.labels.shape[1]
curation = cur.choose_groups(pipeline, "Export", key="export_what")
by_name = curation is not None
if by_name:
    k, stem, csv_name = None, "dotmap-groups", GROUPS_CSV
    sizes = curation.sizes()
    st.caption(
        f"{n:,} images in {len(sizes)} named groups ("
        + ", ".join(f"{render.text(curation.names[g])}: {c:,}" for g, c in sizes.items())
        + "); images in no group go to `outlier` and `unassigned`."
    )
else:
    k = page.k_select(sweep, key="k_export", label="Export the clusters of k =")
    stem, csv_name = f"dotmap-k{k}", FOLDER_CSV
    sizes = np.bincount(sweep.labels[sweep.row(k)], minlength=k)
    st.caption(f"{n:,} images in {k} clusters (sizes {', '.join(map(str, sizes))}).")

st.markdown("#### Download")
left, right = st.columns(2)
with left:
    st.download_button(
        f"Assignments (CSV, {n:,} rows)",
        groups_csv_text(curation, source_rows=array_rows(pipeline)) if by_name else data.assignments_csv(pipeline, k),
        file_name=f"{stem}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key="csv_download",
    )
    first = (
        "row (in the array), name" if pipeline.inventory.array is not None else "path (relative to the image folder)"
    )
    st.caption(
        f"Columns: {first} and group (its name, or outlier / unassigned)."
        if by_name
        else f"Columns: {first}, cluster, distance to the cluster's centre, silhouette."
    )
with right:
    page.zip_download(
        pipeline, k, None, key="export_zip", file_name=f"{stem}.zip", curation=curation if by_name else None
    )
    if pipeline.inventory.array is None:
        st.caption(
            (
                f"A folder named after each group, with {csv_name}"
                if by_name
                else f"`cluster_<id>/<path>` for every image, and {csv_name}"
            )
            + "; made when you click (a few seconds for many images)."
        )

if pipeline.inventory.array is not None:
    st.stop()  # an array set's images are rows, not files: the CSV is its export (the zip button says so)

st.markdown("#### Write to a folder on this computer")
with st.form("write"):
    target = st.text_input(
        "New folder (it must not exist yet: nothing is ever overwritten)",
        placeholder=str(Path.home() / stem),
        key="export_target",
    )
    link = st.checkbox("Symbolic links instead of copies (saves space; they point into the image folder)", key="link")
    submitted = st.form_submit_button("Write the folders and the CSV", type="primary", key="write")
if submitted:
    if not target.strip():
        st.error("Type the path of a new folder first.")
        st.stop()
    folder = Path(target.strip()).expanduser()
    if not folder.is_absolute():
        st.error(f"{render.text(target)} is not a full path; give one that starts at / (or ~).")
        st.stop()
    bar = st.progress(0.0, text="Writing the folders")
    try:
        (written,) = export(
            pipeline,
            k,
            folders=folder,
            link=link,
            on_progress=lambda d, t, _: bar.progress(d / t, text=f"{d} of {t} files"),
            csv_in_folder=True,
            curation=curation if by_name else None,
        )
    except DotmapError as exc:
        bar.empty()
        st.error(render.text(exc))
        st.stop()
    bar.empty()
    folders = f"{len(curation.names)} group folders" if by_name else f"{k} cluster folders"
    st.success(f"Wrote {n:,} {'links' if link else 'images'} in {folders} and {csv_name} to {render.text(written)}.")
