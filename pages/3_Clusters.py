"""Clusters: one card per cluster with its typical shape, its most typical and borderline members, and all of them."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.engine.pipeline import Pipeline
from pages.ui import data, page, render, selection, thumbnails, timing

CARD_THUMBS = 8  # typical and borderline members shown on a card
PAGE_THUMBS = 48  # members per page when browsing a whole cluster

pipeline = page.start("Clusters", "The clusters", need=("sweep", "typical"))


def card(pipeline: Pipeline, k: int, c: int, members: np.ndarray, means: np.ndarray) -> None:
    sweep = data.sweep(pipeline)
    row = sweep.row(k)
    images = data.image_set(pipeline)
    n = sweep.labels.shape[1]
    silhouette = sweep.silhouette[row, members]
    distance = sweep.distance[row, members]
    # the few shown, without sorting every member (125,000 of them a card at a million images)
    lowest = selection.smallest(silhouette, CARD_THUMBS)
    borderline = members[lowest]
    with st.container(border=True, key=f"card-{c}"):
        details = f"{len(members):,} images ({len(members) / n:.1%}) · mean silhouette {silhouette.mean():.2f}"
        st.markdown(render.swatch_header(c, f"Cluster {c}", details), unsafe_allow_html=True)
        left, middle, right = st.columns([1, 2, 2])
        left.image(render.density_image(means[c], 140), caption="typical shape (mean density)")
        typical = members[selection.smallest(distance, CARD_THUMBS)]
        middle.image(
            render.montage(images.unpack(typical), columns=4, side=72), caption="most typical (closest to centre)"
        )
        right.image(
            render.montage(images.unpack(borderline), [f"{s:.2f}" for s in silhouette[lowest]], 4, 72),
            caption="borderline (lowest silhouette)",
        )
        if st.toggle(f"All {len(members):,} members", key=f"all_{k}_{c}"):
            by_distance = members[np.argsort(distance, kind="stable")]
            thumbnails.show_page(pipeline, by_distance, PAGE_THUMBS, f"page_{k}_{c}", columns=8, side=84)
            st.caption("Ordered from the most typical member to the least.")


@st.fragment
def cards(pipeline: Pipeline) -> None:
    with timing.timed("cards fragment"):
        sweep = data.sweep(pipeline)
        k = page.k_slider(sweep, key="k_clusters")
        labels = sweep.labels[sweep.row(k)]
        means = data.cluster_means(pipeline, k)
        st.caption(
            "The typical shape is the mean ink density of the members, each first put in the pose the chosen "
            f"features ignore (`{pipeline.settings.features}`), so it shows the shape the cluster stands for."
        )
        order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
        for c in order:
            members = np.flatnonzero(labels == c)
            if len(members):
                card(pipeline, k, int(c), members, means)


cards(pipeline)
