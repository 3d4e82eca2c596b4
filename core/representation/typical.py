"""The typical shape of each cluster: its members' mean ink density, drawn in the frame the features ignore.

A mean of raw images is a blur when shapes are drawn anywhere at any angle. So each member is first
put into the pose its features do not see: ``pixels`` keeps the canvas; ``shape`` centres the dots
and scales them to unit RMS radius; ``shape-rotation`` also turns the main axis of the dots to the
horizontal and flips the shape so its heavier side is right and down (a turned or mirrored copy
then lands on the same pose). The mean of those densities is the cluster's typical shape.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

import numpy as np

from core.engine.backends import Backend
from core.engine.processes import spread
from core.reading.ondisk import image_block_rows, let_go, map_rows, row_blocks
from core.representation.features import FEATURE_KINDS, FRAME, SHAPE_EXTENT, ink_points, posed_points

TYPICAL_CELLS = 48  # side of a mean image
# members averaged for a cluster's typical shape in the pipeline (a seeded sample; benchmarks/typical_sample.py,
# k = 2..20 at 32,000 images against the means of every member: 4,096 moves a cell by at most 1.1 of the 31 shades
# drawn, 99% of cells by under 0.002; 1,024 by up to 3.7 shades, visibly). At 32,000 images every image is still
# drawn (the clusters of k = 20 are smaller); at 300,000 about a quarter, at a million a twelfth.
TYPICAL_SAMPLE = 4096
# images whose ink points are held at once: 2,048 dense images (~1,500 ink pixels each) took 226 MB
# in points and their cells, 512 take a quarter
POINTS_BLOCK = 512
CHUNK_IMAGES: int | None = None  # images a block; None: from the block setting (core.reading.ondisk)


def _rotate_to_axes(image: np.ndarray, u: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn centred points so each image's main axis is horizontal and its third moments are >= 0."""
    uu = np.bincount(image, u * u, minlength=n)
    vv = np.bincount(image, v * v, minlength=n)
    uv = np.bincount(image, u * v, minlength=n)
    theta = 0.5 * np.arctan2(2 * uv, uu - vv)
    cos, sin = np.cos(theta)[image], np.sin(theta)[image]
    a = cos * u + sin * v
    b = -sin * u + cos * v
    flip_a = np.where(np.bincount(image, a * a * a, minlength=n) < 0, -1.0, 1.0)
    flip_b = np.where(np.bincount(image, b * b * b, minlength=n) < 0, -1.0, 1.0)
    return a * flip_a[image], b * flip_b[image]


def pose_free_densities(packed: np.ndarray, grid: int, kind: str, cells: int = TYPICAL_CELLS) -> np.ndarray:
    """Each image's ink density in its feature kind's frame: ndarray of shape (n, cells * cells).

    Every row sums to 1 (an image with no ink is all zeros).
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"features={kind!r} should be one of {FEATURE_KINDS}.")
    kind = FRAME.get(kind, kind)  # a learned kind: the frame its encoder sees
    packed = np.atleast_2d(packed)
    n = len(packed)
    if n > POINTS_BLOCK:  # each image on its own: the same rows, a bounded memory whatever the block's ink
        out = np.empty((n, cells * cells), np.float32)
        for start in range(0, n, POINTS_BLOCK):
            out[start : start + POINTS_BLOCK] = pose_free_densities(
                packed[start : start + POINTS_BLOCK], grid, kind, cells
            )
        return out
    if kind == "pixels":
        image, y, x = ink_points(packed, grid)
        col = (x * cells) // grid
        row = (y * cells) // grid
    else:
        image, u, v = posed_points(packed, grid)
        if kind == "shape-rotation":
            u, v = _rotate_to_axes(image, u, v, n)
        scale = cells / (2 * SHAPE_EXTENT)
        col = np.clip(((u + SHAPE_EXTENT) * scale).astype(np.int64), 0, cells - 1)
        row = np.clip(((v + SHAPE_EXTENT) * scale).astype(np.int64), 0, cells - 1)
    flat = np.bincount(image * cells * cells + row * cells + col, minlength=n * cells * cells)
    hist = flat.reshape(n, cells * cells).astype(np.float32)
    return hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)


def cluster_means(
    packed: np.ndarray,
    grid: int,
    kind: str,
    labels: np.ndarray,
    ks: Sequence[int],
    cells: int = TYPICAL_CELLS,
    backend: Backend | None = None,
    source: str | os.PathLike | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Mean pose-free density of every cluster of every k, in one pass over the images.

    Parameters
    ----------
    packed : ndarray of shape (n_images, nbytes), bit-packed ink masks.
    labels : ndarray of shape (n_k, n_images); row j holds the clusters 0..ks[j]-1.
    backend, source : with ``source``, the images' .npy file in the cache, each block of images is
        a task that reads its rows from it: on a cluster backend, or here on a process per core.
    sample, seed : with ``sample``, each cluster's mean is of at most that many of its members, a
        seeded random choice (see :func:`sampled_members`); only images chosen for some cluster are drawn.

    Returns
    -------
    means : ndarray of shape (sum(ks), cells, cells), float32; the clusters of ks[0] first.
        Each is scaled to a maximum of 1 (a blank cluster stays 0).
    """
    labels = np.asarray(labels)
    if labels.shape != (len(ks), len(packed)):
        raise ValueError(f"labels has shape {labels.shape}; expected ({len(ks)}, {len(packed)}).")
    if sample is not None:
        labels = sampled_members(labels, ks, sample, seed)
    offsets = np.cumsum([0, *ks[:-1]])
    total = int(sum(ks))
    which = partial(_sums_of_block, grid=grid, kind=kind, offsets=offsets, total=total, cells=cells)
    spans = row_blocks(len(packed), CHUNK_IMAGES or image_block_rows())
    if backend is not None and backend.name != "local":
        if source is None:
            raise ValueError("a cluster backend reads the images from a file: give source=.")
        parts = backend.map(partial(_sums_of_file_rows, source=str(source), sums_of=which), spans, labels=labels)
    elif source is not None:  # here, on a process per core, each reading its rows from the file
        sums_of_rows = partial(_sums_of_file_rows, source=str(source), sums_of=which)
        parts = spread(sums_of_rows, spans, len(packed), labels=labels)
    else:
        parts = (_sums_of_rows(span, packed, labels, which) for span in spans)
    sums = np.zeros((total, cells * cells), np.float64)
    counts = np.zeros(total, np.int64)
    for block_sums, block_counts in parts:  # in order: the same sums whichever backend made the blocks
        sums += block_sums
        counts += block_counts
    means = sums / np.maximum(counts, 1)[:, None]
    top = means.max(axis=1, keepdims=True)
    means = np.where(top > 0, means / np.where(top > 0, top, 1.0), 0.0)
    return means.reshape(total, cells, cells).astype(np.float32)


def sampled_members(labels: np.ndarray, ks: Sequence[int], sample: int, seed: int = 0) -> np.ndarray:
    """``labels`` (n_k, n_images) with -1 (left out) for all but ``sample`` members of each cluster.

    Each image draws one seeded random place in a queue, the same for every k; a cluster keeps the
    ``sample`` members first in the queue. So the members kept for the clusters of different ks are
    mostly the same images, and the images drawn in all are few: at k = 2..20, a sample of 4,096
    draws every image of 32,000 but about a quarter of 300,000 and a twelfth of a million.
    """
    labels = np.asarray(labels)
    n = labels.shape[1]
    queue = np.random.default_rng(seed).permutation(n)
    kept = labels.copy()
    for j, k in enumerate(ks):
        queued = labels[j, queue]
        by_cluster = np.argsort(queued, kind="stable")  # grouped by cluster, in queue order within each
        sizes = np.bincount(queued, minlength=k)
        starts = np.cumsum(sizes) - sizes
        place = np.empty(n, np.int64)
        place[by_cluster] = np.arange(n) - starts[queued[by_cluster]]
        kept[j, queue[place >= sample]] = -1
    return kept


def group_means(packed: np.ndarray, grid: int, kind: str, labels: np.ndarray, groups: int) -> np.ndarray:
    """The typical shape of every group of one labelling (n_images,), where -1 is in no group (left out).

    Returns (groups, cells, cells) float32, each scaled to a maximum of 1. The images are walked a
    block at a time, never copied (a million of them are 5 GB).
    """
    apart = np.where(labels >= 0, labels, groups)[None, :]  # the images in no group: one more cluster, dropped
    return cluster_means(packed, grid, kind, apart, [groups + 1])[:groups]


SHAPE_SAMPLE = 256  # members averaged for a group's typical shape: a change redraws it in ~0.1 s at any size


def group_shape(packed: np.ndarray, grid: int, kind: str, rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """The typical shape of one group: the mean pose-free density of up to SHAPE_SAMPLE of its members.

    A sample, not all members: the mean of 256 densities differs from the full mean by less than a
    grey level a person can see, and it costs the same for a group of 300 or of 30,000.
    Returns (cells, cells) float32 scaled to a maximum of 1 (zeros for an empty group).
    """
    rows = np.asarray(rows, np.int64)
    if len(rows) == 0:
        return np.zeros((TYPICAL_CELLS, TYPICAL_CELLS), np.float32)
    if len(rows) > SHAPE_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(rows, SHAPE_SAMPLE, replace=False))
    mean = pose_free_densities(packed[rows], grid, kind).mean(axis=0)
    top = float(mean.max())
    return (mean / top if top > 0 else mean).reshape(TYPICAL_CELLS, TYPICAL_CELLS).astype(np.float32)


def _sums_of_block(
    packed: np.ndarray, labels: np.ndarray, grid: int, kind: str, offsets: np.ndarray, total: int, cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """The summed densities and the member counts of every cluster of every k over one block of images
    (a label of -1 counts for no cluster; an image counted for none is not drawn)."""
    drawn = (labels >= 0).any(axis=0)
    density = pose_free_densities(packed[drawn], grid, kind, cells)
    labels = labels[:, drawn]
    # one indicator column per cluster of every k: a single matrix product sums them all
    which = (labels + offsets[:, None]).astype(np.int64)
    counted = labels >= 0
    indicator = np.zeros((density.shape[0], total), np.float32)
    for row, mask in zip(which, counted, strict=True):
        indicator[np.flatnonzero(mask), row[mask]] = 1.0
    return indicator.T @ density, np.bincount(which[counted], minlength=total)


def _sums_of_rows(span: tuple[int, int], packed: np.ndarray, labels: np.ndarray, sums_of: partial) -> tuple:
    block = sums_of(packed[span[0] : span[1]], labels[:, span[0] : span[1]])
    let_go(packed)  # a mapped file's pages: memory stays a chunk's, not the whole set's
    return block


def _sums_of_file_rows(span: tuple[int, int], labels: np.ndarray, source: str, sums_of: partial) -> tuple:
    """A task: the sums of rows ``span`` of the packed images in the .npy file ``source``."""
    return sums_of(np.array(map_rows(source)[span[0] : span[1]]), labels[:, span[0] : span[1]])
