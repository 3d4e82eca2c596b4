"""What a path or a disk refuses, said in words: a folder that may not be entered, a name too long, a full disk.

Python's ``Path.exists()`` raises where a path cannot be looked at (a folder on the way this user may
not enter, a name over 255 bytes), and a write that runs out of room raises ENOSPC, or, from numpy, a
bare "N requested and M written". Each is turned here into a sentence that says what is wrong with
that path or disk and what to do (core.errors.PathError, DiskFullError).
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
from pathlib import Path

from core.errors import DiskFullError, PathError
from core.reading.names import NAME_MAX_BYTES, shown

PATH_MAX_BYTES = 4096  # the longest path Linux takes in one call (PATH_MAX)
SHOWN_PART_CHARS = 24  # characters of an over-long name shown in a message
SHOWN_FOLDER_CHARS = 200  # the folder holding it is named when it is no longer
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
READ_ONLY_WORDS = "it is on a read-only file system. Choose a place on a disk that can be written."
SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's tofile on a full disk: no errno


def path_status(path: str | os.PathLike, follow: bool = True) -> os.stat_result | None:
    """What is at ``path`` (``os.stat``, or ``os.lstat`` without ``follow``); None when nothing is there.

    A path that cannot be looked at raises PathError with :func:`unreachable_words` instead of the
    OSError ``Path.exists()`` would raise.
    """
    try:
        return os.stat(path) if follow else os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise PathError(unreachable_words(Path(path), exc)) from None


def exists(path: str | os.PathLike) -> bool:
    """Whether anything is at ``path``, a link to nothing included; PathError when it cannot be looked at."""
    return path_status(path, follow=False) is not None


def first_missing(path: Path) -> Path:
    """The highest folder on the way to ``path`` (or ``path`` itself) that does not exist yet: what making
    ``path`` creates. A folder on the way that cannot be looked at raises PathError."""
    first = path
    for parent in path.parents:
        if exists(parent):
            break
        first = parent
    return first


def unreachable_words(path: Path, exc: OSError) -> str:
    """Why ``path`` cannot be looked at or made, and what to do, from the OSError that said so."""
    where = shown(str(path))
    if exc.errno in (errno.EACCES, errno.EPERM):
        closed = closed_folder(path)
        if closed is not None:
            return (
                f"Cannot look at {where}: this user may not enter the folder {shown(str(closed))} (permission "
                f"denied). Choose a place you may open, or ask the folder's owner for access."
            )
        return f"Cannot look at {where}: permission denied. Choose a place you may open."
    if exc.errno == errno.ENAMETOOLONG:
        return too_long_words(path)
    if exc.errno == errno.ELOOP:
        return f"Cannot look at {where}: its links point at each other in a loop. Give the path of a real folder."
    return f"Cannot look at {where}: {exc.strerror or exc}."


def closed_folder(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that this user may not enter (its contents cannot be looked at)."""
    path = Path(os.path.abspath(path))
    for above, below in itertools.pairwise([*reversed(path.parents), path]):
        try:
            os.lstat(below)
        except PermissionError:
            return above
        except OSError:
            return None
    return None


def too_long_words(path: Path) -> str:
    """Which part of ``path`` is longer than a name may be (NAME_MAX_BYTES), or that the whole path is too long."""
    for i, part in enumerate(path.parts):
        size = len(os.fsencode(part))
        if size > NAME_MAX_BYTES:
            folder = str(Path(*path.parts[:i])) if i else ""
            within = f" in {shown(folder)}" if 0 < len(folder) <= SHOWN_FOLDER_CHARS else ""
            return (
                f"The name {shown(part[:SHOWN_PART_CHARS])}...{within} is {size} bytes long: a file or folder name "
                f"may be at most {NAME_MAX_BYTES} bytes. Use a shorter name."
            )
    return (
        f"The path {shown(str(path)[:SHOWN_PART_CHARS])}... is {len(os.fsencode(str(path)))} bytes long: a path may "
        f"be at most {PATH_MAX_BYTES} bytes. Use a place with a shorter path."
    )


def write_problem(exc: OSError, path: Path) -> str:
    """Why writing at ``path`` failed, as the end of a sentence ("...: it is on a read-only file system.")."""
    if exc.errno == errno.ENAMETOOLONG:
        return too_long_words(path)
    if exc.errno == errno.EROFS:
        return READ_ONLY_WORDS
    if exc.errno in (errno.EACCES, errno.EPERM):
        closed = closed_folder(path)
        if closed is not None:
            return f"this user may not enter the folder {shown(str(closed))} (permission denied)."
    return f"{exc.strerror or exc}."


def is_disk_full(exc: OSError) -> bool:
    """Whether an OSError says the disk (or the user's quota) has no room left."""
    return exc.errno in FULL_ERRNOS or (exc.errno is None and SHORT_WRITE.fullmatch(str(exc)) is not None)


def free_bytes(folder: str | os.PathLike) -> int | None:
    """The bytes this user may still write on the disk holding ``folder``; None when it cannot be asked."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def out_of_files(folder: str | os.PathLike) -> bool:
    """Whether the file system holding ``folder`` can hold no more files (every inode in use), whatever its bytes."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_files > 0 and st.f_favail == 0


def is_read_only(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` lies on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def size_words(n: int) -> str:
    """A size in bytes for a person: ``312 kB``, ``1.9 MB``, ``4.2 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 10 * scale else f"{n / scale:.0f} {unit}"
    return f"{n} bytes"


def disk_full_error(
    folder: str | os.PathLike,
    what: str,
    who: str,
    needed: int | None,
    kept: str,
    elsewhere: str,
    freed: int = 0,
    no_files: bool | None = None,
) -> DiskFullError:
    """A full disk in words: which disk (the one holding ``what``, a folder's role and path), what ``who``
    needed there and what is free (now, and the ``freed`` bytes its writer is about to remove), what was
    ``kept``, and what to do: make room, or ``elsewhere``.

    A file system whose table of files is full (every inode in use; ``no_files``, else asked now) is
    said so, whatever its free bytes.
    """
    free = free_bytes(folder)
    free = None if free is None else free + freed
    if out_of_files(folder) if no_files is None else no_files:
        though = "" if free is None else f", though {size_words(free)} are free"
        first = (
            f"The file system holding {what} can hold no more files: every one of its inodes (its table of "
            f"files) is in use{though}, so {who} could not be written."
        )
        todo = f"Remove some files from that file system, or {elsewhere}."
    else:
        todo = f"Free some space on that disk, or {elsewhere}."
        if needed:
            available = "." if free is None else f", and {size_words(free)} is free."
            first = f"The disk holding {what} is full: {who} needs about {size_words(needed)} there{available}"
        else:
            available = "" if free is None else f" ({size_words(free)} free)"
            first = f"The disk holding {what} is full{available}: {who} could not be written."
    return DiskFullError(f"{first} {kept} {todo}")
