"""Demo data: black-dot-on-white PNGs from a handful of shape families, with their true labels."""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import DotmapError

CANVAS = 200
MARGIN = 4
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


def draw_demo_image(family: str, rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """Draw one image of a family at a random position, size, angle, dot count and jitter.

    Returns
    -------
    image : ndarray of shape (size, size), uint8, 0 = black dot, 255 = white ground.
    """
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} should be one of {sorted(FAMILIES)}.")
    n_dots = int(rng.integers(MIN_DOTS, MAX_DOTS + 1))
    unit = FAMILIES[family](rng, n_dots)
    radius = rng.uniform(MIN_RADIUS, min(MAX_RADIUS, size / 2 - MARGIN))
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if rng.random() < 0.5:
        rotation[:, 1] *= -1  # a mirror image
    points = unit @ rotation.T * radius + rng.normal(0, JITTER * radius, unit.shape)
    low, high = radius + MARGIN, size - radius - MARGIN
    centre = rng.uniform(low, high, 2)
    xy = np.rint(points + centre).astype(int)
    dot = int(rng.integers(1, 3))  # 1 or 2 px dots
    image = np.full((size, size), 255, np.uint8)
    for dy in range(dot):
        for dx in range(dot):
            x = np.clip(xy[:, 0] + dx, 0, size - 1)
            y = np.clip(xy[:, 1] + dy, 0, size - 1)
            image[y, x] = 0
    return image


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

    from core.cache import staging_prefix

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


def make_demo(
    out_dir: str | os.PathLike,
    n: int = 2000,
    seed: int = 0,
    families: list[str] | None = None,
    size: int = CANVAS,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write ``n`` demo PNGs and ``labels.csv`` (filename,label) into a new folder.

    Families take turns, so every family has ``n // len(families)`` images or one more.
    The folder must not exist yet or be empty: nothing already there is overwritten.
    """
    families = list(FAMILIES) if families is None else families
    if not families:
        raise ValueError("families should name at least one family.")
    if size < 2 * (MIN_RADIUS + MARGIN) + 1:
        raise ValueError(f"size={size} should be >= {int(2 * (MIN_RADIUS + MARGIN)) + 1}.")
    if n < 1:
        raise ValueError(f"n={n} should be >= 1.")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {sorted(FAMILIES)}.")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DotmapError(f"{out} already exists and is not an empty folder; choose a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width = len(str(n - 1))
    rows = []
    for i in range(n):
        family = families[i % len(families)]
        name = f"dots_{i:0{width}d}.png"
        Image.fromarray(draw_demo_image(family, rng, size)).save(out / name)
        rows.append((name, family))
        if on_progress is not None and (i + 1 == n or (i + 1) % 250 == 0):
            on_progress(i + 1, n, "demo")
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        writer.writerows(rows)
    return out
