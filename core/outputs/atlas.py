"""The thumbnail atlas: every image shrunk to a small grey tile, the tiles packed into a few PNG pages.

The dashboard's map sends the atlas to the browser once, and draws from it the image under the
cursor and, zoomed in, every image in place, with no round trip to the server. Above
``ATLAS_ALL_UP_TO`` images, only a fixed sample has tiles (the map draws that sample as points).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from core.reading.images import unpack_masks

TILE_PX = 40  # a thumbnail's side: 1 px per 5 x 5 block of a 200-px image; dots 5 px apart stay apart
PAGE_PX = 4096  # a page's largest side: within every browser's image and canvas limits
ATLAS_ALL_UP_TO = 100_000  # images with a tile each; above it, a fixed sample of ATLAS_SAMPLE
ATLAS_SAMPLE = 20_000
CHUNK = 2048  # images shrunk at a time: 2048 x 200 x 200 bytes of unpacked masks
DOT_SHADE = 0.55  # a block with any ink is at least this dark: a 1-px dot stays visible
INK_GAIN = 3.0  # a block a third full of ink is drawn black
PAPER, INK = 255, 20  # white paper, near-black ink (as the dashboard draws images)
PNG_LEVEL = 6  # zlib level: 1 made the pages 30% larger for 0.3 s less at 32,000 images


def atlas_rows(n_images: int) -> np.ndarray:
    """The rows that get a tile: all of them up to ``ATLAS_ALL_UP_TO``, else a fixed seeded sample
    of ``ATLAS_SAMPLE``, sorted (the same rows on every call)."""
    if n_images <= ATLAS_ALL_UP_TO:
        return np.arange(n_images, dtype=np.int64)
    return np.sort(np.random.default_rng(0).choice(n_images, ATLAS_SAMPLE, replace=False)).astype(np.int64)


def tile_factor(grid: int, tile: int = TILE_PX) -> int:
    """How many pixels a side one tile pixel stands for: the smallest whole number that fits ``tile``."""
    return max(1, -(-grid // tile))


def shrink_to_tiles(packed: np.ndarray, grid: int, tile: int = TILE_PX) -> np.ndarray:
    """Grey tiles of packed ink masks: ndarray of shape (n, side, side), uint8, 255 paper.

    Each tile pixel covers a block of ``tile_factor`` x ``tile_factor`` pixels. Its darkness is the
    block's share of ink times ``INK_GAIN``, and at least ``DOT_SHADE`` where the block has any ink,
    so a lone 1-px dot shows where a plain average would fade it to nothing.
    """
    factor = tile_factor(grid, tile)
    side = -(-grid // factor)
    padded = side * factor
    tiles = np.empty((len(packed), side, side), np.uint8)
    for start in range(0, len(packed), CHUNK):
        masks = unpack_masks(packed[start : start + CHUNK], grid).view(np.uint8)
        if padded != grid:
            grown = np.zeros((len(masks), padded, padded), np.uint8)
            grown[:, :grid, :grid] = masks
            masks = grown
        # whole-array adds of strided slices: 8x faster than a reshape and a sum over two axes
        rows = masks[:, 0::factor, :].copy()
        for j in range(1, factor):
            rows += masks[:, j::factor, :]
        counts = rows[:, :, 0::factor].copy()
        for j in range(1, factor):
            counts += rows[:, :, j::factor]
        darkness = np.minimum(np.float32(1), counts * np.float32(INK_GAIN / factor**2))
        darkness = np.maximum(darkness, (counts > 0) * np.float32(DOT_SHADE))
        tiles[start : start + CHUNK] = np.rint(PAPER - (PAPER - INK) * darkness).astype(np.uint8)
    return tiles


def page_layout(n_tiles: int, side: int, page_px: int = PAGE_PX) -> tuple[int, int]:
    """(columns, tiles per page) of pages at most ``page_px`` wide and high."""
    columns = max(1, page_px // side)
    columns = min(columns, max(1, int(np.ceil(np.sqrt(n_tiles)))))
    return columns, columns * max(1, page_px // side)


def atlas_pages(tiles: np.ndarray, page_px: int = PAGE_PX) -> tuple[list[bytes], int, int]:
    """The tiles (n, side, side) laid out row by row on grey PNG pages.

    Returns (the pages' PNG bytes, columns per page, tiles per page): tile ``i`` is on page
    ``i // per_page``, at column ``(i % per_page) % columns`` and row ``(i % per_page) // columns``.
    """
    n, side = len(tiles), tiles.shape[1]
    columns, per_page = page_layout(n, side, page_px)
    pages = []
    for start in range(0, max(n, 1), per_page):
        part = tiles[start : start + per_page]
        rows = -(-len(part) // columns) if len(part) else 1
        sheet = np.full((rows * columns, side, side), PAPER, np.uint8)
        sheet[: len(part)] = part
        sheet = sheet.reshape(rows, columns, side, side).transpose(0, 2, 1, 3).reshape(rows * side, columns * side)
        out = io.BytesIO()
        Image.fromarray(sheet, "L").save(out, format="PNG", compress_level=PNG_LEVEL)
        pages.append(out.getvalue())
    return pages, columns, per_page


def region_tiles(packed: np.ndarray, grid: int, rows: np.ndarray) -> tuple[list[bytes], int, int, int]:
    """The tiles of some images (``rows`` of the packed masks, in that order) on PNG pages: the pages'
    bytes, columns, tiles per page and a tile's side. The map of a large set asks for the images of
    the region in view this way, as it zooms in."""
    tiles = shrink_to_tiles(packed[np.asarray(rows, np.int64)], grid)
    pages, columns, per_page = atlas_pages(tiles)
    return pages, columns, per_page, int(tiles.shape[1])


def make_atlas(
    packed: np.ndarray, grid: int, on_progress: Callable[[int, int], None] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The atlas of a set's packed masks (n, nbytes): its arrays and meta, as the cache keeps them.

    Arrays: ``rows`` (m,) the images with a tile (see :func:`atlas_rows`), ``png`` (bytes,) every
    page's PNG one after the other, ``offsets`` (pages + 1,) where each page starts and ends in it.
    Meta: ``tile`` (px a side), ``columns`` and ``per_page`` (see :func:`atlas_pages`).
    """
    rows = atlas_rows(len(packed))
    side = -(-grid // tile_factor(grid))
    tiles = np.empty((len(rows), side, side), np.uint8)
    for start in range(0, len(rows), CHUNK * 4):
        part = rows[start : start + CHUNK * 4]
        tiles[start : start + len(part)] = shrink_to_tiles(packed[part], grid)
        if on_progress:
            on_progress(start + len(part), len(rows))
    pages, columns, per_page = atlas_pages(tiles)
    offsets = np.cumsum([0] + [len(page) for page in pages]).astype(np.int64)
    png = np.frombuffer(b"".join(pages), np.uint8)
    return {"rows": rows, "png": png, "offsets": offsets}, {
        "tile": int(tiles.shape[1]),
        "columns": columns,
        "per_page": per_page,
    }
