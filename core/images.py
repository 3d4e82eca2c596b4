"""Reading a folder of images safely and fast into bit-packed ink masks on one working grid."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from core.errors import DotmapError, NoImagesError
from core.processes import exit_with_owner

FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF")
FORMAT_NAMES = "PNG, JPEG, BMP, TIFF or GIF"
MAX_PIXELS = 40_000_000  # larger images are refused as possible decompression bombs
MAX_FILE_BYTES = 512 * 2**20
INK_THRESHOLD = 128  # darkness (0..255) from which a pixel is ink
LABELS_FILE = "labels.csv"
POLARITIES = ("auto", "dark-on-light", "light-on-dark")
PARALLEL_FROM = 400  # fewer files than this are decoded in-process: a pool costs more than it saves
CHUNK_FILES = 500

ProgressFn = Callable[[int, int, str], None]


class ImageReadError(DotmapError):
    """One file could not be used as an image; the message is the reason shown to the user."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the data folder: its path relative to the folder, size in bytes, mtime in ns."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Inventory:
    """What a data folder holds: candidate image files (sorted), the labels file, the fingerprint."""

    root: Path
    files: list[FileEntry]
    labels_path: Path | None
    fingerprint: str


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
    """How many different masks a packed array (n, nbytes) holds."""
    return len({row.tobytes() for row in packed})


def scan_folder(root: str | os.PathLike) -> Inventory:
    """List every file below ``root`` (recursively, sorted) and fingerprint paths, sizes and mtimes.

    Every file except ``labels.csv`` at the top is a candidate image; files that are not images
    are reported as skipped when they are decoded, never dropped silently. ``labels.csv`` is not
    part of the fingerprint: nothing cached depends on it.
    """
    base = Path(root).expanduser()
    if not base.exists():
        raise NoImagesError(f"The folder {base} does not exist.")
    if not base.is_dir():
        raise NoImagesError(f"{base} is a file, not a folder of images.")
    entries: list[FileEntry] = []
    labels_path = None
    stack = [""]  # folders relative to base, as "" or "a/b/"; plain strings: pathlib per file costs 10x
    while stack:
        prefix = stack.pop()
        folder = base / prefix if prefix else base
        try:
            listing = list(os.scandir(folder))
        except OSError as exc:
            raise DotmapError(f"Cannot list the folder {folder}: {exc.strerror or exc}.") from None
        for item in listing:
            if item.is_dir(follow_symlinks=False):
                stack.append(f"{prefix}{item.name}/")
                continue
            if not item.is_file():
                continue
            rel = prefix + item.name
            if rel == LABELS_FILE:
                labels_path = Path(item.path)
                continue
            st = item.stat()
            entries.append(FileEntry(rel, st.st_size, st.st_mtime_ns))
    entries.sort(key=lambda e: e.path)
    digest = hashlib.sha256()
    for e in entries:
        digest.update(f"{e.path}\0{e.size}\0{e.mtime_ns}\n".encode())
    return Inventory(base, entries, labels_path, digest.hexdigest())


def _to_gray(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 gray levels (transparent areas become white ground)."""
    if im.mode == "L":
        return np.asarray(im)
    if im.mode == "1":
        return np.asarray(im.convert("L"))
    if im.mode in ("P", "PA", "RGBA", "LA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("L"))
    if im.mode.startswith("I;16"):
        values = np.asarray(im, dtype=np.float32) / 257.0
    elif im.mode in ("I", "F"):
        values = np.asarray(im, dtype=np.float32)
        top = float(values.max()) if values.size else 0.0
        scale = 1.0 if top <= 255 else (65535.0 if top <= 65535 else top)
        values = values * (255.0 / scale)
    else:
        return np.asarray(im.convert("L"))
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _ink_on_grid(gray: np.ndarray, grid: int, polarity: str) -> np.ndarray:
    """Ink mask (grid, grid) of a uint8 gray image: aspect kept, centred on empty ground.

    ``polarity="auto"`` takes the majority tone of the image as its ground.
    """
    dark = gray < INK_THRESHOLD
    if polarity == "auto":
        light_ink = 2 * np.count_nonzero(dark) > dark.size
    else:
        light_ink = polarity == "light-on-dark"
    h, w = gray.shape
    if h == grid and w == grid:
        return ~dark if light_ink else dark
    ink = ~dark if light_ink else dark
    scale = grid / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    # shrinking: a grid pixel that covers any ink is ink, so 1-px dots survive any factor
    coverage = Image.fromarray(ink.astype(np.uint8) * 255).resize((new_w, new_h), Image.Resampling.BOX)
    mask = np.zeros((grid, grid), bool)
    top, left = (grid - new_h) // 2, (grid - new_w) // 2
    threshold = 1 if scale < 1 else 128
    mask[top : top + new_h, left : left + new_w] = np.asarray(coverage) >= threshold
    return mask


def _open_bytes(source: str | os.PathLike | bytes) -> io.BytesIO:
    """The whole file in memory: read once, decoded twice for PNG (verify, then load)."""
    if isinstance(source, bytes | bytearray):
        if not source:
            raise ImageReadError("the file is empty (0 bytes)")
        return io.BytesIO(source)
    size = os.stat(source).st_size
    if size == 0:
        raise ImageReadError("the file is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ImageReadError(f"{size:,} bytes is over the file size limit of {MAX_FILE_BYTES:,}")
    with open(source, "rb") as f:
        return io.BytesIO(f.read())


def decode_image(
    source: str | os.PathLike | bytes,
    grid: int = 200,
    polarity: str = "auto",
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Decode one image file (path or bytes) into an ink mask of shape (grid, grid), bool.

    Only the formats in ``FORMATS`` are tried; images of more than ``max_pixels`` pixels are
    refused before decoding; the whole file is decoded, so truncated files are caught.
    ``polarity="auto"`` treats the majority tone of each image as the ground.

    Raises
    ------
    ImageReadError
        With the reason the file cannot be used.
    """
    if polarity not in POLARITIES:
        raise ValueError(f"polarity={polarity!r} should be one of {POLARITIES}.")
    try:
        stream = _open_bytes(source)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream, formats=FORMATS) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageReadError(
                        f"{w}x{h} pixels is over the limit of {max_pixels:,} (a possible decompression bomb)"
                    )
                if w == 0 or h == 0:
                    raise ImageReadError("the image has no pixels")
                if im.format == "PNG":
                    # load() checks neither chunk CRCs nor the zlib checksum; verify() does
                    im.verify()
                    stream.seek(0)
                    im = Image.open(stream, formats=("PNG",))
                im.load()
                im = ImageOps.exif_transpose(im)
                gray = _to_gray(im)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError("the file does not exist (or disappeared while reading)") from None
    except IsADirectoryError:
        raise ImageReadError("it is a folder, not a file") from None
    except PermissionError:
        raise ImageReadError("permission denied") from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"not a {FORMAT_NAMES} image") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        # Pillow's own guard fires while reading the header, before the size is ours to check
        raise ImageReadError(f"too many pixels, a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        detail = str(exc).strip() or type(exc).__name__
        raise ImageReadError(f"damaged or truncated image ({detail})") from None
    except Exception as exc:  # a malformed file can trip any decoder; it must not stop the run
        raise ImageReadError(f"cannot be decoded ({type(exc).__name__}: {exc})") from None
    return _ink_on_grid(gray, grid, polarity)


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


def _pool_context() -> BaseContext:
    """fork when this process runs one thread (no re-import of a user's script); forkserver else.

    Forking a process that runs other threads (a web server) can deadlock the child.
    """
    if threading.active_count() == 1:
        return get_context("fork")
    context = get_context("forkserver")
    context.set_forkserver_preload(["core.images", "core.processes"])
    return context


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
    kept_paths: list[str] = []
    skipped: list[tuple[str, str]] = []
    parts = [pack_masks(np.zeros((0, grid, grid), bool))]
    done = 0
    with ExitStack() as stack:
        if workers <= 1 or total < PARALLEL_FROM:
            results = map(decode, chunks)
        else:
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    min(workers, len(chunks)),
                    mp_context=_pool_context(),
                    initializer=exit_with_owner,
                    initargs=(os.getpid(),),
                )
            )
            results = pool.map(decode, chunks)  # in order, as each chunk is done
        for chunk, (packed, good, bad) in zip(chunks, results, strict=True):
            parts.append(packed)
            kept_paths.extend(chunk[i] for i in good)
            skipped.extend(bad)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, total, "read")
    packed = np.concatenate(parts)
    return ImageSet(packed, grid, kept_paths, skipped)


def read_labels(path: Path, paths: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Read ``labels.csv`` (filename,label) for the given image paths.

    Returns
    -------
    codes : ndarray of shape (n_images,), int; -1 where an image has no label.
    names : the label names, in code order.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DotmapError(f"Cannot read {path}: {exc}.") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["filename", "label"]:
        raise DotmapError(f"{path} should start with the header 'filename,label'.")
    mapping = {r[0].strip(): r[1].strip() for r in rows[1:] if len(r) >= 2 and r[1].strip()}
    names = sorted(set(mapping.values()))
    index = {name: i for i, name in enumerate(names)}
    codes = np.array([index.get(mapping.get(p, ""), -1) for p in paths], dtype=np.int64)
    return codes, names
