"""The settings widgets the Overview and the Compare page share: one per setting, with its words and help."""

from __future__ import annotations

import streamlit as st

from core.clustering.algorithms import ALGORITHM_WORDS, ALGORITHMS
from core.engine.settings import CLUSTER_SPACES
from core.representation.features import FEATURE_HELP, FEATURE_KINDS, NETWORK_KINDS

FEATURES_HELP = (
    "Pose-free features rescue shapes drawn anywhere at any angle, but they would put a 6 with a 9 (a turned 6). "
    "Choose what must NOT count for your images.\n\n"
    "The learned features come from an encoder trained on your own images, without labels, before the first "
    "clustering (about 2 minutes on a 2-core laptop whatever the number of images; on a GPU when there is one). "
    "On the quality suite learned-rotation won where a turn must not count (near-alike shapes: ARI 0.83 "
    "against 0.72; shapes at any pose: 1.00 against 0.99), while learned tied on handwritten digits and lost "
    "on typeset letters: they are not the default. Try them beside the hand-made ones on the Compare page. "
    "They need PyTorch "
    "(`python3 -m pip install -r requirements-learned.txt`). `pretrained` uses a network trained on "
    "photographs (VGG16), where its weights are on this machine."
)
ALGORITHM_HELP = (
    "k-means: round groups of similar size, fast (the default). Spherical k-means compares by angle. "
    "A Gaussian mixture allows elongated groups of different sizes, and its confidence for a new image "
    "is a probability; it is much slower (about 4 minutes for k = 2..20 at 32,000 images, k-means 17 s)."
)
SPACE_HELP = (
    "umap: cluster in a 10-D UMAP of the components (best groups, needs UMAP); "
    "pca: cluster the components themselves (no UMAP needed, faster)."
)


def features_unavailable(kind: str) -> str | None:
    """Why these features cannot be made on this machine, in words with what to do; None when they can."""
    from core.representation import learned, pretrained

    if kind not in NETWORK_KINDS:
        return None
    if not learned.learned_available():
        return learned.INSTALL_WORDS
    if kind == "pretrained":
        try:
            found = pretrained.weights_file()
        except pretrained.PretrainedUnavailableError as exc:
            return str(exc)
        if found is None:
            return pretrained.missing_words()
    return None


def features(value: str, key: str) -> str:
    return st.radio(
        "What makes two images the same shape?", FEATURE_KINDS, index=FEATURE_KINDS.index(value),
        captions=[FEATURE_HELP[kind] for kind in FEATURE_KINDS], key=key, help=FEATURES_HELP,
    )  # fmt: skip


def components(value: int, key: str) -> int:
    words = "The features are reduced to this many numbers before clustering."
    return int(st.number_input("PCA components", 2, 200, value, key=key, help=words))


def algorithm(value: str, key: str) -> str:
    return st.selectbox(
        "Clustering", ALGORITHMS, index=ALGORITHMS.index(value), key=key, format_func=ALGORITHM_WORDS.get,
        help=ALGORITHM_HELP,
    )  # fmt: skip


def cluster_space(value: str, key: str) -> str:
    return st.selectbox(
        "Cluster space", CLUSTER_SPACES, index=CLUSTER_SPACES.index(value), key=key, help=SPACE_HELP,
    )  # fmt: skip
