"""Arrays too large to hold: .npy files written a block of rows at a time and read through a memory map.

A large set's packed images are 5 kB each, 5 GB at a million: the read stage streams them into the
cache as they are decoded, and later stages map the file and walk it a block at a time. The pages a
block touched are let go after it (``let_go``), so the memory a stage holds is a block's, not the
file's; the kernel keeps them in its page cache, so reading them again costs no disk.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from pathlib import Path

import numpy as np

from core.errors import SettingError

# arrays of more bytes than this are mapped from the cache, not read into memory; a 32,000-image
# set's packed images (160 MB) stay below it, so small sets keep today's in-memory path
MAP_ABOVE_BYTES = 256 * 2**20
MEMORY_ENV = "DOTMAP_BLOCK_MB"
DEFAULT_BLOCK_MB = 96  # what a streamed stage holds of its rows at a time, in MB: 2,048 images
MAX_BLOCK_MB = 1_000_000  # a terabyte: more is a typing mistake
# the working memory of one image while its features or its typical-shape density are computed
# (tracemalloc on the demo's images, about 220 ink pixels each: 21-48 kB by kind)
IMAGE_WORK_BYTES = 48 * 1024
HEADER_BYTES = 128  # a fixed .npy header, so it can be written again once the row count is known
MAGIC = b"\x93NUMPY\x01\x00"


def block_bytes() -> int:
    """The memory one block of rows may take: ``$DOTMAP_BLOCK_MB`` MB, else DEFAULT_BLOCK_MB."""
    text = os.environ.get(MEMORY_ENV, "").strip()
    if not text:
        return DEFAULT_BLOCK_MB * 2**20
    try:
        mb = float(text)
    except ValueError:
        raise SettingError(f"{MEMORY_ENV}={text!r} should be a number of megabytes, e.g. 64.") from None
    if not 0 < mb <= MAX_BLOCK_MB:  # also refuses nan and inf
        raise SettingError(f"{MEMORY_ENV}={text!r} should be more than 0 megabytes and at most {MAX_BLOCK_MB:,}.")
    return int(mb * 2**20)


def block_rows(row_bytes: int, least: int = 256) -> int:
    """How many rows of ``row_bytes`` bytes make one block (at least ``least``)."""
    return max(least, block_bytes() // max(int(row_bytes), 1))


def image_block_rows() -> int:
    """How many images a stage that turns images into numbers takes at a time (2,048 by default)."""
    return block_rows(IMAGE_WORK_BYTES)


def row_blocks(n: int, rows: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive blocks of ``rows`` rows covering 0..n."""
    return [(start, min(start + rows, n)) for start in range(0, n, rows)]


def _header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    fields = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    text = repr(fields).encode("latin1")
    room = HEADER_BYTES - len(MAGIC) - 2 - 1
    if len(text) > room:
        raise ValueError(f"an array of shape {shape} needs a longer .npy header than {HEADER_BYTES} bytes.")
    return MAGIC + struct.pack("<H", room + 1) + text.ljust(room) + b"\n"


class RowWriter:
    """Appends blocks of rows of one width and dtype to a .npy file; ``close`` writes the final shape.

    >>> with RowWriter(path, row_shape=(5000,), dtype=np.uint8) as out:
    ...     out.append(block)
    """

    def __init__(self, path: str | os.PathLike, row_shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.path = Path(path)
        self.row_shape = tuple(int(x) for x in row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._file = open(self.path, "wb")  # noqa: SIM115 (kept open across append calls; closed by close)
        self._file.write(_header((0, *self.row_shape), self.dtype))

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"a block of shape {block.shape} does not fit rows of shape {self.row_shape}.")
        self._file.write(block.data)
        self.rows += len(block)

    def close(self) -> Path:
        if not self._file.closed:
            self._file.seek(0)
            self._file.write(_header((self.rows, *self.row_shape), self.dtype))
            self._file.close()
        return self.path

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self.close()
            return
        with contextlib.suppress(OSError):  # failed (a full disk): the file goes with its scratch folder
            self._file.close()


def _read_header(f) -> tuple[tuple[int, ...], np.dtype, int]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if fortran:
        raise ValueError("a Fortran-ordered array cannot be read by rows")
    return shape, dtype, f.tell()


def map_rows(path: str | os.PathLike) -> np.ndarray:
    """A read-only array over a .npy file's bytes, through a memory map (see :func:`let_go`)."""
    with open(path, "rb") as f:
        shape, dtype, offset = _read_header(f)
        count = int(np.prod(shape)) if shape else 1
        if count == 0:
            return np.zeros(shape, dtype)
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.ndarray(shape, dtype, buffer=mapped, offset=offset)


def is_mapped(array: np.ndarray) -> bool:
    return _mapping(array) is not None


def _mapping(array: np.ndarray) -> mmap.mmap | None:
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return base
        if isinstance(base, memoryview):
            base = base.obj
            continue
        base = getattr(base, "base", None)
    return None


def let_go(array: np.ndarray) -> None:
    """Hand the pages of a mapped array back to the kernel (they stay in its page cache); else nothing.

    Without this, every page a stage once read stays counted in its memory until it ends.
    """
    mapped = _mapping(array)
    if mapped is not None and not mapped.closed and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def load(path: str | os.PathLike) -> np.ndarray:
    """A cached array: mapped when it is larger than MAP_ABOVE_BYTES, else read into memory."""
    if os.path.getsize(path) > MAP_ABOVE_BYTES:
        return map_rows(path)
    return np.load(path, allow_pickle=False)
