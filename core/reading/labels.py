"""The true classes of a data set's images: a folder's ``labels.csv`` (filename,label), an array set's labels."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.errors import DotmapError
from core.reading import arrays
from core.reading.folders import Inventory
from core.reading.names import shown

HEADER = ["filename", "label"]
FIELD_LIMIT = csv.field_size_limit()  # characters in one cell (131,072): the csv module's, never raised
CONFLICTS_NAMED = 3  # file names given two labels named in the note; the rest are counted
SHOWN_CHARS = 60  # of a line or a label quoted in a message


def read_labels(path: Path, paths: Sequence[str], notes: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Read ``labels.csv`` (filename,label) for the given image paths.

    A file name given twice with different labels keeps its first one; ``notes`` (when given) gets a
    sentence naming them. Raises DotmapError in words (naming the file and the line) when the file is
    not UTF-8 (or UTF-16 with its BOM) CSV text with the header ``filename,label``.

    Returns
    -------
    codes : ndarray of shape (n_images,), int; -1 where an image has no label.
    names : the label names, in code order.
    """
    where = shown(str(path))
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DotmapError(f"Cannot read {where}: {exc.strerror or exc}.") from None
    reader = csv.reader(io.StringIO(_text(raw, where), newline=""))
    rows: list[tuple[int, str, str]] = []  # (line, file name, label) of every row with a label
    try:
        header = next(reader, [])
        if [c.strip().lower() for c in header[:2]] != HEADER:
            first = _brief(",".join(header)) if header else "empty"
            raise DotmapError(f"{where} should start with the header 'filename,label' (its first line is {first}).")
        for row in reader:
            if len(row) >= 2 and row[1].strip():
                rows.append((reader.line_num, row[0].strip(), row[1].strip()))
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            why = f"holds a cell of more than {FIELD_LIMIT:,} characters (a file name or a label is never that long)"
        else:
            why = f"is not CSV ({exc})"
        raise DotmapError(f"Cannot read {where}: line {reader.line_num:,} {why}.") from None
    mapping = _first_labels(rows, where, notes)
    names = sorted(set(mapping.values()))
    index = {name: i for i, name in enumerate(names)}
    codes = np.array([index.get(mapping.get(p, ""), -1) for p in paths], dtype=np.int64)
    return codes, names


def _text(raw: bytes, where: str) -> str:
    """The file as text: UTF-8 (a BOM allowed), or UTF-16 when it starts with its BOM (Excel's "Unicode text")."""
    utf16 = raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        text = raw.decode("utf-16") if utf16 else raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        kind = "UTF-16" if utf16 else "UTF-8"
        raise DotmapError(
            f"Cannot read {where}: it is not {kind} text (its byte {exc.start:,} is not {kind}: a binary file, or "
            "another encoding?). Save it as CSV UTF-8 with the header 'filename,label'."
        ) from None
    if "\0" in text:
        raise DotmapError(
            f"Cannot read {where}: it holds NUL characters (a binary file, or UTF-16 without its BOM?). "
            "Save it as CSV UTF-8 with the header 'filename,label'."
        )
    return text


def _first_labels(rows: list[tuple[int, str, str]], where: str, notes: list[str] | None) -> dict[str, str]:
    """File name -> its first label; a name given another label on a later line is said in ``notes``.

    The same label twice changes nothing and is not said.
    """
    first: dict[str, tuple[int, str]] = {}
    conflicts: dict[str, tuple[int, str]] = {}  # file name -> (line, label) of the first other label
    for line, name, label in rows:
        if name not in first:
            first[name] = (line, label)
        elif first[name][1] != label and name not in conflicts:
            conflicts[name] = (line, label)
    if conflicts and notes is not None:
        lines = {name: f"lines {first[name][0]:,} and {line:,}" for name, (line, _) in conflicts.items()}
        if len(conflicts) == 1:
            ((name, (_, other)),) = conflicts.items()
            both = f"{_brief(first[name][1])} and {_brief(other)}"
            notes.append(f"{where} gives {shown(name)} two labels ({both}, {lines[name]}); the first is used.")
        else:
            named = ", ".join(f"{shown(name)} ({lines[name]})" for name in list(conflicts)[:CONFLICTS_NAMED])
            more = f" and {len(conflicts) - CONFLICTS_NAMED:,} more" if len(conflicts) > CONFLICTS_NAMED else ""
            notes.append(
                f"{where} gives {len(conflicts):,} file names two labels: {named}{more}; the first of each is used."
            )
    return {name: label for name, (_, label) in first.items()}


def _brief(text: str) -> str:
    text = text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
    return repr(shown(text))


def labels_of(
    inventory: Inventory, paths: Sequence[str], notes: list[str] | None = None
) -> tuple[np.ndarray, list[str]] | None:
    """The classes of ``paths`` (as :func:`read_labels`) from wherever the data set keeps them; None without."""
    if inventory.labels_path is None:
        return None
    if inventory.array is None:
        return read_labels(inventory.labels_path, paths, notes)
    labels = arrays.labels_of(inventory.array)
    if labels is None:
        return None
    mapping = {e.path: label for e, label in zip(inventory.files, labels, strict=True) if label}
    names = sorted(set(mapping.values()))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index.get(mapping.get(p, ""), -1) for p in paths], dtype=np.int64), names
