"""Files written whole or not at all: a temporary file beside the target, then one rename over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_file(path: str | os.PathLike, durable: bool = False, **open_options: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (text, UTF-8 by default); on a clean exit it replaces
    ``path`` in one step, so a reader sees the old file or the new one, never half of one.

    ``durable``: flush it to the disk before the rename (the user's own files, which a crash must not empty).
    On any error (a full disk on a write, the flush, the fsync or the rename; an interrupt) the temporary file
    is removed and ``path`` is left as it was: a failed write leaves nothing behind.
    """
    path = Path(path)
    open_options.setdefault("encoding", "utf-8")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", **open_options) as f:  # one that fails (an unknown encoding) closes fd itself
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str, durable: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, durable) as f:
        f.write(text)
