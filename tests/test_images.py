"""Tests of core.reading.images: folder scans, safe decoding of good and bad files, masks, labels."""

import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

import core.engine.processes
import core.reading.images
from core.errors import DotmapError
from core.reading.decode import ImageReadError, decode_image
from core.reading.folders import scan_folder
from core.reading.images import ImageSet, load_images, pack_masks, unpack_masks
from core.reading.labels import read_labels

INK, GROUND = 0, 255
NOT_AN_IMAGE = r"not a PNG, JPEG, BMP, TIFF or GIF image"
DAMAGED = r"damaged or truncated image"


def gray_of(mask: np.ndarray) -> np.ndarray:
    """Black ink on white ground: (h, w) bool -> (h, w) uint8."""
    return np.where(mask, INK, GROUND).astype(np.uint8)


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **options) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose IHDR claims width x height 8-bit gray pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def idat_span(png: bytes) -> tuple[int, int]:
    """Start and length of the data of the first IDAT chunk of a PNG."""
    at = png.index(b"IDAT")
    (length,) = struct.unpack(">I", png[at - 4 : at])
    return at + 4, length


def noisy_gray(rng: np.random.Generator, size: int) -> np.ndarray:
    """Scattered black dots on white (size, size), uint8: compresses badly, so files are long."""
    return gray_of(rng.random((size, size)) < 0.2)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def good_png(pattern: np.ndarray) -> bytes:
    return encode(gray_of(pattern))


@pytest.fixture
def noisy_png(rng: np.random.Generator) -> bytes:
    return encode(noisy_gray(rng, 32))


def bad_zero_byte(rng: np.random.Generator) -> bytes:
    return b""


def bad_truncated_png(rng: np.random.Generator) -> bytes:
    data = encode(noisy_gray(rng, 32))
    return data[: len(data) // 2]


def bad_truncated_jpeg(rng: np.random.Generator) -> bytes:
    data = encode(noisy_gray(rng, 64), "JPEG", quality=90)
    return data[: len(data) // 2]


def bad_text_as_png(rng: np.random.Generator) -> bytes:
    return b"this is not an image, only some words\n" * 4


def bad_pdf(rng: np.random.Generator) -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def bad_webp(rng: np.random.Generator) -> bytes:
    if not features.check("webp"):
        pytest.skip("this Pillow cannot write WebP")
    return encode(noisy_gray(rng, 16), "WEBP", lossless=True)


def bad_ppm(rng: np.random.Generator) -> bytes:
    return encode(noisy_gray(rng, 16), "PPM")


def bad_bit_flipped_png(rng: np.random.Generator) -> bytes:
    data = bytearray(encode(noisy_gray(rng, 32)))
    start, length = idat_span(bytes(data))
    middle = start + length // 2
    for i in range(middle - 8, middle + 8):
        data[i] ^= 0xFF
    return bytes(data)


def bad_short_png(rng: np.random.Generator) -> bytes:
    """Whole chunks, right checksums, but one row of the 600 rows its header declares."""
    header = struct.pack(">IIBBBBB", 600, 600, 8, 0, 0, 0, 0)
    row = b"\0" + b"\xff" * 600
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(row))
        + png_chunk(b"IEND", b"")
    )


BAD_FILES = [
    ("short.png", bad_short_png, r"damaged or truncated image \(the pixel data ends early: 359,999 bytes"),
    ("empty.png", bad_zero_byte, r"the file is empty \(0 bytes\)"),
    ("cut.png", bad_truncated_png, DAMAGED),
    ("cut.jpg", bad_truncated_jpeg, DAMAGED),
    ("words.png", bad_text_as_png, NOT_AN_IMAGE),
    ("paper.pdf", bad_pdf, NOT_AN_IMAGE),
    ("photo.webp", bad_webp, NOT_AN_IMAGE),
    ("picture.ppm", bad_ppm, NOT_AN_IMAGE),
    ("flipped.png", bad_bit_flipped_png, DAMAGED),
]


# ---------------------------------------------------------------- special files


def test_decoding_a_named_pipe_says_so_and_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageReadError, match=r"^a named pipe \(FIFO\), not an image file$"):
        decode_image(tmp_path / "pipe.png")


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize(("name", "make_bad", "reason"), BAD_FILES)
def test_bad_file_is_skipped_with_its_reason(
    tmp_path: Path,
    rng: np.random.Generator,
    good_png: bytes,
    pattern,
    name,
    make_bad,
    reason,
) -> None:
    (tmp_path / "good.png").write_bytes(good_png)
    (tmp_path / name).write_bytes(make_bad(rng))
    images = load_images(scan_folder(tmp_path), grid=16, workers=1)
    assert images.paths == ["good.png"]
    np.testing.assert_array_equal(images.unpack()[0], pattern)
    assert len(images.skipped) == 1
    skipped_path, skipped_reason = images.skipped[0]
    assert skipped_path == name
    assert skipped_reason  # never an empty reason
    assert re.search(reason, skipped_reason), skipped_reason


@pytest.mark.parametrize(("name", "make_bad", "reason"), BAD_FILES)
def test_decode_image_raises_for_bad_bytes(rng: np.random.Generator, name, make_bad, reason) -> None:
    with pytest.raises(ImageReadError, match=reason):
        decode_image(make_bad(rng), grid=16)


def test_every_bad_file_is_listed_while_good_ones_load(
    tmp_path: Path, rng: np.random.Generator, good_png: bytes
) -> None:
    good = {
        "ok.png": good_png,
        "ok.jpg": encode(noisy_gray(rng, 16), "JPEG"),
        "ok.gif": encode(noisy_gray(rng, 16), "GIF"),
        "ok.bmp": encode(noisy_gray(rng, 16), "BMP"),
        "ok.tif": encode(noisy_gray(rng, 16), "TIFF"),
    }
    for name, data in good.items():
        (tmp_path / name).write_bytes(data)
    for name, make_bad, _ in BAD_FILES:
        if name == "photo.webp" and not features.check("webp"):
            continue
        (tmp_path / name).write_bytes(make_bad(rng))
    images = load_images(scan_folder(tmp_path), grid=16, workers=1)
    assert sorted(images.paths) == sorted(good)
    assert images.packed.shape == (len(good), 32)
    skipped = dict(images.skipped)
    assert sorted(skipped) == sorted(name for name, *_ in BAD_FILES if name != "photo.webp" or features.check("webp"))
    assert all(skipped.values())


def test_every_byte_flip_inside_idat_is_refused(noisy_png: bytes) -> None:
    """A PNG's chunks carry CRCs: any flipped byte of the IDAT chunk (data or CRC) is damage."""
    start, length = idat_span(noisy_png)
    accepted = []
    for offset in range(length + 4):
        data = bytearray(noisy_png)
        data[start + offset] ^= 0xFF
        try:
            decode_image(bytes(data), grid=32)
        except ImageReadError:
            continue
        accepted.append(offset)
    assert not accepted, f"{len(accepted)} of {length + 4} flipped bytes unnoticed: {accepted}"


def test_huge_dimensions_are_refused_before_decoding_with_the_limit(
    tmp_path: Path,
) -> None:
    (tmp_path / "bomb.png").write_bytes(png_claiming_size(100_000, 100_000))
    images = load_images(scan_folder(tmp_path), grid=16, workers=1)
    assert images.paths == []
    [(path, reason)] = images.skipped
    assert path == "bomb.png"
    assert "10000000000 pixels" in reason and "limit" in reason, reason


def test_max_pixels_is_the_limit_named_in_the_reason(good_png: bytes) -> None:
    with pytest.raises(ImageReadError, match=r"16x16 pixels is over the limit of 100 "):
        decode_image(good_png, grid=16, max_pixels=100)


def test_load_images_passes_max_pixels_on(tmp_path: Path, good_png: bytes) -> None:
    (tmp_path / "good.png").write_bytes(good_png)
    images = load_images(scan_folder(tmp_path), grid=16, workers=1, max_pixels=255)
    assert images.paths == []
    assert images.skipped == [
        (
            "good.png",
            "16x16 pixels is over the limit of 255 (a possible decompression bomb)",
        )
    ]


def test_image_at_max_pixels_is_accepted(good_png: bytes, pattern: np.ndarray) -> None:
    np.testing.assert_array_equal(decode_image(good_png, grid=16, max_pixels=256), pattern)


def test_a_file_that_disappeared_is_skipped(tmp_path: Path, good_png: bytes) -> None:
    (tmp_path / "gone.png").write_bytes(good_png)
    inventory = scan_folder(tmp_path)
    (tmp_path / "gone.png").unlink()
    images = load_images(inventory, grid=16, workers=1)
    assert images.skipped == [("gone.png", "the file does not exist (or disappeared while reading)")]


# ---------------------------------------------------------------- pixel modes


def as_16_bit(mask: np.ndarray) -> Image.Image:
    # Both levels need the /257 scaling: read as 8-bit they would both clip to white.
    return Image.fromarray(np.where(mask, 20_000, 50_000).astype(np.uint16))


def as_rgb(mask: np.ndarray) -> Image.Image:
    rgb = np.where(mask[..., None], [30, 60, 90], [250, 240, 230]).astype(np.uint8)
    return Image.fromarray(rgb)


def as_palette(mask: np.ndarray) -> Image.Image:
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette([255, 255, 200, 20, 20, 120])
    return image


def as_palette_transparent_black(mask: np.ndarray) -> Image.Image:
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 0, 0, 0])
    image.info["transparency"] = 0
    return image


def as_rgba_transparent_black(mask: np.ndarray) -> Image.Image:
    rgba = np.zeros(mask.shape + (4,), np.uint8)  # ground: black, fully transparent
    rgba[mask, 3] = 255  # ink: black, opaque
    return Image.fromarray(rgba)


def as_la_transparent_black(mask: np.ndarray) -> Image.Image:
    la = np.zeros(mask.shape + (2,), np.uint8)
    la[mask, 1] = 255
    return Image.fromarray(la, mode="LA")


def as_one_bit(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(~mask)  # bool -> mode "1", True is white


@pytest.mark.parametrize(
    ("make_image", "mode"),
    [
        (as_16_bit, "I;16"),
        (as_rgb, "RGB"),
        (as_palette, "P"),
        (as_palette_transparent_black, "P"),
        (as_rgba_transparent_black, "RGBA"),
        (as_la_transparent_black, "LA"),
        (as_one_bit, "1"),
    ],
)
def test_pixel_modes_decode_to_the_drawn_ink(pattern: np.ndarray, make_image, mode) -> None:
    data = encode(make_image(pattern))
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == mode  # the file really has the mode under test
    np.testing.assert_array_equal(decode_image(data, grid=16), pattern)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "GIF"])
def test_lossless_formats_decode_to_the_drawn_ink(pattern: np.ndarray, fmt: str) -> None:
    np.testing.assert_array_equal(decode_image(encode(gray_of(pattern), fmt), grid=16), pattern)


def test_decode_image_reads_a_path(tmp_path: Path, good_png: bytes, pattern: np.ndarray) -> None:
    (tmp_path / "good.png").write_bytes(good_png)
    np.testing.assert_array_equal(decode_image(tmp_path / "good.png", grid=16), pattern)


def test_exif_orientation_is_applied(pattern: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down
    data = encode(gray_of(pattern), exif=exif)
    np.testing.assert_array_equal(decode_image(data, grid=16), np.rot90(pattern, 2))


# ---------------------------------------------------------------- polarity


def test_auto_polarity_keeps_a_dense_shape_as_ink() -> None:
    yy, xx = np.mgrid[:200, :200]
    disk = (yy - 100) ** 2 + (xx - 100) ** 2 < 85**2  # 57% of the canvas
    assert disk.mean() > 0.5
    np.testing.assert_array_equal(decode_image(encode(gray_of(disk)), grid=200), disk)
    np.testing.assert_array_equal(decode_image(encode(255 - gray_of(disk)), grid=200), disk)


def test_auto_polarity_falls_back_to_the_majority_when_the_frame_is_split() -> None:
    half = np.zeros((40, 40), bool)
    half[:, :20] = True  # the frame is half ink, half ground; so is the image: ink stays dark
    np.testing.assert_array_equal(decode_image(encode(gray_of(half)), grid=40), half)


@pytest.mark.parametrize("size", [16, 32], ids=["on-grid", "resampled"])
def test_auto_polarity_reads_inverted_image_like_the_original(pattern: np.ndarray, size: int) -> None:
    mask = np.kron(pattern, np.ones((size // 16, size // 16), bool))
    original = decode_image(encode(gray_of(mask)), grid=16)
    inverted = decode_image(encode(255 - gray_of(mask)), grid=16)
    np.testing.assert_array_equal(original, pattern)
    np.testing.assert_array_equal(inverted, original)


@pytest.mark.parametrize(
    ("inverted", "polarity", "ink_is_pattern"),
    [
        (False, "dark-on-light", True),
        (True, "light-on-dark", True),
        (False, "light-on-dark", False),
        (True, "dark-on-light", False),
    ],
)
def test_explicit_polarity(pattern: np.ndarray, inverted, polarity, ink_is_pattern) -> None:
    gray = 255 - gray_of(pattern) if inverted else gray_of(pattern)
    expected = pattern if ink_is_pattern else ~pattern
    np.testing.assert_array_equal(decode_image(encode(gray), 16, polarity=polarity), expected)


def test_explicit_polarity_keeps_majority_ink(pattern: np.ndarray) -> None:
    """A mostly-black drawing on white stays black ink when the polarity is given."""
    np.testing.assert_array_equal(decode_image(encode(gray_of(~pattern)), 16, polarity="dark-on-light"), ~pattern)


def test_decode_image_refuses_an_unknown_polarity(good_png: bytes) -> None:
    with pytest.raises(ValueError, match=r"polarity='sideways' should be one of"):
        decode_image(good_png, polarity="sideways")


def test_load_images_refuses_an_unknown_polarity(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"polarity='dark' should be one of"):
        load_images(scan_folder(tmp_path), polarity="dark")


@pytest.mark.parametrize("grid", [0, 7])
def test_load_images_refuses_a_tiny_grid(tmp_path: Path, grid: int) -> None:
    with pytest.raises(ValueError, match=rf"grid={grid} should be >= 8"):
        load_images(scan_folder(tmp_path), grid=grid)


# ---------------------------------------------------------------- resampling


def corner_squares(height: int, width: int, side: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    for rows in (slice(0, side), slice(height - side, height)):
        for cols in (slice(0, side), slice(width - side, width)):
            mask[rows, cols] = True
    return mask


def test_wide_image_lands_in_a_centred_band() -> None:
    """400 wide x 200 high onto grid 100: scale 1/4, rows 25..74 hold the image."""
    mask = decode_image(encode(gray_of(corner_squares(200, 400, 4))), grid=100)
    assert sorted(map(tuple, np.argwhere(mask))) == [
        (25, 0),
        (25, 99),
        (74, 0),
        (74, 99),
    ]


def test_tall_image_lands_in_a_centred_column_band() -> None:
    mask = decode_image(encode(gray_of(corner_squares(400, 200, 4))), grid=100)
    assert sorted(map(tuple, np.argwhere(mask))) == [
        (0, 25),
        (0, 74),
        (99, 25),
        (99, 74),
    ]


def test_padding_stays_empty_for_inverted_wide_image() -> None:
    gray = 255 - gray_of(corner_squares(200, 400, 4))
    mask = decode_image(encode(gray), grid=100)
    assert not mask[:25].any() and not mask[75:].any()
    assert mask[25:75].sum() == 4


@pytest.mark.parametrize("shift", [0, 1], ids=["even", "odd"])
def test_one_pixel_dots_survive_a_2x_shrink(pattern: np.ndarray, shift: int) -> None:
    big = np.zeros((32, 32), bool)
    ys, xs = np.nonzero(pattern)
    big[2 * ys + shift, 2 * xs + shift] = True
    np.testing.assert_array_equal(decode_image(encode(gray_of(big)), grid=16), pattern)


@pytest.mark.parametrize("size", [4600, 7000])
def test_one_pixel_dot_survives_a_shrink_of_23x_or_more(size: int) -> None:
    gray = np.full((size, size), GROUND, np.uint8)
    gray[size // 2 + 1, size // 3] = INK
    mask = decode_image(encode(gray), grid=200, max_pixels=size * size)
    assert mask.sum() == 1
    ((y, x),) = np.argwhere(mask)
    assert (y, x) == ((size // 2 + 1) * 200 // size, (size // 3) * 200 // size)


def test_small_image_is_enlarged_onto_the_grid(pattern: np.ndarray) -> None:
    small = pattern[::2, ::2]
    expected = np.kron(small, np.ones((2, 2), bool))
    np.testing.assert_array_equal(decode_image(encode(gray_of(small)), grid=16), expected)


# ---------------------------------------------------------------- load_images


@pytest.fixture
def many_files(tmp_path: Path, rng: np.random.Generator) -> Path:
    """Eleven images of random sizes plus one bad file, in two folders."""
    root = tmp_path / "many"
    (root / "sub").mkdir(parents=True)
    for i in range(11):
        size = int(rng.integers(10, 40))
        folder = root / "sub" if i % 3 == 0 else root
        (folder / f"img_{i:02d}.png").write_bytes(encode(noisy_gray(rng, size)))
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


def test_parallel_load_equals_serial_load(monkeypatch, many_files: Path) -> None:
    monkeypatch.setattr(core.reading.images, "PARALLEL_FROM", 4)
    monkeypatch.setattr(core.reading.images, "CHUNK_FILES", 3)
    pools = []

    class SpyPool(core.reading.images.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(core.reading.images, "ProcessPoolExecutor", SpyPool)
    inventory = scan_folder(many_files)
    serial = load_images(inventory, grid=24, workers=1)
    assert pools == []
    parallel = load_images(inventory, grid=24, workers=2)
    assert len(pools) == 1  # the pool path really ran
    assert parallel.paths == serial.paths
    assert parallel.skipped == serial.skipped == [("sub/broken.png", parallel.skipped[0][1])]
    np.testing.assert_array_equal(parallel.packed, serial.packed)
    assert len(serial) == 11


def test_load_images_rows_follow_sorted_paths(many_files: Path) -> None:
    inventory = scan_folder(many_files)
    images = load_images(inventory, grid=24, workers=1)
    assert images.paths == [e.path for e in inventory.files if e.path != "sub/broken.png"]
    for row, path in enumerate(images.paths):
        expected = decode_image(many_files / path, grid=24)
        np.testing.assert_array_equal(images.unpack([row])[0], expected)


def test_load_images_of_an_empty_folder(tmp_path: Path) -> None:
    images = load_images(scan_folder(tmp_path), grid=10, workers=1)
    assert len(images) == 0
    assert images.packed.shape == (0, 13)
    assert images.skipped == []


@pytest.mark.parametrize("chunk_files", [2, 500])
def test_progress_is_reported_up_to_the_total(monkeypatch, many_files: Path, chunk_files) -> None:
    monkeypatch.setattr(core.reading.images, "CHUNK_FILES", chunk_files)
    calls = []
    load_images(
        scan_folder(many_files),
        grid=16,
        workers=1,
        on_progress=lambda *a: calls.append(a),
    )
    total = 12
    assert calls[0] == (0, total, "read")
    assert calls[-1] == (total, total, "read")
    done = [c[0] for c in calls]
    assert done == sorted(done)
    assert all(c[1:] == (total, "read") for c in calls)


# ---------------------------------------------------------------- packing


@pytest.mark.parametrize("grid", [8, 10, 13])
def test_pack_unpack_round_trip(rng: np.random.Generator, grid: int) -> None:
    masks = rng.random((4, grid, grid)) < 0.3
    packed = pack_masks(masks)
    assert packed.dtype == np.uint8
    assert packed.shape == (4, -(-grid * grid // 8))
    unpacked = unpack_masks(packed, grid)
    assert unpacked.dtype == bool
    np.testing.assert_array_equal(unpacked, masks)


def test_unpack_a_single_row(random_masks: np.ndarray) -> None:
    packed = pack_masks(random_masks)
    np.testing.assert_array_equal(unpack_masks(packed[2], 13), random_masks[2:3])


def test_image_set_unpacks_chosen_rows(random_masks: np.ndarray) -> None:
    images = ImageSet(pack_masks(random_masks), 13, [f"{i}.png" for i in range(5)])
    np.testing.assert_array_equal(images.unpack([4, 0]), random_masks[[4, 0]])


# ---------------------------------------------------------------- read_labels


def write_labels(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_label_codes_follow_the_paths(tmp_path: Path) -> None:
    path = write_labels(tmp_path, "filename,label\nc.png,ring\na.png,line\nsub/b.png,ring\n")
    codes, names = read_labels(path, ["a.png", "sub/b.png", "c.png"])
    assert names == ["line", "ring"]
    np.testing.assert_array_equal(codes, [0, 1, 1])


def test_images_without_a_label_get_minus_one(tmp_path: Path) -> None:
    path = write_labels(tmp_path, "filename,label\nb.png,disk\n")
    codes, names = read_labels(path, ["a.png", "b.png", "c.png"])
    assert names == ["disk"]
    np.testing.assert_array_equal(codes, [-1, 0, -1])


def test_an_empty_label_counts_as_no_label(tmp_path: Path) -> None:
    path = write_labels(tmp_path, "filename,label\na.png,\nb.png,disk\n")
    codes, names = read_labels(path, ["a.png", "b.png", "c.png"])
    assert names == ["disk"]
    np.testing.assert_array_equal(codes, [-1, 0, -1])


def test_labels_header_may_carry_bom_case_and_spaces(tmp_path: Path) -> None:
    path = write_labels(tmp_path, "\ufeffFileName , Label\n a.png , ring \n")
    codes, names = read_labels(path, ["a.png"])
    assert names == ["ring"]
    np.testing.assert_array_equal(codes, [0])


@pytest.mark.parametrize(
    "text",
    ["", "name,class\na.png,ring\n", "a.png,ring\n", "filename\na.png\n"],
    ids=["empty", "other-names", "no-header", "one-column"],
)
def test_a_bad_labels_header_is_refused(tmp_path: Path, text: str) -> None:
    path = write_labels(tmp_path, text)
    with pytest.raises(DotmapError, match=r"should start with the header 'filename,label'"):
        read_labels(path, ["a.png"])


def test_an_unreadable_labels_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(b"filename,label\n\xff\xfe\xfa,x\n")
    with pytest.raises(DotmapError, match=r"Cannot read"):
        read_labels(path, ["a.png"])


def test_any_decoder_failure_is_a_reason_not_a_crash(tmp_path: Path, good_png: bytes, monkeypatch) -> None:
    # malformed files can raise anything inside Pillow's plugins (struct.error, IndexError, ...)
    import core.reading.decode

    def explode(im):
        raise IndexError("tile index out of range")

    monkeypatch.setattr(core.reading.decode, "_to_gray", explode)
    with pytest.raises(ImageReadError, match=r"cannot be decoded \(IndexError: tile index out of range\)"):
        decode_image(good_png, grid=16)


def test_parallel_load_in_a_threaded_process_uses_forkserver(monkeypatch, many_files: Path) -> None:
    # a web server runs threads; forking such a process can deadlock, so another start method is used
    import threading

    monkeypatch.setattr(core.reading.images, "PARALLEL_FROM", 4)
    monkeypatch.setattr(core.reading.images, "CHUNK_FILES", 3)
    inventory = scan_folder(many_files)
    serial = load_images(inventory, grid=24, workers=1)
    release = threading.Event()
    server = threading.Thread(target=release.wait, daemon=True)
    server.start()
    try:
        assert core.engine.processes.pool_context().get_start_method() == "forkserver"
        parallel = load_images(inventory, grid=24, workers=2)
    finally:
        release.set()
        server.join()
    assert parallel.paths == serial.paths
    np.testing.assert_array_equal(parallel.packed, serial.packed)


def test_ink_counts_are_counted_on_the_packed_bytes_chunk_by_chunk(monkeypatch) -> None:
    from core.reading import images

    monkeypatch.setattr(images, "INK_CHUNK", 7)  # chunks end inside the set, and the last is short
    masks = np.random.default_rng(0).random((30, 11, 11)) < 0.3
    counts = images.ink_counts(images.pack_masks(masks))
    assert counts.dtype == np.int32 and counts.tolist() == masks.reshape(30, -1).sum(1).tolist()
    assert images.ink_counts(images.pack_masks(masks[:0])).tolist() == []


def test_count_distinct_counts_each_mask_once() -> None:
    from core.reading import images

    masks = np.random.default_rng(1).random((10, 9, 9)) < 0.5
    packed = images.pack_masks(np.concatenate([masks, masks[:3]]))
    assert images.count_distinct(packed) == 10
