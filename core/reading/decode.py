"""Decoding one file safely into an ink mask on the working grid: formats, size limits, PNG integrity."""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps

from core.errors import DotmapError
from core.reading.folders import special_kind

FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF")
FORMAT_NAMES = "PNG, JPEG, BMP, TIFF or GIF"
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)  # the first bytes of each accepted format (BMP's "BM" is too short to tell a damaged BMP by)
MAX_PIXELS = 40_000_000  # larger images are refused as possible decompression bombs
MAX_FILE_BYTES = 512 * 2**20
INK_THRESHOLD = 128  # darkness (0..255) from which a pixel is ink
POLARITIES = ("auto", "dark-on-light", "light-on-dark")


class ImageReadError(DotmapError):
    """One file could not be used as an image; the message is the reason shown to the user."""


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


BORDER_SHARE = 0.02  # the frame whose majority tone is the ground, as a share of the shorter side


def _light_ink(dark: np.ndarray) -> bool:
    """True when the ground is dark: the frame of the image is mostly dark.

    The frame, not the whole image: a dense shape (a disk over 57% of the canvas) is still ink
    on its ground. A frame split evenly falls back to the majority tone of the whole image.
    """
    h, w = dark.shape
    band = max(1, round(BORDER_SHARE * min(h, w)))
    if 2 * band >= min(h, w):
        dark_frame, frame = np.count_nonzero(dark), dark.size
    else:
        inner = dark[band:-band, band:-band]
        dark_frame, frame = np.count_nonzero(dark) - np.count_nonzero(inner), dark.size - inner.size
    if 2 * dark_frame != frame:
        return 2 * dark_frame > frame
    return 2 * np.count_nonzero(dark) > dark.size


def ink_on_grid(gray: np.ndarray, grid: int, polarity: str) -> np.ndarray:
    """Ink mask (grid, grid) of a uint8 gray image: aspect kept, centred on empty ground.

    ``polarity="auto"`` takes the majority tone of the image's frame as its ground.
    """
    dark = gray < INK_THRESHOLD
    light_ink = _light_ink(dark) if polarity == "auto" else polarity == "light-on-dark"
    ink = ~dark if light_ink else dark
    h, w = gray.shape
    if h == grid and w == grid:
        return ink
    scale = grid / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    # float coverage (mode F): a grid pixel that covers any ink is ink, so a 1-px dot survives any
    # shrink; in 8 bits its share of a 23x23 block or larger rounds to 0 and the dot is lost
    coverage = Image.fromarray(ink.astype(np.float32)).resize((new_w, new_h), Image.Resampling.BOX)
    mask = np.zeros((grid, grid), bool)
    top, left = (grid - new_h) // 2, (grid - new_w) // 2
    covered = np.asarray(coverage)
    mask[top : top + new_h, left : left + new_w] = covered > 0 if scale < 1 else covered >= 0.5
    return mask


def _open_bytes(source: str | os.PathLike | bytes) -> io.BytesIO:
    """The whole file in memory: read once, decoded twice for PNG (verify, then load).

    Opened without blocking and checked to be a regular file first: a named pipe or a device
    would otherwise hang the read or never end.
    """
    if isinstance(source, bytes | bytearray):
        if not source:
            raise ImageReadError("the file is empty (0 bytes)")
        return io.BytesIO(source)
    fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError(f"{special_kind(st.st_mode)}, not an image file")
        if st.st_size == 0:
            raise ImageReadError("the file is empty (0 bytes)")
        if st.st_size > MAX_FILE_BYTES:
            raise ImageReadError(f"{st.st_size:,} bytes is over the file size limit of {MAX_FILE_BYTES:,}")
        return io.BytesIO(f.read())


PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _may_be_short(im: Image.Image) -> bool:
    """Whether a loaded PNG could lack pixel data: Pillow pads a short one with zero bytes at the
    end, so a last row that holds any non-zero byte proves it whole (cheap; the full check costs
    about a fifth of a decode). Interlaced images fill rows out of order: they are always checked."""
    if im.info.get("interlace"):
        return True
    box = im.getbbox(alpha_only=False)  # where any byte is non-zero; ~1 µs for 200x200
    return box is None or box[3] < im.height


def _png_rows_missing(data: bytes) -> int | None:
    """How many bytes of pixel data a PNG lacks (0 when whole); None when it cannot be told.

    Pillow fills the rows of a PNG whose compressed data ends early with zeros and says nothing,
    so a file that declares 6000x6000 pixels and holds one row would pass as a black image.
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if colour not in PNG_CHANNELS:
        return None
    bits = PNG_CHANNELS[colour] * depth
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        w, h = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if w > 0 and h > 0:
            expected += h * (1 + (w * bits + 7) // 8)
    inflate, produced, at = zlib.decompressobj(), 0, 8
    while at + 8 <= len(data) and produced < expected:
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            produced += len(inflate.decompress(data[at + 8 : at + 8 + length], expected - produced + 1))
            while inflate.unconsumed_tail and produced < expected:
                produced += len(inflate.decompress(inflate.unconsumed_tail, expected - produced + 1))
        elif kind == b"IEND":
            break
        at += 12 + length
    return max(0, expected - produced)


def decode_image(
    source: str | os.PathLike | bytes,
    grid: int = 200,
    polarity: str = "auto",
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Decode one image file (path or bytes) into an ink mask of shape (grid, grid), bool.

    Only the formats in ``FORMATS`` are tried; images of more than ``max_pixels`` pixels are
    refused before decoding; the whole file is decoded, so truncated files are caught.
    ``polarity="auto"`` treats the majority tone of each image's frame as the ground.

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
                if im.format == "PNG" and _may_be_short(im):
                    missing = _png_rows_missing(stream.getvalue())
                    if missing:
                        raise ImageReadError(
                            f"damaged or truncated image (the pixel data ends early: {missing:,} bytes of "
                            f"the declared {w}x{h} are missing)"
                        )
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
        kind = next((name for magic, name in SIGNATURES if stream.getvalue().startswith(magic)), None)
        if kind is not None:  # it says it is one of ours, but its header cannot be read (a bad IHDR CRC)
            raise ImageReadError(f"damaged or truncated image (its {kind} header cannot be read)") from None
        raise ImageReadError(f"not a {FORMAT_NAMES} image") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        # Pillow's own guard fires while reading the header, before the size is ours to check
        raise ImageReadError(f"too many pixels, a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        detail = str(exc).strip() or type(exc).__name__
        raise ImageReadError(f"damaged or truncated image ({detail})") from None
    except Exception as exc:  # a malformed file can trip any decoder; it must not stop the run
        raise ImageReadError(f"cannot be decoded ({type(exc).__name__}: {exc})") from None
    return ink_on_grid(gray, grid, polarity)
