"""Classify: upload new images and see the cluster (or named group) of each, how sure that is, its nearest
images, its place."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.curation import classifier as group_model
from core.engine.pipeline import Pipeline
from core.outputs.export import predictions_csv_text
from core.outputs.predict import Prediction, Predictor
from core.reading.decode import ImageReadError, decode_image
from core.reading.names import shown
from pages.ui import curation as cur
from pages.ui import data, mapview, page, render, timing

MAX_UPLOADS = 200  # one page of results; more belong to the command line (python -m core predict)
DETAILED = 12  # uploads shown one by one with their neighbours; all are in the table

pipeline = page.start("Classify", "Classify new images", need=("sweep", "typical", "neighbours"))
sweep = data.sweep(pipeline)
left, right = st.columns(2)
curation = cur.choose_groups(pipeline, "Assign to", key="classify_into", column=left)
into_groups = curation is not None
if into_groups:
    method = right.selectbox(
        "How",
        group_model.METHODS,
        index=group_model.METHODS.index(group_model.DEFAULT_METHOD),
        key="classify_method",
        format_func=lambda m: m + (" (default)" if m == group_model.DEFAULT_METHOD else ""),
        help=" ".join(f"{m}: {w}" for m, w in group_model.METHOD_WORDS.items()),
    )
k = (
    sweep.recommended_k
    if into_groups
    else page.k_select(sweep, key="k_classify", label="Assign to the clusters of k =")
)
uploads = st.file_uploader(
    "Images to classify (PNG, JPEG, BMP, TIFF or GIF)", accept_multiple_files=True, key="uploads"
)
# loaded while the user picks files (once per server), so a prediction itself is quick
predictor = data.group_predictor(pipeline, curation, method) if into_groups else data.predictor(pipeline, k)
images = data.image_set(pipeline)


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


if into_groups:
    labels_now, label_names = curation.dense()
    word = "group"
    means = cur.shapes(pipeline, labels_now, len(label_names))
    how = group_model.METHOD_WORDS[method]
else:
    labels_now, word = sweep.labels[sweep.row(k)], "cluster"
    label_names = [f"cluster {c}" for c in range(k)]
    means = data.cluster_means(pipeline, k)
    how = (
        "Confidence is the Gaussian mixture's probability that the image belongs to this cluster."
        if pipeline.settings.algorithm == "gmm"
        else "Confidence is 1 on the cluster's centre and 0 halfway to the next cluster's centre."
    )
into_words = "your named groups" if into_groups else f"k = {k}"


def label_of(row: int) -> str:
    return shown(label_names[labels_now[row]]) if labels_now[row] >= 0 else "none"


def show_table(results: list[Prediction]) -> None:
    table = pd.DataFrame(
        [
            {
                "file": shown(r.name),
                word: shown(r.group) if into_groups else r.cluster,
                "confidence": round(r.confidence, 3),
                f"unlike every {word}": r.unusual,
                "distance to centre": round(r.distance, 4),
                "nearest image": shown(r.neighbour_paths[0]),
            }
            for r in results
        ]
    )
    st.markdown(f"#### {len(results)} images classified into {into_words}")
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button(
        "Download the table (CSV)",
        predictions_csv_text(results),
        file_name="classified-groups.csv" if into_groups else f"classified-k{k}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )


def show_result(result: Prediction, mask: np.ndarray, names: list[str]) -> None:
    title = shown(result.group) if into_groups else f"Cluster {result.cluster}"
    with st.container(border=True):
        left, middle, right = st.columns([1, 1, 3])
        left.image(render.montage(mask[None], side=140), caption=render.text(result.name))
        middle.image(render.density_image(means[result.cluster], 140), caption=f"typical shape of {render.text(title)}")
        with right:
            header = render.swatch_header(result.cluster, title, f"confidence {result.confidence:.2f}")
            st.markdown(header, unsafe_allow_html=True)
            st.caption(how)
            if result.unusual:
                st.warning(
                    f"Unlike every {word}: {result.novelty:.1f}x beyond what is usual in this set (its distance "
                    "to its nearest images, or its amount of ink, is beyond that of 99.5% of the set's own "
                    "images). It may be a kind of image the set does not hold; treat the assignment with care."
                )
            rows = np.asarray(result.neighbours)
            captions = [f"{names[r].rsplit('/', 1)[-1]} ·{label_of(r)}" for r in rows]  # drawn in the picture
            st.image(
                render.montage(images.unpack(rows), captions, columns=5, side=72),
                caption=f"its nearest images in the set (file · {word})",
            )


def show_map(pipeline: Pipeline, results: list[Prediction]) -> None:
    layout = "umap" if pipeline.is_cached("map") else "pca"
    title = f"the {layout.upper()} map, " + ("your named groups" if into_groups else f"k = {k}")
    mapview.show_map(
        pipeline,
        data.layout(pipeline, layout),
        labels_now,
        len(label_names),
        f"Where the new images fall (stars) on {title}" if results else f"The images of the set on {title}",
        "classify_map",
        f"{layout}:{pipeline.key('map' if layout == 'umap' else 'reduction')}",
        word=word,
        group_names=label_names if into_groups else None,
        marks=np.array([r.map_xy for r in results], np.float32).reshape(-1, 2),
        mark_names=[r.name for r in results],
    )


with timing.timed("classify uploads"):  # decoding, prediction and drawing of the results
    if not uploads:
        st.info(f"Drop one or more images above: each gets its {word}, a confidence and its nearest images.")
    elif len(uploads) > MAX_UPLOADS:
        st.warning(
            f"{len(uploads)} files were given; the first {MAX_UPLOADS} are classified here. "
            "For more, use `python -m core predict FOLDER FILES... --k K` (or `--curation`)."
        )
    results, masks, problems = classify(predictor, (uploads or [])[:MAX_UPLOADS])
    for name, reason in problems:
        st.error(f"**{render.text(name)}** was not classified: {render.text(reason)}")
    if len(results) > 1:
        show_table(results)
    names = data.paths(pipeline)
    for result, mask in list(zip(results, masks, strict=True))[:DETAILED]:
        show_result(result, mask, names)
    if len(results) > DETAILED:
        st.caption(f"The first {DETAILED} are shown in detail; the table has all {len(results)}.")
    show_map(pipeline, results)  # drawn before anything is uploaded too: the browser has the map ready
