"""Exporting a clustering or a curation: a CSV of assignments and per-group folders, never overwriting anything.

Every output is checked before anything is written: it must be new and outside the data folder
(the data folder is only ever read). What a failed export created is removed again.
A CSV cell never starts with a character a spreadsheet would run as a formula (core.reading.names).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.curation.model import OUTLIER, UNASSIGNED, Curation
from core.engine import disk
from core.engine.pipeline import Pipeline
from core.errors import DotmapError, PathError
from core.reading.names import (
    NAME_MAX_BYTES,
    folder_names,
    inert_cell,
    inert_path,
    name_too_long,
    shown,
    unique_name,
    zip_entry,
)

CSV_COLUMNS = ("path", "cluster", "distance", "silhouette")
FOLDER_CSV = "clusters.csv"  # the assignments beside the cluster folders, in a zip or an exported folder
GROUP_COLUMNS = ("path", "group")
GROUPS_CSV = "groups.csv"  # the same for the named groups of a curation
NO_GROUP = {OUTLIER: "outlier", UNASSIGNED: "unassigned"}  # names the curation reserves for these
PREDICTION_COLUMNS = ("file", "cluster", "confidence", "unlike every cluster", "distance to centre", "nearest image")

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


def array_rows(pipeline: Pipeline) -> list[int] | None:
    """The row in the user's array of every image (in the images' order) of an array set; None for a folder."""
    inventory = pipeline.inventory
    if inventory.array is None:
        return None
    index = {e.path: i for i, e in enumerate(inventory.files)}
    return [index[path] for path in pipeline.image_meta()["paths"]]


def _with_rows(header: Sequence[str], lines: list[tuple], source: list[int] | None, chosen: Sequence[int]) -> list:
    """An array set's CSV names its images by row and name (``row,name,...``); a folder's by path."""
    if source is None:
        return [tuple(header), *lines]
    return [("row", "name", *header[1:]), *((source[i], *line) for i, line in zip(chosen, lines, strict=True))]


def assignments_csv_text(pipeline: Pipeline, k: int, rows: Sequence[int] | np.ndarray | None = None) -> str:
    """The assignment CSV as text (for a download button, or to write to a file); all images or ``rows``.

    Columns: path, cluster, distance, silhouette; an array set's start with row (in the array) and name.
    """
    out = io.StringIO()
    chosen = range(len(pipeline.image_meta()["paths"])) if rows is None else [int(r) for r in rows]
    lines = [(inert_path(path), *rest) for path, *rest in assignment_rows(pipeline, k, rows)]
    csv.writer(out, lineterminator="\n").writerows(_with_rows(CSV_COLUMNS, lines, array_rows(pipeline), chosen))
    return out.getvalue()


def predictions_csv_text(predictions: Sequence) -> str:
    """The table of classified new images (core.outputs.predict.Prediction) as CSV text; names made inert.

    Into a curation's named groups, the second column is ``group`` and holds the group's name.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    groups = any(p.group is not None for p in predictions)
    writer.writerow(("file", "group", *PREDICTION_COLUMNS[2:]) if groups else PREDICTION_COLUMNS)
    for p in predictions:
        writer.writerow(
            (
                inert_path(p.name),
                inert_cell(p.group) if groups else p.cluster,
                round(p.confidence, 3),
                p.unusual,
                round(p.distance, 4),
                inert_path(p.neighbour_paths[0]),
            )
        )
    return out.getvalue()


def groups_csv_text(
    curation: Curation, rows: Sequence[int] | np.ndarray | None = None, source_rows: list[int] | None = None
) -> str:
    """``path,group`` for every image of a curation (or ``rows``): the group's name, or outlier / unassigned.

    For an array set give ``source_rows`` (:func:`array_rows`): the columns are then row, name, group.
    """
    out = io.StringIO()
    chosen = range(len(curation.paths)) if rows is None else [int(r) for r in rows]
    names = {**curation.names, **NO_GROUP}
    lines = [(inert_path(curation.paths[i]), inert_cell(names[int(curation.labels[i])])) for i in chosen]
    csv.writer(out, lineterminator="\n").writerows(_with_rows(GROUP_COLUMNS, lines, source_rows, chosen))
    return out.getvalue()


def cluster_folder(cluster: int, k: int) -> str:
    """``cluster_<id>``, zero-padded to one width for the k (cluster_0..7, cluster_00..11)."""
    return f"cluster_{cluster:0{len(str(k - 1))}d}"


def group_folders(names: Sequence[str]) -> list[str]:
    """A folder name for each group name, distinct from ``outlier`` and ``unassigned`` (see
    core.reading.names.folder_names: safe on every file system, within NAME_MAX_BYTES bytes)."""
    return folder_names(names, taken=NO_GROUP.values())


def check_group_names(names: Sequence[str]) -> None:
    """Refuse, in words, a group name an export cannot make a folder of (core.reading.names.name_too_long)."""
    for name in names:
        problem = name_too_long(name, f"The group name {shown(name[:24])}...", "Rename the group, then export again.")
        if problem is not None:
            raise DotmapError(problem)


@dataclass(frozen=True)
class Grouping:
    """What an export writes: each image's folder, and the assignment CSV (its name and its text)."""

    folder_of: list[str]  # (n_images,) the folder of every image
    csv_name: str
    csv_text: Callable[[Sequence[int] | np.ndarray | None], str]
    count: int  # folders, for the words of a report


def grouping(pipeline: Pipeline, k: int | None = None, curation: Curation | None = None) -> Grouping:
    """The clusters of one k, or the named groups of a curation (exactly one of the two), as an export writes them."""
    if (k is None) == (curation is None):
        raise ValueError("Export the clusters of a k or the groups of a curation: give exactly one.")
    if curation is None:
        labels = pipeline.sweep().labels[pipeline.sweep().row(k)]
        folders = [cluster_folder(c, k) for c in range(k)]
        return Grouping(
            [folders[c] for c in labels], FOLDER_CSV, lambda rows: assignments_csv_text(pipeline, k, rows), k
        )
    if curation.paths != pipeline.image_meta()["paths"]:
        raise DotmapError("The curation is of another set of images than this one; open it again on this folder.")
    check_group_names(list(curation.names.values()))
    by_id = dict(zip(curation.names, group_folders(list(curation.names.values())), strict=True)) | NO_GROUP
    present = {int(g) for g in np.unique(curation.labels)}
    return Grouping(
        [by_id[int(g)] for g in curation.labels],
        GROUPS_CSV,
        lambda rows: groups_csv_text(curation, rows, array_rows(pipeline)),
        len(present),
    )


def zip_of_files(
    pipeline: Pipeline,
    k: int | None,
    rows: Sequence[int] | np.ndarray | None = None,
    on_progress: ProgressFn | None = None,
    curation: Curation | None = None,
) -> bytes:
    """A zip holding ``clusters.csv`` (FOLDER_CSV) and every image (or ``rows``) under ``cluster_<id>/<its path>``;
    for a ``curation`` (then k is None), ``groups.csv`` and a folder named after each group.

    Images are stored as they are (no recompression: PNGs are compressed already). A file that
    has gone since the images were read is an error that names it. Entry names are made safe for
    every unzip tool (core.reading.names.zip_entry); two names made alike get ``~2``, ``~3`` before the suffix.
    """
    _check_has_files(pipeline, "a zip")
    plan = grouping(pipeline, k, curation)
    paths = pipeline.image_meta()["paths"]
    chosen = range(len(paths)) if rows is None else [int(r) for r in rows]
    root = pipeline.inventory.root
    buffer = io.BytesIO()
    # strict_timestamps=False: a file dated before 1980 (zip's epoch) is stored as of 1980, not refused
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, strict_timestamps=False) as archive:
        archive.writestr(plan.csv_name, plan.csv_text(rows))
        used: set[str] = {plan.csv_name}
        for i, row in enumerate(chosen):
            path = paths[row]
            entry = unique_name(zip_entry(f"{plan.folder_of[row]}/{path}"), used)
            try:
                archive.write(root / path, entry)
            except OSError as exc:
                raise DotmapError(f"Cannot add {shown(path)} to the zip: {exc.strerror or exc}.") from None
            if on_progress is not None and (i + 1 == len(chosen) or (i + 1) % 500 == 0):
                on_progress(i + 1, len(chosen), "zip")
    return buffer.getvalue()


ARRAY_HAS_NO_FILES = (
    "{root} is an array: its images are rows, not files, so there is nothing to copy into {what}. "
    "Export the CSV instead: its row column is each image's row in the array."
)


def _check_has_files(pipeline: Pipeline, what: str) -> None:
    if pipeline.inventory.array is not None:
        raise DotmapError(ARRAY_HAS_NO_FILES.format(root=shown(str(pipeline.inventory.root)), what=what))


def check_output(pipeline: Pipeline, target: str | os.PathLike, what: str) -> Path:
    """The output path, checked: new, outside the data folder (not the array file itself), in a folder that
    can be written, every new name short enough for a file system. Raises DotmapError (or PathError) otherwise."""
    path = Path(target).expanduser()
    data = pipeline.inventory.root.resolve()
    where = path.resolve()  # resolves the parts that exist, so a link into the data folder is seen
    if where == data or data in where.parents:
        raise DotmapError(
            f"{shown(str(path))} is inside the image folder {shown(str(data))}, which Dotmap only reads: "
            f"the next run would count the exported images twice. Choose a {what} outside it."
        )
    if disk.exists(path):
        raise DotmapError(f"{shown(str(path))} already exists; choose a new {what} name (nothing was overwritten).")
    if any(len(os.fsencode(part)) > NAME_MAX_BYTES for part in path.parts):  # under a folder still to be made
        raise PathError(disk.too_long_words(path))
    existing = disk.first_missing(path).parent
    if not os.access(existing, os.W_OK | os.X_OK):
        if disk.is_read_only(existing):
            raise PathError(f"Cannot write into {shown(str(existing))}: {disk.READ_ONLY_WORDS}")
        raise PathError(f"Cannot write into {shown(str(existing))}: permission denied. Choose another place.")
    return path


def _unwritten(
    exc: OSError, path: Path, target: Path, image: str | None = None, needed: int = 0, freed: int = 0
) -> DotmapError:
    """Why writing ``path`` of the export ``target`` (its folder or CSV file) failed, in words: a full disk
    (``needed`` bytes in all, of which ``freed`` were written and go with the rest), or the file system's reason."""
    if disk.is_disk_full(exc):
        kept = "What this export wrote was removed; nothing else was touched."
        what = f"the export {'CSV file' if target.suffix.lower() == '.csv' else 'folder'} {shown(str(target))}"
        return disk.disk_full_error(target.parent, what, "the export", needed, kept, "export to another disk", freed)
    why = disk.write_problem(exc, path)
    if image is None:
        return DotmapError(f"Cannot create {shown(str(path))}: {why}")
    return DotmapError(
        f"Cannot export {shown(image)} to {shown(str(path))}: {why} What this export wrote was removed; "
        f"nothing else was touched."
    )


def export(
    pipeline: Pipeline,
    k: int | None,
    csv_path: str | os.PathLike | None = None,
    folders: str | os.PathLike | None = None,
    link: bool = False,
    on_progress: ProgressFn | None = None,
    csv_in_folder: bool = False,
    curation: Curation | None = None,
) -> list[Path]:
    """Write the assignment CSV and/or the per-cluster folders of one k; returns what was written.

    With a ``curation`` (and k None) the CSV is ``path,group`` and the folders are named after the
    groups (core.outputs.export.group_folders), with ``outlier`` and ``unassigned`` for images in no group.
    ``csv_in_folder`` also writes the CSV (``clusters.csv`` or ``groups.csv``) beside the folders.

    Everything is checked before anything is written (k, both outputs new, distinct and outside
    the data folder); if writing fails half-way, every file and folder this call created is removed.
    """
    if csv_path is None and folders is None:
        raise DotmapError("say what to export: a CSV file and/or a folder.")
    if folders is not None:
        _check_has_files(pipeline, "folders")
    plan = grouping(pipeline, k, curation)
    outputs = {}
    if csv_path is not None:
        outputs["csv"] = check_output(pipeline, csv_path, "CSV file")
    if folders is not None:
        outputs["folders"] = check_output(pipeline, folders, "folder")
        if "csv" in outputs and outputs["folders"].resolve() in (
            outputs["csv"].resolve(),
            *outputs["csv"].resolve().parents,
        ):
            raise DotmapError("Write the CSV file outside the export folder, under a name of its own.")
    created = [disk.first_missing(path) for path in outputs.values()]
    try:
        written = []
        if "csv" in outputs:
            try:
                outputs["csv"].parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _unwritten(exc, outputs["csv"].parent, outputs["csv"]) from None
            written.append(_write_csv(outputs["csv"], plan.csv_text(None)))
        if "folders" in outputs:
            written.append(_copy_into_folders(pipeline, plan.folder_of, outputs["folders"], link, on_progress))
            if csv_in_folder:
                _write_csv(outputs["folders"] / plan.csv_name, plan.csv_text(None))
    except BaseException:
        for path in created:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file():
                path.unlink()
        raise
    return written


def _write_csv(target: Path, text: str) -> Path:
    try:
        with open(target, "x", newline="", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise DotmapError(
            f"{shown(str(target))} already exists; choose a new file name (nothing was overwritten)."
        ) from None
    except OSError as exc:
        if disk.is_disk_full(exc):
            raise _unwritten(exc, target, target, needed=len(text.encode())) from None
        raise DotmapError(f"Cannot write {shown(str(target))}: {disk.write_problem(exc, target)}") from None
    return target


def export_csv(pipeline: Pipeline, k: int, out_path: str | os.PathLike) -> Path:
    """Write the assignment CSV to a new file outside the data folder; an existing file is an error."""
    return export(pipeline, k, csv_path=out_path)[0]


def export_folders(
    pipeline: Pipeline,
    k: int,
    out_dir: str | os.PathLike,
    link: bool = False,
    on_progress: ProgressFn | None = None,
) -> Path:
    """Copy (or symlink) every image into ``out_dir/cluster_<id>/<its relative path>``.

    Cluster ids are zero-padded to one width (cluster_0..cluster_7, cluster_00..cluster_11).
    ``out_dir`` must not exist yet and must be outside the data folder: it is created, so nothing
    already there can be overwritten; if the export fails, what it created is removed again.
    """
    return export(pipeline, k, folders=out_dir, link=link, on_progress=on_progress)[0]


def _copy_into_folders(
    pipeline: Pipeline, folder_of: list[str], target: Path, link: bool, on_progress: ProgressFn | None
) -> Path:
    try:
        target.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise DotmapError(
            f"{shown(str(target))} already exists; choose a new folder (nothing was overwritten)."
        ) from None
    except OSError as exc:
        raise _unwritten(exc, target, target) from None
    paths = pipeline.image_meta()["paths"]
    root = pipeline.inventory.root
    sizes = [0] * len(paths) if link else _sizes(pipeline)
    for i, path in enumerate(paths):
        destination = target / folder_of[i] / path
        source = (root / path).resolve()
        try:  # the folder too: a name too long, a disk out of room for one more folder
            destination.parent.mkdir(parents=True, exist_ok=True)
            if link:
                os.symlink(source, destination)
            else:
                shutil.copy2(source, destination)
        except OSError as exc:
            raise _unwritten(exc, destination, target, path, sum(sizes), sum(sizes[:i])) from None
        if on_progress is not None and (i + 1 == len(paths) or (i + 1) % 500 == 0):
            on_progress(i + 1, len(paths), "export")
    return target


def _sizes(pipeline: Pipeline) -> list[int]:
    """The size in bytes of every image file, in the images' order, as the folder was listed."""
    size_of = {entry.path: entry.size for entry in pipeline.inventory.files}
    return [size_of.get(path, 0) for path in pipeline.image_meta()["paths"]]
