"""Tests of core.clustering.agreement, core.outputs.compare (two settings compared) and ``python -m core compare``."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from core.cli.commands import main
from core.clustering.agreement import (
    agreement,
    agreement_of_table,
    disagreeing_rows,
    matched_clusters,
    overlap_table,
    truth_scores,
)
from core.demo import make_demo
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError
from core.outputs.compare import DISAGREEMENTS_SHOWN, compare_results, compare_sweeps

N_IMAGES = 48
K_MAX = 5


# ---------------------------------------------------------------- overlap tables


def test_overlap_table_counts_shared_images_by_hand() -> None:
    a = np.array([0, 0, 1, 1, 1, 2], np.int16)  # int16, as the sweep stores labels
    b = np.array([1, 1, 0, 2, 2, 3], np.int16)
    table = overlap_table(a, b)
    assert table.tolist() == [
        [0, 2, 0, 0],
        [1, 0, 2, 0],
        [0, 0, 0, 1],
    ]
    assert table.dtype == np.int64


def test_overlap_table_leaves_out_noise_on_either_side() -> None:
    a = np.array([0, 0, 1, -1, 1, 0])
    b = np.array([1, -1, 0, 0, 0, 1])
    assert overlap_table(a, b).tolist() == [[0, 2], [2, 0]]


def test_overlap_table_keeps_empty_clusters_of_a_given_shape() -> None:
    assert overlap_table(np.array([0, 0]), np.array([1, 1]), 3, 2).tolist() == [[0, 2], [0, 0], [0, 0]]


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([0, 1], [0, 1, 1], r"shapes \(2,\) and \(3,\)"),
        ([0, -2], [0, 1], r"hold -2; ids should be >= 0, or -1"),
    ],
)
def test_overlap_table_refuses_what_is_not_two_labelings(a, b, message) -> None:
    with pytest.raises(ValueError, match=message):
        overlap_table(np.array(a), np.array(b))


def test_overlap_table_too_small_a_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"do not fit a table of shape \(2, 2\)"):
        overlap_table(np.array([0, 2]), np.array([0, 1]), 2, 2)


# ---------------------------------------------------------------- ARI and NMI


def test_identical_labelings_agree_fully() -> None:
    a = np.array([0, 0, 1, 1, 2, 2, 2])
    assert agreement(a, a) == (1.0, 1.0)


def test_renamed_clusters_agree_fully() -> None:
    a = np.array([0, 0, 1, 1, 2, 2, 2])
    permuted = np.array([2, 0, 1])[a]  # the same groups under other ids
    assert agreement(a, permuted) == (1.0, 1.0)


def test_noise_is_left_out_of_the_agreement() -> None:
    a = np.array([0, 0, 1, 1, -1, -1, 0])
    b = np.array([3, 3, 1, 1, 1, 3, -1])  # the rows with -1 would break a perfect match
    assert agreement(a, b) == (1.0, 1.0)


def test_ari_and_nmi_by_hand() -> None:
    # a: {0,1,2}{3,4,5}; b: {0,1}{2,3}{4,5}. Pairs: together in a 6, in b 3, in both 2, n=6 so 15 pairs.
    # ARI = (2 - 6*3/15) / ((6+3)/2 - 6*3/15) = 0.8 / 3.3
    a = np.array([0, 0, 0, 1, 1, 1])
    b = np.array([0, 0, 1, 1, 2, 2])
    ari, nmi = agreement(a, b)
    assert ari == pytest.approx(0.8 / 3.3)
    # MI = 4 * (1/6) ln(2/1... ): cells of 2 give (2/6) ln(2*6/(3*2)) = (1/3) ln 2; cells of 1 give (1/6) ln(6/6) = 0
    mi = 2 * (1 / 3) * np.log(2)
    h_a, h_b = np.log(2), np.log(3)
    assert nmi == pytest.approx(mi / ((h_a + h_b) / 2))


def test_unrelated_labelings_score_near_zero(rng) -> None:
    a, b = rng.integers(0, 4, 4000), rng.integers(0, 4, 4000)
    ari, nmi = agreement(a, b)
    assert abs(ari) < 0.01 and nmi < 0.01


@pytest.mark.parametrize("seed", range(20))
def test_agreement_equals_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    a, b = rng.integers(0, int(rng.integers(1, 7)), n), rng.integers(0, int(rng.integers(1, 7)), n)
    ari, nmi = agreement(a, b)
    assert ari == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    assert nmi == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 0], [1, 1, 1], (1.0, 1.0)),  # neither splits: the same (non-)grouping
        ([0, 0, 0, 0], [0, 0, 1, 1], (0.0, 0.0)),  # one splits, the other does not
        ([0, 1, 2], [0, 1, 2], (1.0, 1.0)),  # every image alone on both sides
    ],
)
def test_agreement_special_cases_follow_scikit_learn(a, b, expected) -> None:
    assert agreement(np.array(a), np.array(b)) == expected
    assert (adjusted_rand_score(a, b), normalized_mutual_info_score(a, b)) == expected


def test_agreement_of_nothing_in_common_is_an_error() -> None:
    with pytest.raises(ValueError, match="no image is labelled on both sides"):
        agreement(np.array([0, -1]), np.array([-1, 0]))


def test_empty_clusters_of_a_table_do_not_change_the_scores() -> None:
    table = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    assert agreement_of_table(table) == agreement_of_table(table[:2, :2])


def test_truth_scores_give_one_pair_per_k_and_leave_out_unknown_classes() -> None:
    truth = np.array([0, 0, 1, 1, -1])
    labels_by_k = [np.array([1, 1, 0, 0, 0]), np.array([0, 1, 2, 2, 2])]
    scores = truth_scores(truth, labels_by_k)
    assert scores[0] == (1.0, 1.0)
    assert scores[1] == agreement(truth, labels_by_k[1])
    assert len(scores) == 2


def test_matching_keeps_the_most_images_together() -> None:
    table = np.array([[5, 4, 0], [6, 0, 0], [0, 1, 3]])  # greedy would give A0 -> B0; optimal is A0 -> B1
    assert matched_clusters(table).tolist() == [1, 0, 2]


def test_a_cluster_without_a_partner_is_matched_to_minus_one() -> None:
    assert matched_clusters(np.array([[4, 0], [0, 3], [1, 1]])).tolist() == [0, 1, -1]


def test_a_permutation_of_ids_has_no_disagreement() -> None:
    a = np.array([0, 0, 1, 1, 2, 2])
    b = np.array([2, 0, 1])[a]
    match = matched_clusters(overlap_table(a, b))
    assert match.tolist() == [2, 0, 1]
    assert disagreeing_rows(a, b, match, np.zeros(6)).tolist() == []


def test_disagreeing_rows_by_hand_ranked_by_surety() -> None:
    a = np.array([0, 0, 0, 1, 1, 1, -1])
    b = np.array([0, 0, 1, 1, 1, 0, 0])  # rows 2 and 5 move; row 6 has no A cluster
    surety = np.array([0.9, 0.9, 0.2, 0.9, 0.9, 0.7, 1.0])
    match = matched_clusters(overlap_table(a, b))
    assert match.tolist() == [0, 1]
    assert disagreeing_rows(a, b, match, surety).tolist() == [5, 2]


def test_equally_sure_disagreements_come_in_row_order() -> None:
    a, b = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 0, 1, 0, 1])
    match = matched_clusters(overlap_table(a, b))
    assert disagreeing_rows(a, b, match, np.ones(6)).tolist() == [1, 4]


@dataclass
class FakeSweep:
    ks: list[int]
    labels: np.ndarray
    silhouette: np.ndarray
    recommended_k: int


def sweep_of(labels_by_k: dict[int, list[int]], recommended: int, silhouette: float = 0.5) -> FakeSweep:
    labels = np.array(list(labels_by_k.values()), np.int16)
    return FakeSweep(list(labels_by_k), labels, np.full(labels.shape, silhouette, np.float32), recommended)


def test_compare_sweeps_by_hand() -> None:
    a = sweep_of({2: [0, 0, 0, 1, 1, 1], 3: [0, 0, 1, 1, 2, 2]}, recommended=3)
    b = sweep_of({3: [1, 1, 0, 0, 2, 0], 4: [0, 1, 2, 3, 0, 1]}, recommended=4)
    result = compare_sweeps(a, b)
    assert result.ks == [3]
    assert result.k == 3  # A's recommended k
    assert result.overlap.tolist() == [[0, 2, 0], [2, 0, 0], [1, 0, 1]]
    assert result.match.tolist() == [1, 0, 2]
    assert result.disagreeing.tolist() == [5]  # A 2 -> B 0, where A 2 is matched to B 2
    assert result.ari == [agreement(a.labels[1], b.labels[0])[0]]
    assert (result.recommended_a, result.recommended_b) == (3, 4)


def test_compare_sweeps_defaults_to_the_shared_k_nearest_to_a_recommended_one() -> None:
    a = sweep_of({2: [0, 1, 1], 3: [0, 1, 2]}, recommended=3)
    b = sweep_of({2: [1, 0, 0]}, recommended=2)
    assert compare_sweeps(a, b).k == 2


def test_compare_sweeps_ranks_by_the_smaller_silhouette() -> None:
    a = sweep_of({2: [0, 0, 0, 1, 1, 1]}, recommended=2)
    b = sweep_of({2: [0, 1, 0, 1, 0, 1]}, recommended=2)
    b.silhouette[0] = [0.5, 0.1, 0.5, 0.5, 0.8, 0.5]
    a.silhouette[0] = [0.5, 0.9, 0.5, 0.5, 0.9, 0.5]
    result = compare_sweeps(a, b)
    assert result.disagreeing.tolist() == [4, 1]
    assert result.surety.tolist() == pytest.approx([0.8, 0.1])


def test_compare_sweeps_without_a_shared_k_says_so() -> None:
    a = sweep_of({2: [0, 1, 1]}, recommended=2)
    b = sweep_of({3: [0, 1, 2]}, recommended=3)
    with pytest.raises(DotmapError, match=r"A has k = 2..2 and B k = 3..3: they share no k"):
        compare_sweeps(a, b)


def test_compare_sweeps_at_a_k_not_shared_says_which_are() -> None:
    a = sweep_of({2: [0, 1, 1], 3: [0, 1, 2]}, recommended=2)
    b = sweep_of({2: [0, 1, 1]}, recommended=2)
    with pytest.raises(DotmapError, match=r"k=3 is not prepared in both results; they share k = 2..2"):
        compare_sweeps(a, b, 3)


def test_to_dict_is_plain_json() -> None:
    a = sweep_of({2: [0, 0, 0, 1, 1, 1]}, recommended=2)
    b = sweep_of({2: [1, 1, 0, 0, 0, 0]}, recommended=2)
    data = compare_sweeps(a, b).to_dict([f"img{i}.png" for i in range(6)])
    assert json.loads(json.dumps(data)) == data
    assert data["disagreeing"] == [{"path": "img2.png", "a": 0, "b": 0, "b_matched": 1, "surety": 0.5}]


# ---------------------------------------------------------------- two pipelines


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("compare") / "d", n=N_IMAGES, seed=0)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_two_folders_cannot_be_compared_and_nothing_is_computed(folder: Path, tmp_path: Path, cache: Path) -> None:
    other_folder = make_demo(tmp_path / "other", n=12, seed=1)
    a = Pipeline(folder, Settings(cluster_space="pca", k_max=K_MAX), cache)
    b = Pipeline(other_folder, Settings(cluster_space="pca", k_max=K_MAX), cache)
    with pytest.raises(DotmapError, match=r"A reads .*d and B reads .*other: only two results of the same folder"):
        compare_results(a, b)
    assert not a.is_cached("images")


def test_two_settings_without_a_shared_k_compute_nothing(folder: Path, cache: Path) -> None:
    a = Pipeline(folder, Settings(cluster_space="pca", k_max=3), cache)
    b = Pipeline(folder, Settings(cluster_space="pca", k_min=4, k_max=5), cache)
    with pytest.raises(DotmapError, match="they share no k"):
        compare_results(a, b)
    assert not a.is_cached("images")


def test_compare_results_of_two_settings(folder: Path, cache: Path) -> None:
    a = Pipeline(folder, Settings(cluster_space="pca", k_max=K_MAX), cache)
    b = Pipeline(folder, Settings(cluster_space="pca", k_max=K_MAX, algorithm="spherical"), cache)
    result = compare_results(a, b, k=4)
    assert result.ks == list(range(2, K_MAX + 1))
    assert result.k == 4
    assert result.overlap.shape == (4, 4) and result.overlap.sum() == N_IMAGES
    assert all(-1 <= ari <= 1 for ari in result.ari) and all(0 <= nmi <= 1 for nmi in result.nmi)
    assert not a.is_cached("map") and not b.is_cached("map")
    same = compare_results(a, Pipeline(folder, a.settings, cache), k=4)
    assert same.ari == [1.0] * len(same.ks) and len(same.disagreeing) == 0


# ---------------------------------------------------------------- python -m core compare


def cli_args(folder: Path, cache: Path) -> list[str]:
    return [str(folder), "--cluster-space", "pca", "--k-max", str(K_MAX), "--cache", str(cache), "--quiet"]


def test_cli_compare_prints_the_agreement_table_and_disagreements(
    folder: Path, cache: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["compare", *cli_args(folder, cache), "--b-features", "shape"]) == 0
    out = capsys.readouterr().out
    assert "A: shape-rotation features, kmeans in pca space, 50 components; recommended k = " in out
    assert "B: shape features, kmeans in pca space" in out
    per_k = re.findall(r"^\s*(\d+)\s+(-?\d\.\d{3})\s+(\d\.\d{3})", out, re.MULTILINE)
    assert [int(k) for k, _, _ in per_k] == list(range(2, K_MAX + 1))
    assert len(re.findall(r"<- below$", out, re.MULTILINE)) == 1
    assert re.search(r"^\s+B0\s+B1", out, re.MULTILINE)
    listed = re.findall(r"^  A \d+ -> B \d+ \(matched: B \d+\), surety -?\d\.\d\d: dots_\d+\.png$", out, re.MULTILINE)
    disagreeing = int(re.search(r"^(\d+) of 48 images disagree at k = \d+\.$", out, re.MULTILINE).group(1))
    assert len(listed) == min(DISAGREEMENTS_SHOWN, disagreeing)


def test_cli_compare_json_has_it_all_with_a_and_b_flags(
    folder: Path, cache: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["compare", *cli_args(folder, cache), "--a-features", "shape", "--b-features", "shape-rotation"]
    assert main([*argv, "--k", "3", "--top", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["a"]["features"] == "shape"
    assert data["settings"]["b"]["features"] == "shape-rotation"
    assert data["settings"]["b"]["k_max"] == K_MAX  # what B does not override is A's
    assert [row["k"] for row in data["per_k"]] == list(range(2, K_MAX + 1))
    assert data["k"] == 3
    assert np.array(data["overlap"]).shape == (3, 3) and np.array(data["overlap"]).sum() == N_IMAGES
    assert sorted(data["match"]) == [0, 1, 2]
    assert len(data["disagreeing"]) == min(4, data["n_disagreeing"])
    for d in data["disagreeing"]:
        assert d["b"] != d["b_matched"] == data["match"][d["a"]]
    suretys = [d["surety"] for d in data["disagreeing"]]
    assert suretys == sorted(suretys, reverse=True)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], r"B has the same settings as A: give B a setting that differs"),
        (["--b-k-min", "6", "--b-k-max", "7"], r"A has k = 2..5 and B k = 6..7: they share no k"),
        (["--b-algorithm", "spherical", "--k", "9"], r"k=9 is not prepared in both results; they share k = 2..5"),
        (["--b-components", "1"], r"components=1 should be >= 2"),
        (["--b-features", "shape", "--top", "-1"], r"--top -1 should be >= 0"),
    ],
)
def test_cli_compare_errors_are_one_line_in_words(
    folder: Path, cache: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    assert main(["compare", *cli_args(folder, cache), *extra]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: {message}.*\n", err)
    assert not any(cache.glob("images-*"))  # said before anything is read


def test_cli_compare_of_a_missing_folder_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", *cli_args(tmp_path / "missing", tmp_path / "cache"), "--b-features", "shape"]) == 1
    assert re.fullmatch(r"error: The folder .*missing does not exist\.\n", capsys.readouterr().err)
