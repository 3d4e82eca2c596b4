"""Listing a data folder: every file below it, what cannot be an image and why, and its fingerprint."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.engine.disk import path_status
from core.errors import DotmapError, NoImagesError
from core.reading.names import is_valid_utf8, shown

LABELS_FILE = "labels.csv"
LARGE_FOLDER_FILES = 200_000  # the dashboard asks before preparing a folder of more files (/ holds 570,000)


@dataclass(frozen=True)
class FileEntry:
    """One file of the data folder: its path relative to the folder, size in bytes, mtime in ns."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Inventory:
    """What a data folder holds: candidate image files (sorted), the labels file, the fingerprint,
    and what was found but cannot be a candidate, with why."""

    root: Path
    files: list[FileEntry]
    labels_path: Path | None
    fingerprint: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # found while listing: see scan_folder
    # every folder listed, as (path relative to root, its mtime_ns taken before it was listed)
    folders: list[tuple[str, int]] = field(default_factory=list, repr=False)
    # an array set (core.reading.arrays.ArraySource): root is its file and each entry a row's name
    array: Any = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """What one entry is, for a person: "file", or "row" of an array set."""
        return "file" if self.array is None else "row"


def special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def scan_folder(root: str | os.PathLike) -> Inventory:
    """List every file below ``root`` (recursively, sorted) and fingerprint paths, sizes and mtimes.

    Every file except ``labels.csv`` at the top is a candidate image; files that are not images
    are reported as skipped when they are decoded, never dropped silently. What cannot be a
    candidate is listed in ``Inventory.skipped`` with its reason: a sub-folder that cannot be
    listed, a link to a folder (not followed: no loops, no image counted twice), a link to
    nothing, a named pipe, socket or device, and a name that is not valid UTF-8. A link to a
    file is followed wherever it points: the file it names is read, never written.
    ``labels.csv`` is not part of the fingerprint: nothing cached depends on it.
    """
    base = Path(root).expanduser()
    found = path_status(base)  # a folder on the way that may not be entered, a name too long: said in words
    if found is None:
        raise NoImagesError(f"The folder {shown(str(base))} does not exist.")
    if not stat.S_ISDIR(found.st_mode):
        raise NoImagesError(f"{shown(str(base))} is a file, not a folder of images.")
    entries: list[FileEntry] = []
    skipped: list[tuple[str, str]] = []
    labels_path = None
    listed: list[tuple[str, int]] = []
    stack = [""]  # folders relative to base, as "" or "a/b/"; plain strings: pathlib per file costs 10x
    while stack:
        prefix = stack.pop()
        folder = base / prefix if prefix else base
        try:
            listed.append((prefix, os.stat(folder).st_mtime_ns))  # before listing: a change meanwhile shows
            listing = list(os.scandir(folder))
        except OSError as exc:
            if not prefix:
                raise DotmapError(f"Cannot list the folder {shown(str(folder))}: {exc.strerror or exc}.") from None
            skipped.append((prefix, f"cannot list this folder ({exc.strerror or exc}); its files are left out"))
            continue
        for item in listing:
            rel = prefix + item.name
            try:
                if item.is_dir(follow_symlinks=False):
                    stack.append(f"{rel}/")
                    continue
                if item.is_symlink():
                    if not os.path.exists(item.path):
                        skipped.append((rel, "a link to nothing (its target is missing)"))
                        continue
                    if os.path.isdir(item.path):
                        skipped.append((rel, "a link to a folder (not followed: no loops, no image counted twice)"))
                        continue
                st = item.stat()  # follows a link to a file
            except OSError as exc:
                skipped.append((rel, f"cannot be examined ({exc.strerror or exc})"))
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append((rel, f"{special_kind(st.st_mode)}, not an image file"))
                continue
            if not is_valid_utf8(rel):
                skipped.append((rel, "its name is not valid UTF-8; rename the file to include it"))
                continue
            if rel == LABELS_FILE:
                labels_path = Path(item.path)
                continue
            entries.append(FileEntry(rel, st.st_size, st.st_mtime_ns))
    entries.sort(key=lambda e: e.path)
    skipped.sort()
    digest = hashlib.sha256()
    for e in entries:
        digest.update(f"{e.path}\0{e.size}\0{e.mtime_ns}\n".encode())
    for rel, reason in skipped:  # a folder that becomes readable, a link that is mended: a new fingerprint
        digest.update(os.fsencode(f"skipped\0{rel}\0{reason}\n"))
    return Inventory(base, entries, labels_path, digest.hexdigest(), skipped, listed)


def folders_unchanged(inventory: Inventory) -> bool:
    """Whether no file was added, removed or renamed in any folder of a scan since it was made.

    A folder's mtime changes when an entry in it does, so this stats the folders, not the files:
    5 ms for the 1,000 folders of a million images, against 12 s to scan them again. A file
    overwritten in place under the same name is not seen: only a new scan sees that.
    """
    if not inventory.folders:
        return False
    for prefix, mtime_ns in inventory.folders:
        try:
            if os.stat(inventory.root / prefix if prefix else inventory.root).st_mtime_ns != mtime_ns:
                return False
        except OSError:
            return False
    return True


def no_files_words(inventory: Inventory) -> str:
    """Why a folder with no candidate file is of no use, in words: empty, or what its entries are instead.

    ``/dev`` holds devices, not files: that is said, rather than "holds no files".
    """
    where = shown(str(inventory.root))
    if not inventory.skipped:
        return f"The folder {where} holds no files."
    kinds: dict[str, int] = {}
    for _, reason in inventory.skipped:
        kind = re.split(r"[,;(]", reason)[0].strip()  # "a device, not an image file" -> "a device"
        kinds[kind] = kinds.get(kind, 0) + 1
    what = "; ".join(f"{kind}: {count:,}" for kind, count in sorted(kinds.items(), key=lambda item: -item[1]))
    devices = kinds.get("a device", 0) > len(inventory.skipped) / 2
    system = " It looks like a system folder of devices, not a folder of images." if devices else ""
    return (
        f"The folder {where} holds no file that could be an image: none of its {len(inventory.skipped):,} "
        f"entries is a regular file Dotmap can read ({what}).{system}"
    )
