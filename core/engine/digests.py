"""Whether a cached file is the one that was written: its SHA-256, or for a large file its stat.

A file larger than ``HASH_WHOLE_UP_TO`` is hashed on load only when it may have changed since its
digest was taken: the manifest also keeps the file's inode, mtime and ctime, and a file whose size
and those three are as recorded is the file that was hashed (any write, truncation, copy or
replacement changes its ctime, which no program can set back). Reading 5 GB to hash it cost 6 s
at every server start at a million images; comparing a stat costs microseconds. What that skips is
a byte changed by the disk itself under an unchanged inode (ext4 does not checksum data); files up
to the threshold are still hashed on every load.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

HASH_WHOLE_UP_TO = 64 << 20  # bytes: hashed on every load up to this (~40 ms); a larger file when its stat moved
# a file's ctime is the kernel's coarse clock (a tick: 1-10 ms): a write in the tick of a stat may leave it
# as it was, so a stat is trusted only when the file's ctime is older than this before the stat was taken
SAME_TICK_NS = 50_000_000


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read 4 MB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def stat_of(path: Path) -> dict[str, int]:
    """What changes whenever a file's bytes may have: its inode, mtime and ctime (nanoseconds)."""
    st = path.stat()
    return {"ino": st.st_ino, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def hashed(path: Path) -> tuple[str, dict[str, int] | None]:
    """A file's SHA-256, and for a file over HASH_WHOLE_UP_TO the stat it was hashed under: None when a
    change of its bytes might not show in that stat (see :data:`SAME_TICK_NS`)."""
    before = time.time_ns()
    stat = stat_of(path)
    digest = sha256_of(path)
    large = path.stat().st_size > HASH_WHOLE_UP_TO
    trusted = large and stat["ctime_ns"] < before - SAME_TICK_NS and stat_of(path) == stat
    return digest, stat if trusted else None


def file_info(path: Path) -> dict[str, Any]:
    """A manifest's record of a file just written: its size, SHA-256 and, when large, its stat."""
    digest, stat = hashed(path)
    info: dict[str, Any] = {"size": path.stat().st_size, "sha256": digest}
    return info if stat is None else {**info, "stat": stat}


def unchanged_since_hashed(path: Path, info: dict[str, Any]) -> bool:
    """A large file whose stat is the one it was hashed under (see the module's docstring)."""
    return info["size"] > HASH_WHOLE_UP_TO and "stat" in info and info["stat"] == stat_of(path)
