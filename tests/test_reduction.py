"""Tests of core.representation.reduction: PCA to a few components, and exact or approximate nearest neighbours."""

import numpy as np
import pytest

from core.representation import reduction
from core.representation.reduction import N_NEIGHBORS, nearest_neighbors, reduce_features

SEED = 0


def brute_force(Z: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of Z for each query, in float64: (indices, distances), each (m, k)."""
    distances = np.linalg.norm(queries[:, None, :] - Z[None, :, :], axis=2)
    indices = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return indices, np.take_along_axis(distances, indices, axis=1)


@pytest.mark.parametrize(
    ("n", "d", "components", "kept"),
    [
        (30, 8, 3, 3),  # as asked
        (30, 6, 50, 6),  # no more than the features
        (5, 20, 50, 4),  # no more than n - 1
        (2, 3, 50, 1),
    ],
)
def test_reduce_features_keeps_min_of_components_n_minus_one_and_features(rng, n, d, components, kept) -> None:
    reduction = reduce_features(rng.normal(size=(n, d)), components, SEED)
    assert reduction.Z.shape == (n, kept) and reduction.Z.dtype == np.float32
    assert reduction.components.shape == (kept, d)
    assert reduction.mean.shape == (d,)
    assert reduction.explained_variance_ratio.shape == (kept,)


def test_project_of_the_training_rows_reproduces_z(rng) -> None:
    X = rng.normal(size=(40, 12)) @ rng.normal(size=(12, 12))
    reduction = reduce_features(X, 5, SEED)
    np.testing.assert_allclose(reduction.project(X), reduction.Z, atol=1e-4)


def test_project_accepts_one_row(rng) -> None:
    X = rng.normal(size=(20, 6))
    reduction = reduce_features(X, 3, SEED)
    assert reduction.project(X[0]).shape == (1, 3)


def test_explained_variance_ratio_is_descending_and_sums_to_at_most_one(rng) -> None:
    X = rng.normal(size=(40, 12)) * np.arange(1, 13)  # clearly unequal variances
    ratio = reduce_features(X, 6, SEED).explained_variance_ratio
    assert np.all(np.diff(ratio) <= 0)
    assert 0 < ratio.sum() <= 1 + 1e-9


def test_explained_variance_ratio_of_all_components_sums_to_one(rng) -> None:
    ratio = reduce_features(rng.normal(size=(40, 5)), 50, SEED).explained_variance_ratio
    assert ratio.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("n", "components", "message"),
    [(10, 0, r"n_components=0 should be >= 1\."), (1, 5, r"n_images=1 should be >= 2 for a reduction\.")],
)
def test_reduce_features_refuses_impossible_requests(rng, n, components, message) -> None:
    with pytest.raises(ValueError, match=message):
        reduce_features(rng.normal(size=(n, 4)), components)


def test_nearest_neighbors_each_row_is_its_own_first_at_distance_zero(rng) -> None:
    Z = rng.normal(size=(40, 5)).astype(np.float32)
    indices, distances = nearest_neighbors(Z, 6)
    np.testing.assert_array_equal(indices[:, 0], np.arange(40))
    np.testing.assert_array_equal(distances[:, 0], 0.0)


def test_nearest_neighbors_match_brute_force(rng) -> None:
    Z = rng.normal(size=(40, 5)).astype(np.float32)
    indices, distances = nearest_neighbors(Z)
    expected_indices, expected_distances = brute_force(Z.astype(np.float64), Z.astype(np.float64), N_NEIGHBORS)
    assert indices.shape == (40, N_NEIGHBORS) and indices.dtype == np.int64
    assert distances.dtype == np.float32
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, atol=1e-5)


def test_nearest_neighbors_of_queries_match_brute_force(rng) -> None:
    Z = rng.normal(size=(40, 5)).astype(np.float32)
    queries = rng.normal(size=(7, 5)).astype(np.float32)
    indices, distances = nearest_neighbors(Z, 4, queries)
    expected_indices, expected_distances = brute_force(Z.astype(np.float64), queries.astype(np.float64), 4)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, atol=1e-5)


def test_nearest_neighbors_of_one_query_row(rng) -> None:
    Z = rng.normal(size=(40, 5)).astype(np.float32)
    indices, distances = nearest_neighbors(Z, 3, Z[7])
    assert indices.shape == distances.shape == (1, 3)
    assert indices[0, 0] == 7


def test_nearest_neighbors_asks_for_no_more_than_n_rows(rng) -> None:
    indices, _ = nearest_neighbors(rng.normal(size=(6, 3)), N_NEIGHBORS)
    assert indices.shape == (6, 6)
    assert sorted(indices[0]) == list(range(6))


def test_nearest_neighbors_each_row_is_its_own_first_even_with_duplicates(rng) -> None:
    Z = rng.normal(size=(30, 4)).astype(np.float32)
    Z[[10, 20]] = Z[3]
    indices, _ = nearest_neighbors(Z, 5)
    np.testing.assert_array_equal(indices[:, 0], np.arange(30))


# ---- the exact/approximate switch (fast: the approximate search is replaced by a spy) --------
@pytest.fixture
def approximate_calls(monkeypatch) -> list[int]:
    """The sizes the approximate search was asked for; it answers exactly, so no JIT runs."""
    calls: list[int] = []

    def spy(Z: np.ndarray, n_neighbors: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(Z))
        return reduction._exact(Z, n_neighbors, Z)

    monkeypatch.setattr(reduction, "_approximate_graph", spy)
    return calls


@pytest.mark.parametrize(("n", "approximate"), [(20, False), (21, True)])
def test_auto_is_approximate_only_above_the_threshold(rng, monkeypatch, approximate_calls, n, approximate) -> None:
    monkeypatch.setattr(reduction, "EXACT_NEIGHBOURS_UP_TO", 20)
    nearest_neighbors(rng.normal(size=(n, 3)).astype(np.float32), 4)
    assert approximate_calls == ([n] if approximate else [])


@pytest.mark.parametrize(("method", "calls"), [("exact", []), ("approximate", [10])])
def test_method_forces_the_search_at_any_size(rng, approximate_calls, method, calls) -> None:
    nearest_neighbors(rng.normal(size=(10, 3)).astype(np.float32), 4, method=method)
    assert approximate_calls == calls


def test_queries_are_searched_exactly_above_the_threshold(rng, monkeypatch, approximate_calls) -> None:
    monkeypatch.setattr(reduction, "EXACT_NEIGHBOURS_UP_TO", 20)
    Z = rng.normal(size=(40, 5)).astype(np.float32)
    queries = rng.normal(size=(3, 5)).astype(np.float32)
    indices, _ = nearest_neighbors(Z, 4, queries)
    assert approximate_calls == []
    np.testing.assert_array_equal(indices, brute_force(Z.astype(np.float64), queries.astype(np.float64), 4)[0])


def test_auto_below_the_threshold_is_todays_exact_search(rng) -> None:
    from sklearn.neighbors import NearestNeighbors

    Z = rng.normal(size=(200, 6)).astype(np.float32)
    indices, distances = nearest_neighbors(Z)
    expected_distances, expected_indices = (
        NearestNeighbors(n_neighbors=N_NEIGHBORS, algorithm="brute").fit(Z).kneighbors(Z)
    )
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(distances, expected_distances.astype(np.float32))


@pytest.mark.parametrize(
    ("method", "queries", "message"),
    [
        ("fast", None, r"method='fast' should be one of \('auto', 'exact', 'approximate'\)\."),
        ("approximate", np.zeros((1, 3)), r"queries are always searched exactly\."),
    ],
)
def test_nearest_neighbors_refuses_unknown_or_approximate_queries(rng, method, queries, message) -> None:
    with pytest.raises(ValueError, match=message):
        nearest_neighbors(rng.normal(size=(10, 3)), 4, queries, method=method)


# ---- the approximate search itself (pynndescent: numba JIT once per process) ----------------
CLUSTERED_N = 3_000
MIN_RECALL = 0.9


@pytest.fixture(scope="module")
def clustered() -> np.ndarray:
    """3,000 points in 20 Gaussian clusters of 10 dimensions: (3000, 10) float32."""
    rng = np.random.default_rng(SEED)
    centres = rng.normal(scale=4.0, size=(20, 10))
    return (centres[rng.integers(0, 20, CLUSTERED_N)] + rng.normal(size=(CLUSTERED_N, 10))).astype(np.float32)


@pytest.fixture(scope="module")
def approximate_graph(clustered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return nearest_neighbors(clustered, method="approximate", seed=SEED)


@pytest.mark.slow
def test_approximate_graph_finds_most_exact_neighbours(clustered, approximate_graph) -> None:
    exact, _ = nearest_neighbors(clustered, method="exact")
    indices, _ = approximate_graph
    found = (indices[:, 1:, None] == exact[:, None, 1:]).any(axis=1)  # the row itself left out
    assert found.mean() >= MIN_RECALL


@pytest.mark.slow
def test_approximate_graph_keeps_the_contract(clustered, approximate_graph) -> None:
    indices, distances = approximate_graph
    assert indices.shape == distances.shape == (CLUSTERED_N, N_NEIGHBORS)
    assert indices.dtype == np.int64 and distances.dtype == np.float32
    np.testing.assert_array_equal(indices[:, 0], np.arange(CLUSTERED_N))
    np.testing.assert_array_equal(distances[:, 0], 0.0)
    assert np.all(np.diff(distances, axis=1) >= 0)
    assert indices.min() >= 0 and indices.max() < CLUSTERED_N
    assert all(len(set(row)) == N_NEIGHBORS for row in indices)
    exact = np.linalg.norm(clustered[indices] - clustered[:, None, :], axis=2)
    np.testing.assert_allclose(distances, exact, atol=1e-4)


@pytest.mark.slow
def test_approximate_graph_is_the_same_for_the_same_seed(clustered, approximate_graph) -> None:
    indices, distances = nearest_neighbors(clustered, method="approximate", seed=SEED)
    np.testing.assert_array_equal(indices, approximate_graph[0])
    np.testing.assert_array_equal(distances, approximate_graph[1])


@pytest.mark.slow
def test_approximate_graph_puts_each_row_first_even_with_duplicates(rng) -> None:
    Z = rng.normal(size=(30, 4)).astype(np.float32)
    Z[[10, 20]] = Z[3]
    indices, distances = nearest_neighbors(Z, 5, method="approximate")
    np.testing.assert_array_equal(indices[:, 0], np.arange(30))
    assert set(indices[3, :3]) == {3, 10, 20} and np.all(distances[[3, 10, 20], :3] == 0.0)


@pytest.mark.slow
def test_approximate_graph_of_fewer_rows_than_neighbours_is_complete(rng) -> None:
    indices, _ = nearest_neighbors(rng.normal(size=(6, 3)).astype(np.float32), N_NEIGHBORS, method="approximate")
    assert indices.shape == (6, 6)
    assert all(sorted(row) == list(range(6)) for row in indices)
