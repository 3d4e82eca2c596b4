"""Tests of core.clustering.algorithms: k-means and spherical k-means, distances, and ids kept across k."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from core.clustering.algorithms import (
    Fit,
    distances_to_centres,
    fit_clusters,
    match_to_previous,
    order_by_size,
    unit_rows,
)

SEED = 0
PER_BLOB = 20


def euclidean_blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three tight blobs far apart in the plane: X (60, 2) and their true labels (60,)."""
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = np.concatenate([c + rng.normal(0, 0.5, (PER_BLOB, 2)) for c in centres])
    return X, np.repeat(np.arange(3), PER_BLOB)


def direction_blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three tight bundles of directions along the axes of 3-D, with lengths from 0.5 to 5.

    The lengths vary far more than the directions, so only a clustering by angle recovers them.
    """
    X = np.concatenate([np.eye(3)[i] + rng.normal(0, 0.05, (PER_BLOB, 3)) for i in range(3)])
    X *= rng.uniform(0.5, 5.0, (len(X), 1))
    return X, np.repeat(np.arange(3), PER_BLOB)


@pytest.mark.parametrize(("algorithm", "make_blobs"), [("kmeans", euclidean_blobs), ("spherical", direction_blobs)])
def test_fit_clusters_recovers_separated_blobs(rng, algorithm, make_blobs) -> None:
    X, truth = make_blobs(rng)
    fit = fit_clusters(X, 3, algorithm, seed=SEED)
    assert adjusted_rand_score(truth, fit.labels) == 1.0
    assert fit.labels.shape == (len(X),)
    assert fit.centres.shape == (3, X.shape[1])


@pytest.mark.parametrize("algorithm", ["kmeans", "spherical"])
def test_fit_clusters_same_seed_gives_identical_labels(rng, algorithm) -> None:
    X = rng.uniform(size=(80, 4))  # no structure: only the seed decides the groups
    first = fit_clusters(X, 5, algorithm, seed=3)
    second = fit_clusters(X, 5, algorithm, seed=3)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.centres, second.centres)


def test_fit_clusters_refuses_more_clusters_than_rows() -> None:
    with pytest.raises(ValueError, match=r"n_samples=3 should be >= n_clusters=4\."):
        fit_clusters(np.zeros((3, 2)), 4)


def test_fit_clusters_refuses_zero_clusters() -> None:
    with pytest.raises(ValueError, match=r"n_clusters=0 should be >= 1\."):
        fit_clusters(np.zeros((3, 2)), 0)


def test_fit_clusters_refuses_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match=r"algorithm='dbscan' should be one of \('kmeans', 'spherical', 'gmm'\)"):
        fit_clusters(np.zeros((3, 2)), 2, "dbscan")


def test_spherical_centres_are_unit_vectors(rng) -> None:
    X, _ = direction_blobs(rng)
    fit = fit_clusters(X, 3, "spherical", seed=SEED)
    np.testing.assert_allclose(np.linalg.norm(fit.centres, axis=1), 1.0, atol=1e-6)


def test_spherical_inertia_is_sum_of_cosine_distances_to_assigned_centre(rng) -> None:
    X = rng.normal(size=(50, 4))
    fit = fit_clusters(X, 4, "spherical", seed=SEED)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    centres = fit.centres.astype(np.float64)
    expected = (1.0 - (U * centres[fit.labels]).sum(1)).sum()
    assert fit.inertia == pytest.approx(expected, rel=1e-5)


def test_spherical_assigns_each_row_to_its_most_similar_centre(rng) -> None:
    X = rng.normal(size=(50, 4))
    fit = fit_clusters(X, 4, "spherical", seed=SEED)
    np.testing.assert_array_equal(fit.labels, (unit_rows(X) @ fit.centres.T).argmax(1))


def test_unit_rows_scales_to_length_one_and_keeps_zero_rows() -> None:
    X = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    np.testing.assert_allclose(unit_rows(X), [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])


def test_distances_to_centres_euclidean_by_hand() -> None:
    X = np.array([[0.0, 0.0], [3.0, 4.0]])
    centres = np.array([[0.0, 0.0], [6.0, 8.0], [3.0, 0.0]])
    distances = distances_to_centres(X, centres, "kmeans")
    assert distances.shape == (2, 3) and distances.dtype == np.float32
    np.testing.assert_allclose(distances, [[0.0, 10.0, 3.0], [5.0, 5.0, 4.0]], atol=1e-6)


def test_distances_to_centres_cosine_by_hand() -> None:
    X = np.array([[1.0, 0.0], [1.0, 1.0], [-5.0, 0.0]])
    centres = np.array([[2.0, 0.0], [0.0, 3.0]])
    distances = distances_to_centres(X, centres, "spherical")
    half = 1.0 - 1.0 / np.sqrt(2.0)
    np.testing.assert_allclose(distances, [[0.0, 1.0], [half, half], [2.0, 1.0]], atol=1e-6)


def test_distances_to_centres_accepts_one_row() -> None:
    distances = distances_to_centres(np.array([3.0, 4.0]), np.zeros((2, 2)), "kmeans")
    np.testing.assert_allclose(distances, [[5.0, 5.0]])


def test_distances_to_centres_do_not_depend_on_where_the_data_sits(rng) -> None:
    X = rng.normal(0, 0.05, (30, 10))
    centres = X[:3]
    shift = 100.0
    near_origin = distances_to_centres(X, centres, "kmeans")
    far_away = distances_to_centres(X + shift, centres + shift, "kmeans")
    np.testing.assert_allclose(far_away, near_origin, atol=1e-4)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([2, 2, 0, 1, 1, 1, 2, 2, 0], [0, 0, 2, 1, 1, 1, 0, 0, 2]),  # sizes 2, 3, 4
        ([0, 1, 1, 2, 2], [2, 0, 0, 1, 1]),  # a tie of sizes goes to the lower old id
    ],
)
def test_order_by_size_numbers_from_largest(labels, expected) -> None:
    centres = np.arange(3, dtype=np.float32)[:, None] * 10  # centre of old id i is 10 i
    ordered = order_by_size(Fit(np.array(labels), centres, 1.5))
    np.testing.assert_array_equal(ordered.labels, expected)
    # the centre travels with its cluster: new id j keeps the centre of the old id it had
    for old, new in zip(labels, expected, strict=True):
        assert ordered.centres[new, 0] == 10 * old
    assert ordered.inertia == 1.5


def test_match_to_previous_follows_ids_and_numbers_the_split_last() -> None:
    # k-1 = 3 -> k = 4: new clusters 2, 0, 1 are old 0, 1, 2 renamed; old 1 also gives 2 images to new 3
    previous = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    labels = np.array([2, 2, 2, 0, 0, 0, 3, 3, 1, 1])
    centres = np.arange(4, dtype=np.float32)[:, None] * 10
    matched, table = match_to_previous(previous, Fit(labels, centres, 2.0))
    np.testing.assert_array_equal(matched.labels, [0, 0, 0, 1, 1, 1, 3, 3, 2, 2])
    np.testing.assert_array_equal(matched.centres[:, 0], [20, 0, 10, 30])
    assert matched.inertia == 2.0
    assert table.dtype == np.int64
    np.testing.assert_array_equal(table, [[3, 0, 0, 0], [0, 3, 0, 2], [0, 0, 2, 0]])


def test_match_to_previous_gives_new_ids_to_the_larger_unmatched_first() -> None:
    # k-1 = 2 -> k = 4: old 0 splits into new 1 (4) and new 3 (1); old 1 into new 0 (3) and new 2 (2)
    previous = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    labels = np.array([1, 1, 1, 1, 3, 0, 0, 0, 2, 2])
    matched, table = match_to_previous(previous, Fit(labels, np.zeros((4, 1), np.float32), 0.0))
    np.testing.assert_array_equal(matched.labels, [0, 0, 0, 0, 3, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(table, [[4, 0, 0, 1], [0, 3, 2, 0]])


# ---------------------------------------------------------------- groups found without a k


def test_auto_groups_finds_the_blobs_and_leaves_strays_out(rng) -> None:
    from core.clustering.algorithms import auto_groups

    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sizes = [300, 200, 100]
    blobs = np.concatenate([c + rng.normal(0, 0.5, (n, 2)) for c, n in zip(centres, sizes, strict=True)])
    strays = rng.uniform(-30, 40, (20, 2))
    strays = strays[np.min(np.linalg.norm(strays[:, None] - centres[None], axis=2), axis=1) > 5]
    labels = auto_groups(np.concatenate([blobs, strays]))
    assert labels.max() + 1 == 3
    np.testing.assert_array_equal(np.bincount(labels[: len(blobs)][labels[: len(blobs)] >= 0]) > 0, [True] * 3)
    assert list(labels[[0, 300, 500]]) == [0, 1, 2]  # numbered from the largest group
    assert np.mean(labels[len(blobs) :] < 0) >= 0.9  # strays far from every blob are in no group
    assert np.mean(labels[: len(blobs)] >= 0) >= 0.95


def test_auto_groups_is_deterministic(rng) -> None:
    from core.clustering.algorithms import auto_groups

    X = np.concatenate([rng.normal(0, 1, (100, 3)), rng.normal(8, 1, (100, 3))])
    np.testing.assert_array_equal(auto_groups(X), auto_groups(X.copy()))


def test_auto_groups_of_too_few_rows_is_all_noise() -> None:
    from core.clustering.algorithms import AUTO_MIN_SIZE, auto_groups

    np.testing.assert_array_equal(auto_groups(np.zeros((2 * AUTO_MIN_SIZE - 1, 2))), -1)


# ---------------------------------------------------------------- Gaussian mixture


def test_gmm_finds_groups_of_different_spread_and_gives_probabilities() -> None:
    from sklearn.metrics import adjusted_rand_score

    from core.clustering.algorithms import membership

    rng = np.random.default_rng(SEED)
    tight, wide = rng.normal(0, 0.3, (300, 2)), rng.normal(0, 2.0, (300, 2)) + [4, 0]
    X, truth = np.concatenate([tight, wide]), np.repeat([0, 1], 300)
    gmm = fit_clusters(X, 2, "gmm", SEED)
    kmeans = fit_clusters(X, 2, "kmeans", SEED)
    # k-means cuts halfway between the centres, through the wide group; the mixture follows each spread
    assert adjusted_rand_score(truth, gmm.labels) > 0.95 > 0.8 > adjusted_rand_score(truth, kmeans.labels)
    p = membership(X, gmm)
    assert p.shape == (600, 2)
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_array_equal(p.argmax(1), gmm.labels)


def test_reordering_a_mixture_moves_its_components_along(rng) -> None:
    from core.clustering.algorithms import membership, order_by_size

    X = np.concatenate([rng.normal(0, 1, (50, 2)), rng.normal(6, 1, (200, 2))])
    fit = fit_clusters(X, 2, "gmm", SEED)
    ordered = order_by_size(fit)
    assert np.bincount(ordered.labels)[0] == 200
    np.testing.assert_array_equal(membership(X, ordered).argmax(1), ordered.labels)


def test_spread_labels_gives_each_image_the_group_of_most_of_its_labelled_neighbours() -> None:
    from core.clustering.algorithms import spread_labels

    graph = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 4, 4], [4, 3, 2], [5, 5, 5], [6, 0, 4], [7, 2, 2]])
    out = spread_labels(np.array([0, 1, 4]), np.array([0, 0, -1]), graph)
    # 2: its labelled neighbours are in group 0; 3: only noise; 5: no labelled neighbour, ever;
    # 6: group 0 and noise tie, the group wins; 7: its neighbour 2 gets a group in round 1, it in round 2
    assert out.tolist() == [0, 0, 0, -1, -1, -1, 0, 0]


def test_auto_groups_on_a_sample_spread_through_the_graph_match_the_full_run() -> None:
    from core.clustering.agreement import agreement
    from core.clustering.algorithms import auto_groups
    from core.representation.reduction import nearest_neighbors

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 30, (4, 5))
    X = np.concatenate([c + rng.normal(0, 1, (300, 5)) for c in centres])
    graph, _ = nearest_neighbors(X, 10)
    full = auto_groups(X)
    sampled = auto_groups(X, graph, fit_up_to=300, seed=0)
    assert int(full.max()) + 1 == 4 and int(sampled.max()) + 1 == 4
    assert agreement(full, sampled)[0] >= 0.95
