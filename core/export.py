"""Exporting a clustering: a CSV of assignments and per-cluster folders, never overwriting anything."""

from __future__ import annotations

import csv
import io
import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.errors import DotmapError
from core.pipeline import Pipeline

CSV_COLUMNS = ("path", "cluster", "distance", "silhouette")

ProgressFn = Callable[[int, int, str], None]


def assignment_rows(
    pipeline: Pipeline, k: int, rows: Sequence[int] | np.ndarray | None = None
) -> list[tuple[str, int, float, float]]:
    """(path, cluster, distance to centre, silhouette) for every image (or the given rows), for one k."""
    sweep = pipeline.sweep()
    row = sweep.row(k)
    paths = pipeline.image_meta()["paths"]
    chosen = range(len(paths)) if rows is None else [int(r) for r in rows]
    labels, distance, silhouette = sweep.labels[row], sweep.distance[row], sweep.silhouette[row]
    return [(paths[i], int(labels[i]), round(float(distance[i]), 6), round(float(silhouette[i]), 6)) for i in chosen]


def assignments_csv_text(pipeline: Pipeline, k: int, rows: Sequence[int] | np.ndarray | None = None) -> str:
    """The assignment CSV as text (for a download button, or to write to a file); all images or ``rows``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(assignment_rows(pipeline, k, rows))
    return out.getvalue()


def cluster_folder(cluster: int, k: int) -> str:
    """``cluster_<id>``, zero-padded to one width for the k (cluster_0..7, cluster_00..11)."""
    return f"cluster_{cluster:0{len(str(k - 1))}d}"


def zip_of_files(
    pipeline: Pipeline, k: int, rows: Sequence[int] | np.ndarray | None = None, on_progress: ProgressFn | None = None
) -> bytes:
    """A zip holding ``clusters.csv`` and every image (or ``rows``) under ``cluster_<id>/<its path>``.

    Images are stored as they are (no recompression: PNGs are compressed already). A file that
    has gone since the images were read is an error that names it.
    """
    chosen = assignment_rows(pipeline, k, rows)
    root = pipeline.inventory.root
    buffer = io.BytesIO()
    # strict_timestamps=False: a file dated before 1980 (zip's epoch) is stored as of 1980, not refused
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, strict_timestamps=False) as archive:
        archive.writestr("clusters.csv", assignments_csv_text(pipeline, k, rows))
        for i, (path, cluster, _, _) in enumerate(chosen):
            try:
                archive.write(root / path, f"{cluster_folder(cluster, k)}/{path}")
            except OSError as exc:
                raise DotmapError(f"Cannot add {path} to the zip: {exc.strerror or exc}.") from None
            if on_progress is not None and (i + 1 == len(chosen) or (i + 1) % 500 == 0):
                on_progress(i + 1, len(chosen), "zip")
    return buffer.getvalue()


def export_csv(pipeline: Pipeline, k: int, out_path: str | os.PathLike) -> Path:
    """Write the assignment CSV to a new file; an existing file is an error, never replaced."""
    target = Path(out_path).expanduser()
    text = assignments_csv_text(pipeline, k)
    try:
        with open(target, "x", newline="") as f:
            f.write(text)
    except FileExistsError:
        raise DotmapError(f"{target} already exists; choose a new file name (nothing was overwritten).") from None
    except OSError as exc:
        raise DotmapError(f"Cannot write {target}: {exc.strerror or exc}.") from None
    return target


def export_folders(
    pipeline: Pipeline,
    k: int,
    out_dir: str | os.PathLike,
    link: bool = False,
    on_progress: ProgressFn | None = None,
) -> Path:
    """Copy (or symlink) every image into ``out_dir/cluster_<id>/<its relative path>``.

    Cluster ids are zero-padded to one width (cluster_0..cluster_7, cluster_00..cluster_11).

    ``out_dir`` must not exist yet: it is created, so nothing already there can be overwritten.
    """
    target = Path(out_dir).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise DotmapError(f"{target} already exists; choose a new folder (nothing was overwritten).") from None
    except OSError as exc:
        raise DotmapError(f"Cannot create {target}: {exc.strerror or exc}.") from None
    rows = assignment_rows(pipeline, k)
    root = pipeline.inventory.root
    for i, (path, cluster, _, _) in enumerate(rows):
        destination = target / cluster_folder(cluster, k) / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        source = (root / path).resolve()
        try:
            if link:
                os.symlink(source, destination)
            else:
                shutil.copy2(source, destination)
        except OSError as exc:
            raise DotmapError(f"Cannot export {path} to {destination}: {exc.strerror or exc}.") from None
        if on_progress is not None and (i + 1 == len(rows) or (i + 1) % 500 == 0):
            on_progress(i + 1, len(rows), "export")
    return target
