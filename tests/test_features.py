"""Tests of core.representation.features: ink points, pixel densities and the pose-free shape descriptors."""

import numpy as np
import pytest

import core.representation.features
from core.reading.images import ImageSet, pack_masks
from core.representation.features import (
    ANGULAR_BINS,
    HAND_MADE_KINDS,
    RADIAL_BINS,
    SHAPE_CELLS,
    compute_features,
    feature_view,
    features_from_packed,
    ink_bytes,
    ink_points,
    pixel_features,
    polar_density,
    posed_points,
    rotation_features,
    shape_poses,
)

GRID = 64


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def letter_f(scale: int = 1) -> np.ndarray:
    """A 12x12 drawing of an "F": it has no rotation or mirror symmetry."""
    mask = np.zeros((12, 12), bool)
    mask[1:11, 2] = True
    mask[1, 2:10] = True
    mask[5, 2:8] = True
    return np.kron(mask, np.ones((scale, scale), bool))


def ring(radius: float = 10.0) -> np.ndarray:
    yy, xx = np.mgrid[:GRID, :GRID]
    return np.abs(np.hypot(yy - 30, xx - 30) - radius) < 0.7


def place(drawing: np.ndarray, top: int, left: int) -> np.ndarray:
    mask = np.zeros((GRID, GRID), bool)
    mask[top : top + drawing.shape[0], left : left + drawing.shape[1]] = drawing
    return mask


def features_of(masks: list[np.ndarray], kind: str) -> np.ndarray:
    return features_from_packed(pack_masks(np.stack(masks)), GRID, kind)


# ---------------------------------------------------------------- ink_points


def test_ink_points_match_nonzero_of_the_masks(random_masks: np.ndarray) -> None:
    image, y, x = ink_points(pack_masks(random_masks), 13)
    expected = np.nonzero(random_masks)
    for got, want in zip((image, y, x), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_ink_points_of_blank_masks_are_empty() -> None:
    image, y, x = ink_points(pack_masks(np.zeros((3, 10, 10), bool)), 10)
    assert image.size == y.size == x.size == 0


# ---------------------------------------------------------------- ink bytes and poses


@pytest.mark.parametrize("grid", [16, 13])  # whole bytes per row; rows that share bytes
def test_ink_bytes_stand_for_every_ink_pixel(grid: int) -> None:
    masks = np.random.default_rng(3).random((5, grid, grid)) < 0.3
    ink = ink_bytes(pack_masks(masks), grid)
    np.testing.assert_allclose(np.bincount(ink.image, ink.ink, minlength=5), masks.sum(axis=(1, 2)))
    for got, want in zip(ink.pixels(), np.nonzero(masks), strict=True):
        np.testing.assert_array_equal(got, want)


def test_an_ink_byte_sits_at_the_mean_of_its_pixels_and_keeps_their_spread() -> None:
    mask = np.zeros((1, 16, 16), bool)
    mask[0, 2, [9, 10, 14]] = True  # one byte of row 2: columns 8..15
    ink = ink_bytes(pack_masks(mask), 16)
    assert len(ink.image) == 1
    assert ink.y[0] == 2 and ink.ink[0] == 3
    assert ink.x[0] == pytest.approx(11.0)
    assert ink.spread[0] == pytest.approx((9 - 11) ** 2 + (10 - 11) ** 2 + (14 - 11) ** 2)


def test_a_pose_is_the_pixels_own_centre_and_rms_radius(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.representation.features, "POSE_TRIM", 1e6)  # no ink left out
    masks = np.random.default_rng(4).random((3, GRID, GRID)) < 0.05
    poses = shape_poses(ink_bytes(pack_masks(masks), GRID), 3)
    for i, mask in enumerate(masks):
        y, x = np.nonzero(mask)
        assert poses.cx[i] == pytest.approx(x.mean()) and poses.cy[i] == pytest.approx(y.mean())
        assert poses.radius[i] == pytest.approx(np.sqrt(((x - x.mean()) ** 2 + (y - y.mean()) ** 2).mean()))


def test_posed_points_are_centred_and_of_unit_rms_radius() -> None:
    masks = np.stack([place(letter_f(2), 5, 9), place(ring(), 0, 0)])
    image, u, v = posed_points(pack_masks(masks), GRID)
    for i in range(2):
        mine = image == i
        assert abs(u[mine].mean()) < 0.05 and abs(v[mine].mean()) < 0.05
        assert np.sqrt((u[mine] ** 2 + v[mine] ** 2).mean()) == pytest.approx(1.0, abs=0.05)


# ---------------------------------------------------------------- pixels


def test_pixel_features_are_block_means_by_hand() -> None:
    """grid 100 -> blocks of 2x2 pixels, 50x50 cells."""
    mask = np.zeros((100, 100), bool)
    mask[0, 0] = mask[0, 1] = mask[1, 0] = True  # cell (0, 0): 3 of 4 pixels
    mask[5, 7] = True  # cell (2, 3): 1 of 4
    mask[98:100, 98:100] = True  # cell (49, 49): all 4
    expected = np.zeros(2500, np.float32)
    expected[0] = 0.75
    expected[2 * 50 + 3] = 0.25
    expected[49 * 50 + 49] = 1.0
    got = pixel_features(pack_masks(mask[None]), 100)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected[None])


def test_pixel_features_of_a_small_grid_are_the_mask() -> None:
    """Below PIXEL_CELLS pixels a block is one pixel."""
    mask = np.zeros((1, 12, 12), bool)
    mask[0, 3, 4] = mask[0, 11, 0] = True
    np.testing.assert_array_equal(pixel_features(pack_masks(mask), 12), mask.reshape(1, -1))


def test_pixel_features_depend_on_position() -> None:
    first, moved = features_of([place(letter_f(), 5, 5), place(letter_f(), 30, 20)], "pixels")
    assert cosine(first, moved) < 0.1


# ---------------------------------------------------------------- shape


def test_shape_features_ignore_position_and_size() -> None:
    first, moved_and_doubled, other = features_of(
        [place(letter_f(), 5, 5), place(letter_f(2), 30, 20), ring()], "shape"
    )
    same = cosine(first, moved_and_doubled)
    assert same > 0.95
    assert cosine(first, other) < same - 0.2


def test_shape_features_see_rotation_and_mirroring() -> None:
    base = place(letter_f(), 20, 20)
    first, rotated, mirrored = features_of([base, np.rot90(base), np.fliplr(base)], "shape")
    assert cosine(first, rotated) < 0.8
    assert cosine(first, mirrored) < 0.8


# ---------------------------------------------------------------- shape-rotation


@pytest.mark.parametrize(
    "turn",
    [
        pytest.param(np.rot90, id="rot90"),
        pytest.param(lambda m: np.rot90(m, 2), id="rot180"),
        pytest.param(np.fliplr, id="mirror"),
        pytest.param(np.flipud, id="upside-down-mirror"),
    ],
)
def test_rotation_features_ignore_rotation_and_mirroring(turn) -> None:
    base = place(letter_f(), 20, 20)
    first, turned, other = features_of([base, turn(base), ring()], "shape-rotation")
    assert cosine(first, turned) > 0.99
    assert cosine(first, other) < 0.9


def test_rotation_features_ignore_position_and_size() -> None:
    first, moved_and_doubled = features_of(
        [place(letter_f(), 5, 5), place(np.rot90(letter_f(2)), 30, 20)],
        "shape-rotation",
    )
    assert cosine(first, moved_and_doubled) > 0.95


# ---------------------------------------------------------------- all kinds


@pytest.mark.parametrize(
    ("kind", "n_features"),
    [
        ("pixels", GRID * GRID),  # GRID < PIXEL_CELLS: one pixel per block
        ("shape", SHAPE_CELLS**2),
        ("shape-rotation", RADIAL_BINS * (ANGULAR_BINS // 2 + 1)),
    ],
)
def test_feature_shapes(kind: str, n_features: int) -> None:
    X = features_of([place(letter_f(), 5, 5)] * 3, kind)
    assert X.shape == (3, n_features)
    assert X.dtype == np.float32


@pytest.mark.parametrize("kind", ["shape", "shape-rotation"])
def test_shape_features_have_unit_norm(kind: str) -> None:
    """The Hellinger embedding of a density has norm 1; Parseval keeps it through the FFT."""
    X = features_of([place(letter_f(), 5, 5), ring(), place(letter_f(3), 20, 8)], kind)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", HAND_MADE_KINDS)
def test_blank_image_gives_finite_zero_features(kind: str) -> None:
    X = features_of([np.zeros((GRID, GRID), bool), place(letter_f(), 5, 5)], kind)
    assert np.isfinite(X).all()
    assert not X[0].any()
    assert X[1].any()


@pytest.mark.parametrize("kind", HAND_MADE_KINDS)
def test_single_ink_pixel_gives_finite_features(kind: str) -> None:
    mask = np.zeros((1, GRID, GRID), bool)
    mask[0, 40, 17] = True
    X = features_of(list(mask), kind)
    assert np.isfinite(X).all()
    assert X.any()


@pytest.mark.parametrize("kind", HAND_MADE_KINDS)
def test_features_of_a_row_do_not_depend_on_its_neighbours(kind: str) -> None:
    masks = [place(letter_f(), 5, 5), ring(), place(letter_f(2), 30, 20)]
    together = features_of(masks, kind)
    alone = features_of(masks[1:2], kind)
    np.testing.assert_allclose(together[1:2], alone, atol=1e-6)


def test_features_from_packed_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match=r"features='edges' should be one of"):
        features_from_packed(pack_masks(np.zeros((1, 8, 8), bool)), 8, "edges")


def test_compute_features_refuses_an_unknown_kind(random_masks: np.ndarray) -> None:
    images = ImageSet(pack_masks(random_masks), 13, [f"{i}.png" for i in range(5)])
    with pytest.raises(ValueError, match=r"features='edges' should be one of"):
        compute_features(images, "edges")


# ---------------------------------------------------------------- compute_features


@pytest.fixture
def image_set(rng: np.random.Generator) -> ImageSet:
    masks = rng.random((7, 24, 24)) < 0.1
    masks[3] = False  # one blank image among them
    return ImageSet(pack_masks(masks), 24, [f"{i}.png" for i in range(7)])


@pytest.mark.parametrize("kind", HAND_MADE_KINDS)
def test_compute_features_in_chunks_equals_one_call(monkeypatch, image_set: ImageSet, kind: str) -> None:
    whole = features_from_packed(image_set.packed, image_set.grid, kind)
    monkeypatch.setattr(core.representation.features, "CHUNK_IMAGES", 3)
    chunked = compute_features(image_set, kind)
    np.testing.assert_array_equal(chunked, whole)


def test_compute_features_reports_progress_per_chunk(monkeypatch, image_set: ImageSet) -> None:
    monkeypatch.setattr(core.representation.features, "CHUNK_IMAGES", 3)
    calls = []
    compute_features(image_set, "pixels", on_progress=lambda *a: calls.append(a))
    assert calls == [(3, 7, "features"), (6, 7, "features"), (7, 7, "features")]


# ---------------------------------------------------------------- feature_view and polar_density

VIEW_GRID = 200  # the demo canvas: 4x4 px blocks, 50x50 cells


def packed_view_masks() -> np.ndarray:
    """Two bit-packed masks (2, nbytes) on a 200 px grid: an "F" of 2x2 px dots, and a blank one."""
    masks = np.zeros((2, VIEW_GRID, VIEW_GRID), bool)
    masks[0, 60:84, 90:114] = letter_f(2)
    return pack_masks(masks)


@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        ("pixels", (50, 50)),  # grid 200 in blocks of 4 px
        ("shape", (32, 32)),
        ("shape-rotation", (10, 32)),  # rings down, angles across
    ],
)
def test_feature_view_is_a_2d_density_with_max_one(kind: str, shape: tuple[int, int]) -> None:
    view = feature_view(packed_view_masks()[0], VIEW_GRID, kind)
    assert view.shape == shape
    assert view.dtype == np.float32
    assert view.min() >= 0
    assert view.max() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", HAND_MADE_KINDS)
def test_feature_view_of_a_blank_image_is_zero(kind: str) -> None:
    view = feature_view(packed_view_masks()[1], VIEW_GRID, kind)
    assert view.dtype == np.float32
    assert not view.any()


def test_feature_view_of_pixels_by_hand() -> None:
    """One whole 4x4 block and half of another: views 1 and 0.5, the rest 0."""
    mask = np.zeros((1, VIEW_GRID, VIEW_GRID), bool)
    mask[0, 0:4, 0:4] = True  # cell (0, 0), full
    mask[0, 8:10, 12:16] = True  # cell (2, 3), 8 of 16 pixels
    expected = np.zeros((50, 50), np.float32)
    expected[0, 0] = 1.0
    expected[2, 3] = 0.5
    np.testing.assert_array_equal(feature_view(pack_masks(mask), VIEW_GRID, "pixels"), expected)


def test_feature_view_of_shape_rotation_is_the_root_of_the_polar_density() -> None:
    packed = packed_view_masks()[:1]
    root = np.sqrt(polar_density(packed, VIEW_GRID)[0])
    np.testing.assert_allclose(feature_view(packed, VIEW_GRID, "shape-rotation"), root / root.max(), rtol=1e-6)


def test_feature_view_takes_the_first_of_several_rows() -> None:
    packed = packed_view_masks()
    np.testing.assert_array_equal(feature_view(packed, VIEW_GRID, "shape"), feature_view(packed[0], VIEW_GRID, "shape"))


def test_feature_view_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match=r"features='edges' should be one of"):
        feature_view(packed_view_masks()[0], VIEW_GRID, "edges")


def test_polar_density_has_rings_and_angles_of_non_negative_ink() -> None:
    density = polar_density(packed_view_masks(), VIEW_GRID)
    assert density.shape == (2, RADIAL_BINS, ANGULAR_BINS)
    assert (density >= 0).all()
    assert density[0].sum() > 0
    assert not density[1].any()


def test_rotation_features_keep_their_shape(random_masks: np.ndarray) -> None:
    X = rotation_features(pack_masks(random_masks), 13)
    assert X.shape == (5, 10 * 17) == (5, RADIAL_BINS * (ANGULAR_BINS // 2 + 1))
    assert X.dtype == np.float32


def test_rotation_features_hold_the_ring_shares_of_the_polar_density() -> None:
    """Parseval: a ring's squared Fourier magnitudes sum to that ring's share of the polar density."""
    packed = pack_masks(np.stack([place(letter_f(), 5, 5), ring(), place(letter_f(3), 20, 8)]))
    density = polar_density(packed, GRID)
    ring_share = density.sum(axis=2) / density.sum(axis=(1, 2))[:, None]
    spectrum = rotation_features(packed, GRID).reshape(3, RADIAL_BINS, ANGULAR_BINS // 2 + 1)
    np.testing.assert_allclose((spectrum**2).sum(axis=2), ring_share, rtol=1e-4, atol=1e-6)
