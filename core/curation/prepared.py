"""A curation of a prepared set: where its file lives by default, and one started from the clusters of a k."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from core.curation import file as curation_file
from core.curation.model import Curation, from_clusters
from core.engine.pipeline import Pipeline


def default_path(pipeline: Pipeline) -> Path:
    """The folder's own curation file for these settings (outside the cache: the user owns it)."""
    return curation_file.curation_path(pipeline.inventory.root, asdict(pipeline.settings))


def others(pipeline: Pipeline) -> list[Path]:
    """The curation files of this folder made with other settings."""
    return curation_file.other_curations(pipeline.inventory.root, asdict(pipeline.settings))


def from_k(pipeline: Pipeline, k: int) -> Curation:
    """A new curation whose groups are the clusters of k (not saved yet)."""
    sweep = pipeline.sweep()
    about = {"folder": str(pipeline.inventory.root), "settings": asdict(pipeline.settings)}
    return from_clusters(pipeline.image_meta()["paths"], sweep.labels[sweep.row(k)], k, **about)
