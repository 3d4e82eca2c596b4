"""The curation file: plain JSON the user owns, written atomically, with the last good version kept beside it.

It lives with the user's data, not in the cache (clearing the cache keeps it): by default
``$DOTMAP_CURATIONS``, else ``$XDG_DATA_HOME/dotmap/curations``, else ``~/.local/share/dotmap/curations``,
one file per data folder and settings. The format (README, "The curation file"):

    {"format": "dotmap-curation", "version": 1, "folder": "/abs/path", "settings": {...},
     "started_from_k": 8, "groups": [{"id": 0, "name": "rings", "images": ["a/1.png", ...]}, ...],
     "outliers": [...], "unassigned": [...], "history": [{"what": ..., "groups": [...], "moved": [[path, id], ...]}]}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.curation.model import ID_LIMIT, OUTLIER, UNASSIGNED, Change, Curation, CurationError
from core.engine import atomic
from core.engine.cache import home_folder
from core.reading.names import shown

FORMAT = "dotmap-curation"
VERSION = 1
CURATIONS_ENV = "DOTMAP_CURATIONS"
LAST_GOOD = ".last-good"  # the previous version beside the file: name.last-good.json
SET_ASIDE = ".unreadable-"  # a file that could not be read, kept as name.unreadable-<time>.json
REMOVED_NAMED = 5  # images no longer in the folder named in the note; the rest are counted
DEPTH_LIMIT = 32  # lists and objects inside each other; a curation file nests 5 deep (history > step > moved)


def curations_dir() -> Path:
    if os.environ.get(CURATIONS_ENV):
        return Path(os.environ[CURATIONS_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or home_folder() / ".local" / "share"  # an empty HOME is unset
    return Path(base).expanduser() / "dotmap" / "curations"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def curation_path(folder: str | os.PathLike, settings: dict[str, Any]) -> Path:
    """The default file of a data folder and settings: ``<folder name>-<folder hash>-<settings hash>.json``."""
    root = str(Path(folder).resolve())
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(root).name)[:40] or "folder"
    return curations_dir() / f"{stem}-{_digest(root)}-{_digest(settings)}.json"


def other_curations(folder: str | os.PathLike, settings: dict[str, Any]) -> list[Path]:
    """Curation files of the same folder made with other settings (newest first)."""
    own = curation_path(folder, settings)
    prefix = own.name.rsplit("-", 1)[0] + "-"
    found = [p for p in curations_dir().glob(f"{prefix}*.json") if p != own and LAST_GOOD not in p.name]
    found = [p for p in found if SET_ASIDE not in p.name]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def last_good(path: Path) -> Path:
    return path.with_name(f"{path.stem}{LAST_GOOD}{path.suffix}")


# ---- writing ---------------------------------------------------------------------------------
def to_dict(curation: Curation) -> dict[str, Any]:
    paths = curation.paths
    return {
        "format": FORMAT,
        "version": VERSION,
        "about": "Named groups of images made with Dotmap. Paths are relative to the folder. An image is "
        "in at most one of: a group's images, outliers, unassigned. Edit by hand only while Dotmap has "
        "the file closed; if an edit breaks it, Dotmap says so and keeps the last good version beside it.",
        "folder": curation.folder,
        "settings": curation.settings,
        "started_from_k": curation.started_from_k,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "groups": [
            {"id": group, "name": name, "images": [paths[r] for r in curation.members(group)]}
            for group, name in curation.names.items()
        ],
        "outliers": [paths[r] for r in curation.members(OUTLIER)],
        "unassigned": [paths[r] for r in curation.members(UNASSIGNED)],
        "history": [change.to_dict(paths) for change in curation.history],
    }


def to_text(curation: Curation) -> str:
    return json.dumps(to_dict(curation), indent=1, ensure_ascii=False) + "\n"


def stamp_of(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, None when there is none: how a change by someone else is seen."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info.st_size, info.st_mtime_ns


def save(curation: Curation, path: str | os.PathLike) -> Path:
    """Write the curation to ``path`` atomically; the version it replaces is kept as ``*.last-good.json``.

    A file changed since this curation read or wrote it (edited by hand, or by another tab) is not
    overwritten: CurationError says so, and the change made in the page is not saved.
    """
    path = Path(path)
    current = stamp_of(path)
    if current is not None and current != curation.stamp:
        raise CurationError(
            f"{shown(str(path))} was changed outside this page since it was read, so it was not overwritten "
            "and the last change here was not saved. Reload the page to read the file as it is now."
        )
    text = to_text(curation)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if current is not None:  # the file this curation last read or wrote: good by construction
            _keep_copy(path, last_good(path))
        atomic.write_text(path, text, durable=True)
    except OSError as exc:
        raise CurationError(f"Cannot save the curation to {shown(str(path))}: {exc.strerror or exc}.") from None
    curation.stamp = stamp_of(path)
    return path


def _keep_copy(source: Path, target: Path) -> None:
    """``target`` becomes a copy of ``source`` in one step (a hard link where the file system has them).

    On any failure (a full disk while copying, a rename refused) the temporary copy is removed.
    """
    if os.path.exists(target) and os.path.samefile(source, target):  # False where it cannot be looked at
        return  # already linked (a save failed after it): a rename onto the same file would keep the temporary one
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")  # two tabs of one server never share it
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename, unless it failed or found the same file there


def set_aside(path: str | os.PathLike) -> Path:
    """Move an unreadable file out of the way (never deleted): ``name.unreadable-<time>.json``."""
    path = Path(path)
    target = path.with_name(f"{path.stem}{SET_ASIDE}{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
    os.replace(path, target)
    return target


# ---- reading ---------------------------------------------------------------------------------
def load(path: str | os.PathLike, paths_now: Sequence[str]) -> Curation:
    """Read a curation file and fit it to the images of the folder now (``paths_now``, the set's order).

    Images the file does not know are unassigned (``added``); images it lists that are gone are
    dropped (``removed``). Raises CurationError in words when the file is not a usable curation.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CurationError(f"Cannot read {shown(str(path))}: {exc.strerror or exc}.{_backup_words(path)}") from None
    curation = from_text(raw, paths_now, shown(str(path)), _backup_words(path))
    curation.stamp = stamp_of(path)
    return curation


def _backup_words(path: Path) -> str:
    backup = last_good(path)
    kept = os.path.exists(backup)  # False where it cannot be looked at (Path.exists would raise there)
    return f" The last good version is kept as {shown(str(backup))}." if kept else ""


def from_text(raw: bytes | str, paths_now: Sequence[str], source: str = "the file", backup: str = "") -> Curation:
    """A curation from the text of a file (see :func:`load`); ``source`` names it in errors."""

    def problem(words: str) -> CurationError:
        return CurationError(f"{source} is not a usable curation: {words}.{backup}")

    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise problem("it is not UTF-8 text") from None

    def no_constant(name: str) -> None:
        raise problem(f"it holds {name}, a number a curation never holds")

    def finite(digits: str) -> float:
        value = float(digits)
        if math.isinf(value):
            raise problem(f"it holds the number {shown(digits[:40])}, too large to be read as one")
        return value

    try:
        doc = json.loads(text, parse_constant=no_constant, parse_float=finite)
    except json.JSONDecodeError as exc:
        cut = "" if text.rstrip().endswith(("}", "]")) else " (it ends early: was it cut short?)"
        raise problem(f"it is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{cut}") from None
    except ValueError:  # Python refuses to read an integer of more than 4,300 digits
        raise problem("it holds a number too long to read (thousands of digits)") from None
    except RecursionError:
        raise problem(
            f"its lists and objects are nested more than {DEPTH_LIMIT} deep (a curation file nests 5 deep)"
        ) from None
    if _depth(doc) > DEPTH_LIMIT:
        raise problem(f"its lists and objects are nested more than {DEPTH_LIMIT} deep (a curation file nests 5 deep)")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise problem(f'it has no "format": "{FORMAT}" (is it a Dotmap curation?)')
    if not _whole(doc.get("version"), 1, VERSION):
        raise problem(f"it is version {_brief(doc.get('version'))}; this Dotmap reads version {VERSION} and older")
    groups = doc.get("groups")
    if not isinstance(groups, list):
        raise problem('"groups" must be a list')
    assigned: dict[str, int] = {}

    def take(images: Any, group: int, where: str) -> None:
        if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
            raise problem(f"{where} must be a list of paths (text)")
        for image in images:
            if image in assigned:
                raise problem(f"{shown(image)} is listed twice ({where} and another list); keep it in one")
            assigned[image] = group

    names: dict[int, str] = {}
    for i, entry in enumerate(groups):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise problem(f'group {i + 1} needs a "name" (text)')
        group, called = entry.get("id", i), _brief(entry["name"])
        if not _whole(group, 0, ID_LIMIT - 1):
            raise problem(
                f'group {called} needs an "id" that is a whole number 0..{ID_LIMIT - 1:,}, not {_brief(group)}'
            )
        if group in names:
            raise problem(f'group {called} has the "id" {group} of group {_brief(names[group])}; each id is used once')
        names[group] = entry["name"]
        take(entry.get("images", []), group, f"the images of group {called}")
    take(doc.get("outliers", []), OUTLIER, '"outliers"')
    take(doc.get("unassigned", []), UNASSIGNED, '"unassigned"')

    checker = Curation([], np.zeros(0, np.int64), {})
    for group, name in names.items():
        try:
            checker._check_name(name)
        except CurationError as exc:
            raise problem(f"the name {_brief(name)}: {exc}") from None
        checker.names[group] = name

    index = {p: r for r, p in enumerate(paths_now)}
    labels = np.full(len(paths_now), UNASSIGNED, np.int64)
    removed = []
    for image, group in assigned.items():
        row = index.get(image)
        if row is None:
            removed.append(image)
        else:
            labels[row] = group
    if assigned and len(removed) == len(assigned):
        raise problem(f"none of its {len(assigned):,} images is in this folder (was it made for another folder?)")
    added = len(paths_now) - (len(assigned) - len(removed))
    settings = doc.get("settings") if isinstance(doc.get("settings"), dict) else {}
    k = doc.get("started_from_k")  # only written back: one out of its range is forgotten
    curation = Curation(
        list(paths_now),
        labels,
        names,
        folder=str(doc.get("folder", "")),
        settings=settings,
        started_from_k=k if _whole(k, 1, ID_LIMIT - 1) else None,
        added=added,
        removed=removed,
    )
    curation.history = _history(doc.get("history", []), index, curation.notes)
    if removed:
        named = ", ".join(shown(p) for p in removed[:REMOVED_NAMED])
        more = f" and {len(removed) - REMOVED_NAMED:,} more" if len(removed) > REMOVED_NAMED else ""
        curation.notes.append(f"{len(removed):,} images of the curation are no longer in the folder: {named}{more}.")
    if added:
        curation.notes.append(f"{added:,} images of the folder were not in the curation; they are unassigned.")
    return curation


def _whole(value: Any, low: int, high: int) -> bool:
    """Whether ``value`` (as JSON gave it) is a whole number low..high (not true/false, not 2.0)."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _brief(value: Any, limit: int = 40) -> str:
    """A value of the file as a message shows it: its repr, cut short (a hand edit can put anything there)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if value.bit_length() <= 64 else f"a number of {len(str(abs(value))):,} digits"
    text = repr(value) if isinstance(value, (str, float, bool)) or value is None else f"a JSON {type(value).__name__}"
    return shown(text if len(text) <= limit else text[: limit - 3] + "...")


def _depth(doc: Any) -> int:
    """How deep lists and objects are nested in ``doc`` (walked without recursion)."""
    if not isinstance(doc, (list, dict)):
        return 0
    deepest, todo = 1, [(doc, 1)]
    while todo and deepest <= DEPTH_LIMIT:
        value, depth = todo.pop()
        deepest = max(deepest, depth)
        items = value.values() if isinstance(value, dict) else value
        todo.extend((item, depth + 1) for item in items if isinstance(item, (list, dict)))  # paths are not walked
    return deepest


def _group_id(value: Any) -> int:
    if not _whole(value, OUTLIER, ID_LIMIT - 1):
        raise ValueError(f"{_brief(value)} is not a group id")
    return value


def _history(entries: Any, index: dict[str, int], notes: list[str]) -> list[Change]:
    """The undo steps of a file; a history that does not fit (edited by hand) is dropped with a note."""
    try:
        history = []
        for entry in entries:
            names = {_group_id(g["id"]): str(g["name"]) for g in entry["groups"]}
            moved = [(index[p], _group_id(w)) for p, w in entry["moved"] if p in index]
            if any(w not in names and w not in (OUTLIER, UNASSIGNED) for _, w in moved):
                raise ValueError("a step names a group it does not list")
            rows = np.array([r for r, _ in moved], np.int64)
            was = np.array([w for _, w in moved], np.int64)
            if not isinstance(entry["what"], str) or any(g < 0 for g in names):
                raise ValueError("a step is not in the form Dotmap writes")
            history.append(Change(entry["what"], names, rows, was))
        return history
    except (TypeError, KeyError, ValueError):
        notes.append("The undo history in the file did not fit its groups, so it was left out; the groups are kept.")
        return []
