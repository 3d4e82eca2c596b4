"""A prepared set's clusters scored against its labels: ARI and NMI of every k and of the groups without a k."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.clustering.agreement import agreement, truth_scores
from core.engine.pipeline import Pipeline
from core.reading.labels import labels_of

MIN_LABELLED = 2  # fewer labelled images cannot be compared with anything


@dataclass
class Truth:
    """The true classes of a prepared set and how far its clusterings agree with them.

    codes : ndarray of shape (n_images,), int64; -1 where an image has no label.
    names : the class names, in code order.
    ari, nmi : one per k of the sweep.
    notes : what reading the labels noticed (a file name given two labels: the first is used), in words.
    """

    codes: np.ndarray
    names: list[str]
    ari: list[float]
    nmi: list[float]
    notes: list[str] = field(default_factory=list)

    @property
    def known(self) -> int:
        """How many images have a label."""
        return int((self.codes >= 0).sum())

    def of(self, labels: np.ndarray) -> tuple[float, float]:
        """(ARI, NMI) of another labelling (n_images,) against the classes; -1 (noise) is left out."""
        return agreement(self.codes, labels)


def truth_of(pipeline: Pipeline) -> Truth | None:
    """The agreement of every k with the set's labels (core.reading.labels), or None when it has none or
    labels too few images.

    Raises DotmapError (in words, naming the file and the line) when the labels cannot be read (labels.csv
    that is not UTF-8 text, has no ``filename,label`` header or a cell over the csv module's limit; an array
    set's labels of the wrong length): labels only feed these scores, so a caller says it and goes on.
    """
    notes: list[str] = []
    found = labels_of(pipeline.inventory, pipeline.image_meta()["paths"], notes)
    if found is None:
        return None
    codes, names = found
    if (codes >= 0).sum() < MIN_LABELLED:
        return None
    pairs = truth_scores(codes, pipeline.sweep().labels)
    return Truth(codes, names, [a for a, _ in pairs], [b for _, b in pairs], notes)
