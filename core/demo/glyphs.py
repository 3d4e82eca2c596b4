"""Real glyphs drawn as dot clouds: scikit-learn's handwritten digits and the Hershey fonts' letters
(the hershey-fonts package's data); and the painter of every demo image's dots."""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np

CANVAS, MARGIN = 200, 4  # the demo images' size and the room kept free around a shape, in px
DIGIT_SIZE = (90.0, 180.0)  # px the 8x8 digit is drawn over
DIGIT_DOTS_PER_LEVEL = 0.6  # dots per unit of ink (0..16) in one of the 64 cells
GLYPH_LETTERS = "ABCDEFGHIJ"
# the Hershey typefaces with Latin capitals, less the blackletters (as dots they read as blots)
GLYPH_FONTS = (
    "futural", "futuram", "rowmans", "rowmand", "rowmant", "timesr", "timesrb", "timesi", "timesib",
    "scripts", "scriptc", "cursive",
)  # fmt: skip
GLYPH_SIZE = (80.0, 170.0)  # px the letter's height is drawn over
GLYPH_DOTS = (60, 260)
GLYPH_SLANT, GLYPH_TURN = 0.15, 0.12  # the most shear, and the most turn in radians, either way
GLYPH_JITTER = 0.008  # dot noise, as a share of the letter's height


@cache
def glyph_strokes(font: str, letter: str) -> np.ndarray:
    """The strokes of one letter of one Hershey typeface (the hershey-fonts package's files), y down, in
    units of the letter's height, starting at 0: ndarray of shape (segments, 2, 2)."""
    from HersheyFonts import HersheyFonts

    face = HersheyFonts()
    face.load_default_font(font)
    segments = np.array(list(face.lines_for_text(letter)), float)  # Hershey's own units: y goes down
    low = segments.reshape(-1, 2).min(0)
    height = max(np.ptp(segments[..., 1]), 1e-9)
    return (segments - low) / height


def glyph_points(letter: str, font: str, rng: np.random.Generator, size: int, margin: int) -> tuple[np.ndarray, int]:
    """One letter of a Hershey typeface as a dot cloud: dots spread along its strokes by length, at a random
    size and place on a ``size`` canvas, slanted and turned a little (upright: a turned letter may be another).
    Returns the dots' (x, y) in pixels (n, 2) and their size in pixels."""
    segments = glyph_strokes(font, letter)
    starts, ends = segments[:, 0], segments[:, 1]
    lengths = np.linalg.norm(ends - starts, axis=1)
    n = int(rng.integers(GLYPH_DOTS[0], GLYPH_DOTS[1] + 1))
    which = rng.choice(len(segments), n, p=lengths / lengths.sum())
    t = rng.uniform(0, 1, (n, 1))
    unit = starts[which] + t * (ends[which] - starts[which]) + rng.normal(0, GLYPH_JITTER, (n, 2))
    turn, slant = rng.uniform(-GLYPH_TURN, GLYPH_TURN), rng.uniform(-GLYPH_SLANT, GLYPH_SLANT)
    shape = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) @ np.array([[1, slant], [0, 1]])
    unit = (unit - unit.mean(0)) @ shape.T
    height = rng.uniform(*GLYPH_SIZE)
    points = unit * height
    low, high = points.min(0), points.max(0)
    room = np.maximum(size - 2 * margin - (high - low), 0)
    xy = points - low + margin + rng.uniform(0, 1, 2) * room
    return xy, int(rng.integers(1, 3))


def draw_glyph(letter: str, font: str, rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """One letter of a Hershey typeface as a dot cloud on a white ``size`` canvas: uint8, 0 = ink."""
    xy, dot = glyph_points(letter, font, rng, size, MARGIN)
    return render_dots(xy, dot, size)


def render_dots(xy: np.ndarray, dot: int, size: int) -> np.ndarray:
    """Square dots of ``dot`` px at ``xy`` (n, 2) on a white ``size`` canvas: uint8, 0 = ink."""
    image = np.full((size, size), 255, np.uint8)
    xy = np.rint(xy).astype(int)
    for dy in range(dot):
        for dx in range(dot):
            image[np.clip(xy[:, 1] + dy, 0, size - 1), np.clip(xy[:, 0] + dx, 0, size - 1)] = 0
    return image


def draw_digit(digit: np.ndarray, rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """One real handwritten digit (8x8 ink levels 0..16, scikit-learn's) as a dot cloud.

    Each of the 64 cells gets dots in proportion to its ink, spread evenly inside the cell; the
    digit is drawn over a random size and place (upright: a rotated 6 is a 9).
    """
    counts = rng.poisson(digit.reshape(8, 8) * DIGIT_DOTS_PER_LEVEL)
    rows, cols = np.nonzero(counts)
    repeats = counts[rows, cols]
    cells = np.c_[np.repeat(cols, repeats), np.repeat(rows, repeats)].astype(float)
    unit = (cells + rng.uniform(0, 1, cells.shape)) / 8.0  # 0..1 in both axes
    extent = rng.uniform(*DIGIT_SIZE)
    corner = rng.uniform(MARGIN, size - extent - MARGIN, 2)
    return render_dots(unit * extent + corner, int(rng.integers(1, 3)), size)


@lru_cache(maxsize=4)
def digit_set(kept: tuple[str, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits (data, target), only those named in ``kept``; once per process."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    chosen = [i for i, t in enumerate(bunch.target) if kept is None or str(int(t)) in kept]
    return bunch.data[chosen], bunch.target[chosen]
