"""Classify: upload new images and see the cluster of each, how sure that is, its nearest images, its place."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.export import predictions_csv_text
from core.images import ImageReadError, decode_image
from core.names import shown
from core.pipeline import Pipeline
from core.predict import Prediction, Predictor
from pages.ui import data, page, render, timing

MAX_UPLOADS = 200  # one page of results; more belong to the command line (python -m core predict)
DETAILED = 12  # uploads shown one by one with their neighbours; all are in the table

pipeline = page.start("Classify", "Classify new images", need=("sweep", "typical", "neighbours"))
sweep = data.sweep(pipeline)
k = page.k_select(sweep, key="k_classify", label="Assign to the clusters of k =")
uploads = st.file_uploader(
    "Images to classify (PNG, JPEG, BMP, TIFF or GIF)", accept_multiple_files=True, key="uploads"
)
# loaded while the user picks files (once per server), so a prediction itself is quick
predictor, images = data.predictor(pipeline, k), data.image_set(pipeline)


def classify(predictor: Predictor, uploads: list) -> tuple[list[Prediction], list[np.ndarray], list[tuple]]:
    """Predictions and ink masks of the usable uploads, and (name, reason) of the others."""
    s = pipeline.settings
    results, masks, problems = [], [], []
    for upload in uploads:
        try:
            mask = decode_image(upload.getvalue(), s.grid, s.polarity)  # core's guarded loader, nothing else
        except ImageReadError as exc:
            problems.append((upload.name, str(exc)))
            continue
        results.append(predictor.predict_masks(mask[None], [upload.name])[0])
        masks.append(mask)
    return results, masks, problems


def show_table(results: list[Prediction]) -> None:
    table = pd.DataFrame(
        [
            {
                "file": shown(r.name),
                "cluster": r.cluster,
                "confidence": round(r.confidence, 3),
                "unlike every cluster": r.unusual,
                "distance to centre": round(r.distance, 4),
                "nearest image": shown(r.neighbour_paths[0]),
            }
            for r in results
        ]
    )
    st.markdown(f"#### {len(results)} images classified at k = {k}")
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button(
        "Download the table (CSV)",
        predictions_csv_text(results),
        file_name=f"classified-k{k}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )


def show_result(result: Prediction, mask: np.ndarray, means: np.ndarray, names: list[str]) -> None:
    with st.container(border=True):
        left, middle, right = st.columns([1, 1, 3])
        left.image(render.montage(mask[None], side=140), caption=result.name)
        middle.image(
            render.density_image(means[result.cluster], 140), caption=f"typical shape of cluster {result.cluster}"
        )
        with right:
            st.markdown(
                f"<span style='color:{render.colour(result.cluster)};font-size:1.4em'>&#9632;</span> "
                f"**Cluster {result.cluster}** · confidence {result.confidence:.2f}",
                unsafe_allow_html=True,
            )
            st.caption(
                "Confidence is the Gaussian mixture's probability that the image belongs to this cluster."
                if pipeline.settings.algorithm == "gmm"
                else "Confidence is 1 on the cluster's centre and 0 halfway to the next cluster's centre."
            )
            if result.unusual:
                st.warning(
                    f"Unlike every cluster: {result.novelty:.1f}x beyond what is usual in this set (its distance "
                    "to its nearest images, or its amount of ink, is beyond that of 99.5% of the set's own "
                    "images). It may be a kind of image the set does not hold; treat the assignment with care."
                )
            rows = np.asarray(result.neighbours)
            captions = [f"{names[r].rsplit('/', 1)[-1]} ·{sweep.labels[sweep.row(k), r]}" for r in rows]
            st.image(
                render.montage(images.unpack(rows), captions, columns=5, side=72),
                caption="its nearest images in the set (file · cluster)",
            )


def show_map(pipeline: Pipeline, results: list[Prediction]) -> None:
    layout = "umap" if pipeline.is_cached("map") else "pca"
    title = f"the {layout.upper()} map, k = {k}"
    fig = render.map_figure(
        data.layout(pipeline, layout),
        sweep.labels[sweep.row(k)],
        k,
        data.path_array(pipeline),
        f"Where the new images fall (stars) on {title}" if results else f"The images of the set on {title}",
        marks=np.array([r.map_xy for r in results], np.float32).reshape(-1, 2),
        mark_names=[r.name for r in results],
    )
    st.plotly_chart(fig, key="classify_map")


with timing.timed("classify uploads"):  # decoding, prediction and drawing of the results
    if not uploads:
        st.info("Drop one or more images above: each gets its cluster, a confidence and its nearest images.")
    elif len(uploads) > MAX_UPLOADS:
        st.warning(
            f"{len(uploads)} files were given; the first {MAX_UPLOADS} are classified here. "
            "For more, use `python -m core predict FOLDER FILES... --k K`."
        )
    results, masks, problems = classify(predictor, (uploads or [])[:MAX_UPLOADS])
    for name, reason in problems:
        st.error(f"**{shown(name)}** was not classified: {reason}")
    if len(results) > 1:
        show_table(results)
    means, names = data.cluster_means(pipeline, k), data.paths(pipeline)
    for result, mask in list(zip(results, masks, strict=True))[:DETAILED]:
        show_result(result, mask, means, names)
    if len(results) > DETAILED:
        st.caption(f"The first {DETAILED} are shown in detail; the table has all {len(results)}.")
    show_map(pipeline, results)  # drawn before anything is uploaded too: the browser has the map ready
