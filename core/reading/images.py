"""Reading a folder of images safely and fast into bit-packed ink masks on one working grid."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from core.engine.backends import Backend
from core.engine.processes import exit_with_owner, in_order, pool_context
from core.reading.decode import MAX_PIXELS, POLARITIES, ImageReadError, decode_image
from core.reading.folders import Inventory
from core.reading.ondisk import RowWriter

PARALLEL_FROM = 400  # fewer files than this are decoded in-process: a pool costs more than it saves
CHUNK_FILES = 500

ProgressFn = Callable[[int, int, str], None]


@dataclass
class ImageSet:
    """Decoded images as bit-packed ink masks.

    packed : ndarray of shape (n_images, ceil(grid * grid / 8)), uint8; 1 bits are ink.
    paths : relative paths of the n_images readable files, in the order of the rows.
    skipped : (relative path, reason) of every file that was not used.
    """

    packed: np.ndarray
    grid: int
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def unpack(self, rows: slice | Sequence[int] | np.ndarray = slice(None)) -> np.ndarray:
        """Ink masks of the chosen rows: ndarray of shape (n_rows, grid, grid), bool."""
        return unpack_masks(self.packed[rows], self.grid)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """Bit-pack ink masks (n, grid, grid) into rows of bytes (n, ceil(grid*grid/8))."""
    return np.packbits(masks.reshape(len(masks), int(np.prod(masks.shape[1:]))), axis=1)


def unpack_masks(packed: np.ndarray, grid: int) -> np.ndarray:
    """Inverse of :func:`pack_masks`: (n, nbytes) uint8 -> (n, grid, grid) bool."""
    packed = np.atleast_2d(packed)
    bits = np.unpackbits(packed, axis=1, count=grid * grid)
    return bits.reshape(len(packed), grid, grid).view(bool)


def count_distinct(packed: np.ndarray) -> int:
    """How many different masks a packed array (n, nbytes) holds.

    Rows are told apart by a 16-byte digest, not kept whole: a set of every row would be a second
    copy of the images (5 GB at a million).
    """
    return len({_digest(row) for row in packed})


def _digest(row: np.ndarray) -> bytes:
    return hashlib.blake2b(row.tobytes(), digest_size=16).digest()


INK_CHUNK = 8192  # rows counted at a time: memory stays that of a chunk, not of the unpacked images


def ink_counts(packed: np.ndarray) -> np.ndarray:
    """How many ink pixels each packed mask (n, nbytes) has: ndarray of shape (n,), int32.

    Counted on the packed bytes (popcount), a chunk at a time: unpacking them all first took
    40 kB an image, 4 GB at 100,000 images.
    """
    counts = [
        np.bitwise_count(packed[i : i + INK_CHUNK]).sum(axis=1, dtype=np.int32)
        for i in range(0, len(packed), INK_CHUNK)
    ]
    return np.concatenate(counts) if counts else np.zeros(0, np.int32)


def _decode_chunk(
    root: str, paths: list[str], grid: int, polarity: str, max_pixels: int
) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Worker: decode some files; return packed masks of the good ones, their indices, the bad."""
    masks, good, bad = [], [], []
    for i, rel in enumerate(paths):
        try:
            masks.append(decode_image(os.path.join(root, rel), grid, polarity, max_pixels))
            good.append(i)
        except ImageReadError as exc:
            bad.append((rel, str(exc)))
    packed = pack_masks(np.stack(masks) if masks else np.zeros((0, grid, grid), bool))
    return packed, good, bad


def load_images(
    inventory: Inventory,
    grid: int = 200,
    polarity: str = "auto",
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
    on_progress: ProgressFn | None = None,
) -> ImageSet:
    """Decode every candidate file of an inventory, in parallel over all cores.

    Files that cannot be used are listed in ``ImageSet.skipped`` with their reason; the rest go on.
    """
    parts = [pack_masks(np.zeros((0, grid, grid), bool))]
    kept_paths: list[str] = []
    skipped: list[tuple[str, str]] = list(inventory.skipped)
    for packed, good, bad in decode_blocks(inventory, grid, polarity, workers, max_pixels, on_progress):
        parts.append(packed)
        kept_paths.extend(good)
        skipped.extend(bad)
    return ImageSet(np.concatenate(parts), grid, kept_paths, sorted(skipped))


@dataclass
class Streamed:
    """What :func:`stream_images` wrote, besides the packed rows: paths, skipped files, and counts."""

    paths: list[str]
    skipped: list[tuple[str, str]]
    distinct: int
    ink: np.ndarray  # (n_images,) int32


def stream_images(
    inventory: Inventory,
    out: str | os.PathLike,
    grid: int = 200,
    polarity: str = "auto",
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
    on_progress: ProgressFn | None = None,
    backend: Backend | None = None,
) -> Streamed:
    """Decode every candidate file of an inventory straight into the .npy file ``out``, a chunk at a time.

    The packed rows (n_images, ceil(grid * grid / 8)) never sit in memory all at once: 5 GB at a
    million images. Distinct images are counted by digest and ink by popcount as each chunk passes.
    """
    blocks = decode_blocks(inventory, grid, polarity, workers, max_pixels, on_progress, backend)
    return write_blocks(blocks, out, grid, inventory.skipped)


def write_blocks(
    blocks: Iterator[tuple[np.ndarray, list[str], list[tuple[str, str]]]],
    out: str | os.PathLike,
    grid: int,
    skipped: list[tuple[str, str]] = (),
) -> Streamed:
    """Write the packed masks of ``blocks`` (as :func:`decode_blocks` yields them) to the .npy file ``out``,
    counting distinct images and ink as they pass; ``skipped`` is what was left out before reading."""
    kept: list[str] = []
    skipped = list(skipped)
    digests: set[bytes] = set()
    ink: list[np.ndarray] = []
    with RowWriter(out, ((grid * grid + 7) // 8,), np.uint8) as writer:
        for packed, good, bad in blocks:
            writer.append(packed)
            kept.extend(good)
            skipped.extend(bad)
            digests.update(_digest(row) for row in packed)
            ink.append(ink_counts(packed))
    counts = np.concatenate(ink) if ink else np.zeros(0, np.int32)
    return Streamed(kept, sorted(skipped), len(digests), counts)


def decode_blocks(
    inventory: Inventory,
    grid: int = 200,
    polarity: str = "auto",
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
    on_progress: ProgressFn | None = None,
    backend: Backend | None = None,
) -> Iterator[tuple[np.ndarray, list[str], list[tuple[str, str]]]]:
    """Decode an inventory's files a chunk at a time, in file order, in parallel over all cores.

    Yields (packed masks of the chunk's good files, their paths, (path, reason) of its bad files),
    so a caller can write each chunk away and hold only a few at a time.
    """
    if grid < 8:
        raise ValueError(f"grid={grid} should be >= 8.")
    if polarity not in POLARITIES:
        raise ValueError(f"polarity={polarity!r} should be one of {POLARITIES}.")
    paths = [e.path for e in inventory.files]
    total = len(paths)
    chunks = [paths[i : i + CHUNK_FILES] for i in range(0, total, CHUNK_FILES)]
    if workers is None:
        workers = os.cpu_count() or 1
    decode = partial(_decode_chunk, str(inventory.root), grid=grid, polarity=polarity, max_pixels=max_pixels)
    if on_progress is not None:
        on_progress(0, total, "read")
    done = 0
    with ExitStack() as stack:
        if backend is not None and backend.name != "local":
            results = backend.map(decode, chunks)  # tasks on a cluster; its workers read the same paths
        elif workers <= 1 or total < PARALLEL_FROM:
            results = map(decode, chunks)
        else:
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    min(workers, len(chunks)),
                    mp_context=pool_context(),
                    initializer=exit_with_owner,
                    initargs=(os.getpid(),),
                )
            )
            results = in_order(pool, decode, chunks, ahead=2 * workers)
        for chunk, (packed, good, bad) in zip(chunks, results, strict=True):
            yield packed, [chunk[i] for i in good], bad
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, total, "read")
