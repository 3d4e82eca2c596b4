"""Compare two settings: the session's (A) and a second one (B) on the same images, k by k, and where they part."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from core.clustering.algorithms import ALGORITHM_WORDS
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError
from core.outputs import compare
from core.representation.features import FRAME
from pages.ui import charts, data, page, render, state
from pages.ui import settings_widgets as widgets

SHOWN_DISAGREEING = 20
THUMB_COLUMNS = 10
# B's first offer: the other hand-made view; for a network's features, the hand-made ones of its frame
OTHER_FEATURES = {"shape-rotation": "shape", "shape": "shape-rotation", "pixels": "shape-rotation", **FRAME}


def describe(s: Settings) -> str:
    return (
        f"features `{s.features}` · cluster space {s.cluster_space} · {ALGORITHM_WORDS[s.algorithm]} · "
        f"{s.components} components"
    )


def pick_b(a: Settings) -> Settings | None:
    """B: four settings chosen in a form, A's for the rest; None until *Compare* is pressed."""
    offer = st.session_state.get("compare_b") or {
        "features": OTHER_FEATURES[a.features],
        "cluster_space": a.cluster_space,
        "algorithm": a.algorithm,
        "components": a.components,
    }
    with st.form("compare_form", border=True):
        st.markdown("**B**: the setting to compare with (the k range, grid, ink and seed are A's)")
        left, right = st.columns([3, 2], gap="large")
        with left:
            features = widgets.features(offer["features"], key="b_features")
        with right:
            space = widgets.cluster_space(offer["cluster_space"], key="b_space")
            algorithm = widgets.algorithm(offer["algorithm"], key="b_algorithm")
            components = widgets.components(offer["components"], key="b_components")
        if st.form_submit_button("Compare", type="primary", key="compare", icon=":material/compare_arrows:"):
            missing = widgets.features_unavailable(features)
            if missing is not None:
                st.error(render.text(missing))
                return None
            st.session_state["compare_b"] = {
                "features": features,
                "cluster_space": space,
                "algorithm": algorithm,
                "components": int(components),
            }
    picked = st.session_state.get("compare_b")
    if picked is None:
        return None
    try:
        return replace(a, **picked)
    except DotmapError as exc:
        st.error(render.text(exc))
        return None


@st.fragment
def at_k(pipeline: Pipeline, other: Pipeline, first: compare.Comparison) -> None:
    """The k picker and what it shows: moving k reruns only this part."""
    ks = first.ks
    top = st.columns([4, 2, 2, 3], vertical_alignment="bottom")
    k = int(
        top[0].selectbox(
            "k (both results clustered at this k)", ks, index=ks.index(state.chosen_k(ks, first.k)), key="k_compare",
            on_change=state.remember_k, args=("k_compare",),
            format_func=lambda v: f"{v} (A's recommended)" if v == first.recommended_a else str(v),
        )
    )  # fmt: skip
    result = compare.compare_sweeps(data.sweep(pipeline), data.sweep(other), k)
    row = ks.index(k)
    top[1].metric("ARI at this k", f"{result.ari[row]:.2f}", help="1: the same groups; about 0: unrelated.")
    top[2].metric("NMI at this k", f"{result.nmi[row]:.2f}", help="Information shared by the two groupings, 0..1.")
    n = len(result.labels_a)
    top[3].metric("Images that disagree", f"{len(result.disagreeing):,}", help=f"Of {n:,}: {compare.DISAGREE_RULE}.")
    if result.recommended_a == result.recommended_b:
        marks = {result.recommended_a: "both recommend"}
    else:
        marks = {result.recommended_a: "A recommends", result.recommended_b: "B recommends"}
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.plotly_chart(charts.agreement_curves(ks, result.ari, result.nmi, k, marks), key="agreement")
        st.caption("Agreement of A and B at every k both have; the shaded k is the one on the right.")
    with right:
        matched_a = np.argsort(result.match)  # for each B cluster, the A cluster matched to it
        st.plotly_chart(charts.sankey(result.overlap, ("A", "B"), matched_a), key="compare_sankey")
        st.caption(
            f"Left: the {k} clusters of A; right: the {k} of B, each in the colour of the A cluster matched to it "
            "(the matching keeps the most images together). Band width: images shared."
        )
    if len(result.disagreeing) == 0:
        st.success(f"A and B make the same groups at k = {k}: every image is in matching clusters.")
        return
    shown = result.disagreeing[:SHOWN_DISAGREEING]
    st.markdown(f"**The images they disagree on most** ({len(shown)} of {len(result.disagreeing):,})")
    masks = data.image_set(pipeline).unpack(shown)
    a, b = result.labels_a[shown], result.labels_b[shown]
    captions = [f"A {i} -> B {j}" for i, j in zip(a, b, strict=True)]
    frames = [render.colour(int(i)) for i in a]
    st.image(
        render.montage(masks, captions, columns=THUMB_COLUMNS, frames=frames),
        caption="A cluster → B cluster, framed in the colour of the A cluster",
    )
    st.caption(
        f"Which images disagree, and in what order: {compare.DISAGREE_RULE}. Ids are each result's own, so "
        "*A 0 → B 0* can disagree: B 0 is then matched to another A cluster (see *Their files*)."
    )
    with st.expander("Their files"):
        names = data.paths(pipeline)
        table = pd.DataFrame(
            {
                "file": [names[r] for r in shown],
                "A cluster": a,
                "B cluster": b,
                "B cluster matched to A's": result.match[a],
                "smaller silhouette": result.surety[: len(shown)],
            }
        )
        st.dataframe(table, hide_index=True, width="stretch")


pipeline = page.start("Compare", "Compare two settings")
st.markdown(f"**A**: {describe(pipeline.settings)}: the setting of every other page (chosen on the **Overview**)")
settings_b = pick_b(pipeline.settings)
if settings_b is None:
    st.info("Choose B above and press **Compare**: B is prepared in the background if it is not yet.")
    st.stop()
if settings_b == pipeline.settings:
    st.info("B is the same as A: change at least one of B's settings.")
    st.stop()
st.markdown(f"**B**: {describe(settings_b)}")
other = Pipeline(pipeline.inventory.root, settings_b, inventory=pipeline.inventory)  # reads B from the disk cache
data.wait_for(other, ("sweep",))  # until B's clusters are prepared: the job's progress, and the page stops
try:
    first = compare.compare_results(pipeline, other)
except DotmapError as exc:
    st.error(render.text(exc))
    st.stop()
at_k(pipeline, other, first)
