"""Choose k: the scores of every k, the silhouette of every image, and how clusters split between two k."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.clustering.agreement import overlap_table
from core.clustering.scoring import RECOMMENDATION_RULE
from pages.ui import charts, data, page, render, state

pipeline = page.start("Choose k", "Which k?")
sweep = data.sweep(pipeline)
truth = data.truth_scores(pipeline)

st.success(f"**Recommended: k = {sweep.recommended_k}**, by this rule: {RECOMMENDATION_RULE}.")
chosen = state.chosen_k(sweep.ks, sweep.recommended_k)
st.plotly_chart(charts.score_curves(sweep, truth, chosen), key="curves")
st.caption(
    "Dashed green line: the recommended k; dotted red: the k you chose on another page. "
    "Silhouette: how much closer each image is to its own cluster than to the next (-1..1, higher is better). "
    "Davies-Bouldin: spread within clusters over distance between them (lower is better). "
    "Calinski-Harabasz: between- over within-cluster variance (higher is better). Inertia: the k-means cost; "
    "look for its elbow. Stability: agreement (ARI) of clusterings from other seeds on 80% subsamples."
    + (f" ARI/NMI: agreement with labels.csv ({truth.known:,} labelled images)." if truth else "")
)
with st.expander("All scores as a table"):
    table = pd.DataFrame([{key: v for key, v in row.items() if key != "sizes"} for row in sweep.table])
    if truth:
        table["ARI"], table["NMI"] = truth.ari, truth.nmi
    st.dataframe(table.set_index("k"), width="stretch")

st.markdown("### Silhouette of every image")
k = page.k_select(sweep, key="k_silhouette", label="k for the silhouette plot")
row = sweep.row(k)
st.plotly_chart(charts.silhouette_plot(sweep.silhouette[row], sweep.labels[row], k), key="silhouette")
st.caption(
    "Each band is one cluster, its images sorted by silhouette. A wide band that stays right of the dashed "
    "mean is a clean cluster; images below 0 sit closer to another cluster than to their own."
    + (
        f" Silhouettes are measured against a fixed sample of {sweep.sample_size:,} images."
        if sweep.sample_size < sweep.labels.shape[1]
        else ""
    )
)

st.markdown("### Compare two k: what splits and what merges")
if len(sweep.ks) < 2:
    st.info("Only one k was prepared; widen the k range on the Overview page to compare.")
    st.stop()
c1, c2 = st.columns(2)
default_1 = sweep.ks.index(min(k, sweep.ks[-2]))
k1 = int(c1.selectbox("from k", sweep.ks, index=default_1, key="k1"))
k2 = int(c2.selectbox("to k", sweep.ks, index=min(default_1 + 1, len(sweep.ks) - 1), key="k2"))
if k1 == k2:
    st.info("Pick two different k to compare.")
    st.stop()
a, b = sweep.labels[sweep.row(k1)], sweep.labels[sweep.row(k2)]
overlap = overlap_table(a, b, k1, k2)
st.plotly_chart(charts.sankey(overlap), key="sankey")
st.caption(f"Left: the {k1} clusters at k = {k1}; right: the {k2} at k = {k2}. Band width: images shared.")

splits = charts.splits(overlap)
if not splits:
    st.info(f"No cluster of k = {k1} splits into parts of at least {charts.SPLIT_SHARE:.0%} at k = {k2}.")
images = data.image_set(pipeline)
distance2 = sweep.distance[sweep.row(k2)]
for source, parts in splits:
    st.markdown(
        f"**Cluster {source}** of k = {k1} ({overlap[source].sum():,} images) splits into "
        + ", ".join(f"cluster {t} ({overlap[source, t]:,})" for t in parts)
        + f" of k = {k2}. Most typical members of each part:"
    )
    cols = st.columns(len(parts))
    for col, target in zip(cols, parts, strict=True):
        members = np.flatnonzero((a == source) & (b == target))
        typical = members[np.argsort(distance2[members])[: charts.SPLIT_THUMBS]]
        col.image(
            render.montage(images.unpack(typical), columns=3, side=72, frames=[render.colour(target)] * len(typical)),
            caption=f"→ cluster {target}",
        )
