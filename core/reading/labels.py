"""The true classes of a data set's images: a folder's ``labels.csv`` (filename,label), an array set's labels."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.errors import DotmapError
from core.reading import arrays
from core.reading.folders import Inventory


def read_labels(path: Path, paths: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Read ``labels.csv`` (filename,label) for the given image paths.

    Returns
    -------
    codes : ndarray of shape (n_images,), int; -1 where an image has no label.
    names : the label names, in code order.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DotmapError(f"Cannot read {path}: {exc}.") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["filename", "label"]:
        raise DotmapError(f"{path} should start with the header 'filename,label'.")
    mapping = {r[0].strip(): r[1].strip() for r in rows[1:] if len(r) >= 2 and r[1].strip()}
    names = sorted(set(mapping.values()))
    index = {name: i for i, name in enumerate(names)}
    codes = np.array([index.get(mapping.get(p, ""), -1) for p in paths], dtype=np.int64)
    return codes, names


def labels_of(inventory: Inventory, paths: Sequence[str]) -> tuple[np.ndarray, list[str]] | None:
    """The classes of ``paths`` (as :func:`read_labels`) from wherever the data set keeps them; None without."""
    if inventory.labels_path is None:
        return None
    if inventory.array is None:
        return read_labels(inventory.labels_path, paths)
    labels = arrays.labels_of(inventory.array)
    if labels is None:
        return None
    mapping = {e.path: label for e, label in zip(inventory.files, labels, strict=True) if label}
    names = sorted(set(mapping.values()))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index.get(mapping.get(p, ""), -1) for p in paths], dtype=np.int64), names
