"""Exporting a clustering: a CSV of assignments and per-cluster folders, never overwriting anything."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from core.errors import DotmapError
from core.pipeline import Pipeline

CSV_COLUMNS = ("path", "cluster", "distance", "silhouette")

ProgressFn = Callable[[int, int, str], None]


def assignment_rows(pipeline: Pipeline, k: int) -> list[tuple[str, int, float, float]]:
    """(path, cluster, distance to centre, silhouette) for every image, for one k."""
    sweep = pipeline.sweep()
    row = sweep.row(k)
    paths = pipeline.image_meta()["paths"]
    return [
        (path, int(c), round(float(d), 6), round(float(s), 6))
        for path, c, d, s in zip(paths, sweep.labels[row], sweep.distance[row], sweep.silhouette[row], strict=True)
    ]


def assignments_csv_text(pipeline: Pipeline, k: int) -> str:
    """The assignment CSV as text (for a download button, or to write to a file)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(assignment_rows(pipeline, k))
    return out.getvalue()


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
    width = len(str(k - 1))
    root = pipeline.inventory.root
    for i, (path, cluster, _, _) in enumerate(rows):
        destination = target / f"cluster_{cluster:0{width}d}" / path
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
