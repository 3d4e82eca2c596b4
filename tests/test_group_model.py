"""Assigning new images to curated groups: every method on tiny inputs with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from core.curation.classifier import (
    DEFAULT_METHOD,
    GROUP_NEIGHBOURS,
    METHOD_WORDS,
    METHODS,
    GroupModel,
    fit_groups,
)

SEED = 0


@pytest.fixture
def two_clumps() -> tuple[np.ndarray, np.ndarray]:
    """Group 0 around (0, 0), group 2 around (10, 0), group 1 empty, two images unused (-1)."""
    rng = np.random.default_rng(SEED)
    Z = np.vstack([rng.normal(0, 0.5, (12, 2)), rng.normal(0, 0.5, (12, 2)) + [10, 0], [[5, 5], [-5, -5]]])
    groups = np.array([0] * 12 + [2] * 12 + [-1, -1])
    return Z.astype(np.float32), groups


def test_the_public_names_agree() -> None:
    assert DEFAULT_METHOD in METHODS
    assert set(METHOD_WORDS) == set(METHODS)
    assert all(words.endswith(".") for words in METHOD_WORDS.values())


@pytest.mark.parametrize("method", METHODS)
def test_new_images_go_to_the_group_they_sit_in(method: str, two_clumps) -> None:
    Z, groups = two_clumps
    model = fit_groups(Z, groups, method, SEED)
    group, confidence = model.predict(np.array([[0.2, 0.1], [9.8, -0.3]]))
    assert group.tolist() == [0, 2]
    assert group.dtype == np.int64
    assert np.all(confidence > 0.8)  # logistic: its L2 penalty keeps 24 images from certainty


@pytest.mark.parametrize("method", METHODS)
def test_an_empty_group_index_is_counted_but_never_predicted(method: str, two_clumps) -> None:
    Z, groups = two_clumps
    model = fit_groups(Z, groups, method, SEED)
    assert model.n_groups == 3
    group, _ = model.predict(np.random.default_rng(SEED).normal(5, 6, (200, 2)))
    assert set(group.tolist()) <= {0, 2}


@pytest.mark.parametrize("method", METHODS)
def test_one_group_takes_everything_with_confidence_one(method: str) -> None:
    Z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])
    model = fit_groups(Z, np.array([3, 3, 3, -1]), method, SEED)
    group, confidence = model.predict(np.array([[100.0, -100.0], [0.5, 0.5]]))
    assert group.tolist() == [3, 3]
    assert confidence.tolist() == [1.0, 1.0]
    assert model.n_groups == 4


@pytest.mark.parametrize("method", METHODS)
def test_a_group_of_one_member_can_be_predicted(method: str) -> None:
    rng = np.random.default_rng(SEED)
    Z = np.vstack([rng.normal(0, 0.3, (30, 2)), [[20.0, 20.0]]])
    groups = np.array([0] * 30 + [1])
    # neighbours, default: 1 / distance votes divided by sqrt(group size) let one near member outvote 9 far ones
    model = fit_groups(Z, groups, method, SEED)
    group, _ = model.predict(np.array([[20.0, 20.0], [18.0, 18.0], [0.0, 0.0]]))
    assert group.tolist() == [1, 1, 0]


@pytest.mark.parametrize("method", METHODS)
def test_very_unequal_groups_keep_the_small_one(method: str) -> None:
    rng = np.random.default_rng(SEED)
    Z = np.vstack([rng.normal(0, 1, (500, 3)), rng.normal(0, 0.2, (5, 3)) + 12])
    groups = np.array([0] * 500 + [1] * 5)
    group, _ = fit_groups(Z, groups, method, SEED, n_neighbours=3).predict(np.array([[12.0, 12, 12], [0, 0, 0]]))
    assert group.tolist() == [1, 0]


@pytest.mark.parametrize("method", METHODS)
def test_confidence_is_between_zero_and_one(method: str, two_clumps) -> None:
    Z, groups = two_clumps
    _, confidence = fit_groups(Z, groups, method, SEED).predict(np.random.default_rng(1).normal(5, 8, (100, 2)))
    assert confidence.shape == (100,)
    assert np.all((confidence >= 0) & (confidence <= 1))


@pytest.mark.parametrize("method", METHODS)
def test_the_same_inputs_give_the_same_model(method: str, two_clumps) -> None:
    Z, groups = two_clumps
    queries = np.random.default_rng(2).normal(5, 5, (50, 2))
    first = fit_groups(Z, groups, method, SEED).predict(queries)
    second = fit_groups(Z, groups, method, SEED).predict(queries)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("method", METHODS)
def test_a_single_row_is_one_image(method: str, two_clumps) -> None:
    Z, groups = two_clumps
    group, confidence = fit_groups(Z, groups, method, SEED).predict(np.array([10.0, 0.0]))
    assert group.shape == confidence.shape == (1,)
    assert group[0] == 2


@pytest.mark.parametrize("method", METHODS)
def test_no_rows_give_empty_answers(method: str, two_clumps) -> None:
    Z, groups = two_clumps
    group, confidence = fit_groups(Z, groups, method, SEED).predict(np.empty((0, 2)))
    assert group.shape == confidence.shape == (0,)


@pytest.mark.parametrize("method", METHODS)
def test_a_wrong_width_is_refused_with_its_shape(method: str, two_clumps) -> None:
    Z, groups = two_clumps
    with pytest.raises(ValueError, match=r"\(1, 3\).*\(m, 2\)"):
        fit_groups(Z, groups, method, SEED).predict(np.zeros((1, 3)))


@pytest.mark.parametrize("method", METHODS)
def test_no_curated_image_is_refused(method: str) -> None:
    with pytest.raises(ValueError, match=r"No image is in any group.*all 3"):
        fit_groups(np.zeros((3, 2)), np.array([-1, -1, -1]), method)


def test_an_unknown_method_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="method='forest' should be one of"):
        fit_groups(np.zeros((2, 2)), np.array([0, 1]), "forest")


@pytest.mark.parametrize(
    ("Z", "groups", "match"),
    [
        (np.zeros((3, 2)), np.array([0, 1]), r"groups has shape \(2,\); it should be \(3,\)"),
        (np.zeros(3), np.array([0, 1, 1]), r"Z has shape \(3,\)"),
        (np.zeros((2, 2)), np.array([0.0, 1.0]), "dtype float64"),
        (np.array([[0.0, np.nan], [1.0, 1.0]]), np.array([0, 1]), "1 non-finite"),
    ],
)
def test_bad_inputs_are_refused_with_their_values(Z: np.ndarray, groups: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_groups(Z, groups, DEFAULT_METHOD)


def test_neighbours_confidence_is_the_vote_share() -> None:
    # a query at 0 has neighbours at 1, 2, 3 (groups 0, 1, 1) among the three nearest: 2 of 3 say group 1
    Z = np.array([[1.0], [2.0], [3.0], [50.0]])
    model = fit_groups(Z, np.array([0, 1, 1, 0]), "neighbours", n_neighbours=3, weighted=False)
    group, confidence = model.predict(np.array([[0.0]]))
    assert group.tolist() == [1]
    assert confidence[0] == pytest.approx(2 / 3)


def test_weighted_neighbours_let_a_near_image_outvote_far_ones() -> None:
    # weights 1/1 for group 0 against 1/4 + 1/5 = 0.45 for group 1: share 1 / 1.45
    Z = np.array([[1.0], [4.0], [5.0]])
    model = fit_groups(Z, np.array([0, 1, 1]), "neighbours", n_neighbours=3, weighted=True, size_power=0)
    group, confidence = model.predict(np.array([[0.0]]))
    assert group.tolist() == [0]
    assert confidence[0] == pytest.approx(1 / 1.45)


def test_a_tied_vote_goes_to_the_group_of_the_nearer_image() -> None:
    # neighbours at 1 (group 1) and 2 (group 0): one vote each, the nearer decides
    Z = np.array([[2.0], [-1.0]])
    model = fit_groups(Z, np.array([0, 1]), "neighbours", n_neighbours=2, weighted=False)
    group, confidence = model.predict(np.array([[0.0]]))
    assert group.tolist() == [1]
    assert confidence[0] == pytest.approx(0.5)


def test_an_exact_twin_decides_a_weighted_vote() -> None:
    Z = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    model = fit_groups(Z, np.array([1, 0, 0]), "neighbours", n_neighbours=3, weighted=True)
    group, confidence = model.predict(np.array([[0.0, 0.0]]))
    assert group.tolist() == [1]
    assert confidence[0] == pytest.approx(1.0)


def test_more_neighbours_than_images_use_them_all() -> None:
    Z, groups = np.array([[0.0], [1.0], [2.0]]), np.array([0, 0, 1])
    model = fit_groups(Z, groups, "neighbours", n_neighbours=50, weighted=False, size_power=0)
    group, confidence = model.predict(np.array([[2.0]]))
    assert group.tolist() == [0]
    assert confidence[0] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("size_power", "expected_group", "expected_share"), [(0.0, 0, 4 / 5), (0.5, 0, 2 / 3), (1.0, 1, 1 / 2)]
)
def test_a_group_s_votes_are_divided_by_a_power_of_its_size(
    size_power: float, expected_group: int, expected_share: float
) -> None:
    # 4 of 5 plain votes for group 0 (4 curated), 1 for group 1 (1 curated):
    # power 0.5: 4/2 = 2 against 1/1, share 2/3; power 1: 4/4 = 1 against 1/1, a tie the nearer image (group 1) wins
    Z = np.array([[0.0], [2.0], [2.1], [2.2], [2.3]])
    model = fit_groups(
        Z, np.array([1, 0, 0, 0, 0]), "neighbours", n_neighbours=5, weighted=False, size_power=size_power
    )
    group, confidence = model.predict(np.array([[0.5]]))
    assert group.tolist() == [expected_group]
    assert confidence[0] == pytest.approx(expected_share)


def test_a_size_power_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"size_power=2 should be in 0\.\.1"):
        fit_groups(np.zeros((2, 2)), np.array([0, 1]), "neighbours", size_power=2)


def test_neighbours_default_count_is_used() -> None:
    model = fit_groups(np.zeros((3, 2)), np.array([0, 1, 1]), "neighbours")
    assert model.n_neighbours == GROUP_NEIGHBOURS


def test_neighbours_refuse_a_count_below_one() -> None:
    with pytest.raises(ValueError, match="n_neighbours=0 should be >= 1"):
        fit_groups(np.zeros((2, 2)), np.array([0, 1]), "neighbours", n_neighbours=0)


@pytest.mark.parametrize("n_groups", [2, 4])
def test_logistic_probabilities_match_scikit_learn(n_groups: int) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(SEED)
    Z = rng.normal(0, 1, (80, 3)) * [3.0, 1.0, 0.2] + [1.0, -2.0, 0.5]
    groups = rng.integers(0, n_groups, 80)
    model = fit_groups(Z, groups, "logistic", SEED)
    scaled = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    reference = LogisticRegression(C=1.0, max_iter=300).fit(scaled, groups).predict_proba(scaled)
    group, confidence = model.predict(Z)
    np.testing.assert_array_equal(group, np.argmax(reference, axis=1))
    np.testing.assert_allclose(confidence, reference.max(axis=1), rtol=1e-6)


def test_logistic_keeps_a_constant_component() -> None:
    Z = np.array([[0.0, 7.0], [0.1, 7.0], [5.0, 7.0], [5.1, 7.0]])
    group, _ = fit_groups(Z, np.array([0, 0, 1, 1]), "logistic").predict(np.array([[4.9, 7.0]]))
    assert group.tolist() == [1]


def test_a_model_without_learned_state_says_how_to_make_one() -> None:
    with pytest.raises(ValueError, match="fit_groups"):
        GroupModel("logistic", 2, np.array([0, 1])).predict(np.zeros((1, 2)))


@pytest.mark.parametrize("weighted", [False, True])
def test_a_batch_and_one_by_one_agree(weighted: bool) -> None:
    # more than a few new images take scikit-learn's search, one at a time the module's own
    rng = np.random.default_rng(SEED)
    Z = rng.normal(0, 1, (300, 5))
    model = fit_groups(Z, rng.integers(0, 4, 300), "neighbours", n_neighbours=7, weighted=weighted)
    queries = rng.normal(0, 1, (100, 5))
    group, confidence = model.predict(queries)
    alone = [model.predict(q) for q in queries]
    np.testing.assert_array_equal(group, [g[0] for g, _ in alone])
    np.testing.assert_allclose(confidence, [c[0] for _, c in alone], rtol=1e-6)
