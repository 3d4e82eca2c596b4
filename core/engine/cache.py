"""The on-disk cache: one folder per stage and key, plain .npy arrays plus JSON, never pickle.

An entry is written into a temporary folder and renamed into place, its manifest last, so a
reader sees a whole entry or none. Every file's size and SHA-256 are in the manifest and are
checked on load; an entry that is partial, altered or unreadable is removed and recomputed.
A file lock per entry makes two processes asking for the same entry compute it once.

A large file is hashed on load only when it may have changed since its digest was taken (see
core.engine.digests: reading 5 GB to hash it cost 6 s at every server start at a million images).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from core.engine import atomic
from core.engine.digests import file_info, hashed, unchanged_since_hashed
from core.engine.disk import disk_full_error, is_disk_full, out_of_files, write_problem
from core.engine.processes import process_alive
from core.errors import DiskFullError, DotmapError
from core.reading import ondisk
from core.reading.names import shown

FORMAT_VERSION = 1
CACHE_ENV = "DOTMAP_CACHE"
MANIFEST = "manifest.json"
LOCK_TIMEOUT_S = 3600.0  # a stage can take minutes on a large set; a dead holder frees the lock

STAGING_PID = re.compile(r"-pid(\d+)(-|$)")

Arrays = dict[str, np.ndarray]
# what a stage's compute returns: arrays, or .npy files it streamed into Cache.scratch_file
Written = dict[str, np.ndarray | Path]


def default_cache_dir() -> Path:
    """``$DOTMAP_CACHE``, else ``$XDG_CACHE_HOME/dotmap``, else ``~/.cache/dotmap`` (see :func:`home_folder`)."""
    if os.environ.get(CACHE_ENV):
        return expanded(os.environ[CACHE_ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return expanded(os.environ["XDG_CACHE_HOME"]) / "dotmap"
    return home_folder() / ".cache" / "dotmap"


def home_folder() -> Path:
    """The user's home folder: ``$HOME``, or where it is unset or empty the one the password database names.

    An empty HOME is taken as unset: Python would read it as ``/`` and put the cache in ``/.cache``.
    A user with no home folder there (none named, or ``/``) gets a DotmapError saying how to choose a cache.
    """
    home = os.environ.get("HOME", "")
    if home.strip():
        return Path(home)
    try:
        import pwd

        home = pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):  # no password database, or no entry for this user
        home = ""
    if not home.strip() or str(Path(home)) == Path(home).anchor:  # "/" would give /.cache
        raise DotmapError(
            f"There is no home folder (HOME is {'empty' if 'HOME' in os.environ else 'not set'} and this user "
            f"has none of their own), so there is no default cache folder (~/.cache/dotmap). Choose one: "
            f"set {CACHE_ENV}=DIR, or give --cache DIR."
        )
    return Path(home)


def expanded(path: str | os.PathLike) -> Path:
    """``path`` with a leading ``~`` made the home folder (:func:`home_folder`), ``~user`` that user's."""
    text = os.fspath(path)
    if text == "~" or text.startswith("~/"):
        return home_folder() / text[2:]
    return Path(text).expanduser()


def make_key(stage: str, **parts: Any) -> str:
    """A stable hex key for a stage from its settings and its upstream keys (JSON-serialisable)."""
    text = json.dumps({"stage": stage, "format": FORMAT_VERSION, **parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _remove(path: Path) -> None:
    """Remove whatever is at ``path``: an entry folder, or a file or link found in its place."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def staging_prefix(name: str) -> str:
    """Temporary folders are named with their writer's pid, so one left by a killed process can be removed."""
    return f".tmp-{name}-pid{os.getpid()}-"


@dataclass
class Entry:
    """A loaded cache entry: its arrays and its JSON metadata."""

    arrays: Arrays
    meta: dict[str, Any]


@dataclass
class Cache:
    """A cache folder. ``notes`` collects what was found broken and recomputed, in words."""

    root: Path
    notes: list[str] = field(default_factory=list)
    _scratch: list[Path] = field(default_factory=list, repr=False)
    _write_failed_for_files: bool = field(default=False, repr=False)  # the last failed write: no inode was left

    def __post_init__(self) -> None:
        self.root = expanded(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DotmapError(
                f"Cannot create the cache folder {shown(str(self.root))}: {write_problem(exc, self.root)} "
                f"Choose another with --cache DIR or the {CACHE_ENV} variable."
            ) from None

    def remove_orphaned_staging(self) -> list[str]:
        """Remove the temporary folders of writers that died (killed mid-write); returns their names."""
        removed = []
        for folder in self.root.glob(".tmp-*"):
            match = STAGING_PID.search(folder.name)
            if match and not process_alive(int(match.group(1))):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed

    def scratch_file(self, stage: str, name: str) -> Path:
        """Where a stage being computed streams an array too large to hold (``name``.npy).

        Return the path as the array's value; the entry takes the file over. The folder goes when
        the stage ends, or with a later run if this process is killed.
        """
        folder = Path(tempfile.mkdtemp(prefix=staging_prefix(stage) + "scratch-", dir=self.root))
        self._scratch.append(folder)
        return folder / f"{name}.npy"

    def path(self, stage: str, key: str) -> Path:
        return self.root / f"{stage}-{key}"

    def has(self, stage: str, key: str) -> bool:
        """True when a complete entry is there (manifest present, every file of its size)."""
        return self._complete_manifest(stage, key) is not None

    def meta(self, stage: str, key: str) -> dict[str, Any] | None:
        """The metadata of a complete entry without loading its arrays; None when there is none."""
        manifest = self._complete_manifest(stage, key)
        return None if manifest is None else manifest["meta"]

    def _complete_manifest(self, stage: str, key: str) -> dict[str, Any] | None:
        folder = self.path(stage, key)
        manifest = self._read_manifest(folder)
        if manifest is None:
            return None
        for name, info in manifest["files"].items():
            file = folder / name
            if not file.is_file() or file.stat().st_size != info["size"]:
                return None
        return manifest

    def _manifest_problem(self, folder: Path) -> str:
        """Why an entry's manifest cannot be used, in words (for the note); only asked when it cannot."""
        if not folder.is_dir() or folder.is_symlink():
            return "it is not a folder"
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return "its manifest is missing or unreadable"
        if isinstance(manifest, dict) and manifest.get("format") != FORMAT_VERSION:
            return f"its manifest is of cache format {manifest.get('format')!r}, not {FORMAT_VERSION}"
        return "its manifest is malformed"

    def _read_manifest(self, folder: Path) -> dict[str, Any] | None:
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
            return None
        files = manifest.get("files")
        if not isinstance(files, dict) or not isinstance(manifest.get("meta"), dict):
            return None
        for info in files.values():
            if not (
                isinstance(info, dict) and isinstance(info.get("size"), int) and isinstance(info.get("sha256"), str)
            ):
                return None
        return manifest

    def load(self, stage: str, key: str) -> Entry | None:
        """The entry, verified; None when there is none. A broken entry is removed and noted."""
        folder = self.path(stage, key)
        if not folder.exists() and not folder.is_symlink():
            return None
        manifest = self._read_manifest(folder)
        arrays: Arrays = {}
        problem = "" if manifest is not None else self._manifest_problem(folder)
        rehashed = False
        if manifest is not None:
            for name, info in manifest["files"].items():
                file = folder / name
                if not file.is_file() or file.stat().st_size != info.get("size"):
                    problem = f"{name} is missing or of the wrong size"
                    break
                if not unchanged_since_hashed(file, info):
                    digest, stat = hashed(file)
                    if digest != info.get("sha256"):
                        problem = f"{name} does not match its checksum"
                        break
                    if stat is not None:
                        info["stat"], rehashed = stat, True
                try:
                    arrays[Path(name).stem] = ondisk.load(file)
                except (OSError, ValueError) as exc:
                    problem = f"{name} cannot be read ({exc})"
                    break
        if problem:
            self.notes.append(f"cache entry {folder.name} was broken ({problem}); recomputed it")
            _remove(folder)
            return None
        if rehashed:  # a copied or restored cache: hashed once, then known by its stat again
            self._restat(folder, manifest)
        return Entry(arrays, manifest["meta"])

    def _restat(self, folder: Path, manifest: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # a read-only cache: nothing is lost, the next load hashes again
            atomic.write_text(folder / MANIFEST, json.dumps(manifest))

    def _write(self, stage: str, key: str, arrays: Written, meta: dict[str, Any]) -> None:
        final = self.path(stage, key)
        staging = None
        try:
            staging = Path(tempfile.mkdtemp(prefix=staging_prefix(stage), dir=self.root))
            files = {}
            for name, array in arrays.items():
                file = staging / f"{name}.npy"
                if isinstance(array, Path):
                    os.replace(array, file)  # streamed by the stage into its scratch folder
                elif array.dtype == object:
                    raise TypeError(f"array {name!r} has dtype object; the cache stores plain arrays")
                else:
                    np.save(file, array, allow_pickle=False)
                files[file.name] = file_info(file)
            manifest = {"format": FORMAT_VERSION, "stage": stage, "files": files, "meta": meta}
            (staging / MANIFEST).write_text(json.dumps(manifest))
            _remove(final)
            os.replace(staging, final)
        except BaseException:
            self._write_failed_for_files = out_of_files(self.root)  # asked before the staging folder goes
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise

    def get_or_compute(
        self,
        stage: str,
        key: str,
        compute: Callable[[], tuple[Written, dict[str, Any]]],
        needs: Callable[[], int] | None = None,
    ) -> tuple[Entry, bool]:
        """The entry for (stage, key), computing and storing it under a lock if it is missing.

        ``needs``: about how many bytes the entry takes, for a full disk's message when the stage
        streams its arrays into the cache while it computes (else they are counted when written).
        A full disk raises DiskFullError; nothing half-written is kept. Returns the entry and
        whether it was computed by this call.
        """
        entry = self.load(stage, key)
        if entry is not None:
            return entry, False
        try:
            locks = self.root / ".locks"
            locks.mkdir(exist_ok=True)
            lock = FileLock(str(locks / f"{stage}-{key}.lock"))
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout:
            raise DotmapError(
                f"Waited {LOCK_TIMEOUT_S:.0f} s for another process computing {stage} in "
                f"{self.root}; if none is running, delete {locks / f'{stage}-{key}.lock'}."
            ) from None
        except OSError as exc:
            raise (self._full(stage, None) if is_disk_full(exc) else self._unwritable(stage, exc)) from None
        mine = len(self._scratch)  # a stage computing inside another's compute leaves the outer's scratch be
        try:
            entry = self.load(stage, key)  # another process may have written it meanwhile
            if entry is not None:
                return entry, False
            try:
                arrays, meta = compute()
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                # the failed stage's frames hold its reader, whose forked workers hold the scratch file open:
                # let go of them and of the scratch first, so the space freed is free when it is measured
                traceback.clear_frames(exc.__traceback__)
                no_files = out_of_files(self.root)  # before the scratch folder frees its inodes
                self._drop_scratch(mine)
                raise self._full(stage, needs() if needs is not None else None, no_files) from None
            needed = _entry_bytes(arrays)  # before the write moves the streamed files
            try:
                self._write(stage, key, arrays, meta)
            except OSError as exc:
                if is_disk_full(exc):
                    no_files = self._write_failed_for_files
                    self._drop_scratch(mine)
                    raise self._full(stage, needed, no_files) from None
                raise self._unwritable(stage, exc) from None
        finally:
            lock.release()
            self._drop_scratch(mine)
        folder = self.path(stage, key)
        held = {
            name: ondisk.load(folder / f"{name}.npy") if isinstance(array, Path) else array
            for name, array in arrays.items()
        }
        return Entry(held, json.loads(json.dumps(meta))), True

    def _drop_scratch(self, mine: int) -> None:
        """Remove the scratch folders made since there were ``mine`` of them."""
        while len(self._scratch) > mine:
            shutil.rmtree(self._scratch.pop(), ignore_errors=True)

    def _unwritable(self, stage: str, exc: OSError) -> DotmapError:
        return DotmapError(
            f"Cannot write the {stage} stage into the cache folder {self.root}: {exc.strerror or exc}. "
            f"What the cache already holds is still used; to compute the rest, make the folder writable "
            f"or choose another with --cache DIR or the {CACHE_ENV} variable."
        )

    def _full(self, stage: str, needed: int | None, no_files: bool | None = None) -> DiskFullError:
        return disk_full_error(
            self.root,
            f"the cache folder {shown(str(self.root))}",
            f"the {stage} stage",
            needed,
            "Nothing half-written was kept; what the cache already holds is still used.",
            f"choose a cache folder on another disk with --cache DIR or the {CACHE_ENV} variable",
            no_files=no_files,
        )


def _entry_bytes(arrays: Written) -> int:
    """What an entry's arrays take on disk: those in memory as .npy files, and the files a stage streamed."""
    return sum(
        array.stat().st_size if isinstance(array, Path) else ondisk.HEADER_BYTES + array.nbytes
        for array in arrays.values()
    )
