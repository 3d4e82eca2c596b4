"""Tests of core.representation.embedding: placing new points by their neighbours, and the seeded UMAP."""

import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from core.clustering.algorithms import fit_clusters
from core.errors import UmapUnavailableError
from core.representation.embedding import UMAP_MIN_IMAGES, place_by_neighbours, umap_embedding
from core.representation.reduction import nearest_neighbors

SEED = 0
PER_BLOB = 100
MIN_BLOB_ARI = 0.95

POSITIONS = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 8.0], [6.0, 6.0]])


def test_place_by_neighbours_is_the_inverse_distance_weighted_mean() -> None:
    # weights 1/1, 1/2, 1/4 -> 4/7, 2/7, 1/7 of (0, 0), (4, 0), (0, 8)
    xy = place_by_neighbours(POSITIONS, np.array([[0, 1, 2]]), np.array([[1.0, 2.0, 4.0]]))
    assert xy.shape == (1, 2) and xy.dtype == np.float32
    np.testing.assert_allclose(xy, [[8 / 7, 8 / 7]], rtol=1e-6)


def test_place_by_neighbours_places_each_row_on_its_own() -> None:
    indices = np.array([[0, 1], [3, 2]])
    distances = np.array([[1.0, 1.0], [1.0, 3.0]])
    xy = place_by_neighbours(POSITIONS, indices, distances)
    np.testing.assert_allclose(xy, [[2.0, 0.0], [4.5, 6.5]], rtol=1e-6)


def test_place_by_neighbours_puts_an_exact_duplicate_on_its_twin() -> None:
    xy = place_by_neighbours(POSITIONS, np.array([[3, 0, 1]]), np.array([[0.0, 0.5, 1.0]]))
    np.testing.assert_array_equal(xy, [[6.0, 6.0]])


def test_umap_embedding_refuses_too_few_images_and_says_what_to_do(rng) -> None:
    n = UMAP_MIN_IMAGES - 1
    Z = rng.normal(size=(n, 3)).astype(np.float32)
    indices, distances = nearest_neighbors(Z)
    message = rf"at least {UMAP_MIN_IMAGES} images and there are {n}; use the PCA layout and --cluster-space pca"
    with pytest.raises(UmapUnavailableError, match=message):
        umap_embedding(Z, indices, distances)


def test_umap_embedding_without_umap_says_pip_install(rng, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` raise ImportError
    Z = rng.normal(size=(UMAP_MIN_IMAGES + 2, 3)).astype(np.float32)
    indices, distances = nearest_neighbors(Z)
    with pytest.raises(UmapUnavailableError, match=r"pip install"):
        umap_embedding(Z, indices, distances)


@pytest.mark.slow
def test_umap_embedding_keeps_separated_blobs_apart_and_repeats_with_the_seed(rng) -> None:
    centres = np.eye(3, 8) * 10
    Z = np.concatenate([c + rng.normal(0, 1.0, (PER_BLOB, 8)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(3), PER_BLOB)
    indices, distances = nearest_neighbors(Z)
    xy = umap_embedding(Z, indices, distances, seed=SEED)
    assert xy.shape == (len(Z), 2) and xy.dtype == np.float32
    assert np.isfinite(xy).all()
    assert adjusted_rand_score(truth, fit_clusters(xy, 3, seed=SEED).labels) >= MIN_BLOB_ARI
    np.testing.assert_array_equal(umap_embedding(Z, indices, distances, seed=SEED), xy)


def test_place_through_graph_fills_every_row_in_rounds_by_hand() -> None:
    from core.representation.embedding import place_through_graph

    # a chain 0 - 1 - 2 - 3; only row 0 and row 3 are placed (at 0 and 30)
    indices = np.array([[0, 1], [1, 0], [2, 3], [3, 2]])
    distances = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    Z = np.arange(4, dtype=np.float64)[:, None]
    placed = place_through_graph(Z, np.array([0, 3]), np.array([[0.0], [30.0]]), indices, distances)
    assert placed[:, 0].tolist() == [0.0, 0.0, 30.0, 30.0]  # each takes its one placed neighbour


def test_place_through_graph_reaches_rows_whose_part_of_the_graph_has_no_sample() -> None:
    from core.representation.embedding import place_through_graph

    indices = np.array([[0, 1], [1, 0], [2, 3], [3, 2]])  # two parts: {0, 1} and {2, 3}
    distances = np.ones((4, 2))
    Z = np.array([[0.0], [1.0], [9.0], [10.0]])
    placed = place_through_graph(Z, np.array([0, 1]), np.array([[5.0], [7.0]]), indices, distances)
    assert np.all(np.isfinite(placed)) and placed[2, 0] == pytest.approx(placed[3, 0], abs=2.0)
    assert 5.0 <= placed[2, 0] <= 7.0  # placed by its nearest sampled images in Z


@pytest.mark.slow
def test_umap_fitted_on_a_sample_keeps_separated_blobs_apart(rng) -> None:
    centres = rng.normal(0, 20, (4, 8))
    truth = np.repeat(np.arange(4), 150)
    Z = (centres[truth] + rng.normal(0, 1, (600, 8))).astype(np.float32)
    indices, distances = nearest_neighbors(Z, 15)
    U = umap_embedding(Z, indices, distances, n_components=2, seed=0, n_epochs=50, fit_up_to=200)
    assert U.shape == (600, 2) and np.isfinite(U).all()
    found = fit_clusters(U, 4, "kmeans", 0).labels
    assert adjusted_rand_score(truth, found) >= 0.95


def test_umap_keeps_its_compiled_code_on_disk() -> None:
    from numba.core.registry import CPUDispatcher

    from core.representation.embedding import import_umap

    umap = import_umap()
    compiled = [v for v in vars(umap.layouts).values() if isinstance(v, CPUDispatcher)]
    assert compiled and all(type(v._cache).__name__ != "NullCache" for v in compiled)
