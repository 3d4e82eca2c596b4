"""Tests of core.representation.typical: pose-free ink densities and the mean density of every cluster."""

import numpy as np
import pytest

import core.representation.typical
from core.reading.images import pack_masks
from core.representation.features import FEATURE_KINDS
from core.representation.typical import TYPICAL_CELLS, cluster_means, pose_free_densities, sampled_members

GRID = 64


def letter_f() -> np.ndarray:
    """A 12x12 drawing of an "F": it has no rotation or mirror symmetry."""
    mask = np.zeros((12, 12), bool)
    mask[1:11, 2] = True
    mask[1, 2:10] = True
    mask[5, 2:8] = True
    return mask


def place(drawing: np.ndarray, top: int, left: int) -> np.ndarray:
    mask = np.zeros((GRID, GRID), bool)
    mask[top : top + drawing.shape[0], left : left + drawing.shape[1]] = drawing
    return mask


def spread_dots(drawing: np.ndarray, factor: int, top: int, left: int) -> np.ndarray:
    """The ink pixels of ``drawing`` as single dots ``factor`` px apart: the same shape, scaled and moved."""
    mask = np.zeros((GRID, GRID), bool)
    ys, xs = np.nonzero(drawing)
    mask[top + factor * ys, left + factor * xs] = True
    return mask


def densities_of(masks: list[np.ndarray], kind: str, cells: int = TYPICAL_CELLS) -> np.ndarray:
    return pose_free_densities(pack_masks(np.stack(masks)), GRID, kind, cells)


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of two densities: 0 when equal, 1 when they share no cell."""
    return 0.5 * float(np.abs(a - b).sum())


# ---------------------------------------------------------------- pose_free_densities


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_densities_have_one_row_per_image_summing_to_one(kind: str, pattern: np.ndarray) -> None:
    masks = [place(pattern, 3, 7), place(letter_f(), 40, 30), place(np.rot90(pattern), 20, 20)]
    density = densities_of(masks, kind)
    assert density.shape == (3, TYPICAL_CELLS * TYPICAL_CELLS)
    assert density.dtype == np.float32
    assert (density >= 0).all()
    np.testing.assert_allclose(density.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_blank_image_has_zero_density(kind: str, pattern: np.ndarray) -> None:
    density = densities_of([np.zeros((GRID, GRID), bool), place(pattern, 0, 0)], kind)
    assert not density[0].any()
    assert density[1].sum() == pytest.approx(1.0)


def test_pixel_density_by_hand() -> None:
    """grid 8 on 4x4 cells: pixels (0,0) and (0,1) share cell (0,0); pixel (7,7) is cell (3,3)."""
    mask = np.zeros((1, 8, 8), bool)
    mask[0, 0, 0] = mask[0, 0, 1] = mask[0, 7, 7] = True
    expected = np.zeros((1, 16), np.float32)
    expected[0, 0] = 2 / 3
    expected[0, 15] = 1 / 3
    np.testing.assert_allclose(pose_free_densities(pack_masks(mask), 8, "pixels", cells=4), expected, rtol=1e-6)


def test_one_packed_row_is_taken_as_one_image(pattern: np.ndarray) -> None:
    packed = pack_masks(place(pattern, 5, 5)[None])
    np.testing.assert_array_equal(
        pose_free_densities(packed[0], GRID, "shape"), pose_free_densities(packed, GRID, "shape")
    )


def test_shape_density_ignores_position_and_size(pattern: np.ndarray) -> None:
    first, moved_and_doubled = densities_of([spread_dots(pattern, 1, 2, 3), spread_dots(pattern, 2, 20, 25)], "shape")
    assert total_variation(first, moved_and_doubled) < 0.05


def test_shape_density_sees_rotation(pattern: np.ndarray) -> None:
    base = place(pattern, 20, 20)
    first, rotated = densities_of([base, np.rot90(base)], "shape")
    assert total_variation(first, rotated) > 0.5


@pytest.mark.parametrize(
    "turn",
    [
        pytest.param(np.rot90, id="rot90"),
        pytest.param(np.fliplr, id="mirror"),
        pytest.param(lambda m: np.rot90(np.fliplr(m)), id="mirror-then-rot90"),
    ],
)
def test_rotation_density_ignores_rotation_and_mirroring(turn, pattern: np.ndarray) -> None:
    base = place(pattern, 20, 20)
    first, turned = densities_of([base, turn(base)], "shape-rotation")
    assert total_variation(first, turned) < 0.05


def test_rotation_density_ignores_position_and_size(pattern: np.ndarray) -> None:
    first, moved_and_doubled = densities_of(
        [spread_dots(pattern, 1, 2, 3), np.rot90(spread_dots(pattern, 2, 20, 25))], "shape-rotation"
    )
    assert total_variation(first, moved_and_doubled) < 0.05


def test_pixel_density_depends_on_position(pattern: np.ndarray) -> None:
    first, moved = densities_of([place(pattern, 2, 2), place(pattern, 40, 40)], "pixels")
    assert total_variation(first, moved) > 0.9


def test_pixel_density_of_a_moved_shape_by_hand() -> None:
    """grid 64 on 8x8 cells: a shift of one cell (8 px) moves the whole density one cell right."""
    mask = place(letter_f(), 0, 0)
    first, moved = densities_of([mask, np.roll(mask, 8, axis=1)], "pixels", cells=8)
    np.testing.assert_array_equal(np.roll(first.reshape(8, 8), 1, axis=1), moved.reshape(8, 8))


def test_densities_refuse_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match=r"features='edges' should be one of"):
        pose_free_densities(pack_masks(np.zeros((1, 8, 8), bool)), 8, "edges")


# ---------------------------------------------------------------- cluster_means


@pytest.fixture
def four_masks(pattern: np.ndarray) -> np.ndarray:
    """Four different images of shape (4, GRID, GRID), bool."""
    return np.stack(
        [place(pattern, 2, 2), place(letter_f(), 30, 10), place(np.rot90(pattern), 40, 40), place(letter_f(), 5, 45)]
    )


def scaled_mean(density: np.ndarray, members: list[int], cells: int) -> np.ndarray:
    mean = density[members].mean(axis=0)
    return (mean / mean.max()).reshape(cells, cells)


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_cluster_means_are_member_means_scaled_to_max_one(kind: str, four_masks: np.ndarray) -> None:
    packed = pack_masks(four_masks)
    density = pose_free_densities(packed, GRID, kind, 16)
    labels = np.array([[0, 1, 0, 1], [2, 0, 1, 1]])
    means = cluster_means(packed, GRID, kind, labels, [2, 3], cells=16)
    expected = [
        scaled_mean(density, [0, 2], 16),  # k=2, cluster 0
        scaled_mean(density, [1, 3], 16),  # k=2, cluster 1
        scaled_mean(density, [1], 16),  # k=3, cluster 0
        scaled_mean(density, [2, 3], 16),  # k=3, cluster 1
        scaled_mean(density, [0], 16),  # k=3, cluster 2
    ]
    assert means.dtype == np.float32
    np.testing.assert_allclose(means, np.stack(expected), rtol=1e-5, atol=1e-7)


def test_cluster_means_have_one_image_per_cluster_of_every_k(four_masks: np.ndarray) -> None:
    labels = np.array([[0, 1, 0, 1], [0, 1, 2, 2], [3, 2, 1, 0]])
    means = cluster_means(pack_masks(four_masks), GRID, "shape", labels, [2, 3, 4])
    assert means.shape == (2 + 3 + 4, TYPICAL_CELLS, TYPICAL_CELLS)
    np.testing.assert_allclose(means.max(axis=(1, 2)), 1.0, rtol=1e-6)


def test_cluster_means_keep_the_order_of_ks(four_masks: np.ndarray) -> None:
    packed = pack_masks(four_masks)
    labels = np.array([[0, 1, 0, 1], [0, 1, 2, 2]])
    forward = cluster_means(packed, GRID, "pixels", labels, [2, 3])
    backward = cluster_means(packed, GRID, "pixels", labels[::-1], [3, 2])
    np.testing.assert_array_equal(forward[:2], backward[3:])
    np.testing.assert_array_equal(forward[2:], backward[:3])


def test_empty_or_blank_cluster_stays_zero(four_masks: np.ndarray) -> None:
    masks = four_masks.copy()
    masks[3] = False
    labels = np.array([[0, 0, 0, 1, 0]])  # cluster 1 holds the blank image only; cluster 2 is empty
    means = cluster_means(pack_masks(np.concatenate([masks, masks[:1]])), GRID, "shape", labels, [3])
    assert means[0].max() == pytest.approx(1.0)
    assert not means[1].any()
    assert not means[2].any()


def test_cluster_means_in_chunks_equal_one_pass(monkeypatch: pytest.MonkeyPatch, four_masks: np.ndarray) -> None:
    packed = pack_masks(four_masks)
    labels = np.array([[0, 1, 0, 1], [2, 0, 1, 1]])
    whole = cluster_means(packed, GRID, "shape-rotation", labels, [2, 3])
    monkeypatch.setattr(core.representation.typical, "CHUNK_IMAGES", 3)
    np.testing.assert_allclose(cluster_means(packed, GRID, "shape-rotation", labels, [2, 3]), whole, atol=1e-6)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros((2, 3), int), r"labels has shape \(2, 3\); expected \(2, 4\)"),
        (np.zeros((1, 4), int), r"labels has shape \(1, 4\); expected \(2, 4\)"),
        (np.zeros(4, int), r"labels has shape \(4,\); expected \(2, 4\)"),
    ],
    ids=["too-few-images", "too-few-ks", "flat"],
)
def test_cluster_means_refuse_labels_of_the_wrong_shape(four_masks: np.ndarray, labels, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cluster_means(pack_masks(four_masks), GRID, "shape", labels, [2, 3])


def test_cluster_means_refuse_an_unknown_kind(four_masks: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"features='edges' should be one of"):
        cluster_means(pack_masks(four_masks), GRID, "edges", np.zeros((1, 4), int), [2])


@pytest.mark.parametrize("kind", ["shape", "shape-rotation"])
def test_one_ink_pixel_lands_in_the_centre_cell(kind: str) -> None:
    """A lone pixel is its own centroid: u = v = 0, so cell 2.5 * 48 / 5 = 24 in both directions."""
    density = densities_of([place(np.ones((1, 1), bool), 40, 17)], kind)[0].reshape(TYPICAL_CELLS, TYPICAL_CELLS)
    assert np.argwhere(density).tolist() == [[24, 24]]
    assert density[24, 24] == 1.0


# ---------------------------------------------------------------- a sample of each cluster's members


@pytest.mark.parametrize("sample", [1, 3, 50])
def test_each_cluster_keeps_a_sample_of_its_own_members(sample: int) -> None:
    labels = np.random.default_rng(3).integers(0, [[2], [5], [9]], size=(3, 200))
    kept = sampled_members(labels, [2, 5, 9], sample, seed=4)
    for j, k in enumerate([2, 5, 9]):
        chosen = kept[j] >= 0
        assert np.array_equal(kept[j][chosen], labels[j][chosen])  # a kept image keeps its cluster
        assert np.all(kept[j][~chosen] == -1)
        sizes = np.bincount(labels[j], minlength=k)
        assert np.array_equal(np.bincount(kept[j][chosen], minlength=k), np.minimum(sizes, sample))


def test_the_sample_is_seeded_and_mostly_the_same_images_for_every_k() -> None:
    labels = np.random.default_rng(3).integers(0, [[2], [20]], size=(2, 4000))
    kept = sampled_members(labels, [2, 20], 100, seed=1)
    assert np.array_equal(kept, sampled_members(labels, [2, 20], 100, seed=1))
    assert not np.array_equal(kept, sampled_members(labels, [2, 20], 100, seed=2))
    few, many = kept >= 0  # 200 images kept for k=2, 2,000 for k=20: the first in one queue
    assert np.mean(many[few]) > 0.95


def test_a_sample_as_large_as_every_cluster_changes_nothing(four_masks: np.ndarray) -> None:
    packed = pack_masks(four_masks)
    labels = np.array([[0, 1, 0, 1], [2, 0, 1, 1]])
    full = cluster_means(packed, GRID, "shape", labels, [2, 3])
    np.testing.assert_array_equal(cluster_means(packed, GRID, "shape", labels, [2, 3], sample=2), full)


def test_a_cluster_of_a_sample_of_one_is_that_members_density(four_masks: np.ndarray) -> None:
    packed = pack_masks(four_masks)
    density = pose_free_densities(packed, GRID, "pixels", 16)
    labels = np.array([[0, 0, 0, 0]])
    kept = sampled_members(labels, [1], 1, seed=0)
    (member,) = np.flatnonzero(kept[0] >= 0)
    means = cluster_means(packed, GRID, "pixels", labels, [1], cells=16, sample=1, seed=0)
    np.testing.assert_allclose(means[0], scaled_mean(density, [member], 16), rtol=1e-5)


def test_images_kept_for_no_cluster_are_not_drawn(four_masks: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = []
    real = core.representation.typical.pose_free_densities
    monkeypatch.setattr(
        core.representation.typical, "pose_free_densities", lambda p, *a: drawn.append(len(p)) or real(p, *a)
    )
    labels = np.array([[0, 0, 0, 0], [0, 0, 1, 1]])
    cluster_means(pack_masks(four_masks), GRID, "shape", labels, [1, 2], sample=1, seed=0)
    assert sum(drawn) == 2  # one member a cluster: 2 images for k=2, k=1's the first in the queue, one of them


@pytest.mark.parametrize("kind", ["pixels", "shape", "shape-rotation"])
def test_densities_by_sub_blocks_are_the_densities_of_one_pass(kind, monkeypatch):
    rng = np.random.default_rng(3)
    masks = rng.random((37, 40, 40)) < 0.05
    packed = pack_masks(masks)
    whole = pose_free_densities(packed, 40, kind, cells=12)
    monkeypatch.setattr(core.representation.typical, "POINTS_BLOCK", 5)
    assert np.array_equal(pose_free_densities(packed, 40, kind, cells=12), whole)
