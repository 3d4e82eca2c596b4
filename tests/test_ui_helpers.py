"""Tests of the pure helpers of pages/ui: montages and densities, typical shapes on the map, splits between two k."""

import html
import re

import numpy as np
import pytest

from pages.ui.charts import SPLIT_SHARE, splits
from pages.ui.render import (
    BORDER,
    CAPTION_PX,
    GAP_PX,
    INK,
    NOISE_COLOUR,
    PALETTE,
    THUMB_PX,
    WORD_JOINER,
    colour,
    density_image,
    montage,
    png_data_uri,
    shrink_keeping_dots,
    swatch_header,
    text,
)

DARK = 128  # a montage pixel below this is ink (INK = 20 on white 255)


def one_dot(m: int, g: int, y: int, x: int) -> np.ndarray:
    """``m`` blank masks (m, g, g), the first with one ink pixel at (y, x)."""
    masks = np.zeros((m, g, g), bool)
    masks[0, y, x] = True
    return masks


# ---------------------------------------------------------------- shrink_keeping_dots


@pytest.mark.parametrize(("y", "x"), [(100, 100), (0, 0), (199, 199), (1, 198)])
def test_one_pixel_dot_survives_shrinking(y: int, x: int) -> None:
    """200 px at most 96 px: blocks of 3 px (200 -> 67 blocks, the last padded)."""
    small = shrink_keeping_dots(one_dot(1, 200, y, x), 96)
    assert small.shape == (1, 67, 67)
    assert np.argwhere(small[0]).tolist() == [[y // 3, x // 3]]


def test_shrinking_is_a_max_over_blocks_by_hand() -> None:
    """6 px to at most 2 px: blocks of 3x3; any ink in a block makes the block ink."""
    masks = np.zeros((2, 6, 6), bool)
    masks[0, 0, 0] = masks[0, 4, 5] = True
    masks[1, 2, 3] = True
    expected = np.array([[[1, 0], [0, 1]], [[0, 1], [0, 0]]], bool)
    np.testing.assert_array_equal(shrink_keeping_dots(masks, 2), expected)


@pytest.mark.parametrize(("side", "out"), [(96, 67), (67, 67), (66, 50), (200, 200), (300, 200)])
def test_shrinking_uses_the_smallest_whole_factor(side: int, out: int) -> None:
    assert shrink_keeping_dots(one_dot(1, 200, 5, 5), side).shape == (1, out, out)


def test_small_masks_are_returned_unchanged(random_masks: np.ndarray) -> None:
    small = shrink_keeping_dots(random_masks, THUMB_PX)
    assert small.shape == random_masks.shape
    np.testing.assert_array_equal(small, random_masks)


# ---------------------------------------------------------------- montage


def test_montage_size_of_large_masks_with_captions() -> None:
    """5 masks of 200 px in 4 columns: thumbnails of 67 px (200 / 3), 2 rows, captions under each."""
    image = montage(one_dot(5, 200, 0, 0), [f"img{i}" for i in range(5)], columns=4)
    thumb = 67
    assert image.mode == "RGB"
    assert image.size == (4 * (thumb + GAP_PX) + GAP_PX, 2 * (thumb + GAP_PX + CAPTION_PX) + GAP_PX) == (298, 180)


def test_montage_size_without_captions_has_no_caption_rows() -> None:
    image = montage(one_dot(5, 200, 0, 0), None, columns=4)
    assert image.size == (4 * (67 + GAP_PX) + GAP_PX, 2 * (67 + GAP_PX) + GAP_PX) == (298, 152)


def test_montage_enlarges_small_masks_to_the_thumbnail() -> None:
    """16 px masks are drawn 6 times larger: 96 px thumbnails."""
    image = montage(one_dot(5, 16, 0, 0), ["a"] * 5, columns=4)
    assert THUMB_PX % 16 == 0
    step = THUMB_PX + GAP_PX
    assert image.size == (4 * step + GAP_PX, 2 * (step + CAPTION_PX) + GAP_PX)


def test_montage_has_no_more_columns_than_masks() -> None:
    image = montage(one_dot(3, 200, 0, 0), None, columns=8)
    assert image.size == (3 * (67 + GAP_PX) + GAP_PX, 67 + 2 * GAP_PX)


def test_montage_shows_a_one_pixel_dot() -> None:
    pixels = np.asarray(montage(one_dot(1, 200, 100, 100), None, columns=4))
    dark = np.argwhere((pixels < DARK).all(axis=2))
    assert dark.tolist() == [[GAP_PX + 100 // 3, GAP_PX + 100 // 3]]
    assert pixels[GAP_PX + 33, GAP_PX + 33].tolist() == [INK, INK, INK]


def test_montage_of_small_masks_draws_a_dot_as_a_block() -> None:
    pixels = np.asarray(montage(one_dot(1, 16, 2, 3), None, columns=4))
    scale = THUMB_PX // 16
    dark = (pixels < DARK).all(axis=2)
    assert dark.sum() == scale * scale
    top, left = GAP_PX + 2 * scale, GAP_PX + 3 * scale
    assert dark[top : top + scale, left : left + scale].all()


def test_montage_frames_colour_the_border() -> None:
    pixels = np.asarray(montage(one_dot(2, 16, 0, 0), None, columns=2, frames=["#ff0000", "#00ff00"]))
    step = THUMB_PX + GAP_PX
    assert pixels[GAP_PX - 1, GAP_PX - 1].tolist() == [255, 0, 0]
    assert pixels[GAP_PX - 1, GAP_PX + step - 1].tolist() == [0, 255, 0]


def test_montage_writes_captions_under_the_thumbnails() -> None:
    masks = np.zeros((1, 16, 16), bool)
    below = slice(GAP_PX + THUMB_PX + 1, None)
    with_caption = np.asarray(montage(masks, ["caption"], columns=1))
    without = np.asarray(montage(masks, [""], columns=1))
    assert (with_caption[below] < 200).any()
    assert not (without[below] < 200).any()


# ---------------------------------------------------------------- density_image and colour


def test_density_image_size_follows_width_and_row_stretch() -> None:
    """(10, 32) at 192 px wide: 192 * 10 / 32 = 60 px tall, stretched 3 times: 180."""
    assert density_image(np.zeros((10, 32)), width=192, row_stretch=3).size == (192, 180)


def test_density_image_draws_full_density_as_ink_and_none_as_white() -> None:
    density = np.zeros((2, 2))
    density[0, 0] = 1.0
    pixels = np.asarray(density_image(density, width=8))
    assert pixels.shape == (8, 8)
    inside = pixels[1:-1, 1:-1]  # within the one-pixel frame
    assert (inside[:3, :3] == INK).all()
    assert (inside[3:, :] == 255).all() and (inside[:, 3:] == 255).all()


def test_density_image_is_framed() -> None:
    pixels = np.asarray(density_image(np.zeros((4, 4)), width=8))
    assert (pixels[0] == BORDER).all() and (pixels[-1] == BORDER).all()
    assert (pixels[:, 0] == BORDER).all() and (pixels[:, -1] == BORDER).all()


def test_colours_cycle_through_the_palette() -> None:
    n = len(PALETTE)
    assert [colour(c) for c in range(n)] == list(PALETTE)
    assert colour(n) == colour(0)
    assert colour(2 * n + 3) == PALETTE[3]


# ---------------------------------------------------------------- swatch headers and data URIs


def test_a_swatch_header_is_a_square_in_the_groups_colour_then_its_name_in_bold() -> None:
    header = swatch_header(3, "Cluster 3", "12 images (0.6%)")
    assert header.startswith(f"<span style='color:{PALETTE[3]};")
    assert header.endswith("&#9632;</span> <b>Cluster 3</b> · 12 images &#40;0&#46;6&#37;&#41;")


def test_a_swatch_header_of_no_group_is_grey() -> None:
    assert f"color:{NOISE_COLOUR};" in swatch_header(-1, "outliers", "4 images")


def test_a_swatch_header_shows_a_name_as_text_never_as_html() -> None:
    header = swatch_header(0, "<img src=x onerror=alert(1)>", "a & b")
    name = header.split("<b>")[1].split("</b>")[0]
    assert html.unescape(name) == "<img src=x onerror=alert(1)>" and "<" not in name and "(" not in name
    assert header.endswith(" · a &#38; b")


# what Markdown, Streamlit's directives (:red[...], :material/...:) and HTML are made of
SYNTAX = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
PAYLOADS = (
    "![b](http://beacon.invalid/b.png)",
    "[click me](https://example.org/x)",
    "<img src=//beacon.invalid>",
    "**bold** _it_ `code` $x^2$ :red[red] :material/home: # title",
    "1. a list\n- another\n> quote",
    "a|b|c\n---|---|---",
    "<https://example.org/auto> www.example.org WWW.example.org a@example.org mailto:a@example.org",
    "&lt;img&gt; &#91;",
)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_text_from_a_file_reads_the_same_and_holds_no_syntax(payload: str) -> None:
    inert = text(payload)
    assert html.unescape(inert).replace(WORD_JOINER, "") == payload  # the reader sees the same characters
    bare = re.sub(r"&#\d+;", "", inert)
    assert not SYNTAX & set(bare), bare  # no character left that Markdown or HTML could read as syntax
    assert "example.org" not in inert and "beacon.invalid" not in inert  # not even an address to autolink


def test_only_an_address_that_would_become_a_link_gets_a_word_joiner() -> None:
    assert WORD_JOINER not in text("tcp://127.0.0.1:8786 C:/data/a.png x@ 10:30")
    for address in ("http://a.org", "HTTPS://a.org", "www.a.org", "a@b.org", "mailto:a", "xmpp:a"):
        assert WORD_JOINER in text(address), address


def test_a_text_keeps_letters_digits_spaces_and_other_scripts() -> None:
    assert text("Größe 12 ● 猫 🐈") == "Größe 12 ● 猫 🐈"


def test_a_text_shows_control_and_invisible_characters_escaped() -> None:
    assert html.unescape(text("a\u202eb\x1b[31m")) == "a\\u202eb\\x1b[31m"


def page_of_app() -> None:
    import numpy as np
    import streamlit as st

    from pages.ui.thumbnails import page_of

    st.markdown(f"rows {page_of(np.arange(st.session_state['n']), 4, key='page').tolist()}")


@pytest.mark.parametrize(("n", "pickers"), [(0, 0), (4, 0), (5, 1)])
def test_a_page_picker_is_drawn_only_when_there_is_more_than_one_page(n: int, pickers: int) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(page_of_app)
    at.session_state["n"] = n
    assert len(at.run().number_input) == pickers
    assert at.markdown[0].value == f"rows {list(range(min(n, 4)))}"


def test_the_page_picked_holds_its_rows() -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(page_of_app)
    at.session_state["n"] = 10
    at.run().number_input(key="page").set_value(3).run()
    assert not at.exception
    assert at.number_input(key="page").label == "Page (of 3)" and at.markdown[0].value == "rows [8, 9]"


def test_a_png_data_uri_decodes_to_the_same_bytes() -> None:
    import base64

    head, encoded = png_data_uri(b"\x89PNG bytes").split(",", 1)
    assert head == "data:image/png;base64" and base64.b64decode(encoded) == b"\x89PNG bytes"


# ---------------------------------------------------------------- splits (overlap tables: test_compare.py)


def test_splits_find_a_cluster_split_in_two_and_ignore_small_parts() -> None:
    overlap = np.array(
        [
            [50, 45, 5],  # split in two; the 5 % part is too small to count
            [100, 0, 0],  # kept whole
            [0, 8, 92],  # 8 % is below the share: not a split
            [0, 0, 0],  # empty
        ]
    )
    assert SPLIT_SHARE == 0.10
    assert splits(overlap) == [(0, [0, 1])]


def test_split_parts_come_largest_first() -> None:
    assert splits(np.array([[20, 30, 50]])) == [(0, [2, 1, 0])]


@pytest.mark.parametrize(("share", "expected"), [(0.25, [(0, [0, 1])]), (0.26, []), (0.5, [])])
def test_split_share_is_a_lower_bound_that_counts(share: float, expected: list) -> None:
    assert splits(np.array([[75, 25]]), share) == expected


def test_the_largest_k_offered_has_a_colour_per_cluster() -> None:
    from pages.ui.state import K_LIMIT

    assert len(set(PALETTE)) >= K_LIMIT


# ---------------------------------------------------------------- typical shapes on the map


def two_groups_and_a_stray() -> tuple[np.ndarray, np.ndarray]:
    """Group 0: a tight clump of 6 at (10, 10) and a loose pair far off; group 1: 3 points at (0, 0); one stray."""
    clump = [(10.0, 10.0), (10.1, 10.0), (10.0, 10.1), (9.9, 10.0), (10.0, 9.9), (10.1, 10.1)]
    xy = np.array([*clump, (0.0, 20.0), (20.0, 0.0), (0.0, 0.0), (0.1, 0.0), (0.0, 0.1), (5.0, 5.0)])
    labels = np.array([0] * 8 + [1] * 3 + [-1])
    return xy, labels


def test_a_shape_sits_in_its_groups_densest_area_not_at_its_median() -> None:
    from pages.ui.render import shape_positions

    xy, labels = two_groups_and_a_stray()
    positions = shape_positions(xy, labels, 2)
    assert positions.shape == (2, 2)
    np.testing.assert_allclose(positions[0], xy[:6].mean(axis=0))  # the clump; the far pair is left out
    np.testing.assert_allclose(positions[1], [1 / 30, 1 / 30])
    assert not np.allclose(positions[0], np.median(xy[:8], axis=0))


def test_a_group_with_no_points_has_no_position() -> None:
    from pages.ui.render import shape_positions

    xy, labels = two_groups_and_a_stray()
    positions = shape_positions(xy, labels, 4)
    assert np.isnan(positions[2:]).all()
    assert not np.isnan(positions[:2]).any()
    assert np.isnan(shape_positions(np.zeros((0, 2)), np.zeros(0, int), 2)).all()


def test_the_shapes_png_is_a_framed_see_through_image() -> None:
    import io

    from PIL import Image

    from pages.ui.render import SHAPE_BACKDROP_ALPHA, SHAPE_PX, shape_png

    density = np.zeros((48, 48))
    density[20:28, 20:28] = 1.0
    data = shape_png(density, "#ff0000")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    rgba = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
    assert rgba.shape == (SHAPE_PX, SHAPE_PX, 4)
    assert tuple(rgba[0, 0]) == (255, 0, 0, 255)  # the frame, in the group's colour
    assert rgba[48, 48, 3] == 255 and rgba[48, 48, 0] < DARK  # the ink: dark and opaque
    assert tuple(rgba[10, 10]) == (255, 255, 255, SHAPE_BACKDROP_ALPHA)  # no ink: see-through white


def test_the_map_has_one_shape_image_per_group_with_points() -> None:
    import base64
    import io

    from PIL import Image

    from pages.ui.render import SHAPE_SHARE, shape_images

    xy, labels = two_groups_and_a_stray()
    shapes = np.random.default_rng(0).random((3, 48, 48))  # group 2 has no points
    images = shape_images(xy, labels, shapes)
    assert [image["name"] for image in images] == ["shape 0", "shape 1"]
    for image in images:
        assert image["sizex"] == image["sizey"] == pytest.approx(SHAPE_SHARE * 20.0)
        head, encoded = image["source"].split(",", 1)
        assert head == "data:image/png;base64"
        assert Image.open(io.BytesIO(base64.b64decode(encoded))).format == "PNG"
    assert (images[0]["x"], images[0]["y"]) == pytest.approx(tuple(xy[:6].mean(axis=0)))


def test_density_layer_colours_each_bin_by_its_commonest_group() -> None:
    import base64
    import io

    from PIL import Image

    from pages.ui.render import colour, density_layer

    xy = np.array([[0.0, 0.0]] * 3 + [[0.0, 0.0]] + [[10.0, 10.0]])
    layer = density_layer(xy, np.array([1, 1, 1, 0, 0]), 2)
    image = Image.open(io.BytesIO(base64.b64decode(layer["source"].split(",", 1)[1])))
    assert image.mode == "RGBA" and max(image.size) == 640
    pixels = np.asarray(image)
    assert tuple(pixels[-1, 0, :3]) == tuple(int(colour(1)[i : i + 2], 16) for i in (1, 3, 5))  # bottom left
    assert pixels[-1, 0, 3] == 255 and 0 < pixels[0, -1, 3] < 255  # 4 images opaque, 1 image see-through
    assert pixels[300, 300, 3] == 0  # no image: nothing drawn
    assert (layer["x"], layer["y"], layer["sizex"], layer["sizey"]) == (0.0, 10.0, 10.0, 10.0)


def test_a_large_map_places_its_shapes_from_a_sample_and_a_small_group_from_its_own_points(monkeypatch):
    from pages.ui import render

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = rng.integers(0, 3, 30_000)
    xy = centres[labels] + rng.normal(0, 0.5, (30_000, 2))
    xy[:3], labels[:3] = [[20.0, 20.0], [20.1, 20.0], [20.0, 20.1]], 3  # a group of 3, likely missed by a sample
    monkeypatch.setattr(render, "SHAPE_PLACE_SAMPLE", 2_000)
    sampled = render.sampled_shape_positions(xy, labels, 4)
    full = render.shape_positions(xy, labels, 4)
    assert np.allclose(sampled[:3], full[:3], atol=0.5)
    assert np.allclose(sampled[3], [20.03, 20.03], atol=0.05)


@pytest.mark.parametrize("count", [0, 1, 8, 50, 300, 400])
def test_the_smallest_values_are_those_a_stable_sort_puts_first(count):
    from pages.ui.selection import smallest

    values = np.random.default_rng(count).integers(0, 20, 300).astype(np.float32)  # many ties
    assert np.array_equal(smallest(values, count), np.argsort(values, kind="stable")[:count])


def test_the_sizes_strip_counts_the_images_in_no_group() -> None:
    from pages.ui.render import sizes_strip

    assert "none: 2" in sizes_strip([1, 2], noise=2)
    assert "none" not in sizes_strip([1, 2])
