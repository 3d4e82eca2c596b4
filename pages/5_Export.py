"""Export: the assignments of one k as a CSV, a zip of per-cluster folders, or folders written on this computer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core.errors import DotmapError
from core.export import FOLDER_CSV, export
from core.names import shown
from pages.ui import data, page

pipeline = page.start("Export", "Export the clusters")
sweep = data.sweep(pipeline)
k = page.k_select(sweep, key="k_export", label="Export the clusters of k =")
n = sweep.labels.shape[1]
sizes = np.bincount(sweep.labels[sweep.row(k)], minlength=k)
st.caption(f"{n:,} images in {k} clusters (sizes {', '.join(map(str, sizes))}).")

st.markdown("#### Download")
left, right = st.columns(2)
with left:
    st.download_button(
        f"Assignments (CSV, {n:,} rows)",
        data.assignments_csv(pipeline, k),
        file_name=f"dotmap-k{k}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key="csv_download",
    )
    st.caption("Columns: path (relative to the image folder), cluster, distance to the cluster's centre, silhouette.")
with right:
    page.zip_download(pipeline, k, None, key="export_zip", file_name=f"dotmap-k{k}.zip")
    st.caption(
        f"`cluster_<id>/<path>` for every image, and {FOLDER_CSV}; made when you click (a few seconds for many images)."
    )

st.markdown("#### Write to a folder on this computer")
with st.form("write"):
    target = st.text_input(
        "New folder (it must not exist yet: nothing is ever overwritten)",
        placeholder=str(Path.home() / f"dotmap-k{k}"),
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
        st.error(f"{target} is not a full path; give one that starts at / (or ~).")
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
        )
    except DotmapError as exc:
        bar.empty()
        st.error(str(exc))
        st.stop()
    bar.empty()
    st.success(
        f"Wrote {n:,} {'links' if link else 'images'} in {k} cluster folders and {FOLDER_CSV} to {shown(str(written))}."
    )
