"""Demo data: black-dot-on-white PNGs of known groups, with their true labels.

Four kinds: ``shapes`` (the built-in demo: 8 families, any position, size, angle, mirror),
``hard-shapes`` (10 families with near-alike pairs, open curves, partial shapes, clutter dots and
varied dot size and density), ``dense`` (the shapes' families with the ink of real scans: 40-400 dots
of 3-5 px each, several thousand ink pixels an image, where the demo has a few hundred) and
``digits`` (scikit-learn's 1,797 real handwritten digits, drawn as dot clouds at a random place and
size) and ``glyphs`` (the letters A-J of 12 typefaces of the Hershey fonts, roman, italic and script,
their strokes drawn as dots, upright give or take a slant): the quality suite's and the benchmarks'
data (benchmarks/quality.py, benchmarks/).
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from core.demo.glyphs import (
    CANVAS,
    DIGIT_SIZE,
    GLYPH_FONTS,
    GLYPH_LETTERS,
    GLYPH_SIZE,
    MARGIN,
    digit_set,
    draw_digit,
    draw_glyph,
    render_dots,
)
from core.engine.atomic import atomic_file
from core.engine.processes import exit_with_owner, in_order, pool_context
from core.errors import DotmapError

MIN_RADIUS, MAX_RADIUS = 18.0, 80.0
MIN_DOTS, MAX_DOTS = 40, 160
JITTER = 0.035  # dot noise, as a share of the shape's radius


def _ring(rng: np.random.Generator, n: int) -> np.ndarray:
    t = rng.uniform(0, 2 * np.pi, n)
    return np.c_[np.cos(t), np.sin(t)]


def _disk(rng: np.random.Generator, n: int) -> np.ndarray:
    t = rng.uniform(0, 2 * np.pi, n)
    r = np.sqrt(rng.uniform(0, 1, n))
    return np.c_[r * np.cos(t), r * np.sin(t)]


def _line(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.c_[rng.uniform(-1, 1, n), np.zeros(n)]


def _cross(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.uniform(-1, 1, n)
    vertical = rng.random(n) < 0.5
    return np.c_[np.where(vertical, 0, u), np.where(vertical, u, 0)]


def _polygon(corners: int) -> Callable[[np.random.Generator, int], np.ndarray]:
    angles = np.pi / 2 + 2 * np.pi * np.arange(corners + 1) / corners
    vertices = np.c_[np.cos(angles), np.sin(angles)]

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        side = rng.integers(0, corners, n)
        s = rng.uniform(0, 1, n)[:, None]
        return vertices[side] * (1 - s) + vertices[side + 1] * s

    return draw


def _two_blobs(rng: np.random.Generator, n: int) -> np.ndarray:
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return np.c_[side * 0.75, np.zeros(n)] + rng.normal(0, 0.22, (n, 2))


def _spiral(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
    r = t / (3 * np.pi)
    return np.c_[r * np.cos(t), r * np.sin(t)]


def _squashed(
    draw: Callable[[np.random.Generator, int], np.ndarray],
) -> Callable[[np.random.Generator, int], np.ndarray]:
    """The shape flattened to SQUASH of its height: an ellipse from a ring, a rectangle from a square."""

    def squashed(rng: np.random.Generator, n: int) -> np.ndarray:
        return draw(rng, n) * np.array([1.0, SQUASH])

    return squashed


def _arc(rng: np.random.Generator, n: int) -> np.ndarray:
    t = rng.uniform(0, ARC_SPAN, n)  # an open curve: a ring with a gap
    return np.c_[np.cos(t), np.sin(t)]


SQUASH = 0.55
ARC_SPAN = 1.4 * np.pi

FAMILIES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "ring": _ring,
    "disk": _disk,
    "line": _line,
    "cross": _cross,
    "triangle": _polygon(3),
    "square": _polygon(4),
    "two-blobs": _two_blobs,
    "spiral": _spiral,
}
HARD_FAMILIES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "ring": _ring,
    "ellipse": _squashed(_ring),
    "disk": _disk,
    "square": _polygon(4),
    "rectangle": _squashed(_polygon(4)),
    "triangle": _polygon(3),
    "arc": _arc,
    "cross": _cross,
    "line": _line,
    "spiral": _spiral,
}
KINDS = ("shapes", "hard-shapes", "dense", "digits", "glyphs")
DENSE_DOTS = (40, 400)
DENSE_DOT_SIZES = (3, 5)  # px squares: dots of radius 1-2 px
HARD_DOTS = (25, 250)
HARD_DOT_SIZES = (1, 3)
PARTIAL_SHARE, PARTIAL_GAP = 0.3, np.pi / 3  # a third of the images miss a 60-degree sector
CLUTTER_MAX = 0.15  # stray dots anywhere on the canvas, up to this share of the shape's dots


def draw_demo_image(
    family: str, rng: np.random.Generator, size: int = CANVAS, hard: bool = False, dense: bool = False
) -> np.ndarray:
    """Draw one image of a family at a random position, size, angle, dot count and jitter.

    ``hard`` draws from HARD_FAMILIES with more varied dot counts and sizes, a missing sector in
    some images, and stray clutter dots. ``dense`` draws FAMILIES with DENSE_DOTS dots of
    DENSE_DOT_SIZES px (the ink of real scans).

    Returns
    -------
    image : ndarray of shape (size, size), uint8, 0 = black dot, 255 = white ground.
    """
    families = HARD_FAMILIES if hard else FAMILIES
    if family not in families:
        raise ValueError(f"family={family!r} should be one of {sorted(families)}.")
    low_dots, high_dots = HARD_DOTS if hard else DENSE_DOTS if dense else (MIN_DOTS, MAX_DOTS)
    n_dots = int(rng.integers(low_dots, high_dots + 1))
    unit = families[family](rng, n_dots)
    if hard and rng.random() < PARTIAL_SHARE:
        start = rng.uniform(-np.pi, np.pi)
        angle_of = np.arctan2(unit[:, 1], unit[:, 0])
        kept = np.mod(angle_of - start, 2 * np.pi) > PARTIAL_GAP
        if kept.sum() >= 3:
            unit = unit[kept]
    radius = rng.uniform(MIN_RADIUS, min(MAX_RADIUS, size / 2 - MARGIN))
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if rng.random() < 0.5:
        rotation[:, 1] *= -1  # a mirror image
    points = unit @ rotation.T * radius + rng.normal(0, JITTER * radius, unit.shape)
    low, high = radius + MARGIN, size - radius - MARGIN
    xy = points + rng.uniform(low, high, 2)
    if hard:
        clutter = int(rng.integers(0, int(CLUTTER_MAX * len(xy)) + 1))
        xy = np.concatenate([xy, rng.uniform(0, size, (clutter, 2))])
        dot = int(rng.integers(HARD_DOT_SIZES[0], HARD_DOT_SIZES[1] + 1))
    elif dense:
        dot = int(rng.integers(DENSE_DOT_SIZES[0], DENSE_DOT_SIZES[1] + 1))
    else:
        dot = int(rng.integers(1, 3))  # 1 or 2 px dots
    return render_dots(xy, dot, size)


BUILTIN_N = 2000
BUILTIN_SEED = 0


def builtin_demo_path(cache_root: str | os.PathLike) -> Path:
    """Where the built-in demo set lives (or will be made) inside the cache folder."""
    return Path(cache_root).expanduser() / f"demo-{BUILTIN_N}-seed{BUILTIN_SEED}"


def builtin_demo_ready(cache_root: str | os.PathLike) -> bool:
    """Whether the built-in demo set is complete (labels.csv is written last)."""
    return (builtin_demo_path(cache_root) / "labels.csv").exists()


def builtin_demo_dir(cache_root: str | os.PathLike, on_progress: Callable[[int, int, str], None] | None = None) -> Path:
    """The built-in demo set (BUILTIN_N images), made on first use inside the cache folder."""
    from filelock import FileLock

    from core.engine.cache import staging_prefix

    root = Path(cache_root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    folder = builtin_demo_path(root)
    with FileLock(str(folder) + ".lock"):
        if not builtin_demo_ready(root):
            staging = root / f"{staging_prefix(folder.name)}demo"
            shutil.rmtree(staging, ignore_errors=True)
            make_demo(staging, BUILTIN_N, BUILTIN_SEED, on_progress=on_progress)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(staging, folder)
    return folder


SUBFOLDER_FROM = 10_000  # a set of more images is "large": sub-folders, one seed per image, in parallel
FILES_PER_FOLDER = 1_000  # a large set's sub-folder holds this many images: no folder of a million entries
CHUNK_IMAGES = 500  # images a worker draws per task: about half a second, so progress and Ctrl-C are prompt
PROGRESS_EVERY = 250  # a small set reports progress after this many images


@dataclass(frozen=True)
class _Plan:
    """What a demo set holds: enough for a worker to draw and name any image by its index alone."""

    kind: str
    n: int
    seed: int
    size: int
    families: tuple[str, ...] | None  # the shape families, or the digits kept (None: all ten)
    large: bool  # sub-folders, a seed per image and 1-bit PNGs; else one flat folder and one stream
    per_folder: int = FILES_PER_FOLDER  # carried, not read from the module: a worker may not share its state

    def file_name(self, i: int) -> str:
        name = f"dots_{i:0{len(str(self.n - 1))}d}.png"
        if not self.large:
            return name
        return f"{i // self.per_folder:0{len(str((self.n - 1) // self.per_folder))}d}/{name}"

    def label(self, i: int) -> str:
        if self.kind == "glyphs":
            return self.families[i % len(self.families)]
        if self.kind == "digits":
            targets = digit_set(self.families)[1]
            return str(int(targets[i % len(targets)]))
        return self.families[i % len(self.families)]


def _save_png(image: np.ndarray, path: str, one_bit: bool) -> None:
    """A 1-bit PNG is smaller and faster to write and read than gray (notes/demo-speed.md)."""
    if not one_bit:
        Image.fromarray(image).save(path)
        return
    h, w = image.shape
    Image.frombytes("1", (w, h), np.packbits(image > 127, axis=1).tobytes()).save(path)


def _write_images(out: str, plan: _Plan, indices: range, stream: np.random.Generator | None = None) -> int:
    """Draw and write the images ``indices``, each from its own seed (plan.seed, index), or, for a
    small set, in turn from the one ``stream``. Returns how many were written."""
    digits = digit_set(plan.families)[0] if plan.kind == "digits" else None
    for i in indices:
        rng = stream if stream is not None else np.random.default_rng([plan.seed, i])
        if digits is not None:
            image = draw_digit(digits[i % len(digits)], rng, plan.size)
        elif plan.kind == "glyphs":
            image = draw_glyph(plan.label(i), GLYPH_FONTS[int(rng.integers(len(GLYPH_FONTS)))], rng, plan.size)
        else:
            image = draw_demo_image(
                plan.label(i), rng, plan.size, hard=plan.kind == "hard-shapes", dense=plan.kind == "dense"
            )
        _save_png(image, os.path.join(out, plan.file_name(i)), one_bit=plan.large)
    return len(indices)


def _start_worker(owner: int) -> None:
    """Pool initializer: Ctrl-C is the owner's to handle (it cancels what is queued), and a worker
    ends when its owner dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_owner(owner)


def _write_in_parallel(
    out: Path, plan: _Plan, workers: int, on_progress: Callable[[int, int, str], None] | None
) -> None:
    chunks = [range(i, min(i + CHUNK_IMAGES, plan.n)) for i in range(0, plan.n, CHUNK_IMAGES)]
    write = partial(_write_images, str(out), plan)
    pool = None
    if workers > 1 and len(chunks) > 1:
        pool = ProcessPoolExecutor(
            min(workers, len(chunks)), mp_context=pool_context(), initializer=_start_worker, initargs=(os.getpid(),)
        )
    try:
        done = 0
        counts = in_order(pool, write, chunks, ahead=2 * workers) if pool is not None else map(write, chunks)
        for count in counts:
            done += count
            if on_progress is not None:
                on_progress(done, plan.n, "demo")
    finally:
        if pool is not None:  # on Ctrl-C or an error, drop the queued chunks instead of drawing them all
            pool.shutdown(wait=True, cancel_futures=True)


def _label_rows(plan: _Plan) -> Iterator[tuple[str, str]]:
    for i in range(plan.n):
        yield plan.file_name(i), plan.label(i)


def make_demo(
    out_dir: str | os.PathLike,
    n: int = 2000,
    seed: int = 0,
    families: list[str] | None = None,
    size: int = CANVAS,
    on_progress: Callable[[int, int, str], None] | None = None,
    kind: str = "shapes",
    workers: int | None = None,
) -> Path:
    """Write ``n`` demo PNGs and ``labels.csv`` (filename,label) into a new folder.

    ``kind`` is one of KINDS. For shapes and glyphs (whose families are letters), families take turns,
    so every family has ``n // len(families)`` images or one more; digits are taken in scikit-learn's order, repeated
    (with new dots) past its 1,797, and ``families`` may name the digits ("0".."9") to keep.
    The folder must not exist yet or be empty: nothing already there is overwritten.

    A set of up to SUBFOLDER_FROM images is one flat folder of gray PNGs drawn in turn from one
    random stream (made in this process). A larger set is drawn by ``workers`` processes (default:
    every core), each image from its own seed (``seed``, index), so it is the same whatever the
    workers; its 1-bit PNGs go into sub-folders of FILES_PER_FOLDER (``000/dots_0000000.png``),
    named so in labels.csv. labels.csv is written last: a folder without it is unfinished.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} should be one of {KINDS}.")
    known = HARD_FAMILIES if kind == "hard-shapes" else tuple(GLYPH_LETTERS) if kind == "glyphs" else FAMILIES
    if kind != "digits":
        families = list(known) if families is None else families
    if families is not None and not families:
        raise ValueError("families should name at least one family.")
    tallest = {"digits": DIGIT_SIZE[1], "glyphs": GLYPH_SIZE[1]}.get(kind, 0)
    if size < 2 * (MIN_RADIUS + MARGIN) + 1 or size < tallest + 2 * MARGIN:
        raise ValueError(f"size={size} is too small for {kind}.")
    if n < 1:
        raise ValueError(f"n={n} should be >= 1.")
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers} should be >= 1.")
    unknown = [] if kind == "digits" else sorted(set(families) - set(known))
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {sorted(known)}.")
    chosen = None if families is None else tuple(families)
    plan = _Plan(kind, n, seed, size, chosen, large=n > SUBFOLDER_FROM, per_folder=FILES_PER_FOLDER)
    if kind == "digits" and not len(digit_set(plan.families)[1]):
        raise ValueError("families should name at least one digit, 0..9.")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DotmapError(f"{out} already exists and is not an empty folder; choose a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    if plan.large:
        for folder in sorted({os.path.dirname(plan.file_name(i)) for i in range(0, n, plan.per_folder)}):
            (out / folder).mkdir()
        _write_in_parallel(out, plan, workers or os.cpu_count() or 1, on_progress)
    else:
        stream = np.random.default_rng(seed)
        for start in range(0, n, PROGRESS_EVERY):
            done = _write_images(str(out), plan, range(start, min(start + PROGRESS_EVERY, n)), stream)
            if on_progress is not None:
                on_progress(start + done, n, "demo")
    with atomic_file(out / "labels.csv", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        writer.writerows(_label_rows(plan))
    return out
