"""The curation: its changes and their undo, its file (atomic, last good kept, hand edits), a changed folder."""

import json

import numpy as np
import pytest

from core.curation import file as curation_file
from core.curation.model import (
    HISTORY_LIMIT,
    OUTLIER,
    UNASSIGNED,
    Curation,
    CurationError,
    from_clusters,
    group_story,
    most_typical,
    split_parts,
)

PATHS = [f"img_{i}.png" for i in range(10)]
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])


@pytest.fixture
def curation() -> Curation:
    return from_clusters(PATHS, LABELS, 3, folder="/data", settings={"features": "shape"})


def test_a_curation_starts_with_one_group_per_cluster(curation: Curation) -> None:
    assert curation.names == {0: "cluster 0", 1: "cluster 1", 2: "cluster 2"}
    assert curation.sizes() == {0: 3, 1: 3, 2: 4}
    assert curation.started_from_k == 3


def test_rename_and_undo(curation: Curation) -> None:
    curation.rename(1, "  rings \n")
    assert curation.names[1] == "rings"
    assert curation.undo() == "renamed 'cluster 1' to 'rings'"
    assert curation.names[1] == "cluster 1"


@pytest.mark.parametrize(
    ("name", "words"),
    [("", "needs a name"), ("x" * 81, "at most 80"), ("Cluster 2", "already a group"), ("Outlier", "exports call")],
)
def test_a_bad_name_is_refused_in_words(curation: Curation, name: str, words: str) -> None:
    with pytest.raises(CurationError, match=words):
        curation.rename(1, name)
    assert curation.names[1] == "cluster 1" and not curation.history


def test_merge_puts_the_members_into_the_first_group_and_undo_brings_the_others_back(curation: Curation) -> None:
    curation.merge([2, 0])
    assert list(curation.names) == [1, 2]
    assert curation.sizes() == {1: 3, 2: 7}
    curation.undo()
    assert list(curation.names) == [0, 1, 2]
    np.testing.assert_array_equal(curation.labels, LABELS)


def test_move_to_a_group_to_outliers_and_to_unassigned(curation: Curation) -> None:
    curation.move([0, 1], 2)
    curation.move([3], OUTLIER)
    curation.move([9], UNASSIGNED)
    assert curation.labels.tolist() == [2, 2, 0, OUTLIER, 1, 1, 2, 2, 2, UNASSIGNED]
    dense, names = curation.dense()
    assert dense.tolist() == [2, 2, 0, -1, 1, 1, 2, 2, 2, -1]
    assert names == ["cluster 0", "cluster 1", "cluster 2"]
    for _ in range(3):
        curation.undo()
    np.testing.assert_array_equal(curation.labels, LABELS)


def test_moving_nothing_or_to_an_unknown_group_is_refused(curation: Curation) -> None:
    with pytest.raises(CurationError, match="No images are selected"):
        curation.move([], 1)
    with pytest.raises(CurationError, match="no group 7"):
        curation.move([1], 7)
    with pytest.raises(CurationError, match="Row ids must be"):
        curation.move([10], 1)


def test_a_new_group_gets_an_id_never_used_before(curation: Curation) -> None:
    curation.merge([0, 2])  # group 2 is gone, but an undo could bring it back
    group = curation.new_group("odd ones", [1])
    assert group == 3
    assert curation.names[3] == "odd ones" and curation.labels[1] == 3


def test_split_keeps_the_first_part_in_the_group_and_names_the_others(curation: Curation) -> None:
    ids = curation.split(2, np.array([0, 0, 1, 1]))
    assert ids == [2, 3]
    assert curation.names[3] == "cluster 2 · 2"
    assert curation.labels[6:].tolist() == [2, 2, 3, 3]
    curation.undo()
    assert 3 not in curation.names and curation.labels[6:].tolist() == [2, 2, 2, 2]


def test_a_split_of_the_wrong_length_is_refused(curation: Curation) -> None:
    with pytest.raises(CurationError, match="preview it again"):
        curation.split(2, np.array([0, 1]))


def test_split_parts_clusters_the_members_and_numbers_the_largest_part_first() -> None:
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0, 0.1, (30, 2)), rng.normal(5, 0.1, (12, 2))])
    parts = split_parts(points, 2)
    assert parts[:30].tolist() == [0] * 30 and parts[30:].tolist() == [1] * 12
    with pytest.raises(CurationError, match="too few"):
        split_parts(np.zeros((5, 2)), 2)


def test_nothing_to_undo_is_said(curation: Curation) -> None:
    with pytest.raises(CurationError, match="nothing to undo"):
        curation.undo()


def test_the_history_keeps_the_last_steps_only(curation: Curation) -> None:
    for i in range(HISTORY_LIMIT + 5):
        curation.rename(0, f"name {i}")
    assert len(curation.history) == HISTORY_LIMIT


def test_group_story_tells_where_a_group_is_and_with_whom() -> None:
    groups = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    k_small = np.array([0, 0, 0, 0, 0, 0, 1, 1])  # groups 0 and 1 in one cluster
    k_big = np.array([0, 0, 1, 1, 2, 2, 3, 3])  # group 0 in two clusters
    small, big = group_story(groups, 0, [k_small, k_big])
    assert (small[0].cluster, small[0].members, small[0].of_group) == (0, 4, 1.0)
    assert small[0].of_cluster == pytest.approx(4 / 6) and small[0].others == [(1, 2)]
    assert [(p.cluster, p.members, p.of_group) for p in big] == [(0, 2, 0.5), (1, 2, 0.5)]


def test_most_typical_members_are_nearest_the_mean() -> None:
    points = np.array([[0.0], [10.0], [4.0], [6.0], [5.0]])
    assert most_typical(points, np.array([0, 1, 2, 3, 4]), 2).tolist() == [4, 2]


# ---- the file -----------------------------------------------------------------------------
def test_the_file_round_trips_with_its_history(curation: Curation, tmp_path) -> None:
    curation.rename(0, "rings")
    curation.move([9], OUTLIER)
    path = curation_file.save(curation, tmp_path / "c.json")
    again = curation_file.load(path, PATHS)
    assert again.names == curation.names
    np.testing.assert_array_equal(again.labels, curation.labels)
    assert [c.what for c in again.history] == [c.what for c in curation.history]
    again.undo()
    again.undo()
    np.testing.assert_array_equal(again.labels, LABELS)
    doc = json.loads(path.read_text())
    assert doc["groups"][0] == {"id": 0, "name": "rings", "images": PATHS[:3]}
    assert doc["outliers"] == ["img_9.png"] and doc["unassigned"] == []


def test_saving_keeps_the_previous_version_as_the_last_good_one(curation: Curation, tmp_path) -> None:
    path = tmp_path / "c.json"
    curation_file.save(curation, path)
    first = path.read_text()
    curation.rename(0, "rings")
    curation_file.save(curation, path)
    assert curation_file.last_good(path).read_text() == first
    assert "rings" in path.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_a_file_changed_by_hand_since_it_was_read_is_not_overwritten(curation: Curation, tmp_path) -> None:
    path = curation_file.save(curation, tmp_path / "c.json")
    path.write_text(path.read_text().replace("cluster 0", "edited by hand"))
    curation.rename(1, "rings")
    with pytest.raises(CurationError, match="changed outside this page"):
        curation_file.save(curation, path)
    assert "edited by hand" in path.read_text()


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda t: t[: len(t) // 2], "not valid JSON at line .* ends early"),
        (lambda t: "[1, 2]", 'no "format"'),
        (lambda t: t.replace('"version": 1', '"version": 9'), "version 9"),
        (lambda t: t.replace('"name": "cluster 1"', '"name": 5'), 'needs a "name"'),
        (lambda t: t.replace('"img_4.png"', '"img_0.png"'), "img_0.png is listed twice"),
        (lambda t: t.replace('"name": "cluster 1"', '"name": "RINGS"'), "already a group"),
        (lambda t: t.replace('"images": [', '"images": 3, "x": ['), "must be a list of paths"),
    ],
)
def test_a_broken_file_is_reported_in_words_and_the_last_good_one_is_named(curation, tmp_path, damage, words) -> None:
    path = curation_file.save(curation, tmp_path / "c.json")
    curation.rename(0, "rings")
    curation_file.save(curation, path)
    path.write_text(damage(path.read_text()))
    with pytest.raises(CurationError, match=words) as error:
        curation_file.load(path, PATHS)
    assert "last good version is kept as" in str(error.value)
    good = curation_file.load(curation_file.last_good(path), PATHS)
    assert good.names[0] == "cluster 0"


def test_a_file_that_is_not_utf8_is_reported(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(CurationError, match="not UTF-8"):
        curation_file.load(path, PATHS)


def test_set_aside_moves_an_unreadable_file_without_deleting_it(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{broken")
    moved = curation_file.set_aside(path)
    assert not path.exists() and moved.read_text() == "{broken" and ".unreadable-" in moved.name


def test_images_added_to_the_folder_are_unassigned_and_removed_ones_dropped(curation: Curation, tmp_path) -> None:
    path = curation_file.save(curation, tmp_path / "c.json")
    now = [p for p in PATHS if p != "img_0.png"] + ["new_1.png", "new_2.png"]
    again = curation_file.load(path, now)
    assert again.added == 2 and again.removed == ["img_0.png"]
    assert again.labels[now.index("new_1.png")] == UNASSIGNED
    assert again.labels[now.index("img_1.png")] == 0
    assert any("no longer in the folder: img_0.png" in note for note in again.notes)
    assert any("2 images of the folder were not in the curation" in note for note in again.notes)


def test_a_history_that_no_longer_fits_is_dropped_with_a_note(curation: Curation, tmp_path) -> None:
    curation.move([0], 1)
    path = curation_file.save(curation, tmp_path / "c.json")
    doc = json.loads(path.read_text())
    doc["history"][0]["moved"][0][1] = 42  # a group the step does not list
    path.write_text(json.dumps(doc))
    again = curation_file.load(path, PATHS)
    assert again.history == [] and any("undo history" in note for note in again.notes)


def test_a_curation_of_another_folder_is_refused(curation: Curation, tmp_path) -> None:
    path = curation_file.save(curation, tmp_path / "c.json")
    with pytest.raises(CurationError, match="none of its 10 images is in this folder"):
        curation_file.load(path, ["other.png"])


def test_the_default_file_lives_outside_the_cache_and_depends_on_folder_and_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DOTMAP_CURATIONS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a = curation_file.curation_path(tmp_path, {"features": "shape"})
    assert a.parent == tmp_path / "data" / "dotmap" / "curations"
    assert a != curation_file.curation_path(tmp_path, {"features": "pixels"})
    assert a == curation_file.curation_path(str(tmp_path) + "/", {"features": "shape"})


def test_other_curations_of_the_same_folder_are_found(curation: Curation, tmp_path) -> None:
    mine = curation_file.curation_path(tmp_path, {"a": 1})
    other = curation_file.curation_path(tmp_path, {"a": 2})
    curation_file.save(curation, other)
    assert curation_file.other_curations(tmp_path, {"a": 1}) == [other]
    assert mine != other


def test_a_save_that_fails_says_why_and_leaves_nothing(curation: Curation, tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(CurationError, match=r"Cannot save the curation to .*not-a-folder/c\.json"):
        curation_file.save(curation, blocker / "c.json")
    assert blocker.read_text() == "a file where the folder should be"
