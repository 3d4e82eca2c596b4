"""Renderers: thumbnail montages, typical-shape images, the map's density image and size strip. They only draw."""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.reading.names import shown

# cluster c is always PALETTE[c % len]: ids are matched from k to k+1, so colours stay put;
# 40 colours, as many as the largest k the Overview offers
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#e7ba52", "#843c39", "#31a354", "#7b4173", "#3182bd",
    "#e6550d", "#637939", "#d6616b", "#636363", "#9c9ede", "#fd8d3c", "#74c476", "#ce6dbd",
    "#aa0dfe", "#3283fe", "#85660d", "#782ab6", "#1c8356", "#c4451c", "#325a9b", "#feaf16",
    "#90ad1c", "#f6222e", "#b10da1", "#c075a6", "#fc1cbf", "#b00068", "#fa0087", "#2ed9ff",
)  # fmt: skip
THUMB_PX = 96  # a thumbnail's side on screen
GAP_PX = 6
CAPTION_PX = 14
INK = 20  # near-black ink on white, as the images are drawn
BORDER = 200


# above this many images the map is a density image (a 2-D histogram drawn on the server) under a
# sample of points for hover and click; $DOTMAP_DENSITY_ABOVE changes it (the browser test uses it)
DENSITY_ABOVE = int(os.environ.get("DOTMAP_DENSITY_ABOVE", "100000"))
DENSITY_SAMPLE = int(os.environ.get("DOTMAP_DENSITY_SAMPLE", "20000"))  # points drawn over the density image
DENSITY_PX = 640  # the density image's larger side, in bins
DENSITY_MIN_ALPHA = 0.35  # a bin with one image; the fullest bin is opaque
NOISE_COLOUR = "#c8c8c8"  # images in no group (automatic groups): light grey, never a group's colour
SWATCH_EM = 1.3  # the square in a group's colour before its name, in the text's size

# typical shapes drawn on the map: small, see-through where there is no ink, framed in the group's colour
SHAPE_SHARE = 0.075  # a shape's side as a share of the map's larger span (about 70 px on a 950 px map)
SHAPE_PX = 96  # side of a shape's PNG: 2 px per cell of a 48-cell mean, crisp on a high-density screen
SHAPE_FRAME_PX = 3
SHAPE_BACKDROP_ALPHA = 150  # white behind the ink, at this opacity of 255: the points under it still show
SHAPE_LEVELS = 32  # shades of grey in a shape's PNG
DENSEST_BINS = 48  # the map is cut into this many cells a side to find where each group is densest
SHAPE_PLACE_SAMPLE = 100_000  # above DENSITY_ABOVE images, the shapes are placed from this many points


def colour(cluster: int) -> str:
    return NOISE_COLOUR if cluster < 0 else PALETTE[cluster % len(PALETTE)]


def text(value: object) -> str:
    """A text from a file, a folder or an upload (a group's name, an undo text, a path, an error naming them)
    made inert for whatever Streamlit shows it with: Markdown (st.markdown, captions, alerts, widget labels,
    radio options, help) and HTML (``unsafe_allow_html``). Every ASCII character that is neither a letter, a
    digit nor a space becomes its numeric character reference (``[`` is ``&#91;``), and a bare address gets an
    invisible word joiner (``NO_AUTOLINK``) so that it is not made a link: the reader sees the same
    text, but no link, image, emphasis, tag, directive or formula can form from it, so a curation file or a
    file name cannot make the page load an outside URL or show a live link. Invisible and control characters
    are escaped too (``\\u202e``): a name cannot hide or reorder the text around it."""
    return "\n".join(_inert(shown(line)) for line in str(value).split("\n"))


# GFM makes a bare address a link after parsing, whatever the references: http:// and https://, www.,
# a@b.org, mailto: and xmpp:. An invisible word joiner inside each of these stops it (only there: a path
# or a tcp:// address copied from a message stays as it was)
NO_AUTOLINK = re.compile(
    r"(?<=http:)(?=//)|(?<=https:)(?=//)|(?<=www)(?=\.)|(?<=@)(?=[\w-])|(?<=mailto:)|(?<=xmpp:)", re.IGNORECASE
)
WORD_JOINER = "\u2060"


def _inert(line: str) -> str:
    line = NO_AUTOLINK.sub(WORD_JOINER, line)
    return "".join(c if not c.isascii() or c.isalnum() or c == " " else f"&#{ord(c)};" for c in line)


def swatch_header(group: int, title: str, details: str) -> str:
    """A cluster's or group's header as HTML for st.markdown: a square in the colour of ``group`` (-1: grey,
    in no group), the ``title`` in bold, then `` · details``. Both are made inert (``text``): a name is text,
    never HTML or Markdown."""
    return (
        f"<span style='color:{colour(group)};font-size:{SWATCH_EM}em'>&#9632;</span> "
        f"<b>{text(title)}</b> · {text(details)}"
    )


def png_data_uri(png_bytes: bytes) -> str:
    """PNG bytes as a data URI: the source of a plotly layout image or of an image in a table cell."""
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def shrink_keeping_dots(masks: np.ndarray, side: int = THUMB_PX) -> np.ndarray:
    """Shrink ink masks (m, g, g) to at most ``side`` px with a max over each block.

    A block with any ink stays ink, so a 1-2 px dot survives where averaging would fade it to
    nothing. Masks already small enough are kept as they are.
    """
    m, g, _ = masks.shape
    factor = max(1, -(-g // side))
    if factor == 1:
        return masks
    padded_side = -(-g // factor) * factor
    padded = np.zeros((m, padded_side, padded_side), bool)
    padded[:, :g, :g] = masks
    blocks = padded.reshape(m, padded_side // factor, factor, padded_side // factor, factor)
    return blocks.any(axis=(2, 4))


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(size=11)


def montage(
    masks: np.ndarray,
    captions: Sequence[str] | None = None,
    columns: int = 8,
    side: int = THUMB_PX,
    frames: Sequence[str] | None = None,
) -> Image.Image:
    """One image holding thumbnails of ink masks (m, g, g), in rows of ``columns``.

    ``captions`` are written under each thumbnail (cut to fit); ``frames`` colours each border.
    """
    small = shrink_keeping_dots(np.asarray(masks, bool), side)
    m = len(small)
    cell = small.shape[1] if m else side
    scale = max(1, side // cell)
    thumb = cell * scale
    columns = max(1, min(columns, m))
    rows = max(1, -(-m // columns))
    caption_px = CAPTION_PX if captions is not None else 0
    step_x, step_y = thumb + GAP_PX, thumb + GAP_PX + caption_px
    canvas = np.full((rows * step_y + GAP_PX, columns * step_x + GAP_PX, 3), 255, np.uint8)
    for i in range(m):
        r, c = divmod(i, columns)
        y, x = GAP_PX + r * step_y, GAP_PX + c * step_x
        tile = np.where(np.kron(small[i], np.ones((scale, scale), bool)), INK, 255).astype(np.uint8)
        canvas[y : y + thumb, x : x + thumb] = tile[:, :, None]
        border = _rgb(frames[i]) if frames is not None else (BORDER, BORDER, BORDER)
        canvas[y - 1, x - 1 : x + thumb + 1] = border
        canvas[y + thumb, x - 1 : x + thumb + 1] = border
        canvas[y - 1 : y + thumb + 1, x - 1] = border
        canvas[y - 1 : y + thumb + 1, x + thumb] = border
    image = Image.fromarray(canvas)
    if captions is not None and m:
        draw, font = ImageDraw.Draw(image), _font()
        for i, text in enumerate(captions[:m]):
            r, c = divmod(i, columns)
            draw.text(
                (GAP_PX + c * step_x, GAP_PX + r * step_y + thumb + 1),
                _fit(draw, str(text), font, thumb),
                (60, 60, 60),
                font,
            )
    return image


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """The text, or its end with a leading ellipsis, within ``width`` pixels (file names differ at the end)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength("…" + text, font=font) > width:
        text = text[1:]
    return "…" + text


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def density_image(density: np.ndarray, width: int = 144, row_stretch: float = 1.0) -> Image.Image:
    """A density (rows, cols) in 0..1, drawn dark on white, ``width`` px wide (rows taller by ``row_stretch``)."""
    shade = np.sqrt(np.clip(density, 0.0, 1.0))  # faint parts of a shape still show
    pixels = (255 - shade * (255 - INK)).astype(np.uint8)
    rows, cols = density.shape
    height = max(1, round(width * rows / cols * row_stretch))
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.NEAREST)
    ImageDraw.Draw(image).rectangle((0, 0, width - 1, height - 1), outline=BORDER)  # where the frame ends
    return image


def shape_positions(xy: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Where each group's typical shape goes on the map: ndarray of shape (k, 2); NaN for a group with no points.

    The place is the mean of the group's points in its densest area (the 3 x 3 cells of a
    ``DENSEST_BINS`` grid over the map holding most of its points), not the median of all its points:
    a group in two islands, or bent like a banana, has its median in the empty space between, where
    the shape would label nothing. Labels outside 0..k-1 (-1: in no group) are ignored.
    """
    xy, labels = np.asarray(xy, np.float64), np.asarray(labels)
    positions = np.full((k, 2), np.nan)
    keep = (labels >= 0) & (labels < k)
    if k == 0 or not keep.any():
        return positions
    xy, labels = xy[keep], labels[keep].astype(np.int64)
    low = xy.min(axis=0)
    span = max(float((xy.max(axis=0) - low).max()), 1e-12)
    cells = np.minimum(((xy - low) / span * DENSEST_BINS).astype(np.int64), DENSEST_BINS - 1)  # (n, 2)
    flat = labels * DENSEST_BINS**2 + cells[:, 0] * DENSEST_BINS + cells[:, 1]
    counts = np.bincount(flat, minlength=k * DENSEST_BINS**2).reshape(k, DENSEST_BINS, DENSEST_BINS)
    padded = np.pad(counts, ((0, 0), (1, 1), (1, 1)))
    area = sum(padded[:, i : i + DENSEST_BINS, j : j + DENSEST_BINS] for i in range(3) for j in range(3))
    best = np.stack(np.unravel_index(area.reshape(k, -1).argmax(axis=1), (DENSEST_BINS, DENSEST_BINS)), axis=1)
    near = np.all(np.abs(cells - best[labels]) <= 1, axis=1)  # in its group's densest 3 x 3 cells
    members = np.bincount(labels[near], minlength=k)
    for axis in range(2):
        sums = np.bincount(labels[near], xy[near, axis], minlength=k)
        positions[:, axis] = np.where(members > 0, sums / np.maximum(members, 1), np.nan)
    return positions


def shape_png(density: np.ndarray, frame: str, side: int = SHAPE_PX) -> bytes:
    """A typical shape (cells, cells) in 0..1 as a PNG for the map: dark ink on see-through white, framed.

    The ink is opaque, the white behind it only ``SHAPE_BACKDROP_ALPHA``, so the points under a
    shape still show; the ``SHAPE_FRAME_PX`` frame in ``frame`` (the group's colour) says whose it is.
    Each cell becomes a block of pixels, about ``side`` in all. A palette PNG of ``SHAPE_LEVELS``
    shades: 0.35 ms and 2 kB a shape, a third of the time and size of an RGBA one.
    """
    shade = np.sqrt(np.clip(np.asarray(density, np.float64), 0.0, 1.0))  # faint parts still show
    index = np.rint(shade * (SHAPE_LEVELS - 1)).astype(np.uint8)
    scale = max(1, -(-side // max(index.shape)))
    index = np.repeat(np.repeat(index, scale, axis=0), scale, axis=1)
    frame_index, f = SHAPE_LEVELS, SHAPE_FRAME_PX
    index[:f], index[-f:], index[:, :f], index[:, -f:] = frame_index, frame_index, frame_index, frame_index
    levels = np.linspace(0.0, 1.0, SHAPE_LEVELS)  # no ink: the backdrop alone; full ink: opaque
    grey = (255 - levels * (255 - INK)).astype(np.uint8)
    alpha = (SHAPE_BACKDROP_ALPHA + levels * (255 - SHAPE_BACKDROP_ALPHA)).astype(np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette([*np.repeat(grey, 3).tolist(), *_rgb(frame)])
    out = io.BytesIO()
    image.save(out, format="PNG", transparency=bytes([*alpha.tolist(), 255]))
    return out.getvalue()


def shape_images(xy: np.ndarray, labels: np.ndarray, shapes: np.ndarray) -> list[dict]:
    """Plotly layout images: each group's typical shape at its place (:func:`shape_positions`).

    ``shapes`` (k, cells, cells) holds one density per label value 0..k-1; a group with no points
    gets no image. Each is a square ``SHAPE_SHARE`` of the map's larger span, in data units, so it
    keeps its place and size relative to the points when the map is zoomed.
    """
    k = len(shapes)
    positions = shape_positions(xy, labels, k) if len(xy) <= DENSITY_ABOVE else sampled_shape_positions(xy, labels, k)
    if not len(xy):
        return []
    xy = np.asarray(xy, np.float64)
    side = SHAPE_SHARE * max(float((xy.max(axis=0) - xy.min(axis=0)).max()), 1e-12)
    images = []
    for c in np.flatnonzero(~np.isnan(positions[:, 0])):
        images.append(
            {
                "source": png_data_uri(shape_png(shapes[c], colour(int(c)))),
                "xref": "x",
                "yref": "y",
                "x": float(positions[c, 0]),
                "y": float(positions[c, 1]),
                "sizex": side,
                "sizey": side,
                "xanchor": "center",
                "yanchor": "middle",
                "sizing": "contain",
                "layer": "above",
                "name": f"shape {c}",
            }
        )
    return images


def sampled_shape_positions(xy: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """:func:`shape_positions` from a fixed sample of SHAPE_PLACE_SAMPLE points: 20 ms at a million
    against 200 ms for all of them, on every move of k. A group too small to be in the sample is
    placed from its own points."""
    labels = np.asarray(labels)
    rows = map_sample(len(xy), SHAPE_PLACE_SAMPLE)
    positions = shape_positions(np.asarray(xy)[rows], labels[rows], k)
    for c in np.flatnonzero(np.isnan(positions[:, 0])):
        members = np.flatnonzero(labels == c)
        if len(members):
            positions[c] = shape_positions(np.asarray(xy)[members], np.zeros(len(members), np.int64), 1)[0]
    return positions


def map_sample(n: int, size: int | None = None) -> np.ndarray:
    """A fixed sample of ``size`` (default DENSITY_SAMPLE) row ids, sorted: the same points on every redraw."""
    size = DENSITY_SAMPLE if size is None else size
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size, replace=False))


def density_layer(xy: np.ndarray, labels: np.ndarray, k: int) -> dict:
    """The map as one image: a 2-D histogram of every point, each bin in the colour of its commonest
    group (grey for images in no group) and more opaque the more images it holds (log scale).

    Returns a plotly layout image placed over the points' bounds in data units (under the sample).
    """
    xy = np.asarray(xy, np.float64)
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = np.maximum(high - low, 1e-12)
    shape = np.maximum(1, np.round(DENSITY_PX * span / span.max())).astype(np.int64)  # (bins x, bins y)
    cells = np.minimum(((xy - low) / span * shape).astype(np.int64), shape - 1)
    flat = (shape[1] - 1 - cells[:, 1]) * shape[0] + cells[:, 0]  # image rows run top down
    slots = k + 1  # the last slot: images in no group
    which = np.where(labels < 0, k, labels).astype(np.int64)
    counts = np.bincount(flat * slots + which, minlength=int(shape[0] * shape[1]) * slots).reshape(-1, slots)
    total = counts.sum(axis=1)
    palette = np.array([_rgb(colour(c)) for c in range(k)] + [_rgb(NOISE_COLOUR)], np.uint8)
    rgb = palette[counts.argmax(axis=1)]
    alpha = np.where(
        total > 0, DENSITY_MIN_ALPHA + (1 - DENSITY_MIN_ALPHA) * np.log1p(total) / np.log1p(total.max()), 0
    )
    rgba = np.concatenate([rgb, (255 * alpha).astype(np.uint8)[:, None]], axis=1).reshape(shape[1], shape[0], 4)
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG", compress_level=1)  # 2x faster than the default
    return {
        "source": png_data_uri(out.getvalue()),
        "xref": "x",
        "yref": "y",
        "x": float(low[0]),
        "y": float(high[1]),
        "sizex": float(span[0]),
        "sizey": float(span[1]),
        "xanchor": "left",
        "yanchor": "top",
        "sizing": "stretch",
        "layer": "below",
        "name": "density",
    }


def sizes_strip(sizes: Sequence[int], noise: int = 0) -> str:
    """A line of coloured chips 'cluster: size' as HTML for st.markdown; then 'none: noise' if any."""
    chips = [(colour(c), f"{c}: {size}") for c, size in enumerate(sizes)]
    if noise:
        chips.append((NOISE_COLOUR, f"none: {noise}"))
    return "".join(
        f"<span style='display:inline-block;margin:2px 6px 2px 0;padding:1px 6px;border-radius:4px;"
        f"background:{background};color:white;font-size:0.8em'>{text}</span>"
        for background, text in chips
    )
