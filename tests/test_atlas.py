"""The thumbnail atlas: tiles computed by hand on tiny masks, their place on the pages, the sample of a large set."""

import io

import numpy as np
import pytest
from PIL import Image

from core.outputs import atlas
from core.reading.images import pack_masks


def tiles_of(masks: np.ndarray, tile: int) -> np.ndarray:
    return atlas.shrink_to_tiles(pack_masks(masks), masks.shape[1], tile)


def test_a_tile_pixel_is_as_dark_as_its_block_is_full_and_a_lone_dot_still_shows() -> None:
    masks = np.zeros((1, 4, 4), bool)  # factor 2: four 2 x 2 blocks
    masks[0, 0, 0] = True  # top left: 1 pixel of 4
    masks[0, 0:2, 2:4] = True  # top right: full
    tiles = tiles_of(masks, 2)
    dark = lambda share: round(atlas.PAPER - (atlas.PAPER - atlas.INK) * share)  # noqa: E731
    one = max(atlas.DOT_SHADE, min(1.0, atlas.INK_GAIN / 4))
    assert tiles.shape == (1, 2, 2)
    assert tiles[0].tolist() == [[dark(one), atlas.INK], [atlas.PAPER, atlas.PAPER]]


def test_a_grid_that_is_not_a_multiple_is_padded_with_paper() -> None:
    masks = np.zeros((2, 5, 5), bool)
    masks[:, 4, 4] = True  # factor 3: 2 x 2 tiles; the last block holds 4 pixels of the image, 5 of paper
    tiles = tiles_of(masks, 2)
    dot = round(atlas.PAPER - (atlas.PAPER - atlas.INK) * max(atlas.DOT_SHADE, atlas.INK_GAIN / 9))
    assert tiles.shape == (2, 2, 2)
    assert tiles[0].tolist() == [[atlas.PAPER, atlas.PAPER], [atlas.PAPER, dot]]


@pytest.mark.parametrize("n", [1, 7, 30])
def test_each_tile_is_at_its_place_on_its_page(n: int) -> None:
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (n, 3, 3)).astype(np.uint8)
    pages, columns, per_page = atlas.atlas_pages(tiles, page_px=12)  # 4 columns, 16 tiles a page
    assert (columns, per_page) == (min(4, int(np.ceil(np.sqrt(n)))), min(4, int(np.ceil(np.sqrt(n)))) * 4)
    sheets = [np.asarray(Image.open(io.BytesIO(png))) for png in pages]
    assert len(pages) == -(-n // per_page)
    for i in range(n):
        row, column = divmod(i % per_page, columns)
        shown = sheets[i // per_page][row * 3 : row * 3 + 3, column * 3 : column * 3 + 3]
        assert np.array_equal(shown, tiles[i])


def test_the_atlas_keeps_its_pages_and_where_each_starts() -> None:
    masks = np.zeros((5, 200, 200), bool)
    masks[:, 100:110, 100:110] = True
    arrays, meta = atlas.make_atlas(pack_masks(masks), 200)
    assert meta["tile"] == atlas.TILE_PX and arrays["rows"].tolist() == list(range(5))
    png = arrays["png"].tobytes()
    first = png[arrays["offsets"][0] : arrays["offsets"][1]]
    sheet = np.asarray(Image.open(io.BytesIO(first)))
    assert sheet.shape == (2 * atlas.TILE_PX, 3 * atlas.TILE_PX)  # 5 tiles: 3 columns, 2 rows
    assert sheet[20, 20] == atlas.INK and sheet[0, 0] == atlas.PAPER


def test_a_large_set_gets_tiles_for_a_fixed_sample() -> None:
    rows = atlas.atlas_rows(atlas.ATLAS_ALL_UP_TO + 1)
    assert len(rows) == atlas.ATLAS_SAMPLE and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, atlas.atlas_rows(atlas.ATLAS_ALL_UP_TO + 1))
    assert np.array_equal(atlas.atlas_rows(10), np.arange(10))


def test_a_region_gets_the_tiles_of_its_images_in_the_order_asked() -> None:
    masks = np.zeros((6, 200, 200), bool)
    for i in range(6):
        masks[i, 10 * i : 10 * i + 5, 0:5] = True  # each image's dot lower down
    pages, columns, _, side = atlas.region_tiles(pack_masks(masks), 200, np.array([4, 1]))
    assert side == atlas.TILE_PX and len(pages) == 1 and columns == 2
    sheet = np.asarray(Image.open(io.BytesIO(pages[0])))
    np.testing.assert_array_equal(sheet[:, :side], tiles_of(masks[[4]], atlas.TILE_PX)[0])
    np.testing.assert_array_equal(sheet[:, side : 2 * side], tiles_of(masks[[1]], atlas.TILE_PX)[0])
