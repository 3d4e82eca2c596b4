"""Tests of core.clustering.scoring: silhouettes for many k at once, stability, and the recommended k."""

import numpy as np
import pytest
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_samples,
    silhouette_score,
)

from core.clustering.agreement import agreement
from core.clustering.algorithms import fit_clusters
from core.clustering.scoring import (
    STABLE_ENOUGH,
    recommend_k,
    separation_scores,
    silhouette_sample,
    silhouettes,
    stability,
)

SEED = 0
N = 24
METRICS = ("euclidean", "cosine")


def quarter_grid_rows(rng: np.random.Generator, n: int = N, d: int = 3) -> np.ndarray:
    """Rows (n, d) of multiples of 1/4 in [-2, 2].

    float32 sums of their products are exact, so a difference from scikit-learn would be the
    method's and not rounding's (rounding has its own test below).
    """
    return rng.integers(-8, 9, (n, d)) / 4.0


def labelings(rng: np.random.Generator, n: int = N) -> list[np.ndarray]:
    """Three clusterings of n rows: contiguous thirds, shuffled quarters, one with a singleton."""
    return [
        np.repeat(np.arange(3), n // 3),
        rng.permutation(np.arange(n) % 4),
        np.r_[0, np.ones(n // 2 - 1, int), np.full(n - n // 2, 2)],
    ]


def blobs(rng: np.random.Generator) -> np.ndarray:
    """Three tight blobs far apart: X (90, 2)."""
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    return np.concatenate([c + rng.normal(0, 0.4, (30, 2)) for c in centres])


@pytest.mark.parametrize("metric", METRICS)
def test_silhouettes_equal_sklearn_on_all_rows(rng, metric) -> None:
    X = quarter_grid_rows(rng)
    labels_by_k = labelings(rng)
    scores, per_image = silhouettes(X, labels_by_k, silhouette_sample(N, SEED), metric)
    assert scores.shape == (3,) and per_image.shape == (3, N) and per_image.dtype == np.float32
    for j, labels in enumerate(labels_by_k):
        np.testing.assert_allclose(per_image[j], silhouette_samples(X, labels, metric=metric), atol=1e-5)
        assert scores[j] == pytest.approx(silhouette_score(X, labels, metric=metric), abs=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_silhouettes_of_a_singleton_cluster_are_zero(rng, metric) -> None:
    X = quarter_grid_rows(rng)
    singleton = labelings(rng)[2]
    _, per_image = silhouettes(X, [singleton], np.arange(N), metric)
    assert per_image[0, 0] == 0.0
    assert silhouette_samples(X, singleton, metric=metric)[0] == 0.0


@pytest.mark.parametrize("metric", METRICS)
def test_silhouettes_of_sampled_rows_equal_sklearn_on_the_sample_alone(rng, metric) -> None:
    n = 30
    X = quarter_grid_rows(rng, n)
    labels_by_k = labelings(rng, n)[:2]
    sample = silhouette_sample(n, SEED, sample_size=12)
    scores, per_image = silhouettes(X, labels_by_k, sample, metric)
    for j, labels in enumerate(labels_by_k):
        expected = silhouette_samples(X[sample], labels[sample], metric=metric)
        np.testing.assert_allclose(per_image[j, sample], expected, atol=1e-5)
        assert scores[j] == pytest.approx(expected.mean(), abs=1e-5)


def test_silhouettes_do_not_depend_on_where_the_data_sits(rng) -> None:
    # two tight blobs, as UMAP's cluster space makes them; a silhouette is translation-invariant
    X = np.r_[rng.normal(0, 0.05, (30, 10)), rng.normal(0.15, 0.05, (30, 10))]
    labels = np.repeat([0, 1], 30)
    _, near_origin = silhouettes(X, [labels], np.arange(60))
    _, far_away = silhouettes(X + 100.0, [labels], np.arange(60))
    np.testing.assert_allclose(far_away, near_origin, atol=1e-3)


def test_silhouettes_refuse_unknown_metric(rng) -> None:
    with pytest.raises(ValueError, match=r"metric='manhattan' should be 'euclidean' or 'cosine'"):
        silhouettes(quarter_grid_rows(rng), labelings(rng), np.arange(N), "manhattan")


def test_silhouettes_report_progress_up_to_all_rows(rng) -> None:
    calls = []
    silhouettes(quarter_grid_rows(rng), labelings(rng), np.arange(N), on_progress=lambda *a: calls.append(a))
    assert calls[-1] == (N, N, "silhouette")


@pytest.mark.parametrize(("n", "sample_size", "size"), [(10, 20, 10), (20, 20, 20), (50, 20, 20)])
def test_silhouette_sample_has_min_n_sample_size_sorted_distinct_rows(n, sample_size, size) -> None:
    sample = silhouette_sample(n, SEED, sample_size)
    assert len(sample) == size
    assert np.all(np.diff(sample) > 0)
    assert sample.min() >= 0 and sample.max() < n


def test_silhouette_sample_is_the_same_for_the_same_seed() -> None:
    np.testing.assert_array_equal(silhouette_sample(1000, 4, 30), silhouette_sample(1000, 4, 30))


def test_stability_of_separated_blobs_is_one(rng) -> None:
    X = blobs(rng)
    labels = fit_clusters(X, 3, seed=SEED).labels
    mean, spread = stability(X, labels, 3, "kmeans", SEED)
    assert (mean, spread) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-9))


def test_stability_of_uniform_noise_is_below_stable_enough(rng) -> None:
    X = rng.uniform(size=(200, 10))
    labels = fit_clusters(X, 5, seed=SEED).labels
    mean, spread = stability(X, labels, 5, "kmeans", SEED)
    assert mean < STABLE_ENOUGH - 0.2
    assert spread > 0  # the runs disagree with each other too


def test_stability_does_not_flip_with_the_seed(rng) -> None:
    X = blobs(rng)
    labels = fit_clusters(X, 4, seed=SEED).labels  # one blob split in two: a k that is not quite there
    means = [stability(X, labels, 4, "kmeans", seed)[0] for seed in range(5)]
    assert max(means) - min(means) < 0.25


@pytest.mark.parametrize(
    ("silhouette", "stable", "expected"),
    [
        ([0.5, 0.7, 0.6, 0.9], [0.9, 0.5, 0.85, 0.79], 4),  # k=5 scores best but is not stable enough
        ([0.5, 0.7, 0.6, 0.9], [0.9, 0.8, 0.85, 0.1], 3),  # stability exactly at the bar counts
        ([0.5, 0.7, 0.6, 0.9], [0.9, 0.9, 0.9, 0.9], 5),  # all stable: the best silhouette
        ([0.5, 0.7, 0.6, 0.4], [0.1, 0.2, 0.3, 0.4], 3),  # none stable: the best silhouette
        ([0.2, 0.8, 0.8, 0.1], [0.9, 0.9, 0.9, 0.9], 4),  # a tie goes to the larger k
        ([0.5, 0.8, 0.79, 0.7], [0.9, 0.9, 0.9, 0.9], 4),  # within 0.02 of the best: the larger k
        ([0.5, 0.8, 0.77, 0.7], [0.9, 0.9, 0.9, 0.9], 3),  # 0.03 below the best: not close enough
        ([0.5, 0.8, 0.79, 0.79], [0.9, 0.9, 0.9, 0.5], 4),  # close but unstable k=5 is not chosen
    ],
)
def test_recommend_k_follows_the_rule(silhouette, stable, expected) -> None:
    assert recommend_k([2, 3, 4, 5], silhouette, stable) == expected


def test_agreement_with_truth_leaves_out_unknown_codes() -> None:
    truth = np.array([0, 0, 1, 1, -1, -1])
    labels = np.array([5, 5, 2, 2, 5, 2])  # the unknown rows would break a perfect match
    assert agreement(truth, labels) == (1.0, 1.0)


def test_agreement_with_truth_equals_sklearn_on_known_rows(rng) -> None:
    truth = rng.integers(-1, 3, 40)
    labels = rng.integers(0, 3, 40)
    known = truth >= 0
    ari, nmi = agreement(truth, labels)
    assert ari == pytest.approx(adjusted_rand_score(truth[known], labels[known]))
    assert nmi == pytest.approx(normalized_mutual_info_score(truth[known], labels[known]))


@pytest.mark.parametrize("algorithm", ["kmeans", "spherical"])
def test_separation_scores_equal_sklearn_in_the_clustering_geometry(rng, algorithm) -> None:
    X = rng.normal(size=(40, 3))
    labels = np.arange(40) % 3
    Y = X / np.linalg.norm(X, axis=1, keepdims=True) if algorithm == "spherical" else X
    db, ch = separation_scores(X, labels, algorithm)
    assert db == pytest.approx(davies_bouldin_score(Y, labels))
    assert ch == pytest.approx(calinski_harabasz_score(Y, labels))
