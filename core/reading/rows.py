"""An array set's rows turned into ink masks: their values checked, made in parallel, and streamed into the
cache's packed images as a folder's files are (core.reading.images)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from functools import partial

import numpy as np

from core.engine.backends import Backend
from core.engine.processes import exit_with_owner, in_order, pool_context
from core.errors import DotmapError
from core.reading.arrays import ArraySource, RowReader
from core.reading.decode import ink_on_grid
from core.reading.folders import Inventory
from core.reading.images import Streamed, pack_masks, write_blocks
from core.reading.ondisk import block_rows, row_blocks

ProgressFn = Callable[[int, int, str], None]
PARALLEL_ROWS = 2000  # fewer rows than this are made in-process: a pool costs more than it saves


def gray_of(block: np.ndarray) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Grey levels (m, h, w) uint8 of a block of array images, and (row in the block, reason) of the rows
    that cannot be images. bool: True is ink (black); integers 0..255; floats 0..1 (0 black, 1 white)."""
    if block.dtype == np.uint8:
        return block, []
    if block.dtype == bool:
        return np.where(block, np.uint8(0), np.uint8(255)), []
    flat = block.reshape(len(block), -1)
    floats = block.dtype.kind == "f"
    bad: dict[int, str] = {}
    if floats:
        finite = np.isfinite(flat).all(axis=1)
        bad.update((int(i), "holds NaN or infinite values") for i in np.flatnonzero(~finite))
        flat = np.where(finite[:, None], flat, 0)
    top, scale, rule = (
        (1, 255, "floats should be 0..1 (0 black, 1 white): divide 0..255 values by 255")
        if floats
        else (255, 1, "integers should be 0..255")
    )
    low, high = flat.min(axis=1), flat.max(axis=1)
    for i in np.flatnonzero((low < 0) | (high > top)):
        bad.setdefault(int(i), f"values from {low[i]:g} to {high[i]:g}: {rule}")
    gray = np.clip(np.rint(flat * scale), 0, 255).astype(np.uint8) if floats else np.clip(flat, 0, 255).astype(np.uint8)
    return gray.reshape(block.shape), sorted(bad.items())


def masks_of(gray: np.ndarray, grid: int, polarity: str) -> np.ndarray:
    """Ink masks (m, grid, grid) bool of grey images (m, h, w), as a file of each would give."""
    out = np.zeros((len(gray), grid, grid), bool)
    for i, image in enumerate(gray):
        out[i] = ink_on_grid(image, grid, polarity)
    return out


def _chunk_rows(source: ArraySource) -> int:
    # a chunk's rows, their grey levels and a float copy while they are checked: within one block of memory
    return block_rows(source.row_bytes + source.height * source.width * 9, least=16)


def _masks_of_rows(
    chunk: tuple[int, int], source: ArraySource, grid: int, polarity: str, reader: RowReader | None = None
) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    """Worker: rows start..stop of an array set as packed ink masks of its good rows, their rows, the bad."""
    start, stop = chunk
    with ExitStack() as stack:
        reader = reader or stack.enter_context(RowReader(source))
        gray, bad = gray_of(reader.read(start, stop))
    skip = {i for i, _ in bad}
    good = [i for i in range(stop - start) if i not in skip]
    packed = pack_masks(masks_of(gray[good], grid, polarity))
    return packed, [start + i for i in good], [(start + i, reason) for i, reason in bad]


def array_blocks(
    inventory: Inventory,
    grid: int,
    polarity: str,
    workers: int | None = None,
    on_progress: ProgressFn | None = None,
    backend: Backend | None = None,
) -> Iterator[tuple[np.ndarray, list[str], list[tuple[str, str]]]]:
    """An array set's rows a chunk at a time, in order, as :func:`core.reading.images.decode_blocks` yields a
    folder's: (packed masks of the chunk's good rows, their names, (name, reason) of its bad rows).

    The chunks of an .npy are made in parallel (each worker reads its rows by their offset); an .npz
    member is one compressed stream, read once, in order.
    """
    source: ArraySource = inventory.array
    names = [e.path for e in inventory.files]
    chunks = row_blocks(source.n, _chunk_rows(source))
    work = partial(_masks_of_rows, source=source, grid=grid, polarity=polarity)
    workers = workers or os.cpu_count() or 1
    if on_progress is not None:
        on_progress(0, source.n, "read")
    with ExitStack() as stack:
        if backend is not None and backend.name != "local" and source.member is None:
            results = backend.map(work, chunks)  # tasks on a cluster; its workers read the same path
        elif source.member is not None or workers <= 1 or source.n < PARALLEL_ROWS:
            results = map(partial(work, reader=stack.enter_context(RowReader(source))), chunks)
        else:
            count = min(workers, len(chunks))
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    count, mp_context=pool_context(), initializer=exit_with_owner, initargs=(os.getpid(),)
                )
            )
            results = in_order(pool, work, chunks, ahead=2 * count)
        for (_, stop), (packed, good, bad) in zip(chunks, results, strict=True):
            yield packed, [names[i] for i in good], [(names[i], f"row {i}: {reason}") for i, reason in bad]
            if on_progress is not None:
                on_progress(stop, source.n, "read")


def stream_array(
    inventory: Inventory,
    out: str | os.PathLike,
    grid: int = 200,
    polarity: str = "auto",
    workers: int | None = None,
    on_progress: ProgressFn | None = None,
    backend: Backend | None = None,
) -> Streamed:
    """An array set's rows straight into packed masks in the .npy file ``out``, as a folder's files are
    (:func:`core.reading.images.stream_images`)."""
    blocks = array_blocks(inventory, grid, polarity, workers, on_progress, backend)
    return write_blocks(blocks, out, grid, inventory.skipped)


def sample_masks(source: ArraySource, rows: list[int], grid: int, polarity: str) -> tuple[np.ndarray, list[int]]:
    """Ink masks (m, grid, grid) of some rows of an array set (sorted, read in one pass), and which rows they
    are: a row that cannot be an image is left out (the read stage names it)."""
    masks, kept = [], []
    with RowReader(source) as reader:
        for row in sorted(rows):
            gray, bad = gray_of(reader.read(row, row + 1))
            if not bad:
                masks.append(masks_of(gray, grid, polarity)[0])
                kept.append(row)
    return (np.stack(masks) if masks else np.zeros((0, grid, grid), bool)), kept


def masks_of_array(
    images: np.ndarray, grid: int, polarity: str, image_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Ink masks (m, grid, grid) of images held in memory, with an array set's values: (m, h, w); (m, h * w)
    rows of ``image_shape`` or square; or one image (h, w), which a 2-D array is when it is square or its
    rows are not square images. A row that cannot be an image is an error that names it."""
    images = np.asarray(images)
    if images.dtype.kind not in "biuf":
        raise DotmapError(f"images of {images.dtype} values; give bool, integers 0..255 or floats 0..1.")
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        square_rows = side * side == images.shape[1] and images.shape[0] != images.shape[1]
        if image_shape is None and not square_rows:
            images = images[None]
        else:
            h, w = image_shape or (side, side)
            if h * w != images.shape[1]:
                raise DotmapError(f"rows of {images.shape[1]:,} values are not {h}x{w} images.")
            images = images.reshape(len(images), h, w)
    if images.ndim != 3 or 0 in images.shape:
        raise DotmapError(f"images of shape {images.shape}; give (h, w), (m, h, w) or (m, h * w).")
    gray, bad = gray_of(images)
    if bad:
        row, reason = bad[0]
        raise DotmapError(f"image {row} {reason}." + (f" ({len(bad) - 1} more like it.)" if len(bad) > 1 else ""))
    return masks_of(gray, grid, polarity)
