"""Renderers: thumbnail montages, typical-shape images and plotly figures. They only draw."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

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
MARKER_SIZES = ((20_000, 3), (5_000, 4), (1_000, 5))  # (from this many points, marker size)


NOISE_COLOUR = "#c8c8c8"  # images in no group (automatic groups): light grey, never a group's colour


def colour(cluster: int) -> str:
    return NOISE_COLOUR if cluster < 0 else PALETTE[cluster % len(PALETTE)]


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


def marker_size(n: int) -> int:
    for threshold, size in MARKER_SIZES:
        if n >= threshold:
            return size
    return 7


def _discrete_scale(k: int) -> list[list]:
    """A colourscale giving cluster c (on cmin=-0.5 .. cmax=k-0.5) exactly colour(c)."""
    scale = []
    for c in range(k):
        scale += [[c / k, colour(c)], [(c + 1) / k, colour(c)]]
    return scale


def _group_hover(names: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Hover text of automatic groups: the name, then 'group g' or 'no group'."""
    groups = np.char.add("<br>group ", labels.astype(str))
    return np.char.add(np.asarray(names, dtype=str), np.where(labels < 0, "<br>no group", groups))


def map_figure(
    xy: np.ndarray,
    labels: np.ndarray,
    k: int,
    names: np.ndarray,
    title: str,
    marks: np.ndarray | None = None,
    mark_names: Sequence[str] | None = None,
    height: int = 620,
    word: str = "cluster",
) -> go.Figure:
    """All images as one WebGL scatter coloured by cluster; row ids in ``customdata``.

    ``names`` (n,) is an array of strings, the hover text (a list costs plotly 20x more to check).

    ``marks`` (m, 2) adds starred points (new images) as a second trace. ``word`` names what the
    colours are ("cluster", or "group" for groups found without a k); labels of -1 (in no group)
    are drawn grey.
    """
    n = len(xy)
    noise = bool(len(labels)) and labels.min() < 0  # automatic groups: -1 is no group, drawn grey
    colours = np.where(labels < 0, k, labels) if noise else labels
    scale = _discrete_scale(k + 1 if noise else k)
    if noise:
        scale[-2:] = [[scale[-2][0], NOISE_COLOUR], [1.0, NOISE_COLOUR]]
    ticks = list(range(k + 1 if noise else k))
    fig = go.Figure(
        go.Scattergl(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="markers",
            customdata=np.arange(n),
            text=_group_hover(names, labels) if noise else names,
            marker={
                "color": colours,
                "colorscale": scale,
                "cmin": -0.5,
                "cmax": len(ticks) - 0.5,
                "size": marker_size(n),
                "colorbar": {
                    "title": {"text": word},
                    "tickvals": ticks,
                    "ticktext": [str(t) for t in range(k)] + (["none"] if noise else []),
                    "len": 0.9,
                },
            },
            hovertemplate="%{text}<extra></extra>"
            if noise
            else f"%{{text}}<br>{word} %{{marker.color}}<extra></extra>",
            name="images",
            showlegend=False,
        )
    )
    if marks is not None and len(marks):
        fig.add_trace(
            go.Scatter(
                x=marks[:, 0],
                y=marks[:, 1],
                mode="markers+text",
                text=list(mark_names or []),
                textposition="top center",
                marker={"symbol": "star", "size": 18, "color": "black", "line": {"color": "white", "width": 1.5}},
                hovertemplate="new image %{text}<extra></extra>",
                name="new images",
                showlegend=False,
            )
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        dragmode="select",
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        plot_bgcolor="white",
    )
    return fig


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
