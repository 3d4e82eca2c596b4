"""Images given as one numpy array (.npy or .npz) instead of a folder: checked, named, and read a block at a time.

An array set is (n, h, w) or (n, h * w) of bool, integers 0..255 or floats 0..1 (0 is black), with
optional row names and labels. Its rows become ink masks exactly as the pixels of a grey image file
would (:func:`core.reading.decode.ink_on_grid`), so a folder and the array of its images give the same
clusters. The file is never loaded whole: rows are read by their offset (an .npz member through its
zip stream), a block at a time. Where the names and labels live:

- .npz: the members ``images`` (or the one array there is), ``names`` and ``labels``;
- .npy: ``NAME.names.txt`` (one name per line) or ``NAME.names.npy``, and ``NAME.labels.txt`` or
  ``NAME.labels.npy``, beside ``NAME.npy``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from core.engine.disk import path_status
from core.errors import DotmapError, NoImagesError
from core.reading.folders import FileEntry, Inventory, scan_folder
from core.reading.names import shown

ARRAY_SUFFIXES = (".npy", ".npz")
IMAGES, NAMES, LABELS = "images", "names", "labels"  # the members of an .npz
MAX_SIDE = 8192  # pixels; a side beyond this is a wrong shape, not an image
MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class ArraySource:
    """Where an array set's images are and how they are laid out.

    path : the .npy or .npz file. member : the .npz member of the images (None for .npy).
    n, height, width : images and their pixels. dtype : the stored dtype (its ``str``).
    offset : where the first row's bytes start in the .npy file, or in the .npz member's stream.
    """

    path: Path
    member: str | None
    n: int
    height: int
    width: int
    dtype: str
    offset: int

    @property
    def row_bytes(self) -> int:
        return self.height * self.width * np.dtype(self.dtype).itemsize


def is_array_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an array set (an .npy or .npz file) rather than a folder."""
    if Path(path).suffix.lower() not in ARRAY_SUFFIXES:
        return False
    found = path_status(path)  # a folder on the way that may not be entered: said in words, not raised
    return found is None or not stat.S_ISDIR(found.st_mode)


def _header(f: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except (ValueError, OSError, EOFError) as exc:
        raise DotmapError(f"{where} is not a readable numpy array ({exc}).") from None
    if dtype.hasobject:
        raise DotmapError(f"{where} holds Python objects; save the images as bool, uint8 or float arrays.")
    if fortran:
        raise DotmapError(f"{where} is in Fortran order; save it with np.save(path, np.ascontiguousarray(images)).")
    return tuple(shape), dtype, f.tell()


def _image_shape(shape: tuple[int, ...], where: str, image_shape: tuple[int, int] | None) -> tuple[int, int, int]:
    """(n, h, w) of an array of shape (n, h, w) or (n, h * w); the side of a flat row is inferred when square."""
    if len(shape) == 3:
        n, h, w = shape
        if image_shape is not None and tuple(image_shape) != (h, w):
            raise DotmapError(f"{where} holds {h}x{w} images, not {image_shape[0]}x{image_shape[1]}.")
    elif len(shape) == 2:
        n, size = shape
        if image_shape is not None:
            h, w = (int(x) for x in image_shape)
            if h * w != size:
                raise DotmapError(f"{where} has rows of {size:,} values, not {h}x{w} = {h * w:,}.")
        else:
            side = int(round(size**0.5))
            if side * side != size:
                raise DotmapError(
                    f"{where} has rows of {size:,} values, which is not a square image: give the image shape "
                    "(--image-shape HxW, or image_shape=(h, w) in Python), or save it as (n, h, w)."
                )
            h = w = side
    else:
        raise DotmapError(
            f"{where} has shape {shape}; an array of images is (n, height, width) or (n, height * width)."
        )
    if h < 1 or w < 1 or max(h, w) > MAX_SIDE:
        raise DotmapError(f"{where}: images of {h}x{w} pixels; a side should be 1..{MAX_SIDE}.")
    return int(n), int(h), int(w)


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind not in "biuf":
        raise DotmapError(f"{where} holds {dtype} values; images are bool, integers 0..255 or floats 0..1.")


def open_source(path: str | os.PathLike, image_shape: tuple[int, int] | None = None) -> ArraySource:
    """Check an .npy or .npz file of images by its header alone and say where its rows are."""
    path = Path(path).expanduser()
    where = shown(str(path))
    if not path.exists():
        raise NoImagesError(f"The array file {where} does not exist.")
    if not path.is_file():  # a named pipe or a device would hang the read
        raise DotmapError(f"{where} is not a regular file, so it cannot be an array of images.")
    if path.suffix.lower() == ".npz":
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m.removesuffix(".npy") for m in archive.namelist() if m.endswith(".npy")]
                candidates = [IMAGES] if IMAGES in members else [m for m in members if m not in (NAMES, LABELS)]
                if len(candidates) != 1:
                    raise DotmapError(
                        f"{where} holds the arrays {members or 'none'}; name the images 'images' "
                        "(np.savez(path, images=..., names=..., labels=...))."
                    )
                with archive.open(candidates[0] + ".npy") as f:
                    shape, dtype, offset = _header(f, f"{where} ({candidates[0]})")
                member = candidates[0]
        except (zipfile.BadZipFile, OSError) as exc:
            raise DotmapError(f"{where} is not a readable .npz file ({exc}).") from None
    else:
        try:
            with open(path, "rb") as f:
                shape, dtype, offset = _header(f, where)
        except OSError as exc:
            raise DotmapError(f"Cannot read {where}: {exc.strerror or exc}.") from None
        member = None
        size = path.stat().st_size
        if size < offset + int(np.prod(shape)) * dtype.itemsize:
            raise DotmapError(f"{where} is shorter than its header says ({size:,} bytes): it is truncated.")
    _check_dtype(dtype, where)
    n, h, w = _image_shape(shape, where, image_shape)
    return ArraySource(path, member, n, h, w, dtype.str, offset)


class RowReader(AbstractContextManager):
    """Reads consecutive rows of an array set as (m, h, w) arrays of its dtype; never the whole file."""

    def __init__(self, source: ArraySource) -> None:
        self.source = source
        self._archive = zipfile.ZipFile(source.path) if source.member else None
        self._file = self._archive.open(source.member + ".npy") if self._archive else open(source.path, "rb")  # noqa: SIM115

    def read(self, start: int, stop: int) -> np.ndarray:
        s = self.source
        self._file.seek(s.offset + start * s.row_bytes)  # a zip stream seeks forward by reading through
        data = self._file.read((stop - start) * s.row_bytes)
        if len(data) != (stop - start) * s.row_bytes:
            raise DotmapError(f"{shown(str(s.path))} ended before row {stop:,}: it is truncated.")
        return np.frombuffer(data, np.dtype(s.dtype)).reshape(stop - start, s.height, s.width)

    def __exit__(self, *exc: object) -> None:
        self._file.close()
        if self._archive is not None:
            self._archive.close()


def row_names(n: int) -> list[str]:
    """The names of unnamed rows: ``row_0``..``row_9``, zero-padded to one width (``row_00``..``row_11``)."""
    width = len(str(max(n - 1, 0)))
    return [f"row_{i:0{width}d}" for i in range(n)]


def _sidecar(source: ArraySource, what: str) -> Path | None:
    for suffix in (".txt", ".npy"):
        candidate = source.path.with_name(f"{source.path.stem}.{what}{suffix}")
        if candidate.is_file():
            return candidate
    return None


def _strings(values: np.ndarray, where: str) -> list[str]:
    if values.dtype.kind not in "USiub":
        raise DotmapError(f"{where} holds {values.dtype} values; give text (or whole numbers for labels).")
    if values.dtype.kind == "S":
        try:
            return [v.decode("utf-8") for v in values.reshape(-1)]
        except UnicodeDecodeError:
            raise DotmapError(f"{where} holds bytes that are not UTF-8 text.") from None
    return [str(v) for v in values.reshape(-1).tolist()]


def _read_member(source: ArraySource, what: str) -> tuple[list[str], str] | None:
    """The values of an .npz member or a sidecar file as text, and where they came from; None if absent."""
    if source.member is not None:
        with zipfile.ZipFile(source.path) as archive:
            if f"{what}.npy" not in archive.namelist():
                return None
            where = f"{shown(str(source.path))} ({what})"
            with archive.open(f"{what}.npy") as f:
                _, dtype, _ = _header(f, where)
                values = np.frombuffer(f.read(), dtype)
            return _strings(values, where), where
    path = _sidecar(source, what)
    if path is None:
        return None
    where = shown(str(path))
    try:
        if path.suffix == ".txt":
            return path.read_text(encoding="utf-8").splitlines(), where
        return _strings(np.load(path, allow_pickle=False), where), where
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DotmapError(f"Cannot read {where}: {exc}.") from None


def names_of(source: ArraySource) -> list[str]:
    """One distinct name per row: from the set's names (see the module), else ``row_NNN``."""
    found = _read_member(source, NAMES)
    if found is None:
        return row_names(source.n)
    names, where = found
    if len(names) != source.n:
        raise DotmapError(f"{where} has {len(names):,} names for {source.n:,} images: give one name per row.")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name.strip() or len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise DotmapError(f"{where}: the name of row {i} is empty or longer than {MAX_NAME_BYTES} bytes.")
        if name in seen:
            raise DotmapError(f"{where}: rows {seen[name]} and {i} have the same name {shown(name)!r}.")
        seen[name] = i
    return names


def labels_of(source: ArraySource) -> list[str] | None:
    """The true class of every row as text ('' for none), or None when the set has no labels."""
    found = _read_member(source, LABELS)
    if found is None:
        return None
    labels, where = found
    if len(labels) != source.n:
        raise DotmapError(f"{where} has {len(labels):,} labels for {source.n:,} images: give one label per row.")
    return [label.strip() for label in labels]


def labels_file(source: ArraySource) -> Path | None:
    """The file that holds the labels (the .npz itself, or the sidecar), for a stamp of its changes."""
    if source.member is not None:
        with zipfile.ZipFile(source.path) as archive:
            return source.path if f"{LABELS}.npy" in archive.namelist() else None
    return _sidecar(source, LABELS)


def scan_array(path: str | os.PathLike, image_shape: tuple[int, int] | None = None) -> Inventory:
    """The inventory of an array set: one entry per row (its name), and a fingerprint of the file and its names.

    Like a folder's, the fingerprint is of what the files are (size, change time, shape, names), not of
    every pixel: an array file rewritten in place is a new data set.
    """
    source = open_source(path, image_shape)
    names = names_of(source)
    st = source.path.stat()
    digest = hashlib.sha256(
        f"array\0{source.member}\0{source.n}\0{source.height}\0{source.width}\0{source.dtype}\0"
        f"{st.st_size}\0{st.st_mtime_ns}\n".encode()
    )
    for name in names:
        digest.update(name.encode("utf-8", "surrogateescape") + b"\n")
    files = [FileEntry(name, source.row_bytes, st.st_mtime_ns) for name in names]
    return Inventory(
        source.path, files, labels_file(source), digest.hexdigest(), folders=[("", st.st_mtime_ns)], array=source
    )


def scan_data(path: str | os.PathLike, image_shape: tuple[int, int] | None = None) -> Inventory:
    """The inventory of a data set: an array file (.npy, .npz) or a folder of image files."""
    if is_array_file(path):
        return scan_array(path, image_shape)
    if image_shape is not None:
        raise DotmapError("An image shape is given for arrays of flat rows; a folder's images have their own.")
    return scan_folder(path)
