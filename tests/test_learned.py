"""Tests of core.representation.learned: the encoder trained on the user's images, as a stage of the pipeline.

Training is kept to a few epochs on tiny sets (a few seconds on 2 cores); what the learned features are
worth is measured by the quality suite (benchmarks/quality.py), not here.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from core.cli.commands import main
from core.clustering.agreement import agreement
from core.demo import draw_demo_image, make_demo
from core.engine.pipeline import Pipeline, Settings
from core.engine.stages import STAGES, stage_version
from core.engine.versions import code_reached
from core.errors import DotmapError
from core.reading.images import pack_masks
from core.representation import learned
from core.representation.features import FEATURE_KINDS, LEARNED_KINDS, feature_view, features_from_packed

SEED = 0
GRID = 64


def masks_of(families: list[str], each: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Demo images of some families drawn on a GRID canvas, as ink masks (n, GRID, GRID), and their labels."""
    rng = np.random.default_rng(seed)
    masks, labels = [], []
    for i in range(each * len(families)):
        masks.append(draw_demo_image(families[i % len(families)], rng, GRID) < 128)
        labels.append(i % len(families))
    return np.stack(masks), np.array(labels)


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without the extra: ``import torch`` fails."""
    monkeypatch.setitem(sys.modules, "torch", None)


# ---------------------------------------------------------------- the encoder's input


def test_the_input_is_the_same_wherever_and_however_large_the_shape_is() -> None:
    small = np.zeros((GRID, GRID), bool)
    small[10:14, 10] = small[10, 10:16] = True  # an L
    large = np.zeros((GRID, GRID), bool)
    large[30:38, 30] = large[30, 30:42] = True  # the same L, twice as large, elsewhere
    fine = learned.encoder_input(pack_masks(np.stack([small, large])), GRID, "learned")
    assert fine.shape == (2, learned.FINE_CELLS, learned.FINE_CELLS)
    np.testing.assert_allclose(fine.sum((1, 2)), 1.0, rtol=1e-5)
    cells = learned.FINE_CELLS // 8
    coarse = fine.reshape(2, 8, cells, 8, cells).sum((2, 4))  # 8 x 8 blocks: pixel steps do not count
    assert np.abs(coarse[0] - coarse[1]).sum() < 0.3  # the same frame: the ink in the same blocks


def test_a_blank_image_gives_a_zero_input() -> None:
    fine = learned.encoder_input(pack_masks(np.zeros((1, GRID, GRID), bool)), GRID, "learned-rotation")
    assert not fine.any()


def test_the_input_refuses_a_hand_made_kind() -> None:
    with pytest.raises(ValueError, match=r"kind='shape' should be one of"):
        learned.encoder_input(pack_masks(np.zeros((1, 8, 8), bool)), 8, "shape")


@pytest.mark.parametrize("kind", LEARNED_KINDS)
def test_the_overview_can_show_what_the_encoder_is_given(kind: str) -> None:
    masks, _ = masks_of(["ring"], 1)
    view = feature_view(pack_masks(masks), GRID, kind)
    assert view.max() == pytest.approx(1.0)
    assert np.isfinite(view).all()


# ---------------------------------------------------------------- training


@pytest.fixture(scope="module")
def two_families() -> tuple[np.ndarray, np.ndarray]:
    masks, labels = masks_of(["ring", "line"], 40)
    return learned.encoder_input(pack_masks(masks), GRID, "learned-rotation"), labels


@pytest.mark.parametrize("method", learned.METHODS)
def test_training_is_seeded(two_families, method: str) -> None:
    fine, _ = two_families
    a, meta_a = learned.train_encoder(fine, "learned", seed=3, method=method, epochs=2)
    b, meta_b = learned.train_encoder(fine, "learned", seed=3, method=method, epochs=2)
    c, _ = learned.train_encoder(fine, "learned", seed=4, method=method, epochs=2)
    assert meta_a["losses"] == meta_b["losses"]
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert any(not np.array_equal(a[name], c[name]) for name in a)
    assert meta_a["method"] == method
    assert meta_a["device"] == "cpu"


def test_training_reports_each_epoch_with_its_loss(two_families) -> None:
    fine, _ = two_families
    seen = []
    _, meta = learned.train_encoder(fine, "learned", epochs=3, on_epoch=lambda *a: seen.append(a))
    assert [(done, total) for done, total, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert [loss for _, _, loss in seen] == pytest.approx(meta["losses"], abs=1e-5)
    assert all(np.isfinite(loss) for _, _, loss in seen)


def test_training_stops_when_its_progress_says_cancel(two_families) -> None:
    fine, _ = two_families

    def cancel(done: int, total: int, loss: float) -> None:
        if done == 2:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        learned.train_encoder(fine, "learned", epochs=50, on_epoch=cancel)


def test_the_default_epochs_train_about_train_steps_batches(two_families, monkeypatch: pytest.MonkeyPatch) -> None:
    fine, _ = two_families  # 80 images: one batch an epoch
    monkeypatch.setattr(learned, "TRAIN_STEPS", 4)
    assert learned.train_encoder(fine, "learned")[1]["epochs"] == 4
    monkeypatch.setattr(learned, "TRAIN_STEPS", 10_000)
    monkeypatch.setattr(learned, "MAX_EPOCHS", 3)
    assert learned.train_encoder(fine[:4], "learned")[1]["epochs"] == 3


@pytest.mark.parametrize("method", learned.METHODS)
def test_a_trained_encoder_separates_two_families(two_families, method: str) -> None:
    """Rings and lines at any pose: after a short training their features form two groups."""
    from sklearn.cluster import KMeans

    fine, labels = two_families
    weights, meta = learned.train_encoder(fine, "learned-rotation", method=method, epochs=30)
    assert meta["losses"][-1] < meta["losses"][0]
    X = learned.Encoder(weights, meta).features(fine)
    found = KMeans(2, n_init=10, random_state=SEED).fit_predict(X)
    assert agreement(labels, found)[0] >= 0.9


def test_balance_gives_each_part_a_total_variance_of_one() -> None:
    codes = np.array([[0.0], [2.0]], np.float32)  # variance 1
    hand = np.array([[0.0, 0.0], [4.0, 0.0]], np.float32)  # variances 4 and 0
    assert learned.balance(codes, hand) == pytest.approx([1.0, 0.5])


def test_learned_rotation_sets_the_hand_made_features_beside_the_codes(
    small_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its 60 images are its training sample: each part of the features has a total variance of 1 there,
    and the hand-made part is shape-rotation's, scaled."""
    monkeypatch.setattr(learned, "TRAIN_STEPS", 2)
    settings = Settings(features="learned-rotation", cluster_space="pca", k_max=4, grid=GRID)
    pipeline = Pipeline(small_demo, settings, tmp_path)
    X = pipeline.features().astype(np.float64)
    codes, hand = X[:, : learned.EMBED_DIM], X[:, learned.EMBED_DIM :]
    assert codes.var(0).sum() == pytest.approx(1.0, rel=1e-3)
    assert hand.var(0).sum() == pytest.approx(1.0, rel=1e-3)
    made = features_from_packed(np.asarray(pipeline.images().packed), GRID, "shape-rotation")
    np.testing.assert_allclose(hand, made * pipeline.entry("encoder").meta["balance"][1], rtol=1e-5, atol=1e-6)


def test_an_encoder_without_its_scales_says_to_prepare_again(two_families) -> None:
    fine, _ = two_families
    weights, meta = learned.train_encoder(fine, "learned-rotation", epochs=1)
    with pytest.raises(DotmapError, match="prepare the set again"):
        learned.Encoder(weights, meta).features_of_packed(np.zeros((1, (GRID * GRID + 7) // 8), np.uint8), GRID)


def test_features_are_of_each_image_alone(two_families) -> None:
    fine, _ = two_families
    weights, meta = learned.train_encoder(fine, "learned", epochs=1)
    encoder = learned.Encoder(weights, meta)
    together = encoder.features(fine[:5])
    assert together.shape == (5, learned.EMBED_DIM)
    assert together.dtype == np.float32
    np.testing.assert_allclose(encoder.features(fine[2:3]), together[2:3], rtol=1e-4, atol=1e-5)


def test_learned_rotation_features_do_not_depend_on_which_way_the_axes_point(two_families) -> None:
    """The principal axes' signs are arbitrary: a flipped input gets the same features (the four flips' mean)."""
    fine, _ = two_families
    weights, meta = learned.train_encoder(fine, "learned-rotation", epochs=1)
    encoder = learned.Encoder(weights, meta)
    X = encoder.features(fine[:4])
    for flipped in (fine[:4, :, ::-1], fine[:4, ::-1, :], fine[:4, ::-1, ::-1]):
        np.testing.assert_allclose(encoder.features(flipped), X, rtol=1e-4, atol=1e-5)
    oriented, meta = learned.train_encoder(fine, "learned", epochs=1)
    upright = learned.Encoder(oriented, meta)
    assert not np.allclose(upright.features(fine[:4, ::-1, :]), upright.features(fine[:4]), atol=1e-3)


def test_training_refuses_too_few_images_and_unknown_methods(two_families) -> None:
    fine, _ = two_families
    with pytest.raises(ValueError, match=r"n_images=1 should be >= 2"):
        learned.train_encoder(fine[:1], "learned")
    with pytest.raises(ValueError, match=r"method='vae' should be one of"):
        learned.train_encoder(fine, "learned", method="vae")


def test_training_rows_are_a_seeded_sample() -> None:
    np.testing.assert_array_equal(learned.training_rows(10, 0, sample=20), np.arange(10))
    rows = learned.training_rows(1000, 5, sample=100)
    assert len(rows) == len(set(rows)) == 100
    assert (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, learned.training_rows(1000, 5, sample=100))


# ---------------------------------------------------------------- where it trains


def test_a_cuda_device_is_used_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert learned.device_name() == "cuda"
    monkeypatch.setenv("DOTMAP_DEVICE", "cpu")
    assert learned.device_name() == "cpu"


def test_asking_for_cuda_without_one_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("DOTMAP_DEVICE", "cuda")
    with pytest.raises(learned.DotmapError, match=r"sees no CUDA device here"):
        learned.device_name()
    monkeypatch.setenv("DOTMAP_DEVICE", "tpu")
    with pytest.raises(learned.DotmapError, match=r"should be cpu or cuda"):
        learned.device_name()


# ---------------------------------------------------------------- without PyTorch


def test_without_torch_the_words_say_what_to_install(no_torch: None) -> None:
    assert not learned.learned_available()
    with pytest.raises(learned.LearnedUnavailableError, match=r"pip install -r requirements-learned.txt"):
        learned.import_torch()


def test_without_torch_a_learned_prepare_says_what_to_install(no_torch: None, tmp_path: Path) -> None:
    folder = make_demo(tmp_path / "demo", 40, SEED, size=GRID)
    pipeline = Pipeline(folder, Settings(features="learned", cluster_space="pca", k_max=4, grid=GRID), tmp_path / "c")
    with pytest.raises(learned.LearnedUnavailableError, match=r"requirements-learned.txt"):
        pipeline.prepare(with_map=False)


def test_without_torch_the_command_line_says_what_to_install(
    no_torch: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = make_demo(tmp_path / "demo", 40, SEED, size=GRID)
    argv = ["prepare", str(folder), "--cache", str(tmp_path / "c"), "--features", "learned", "--grid", str(GRID)]
    assert main([*argv, "--cluster-space", "pca", "--k-max", "4", "--no-map"]) == 1
    err = capsys.readouterr().err
    assert "error: The learned features need PyTorch" in err
    assert "python3 -m pip install -r requirements-learned.txt" in err


def test_the_hand_made_stages_do_not_depend_on_torch() -> None:
    """Installing the extra must not recompute anyone's hand-made features or clusters."""
    for stage in ("images", "features", "reduction", "neighbours", "space", "fit", "sweep", "typical", "map"):
        assert "torch" not in code_reached(STAGES[stage].compute)[2], stage
    assert "torch" in code_reached(STAGES["encoder"].compute)[2]
    assert stage_version("features") != stage_version("learned")


# ---------------------------------------------------------------- in the pipeline


@pytest.fixture
def small_demo(tmp_path: Path) -> Path:
    return make_demo(tmp_path / "demo", 60, SEED, families=["ring", "line", "triangle"], size=GRID)


def test_a_learned_prepare_trains_once_and_reuses_the_encoder(
    small_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(learned, "TRAIN_STEPS", 3)
    settings = Settings(features="learned-rotation", cluster_space="pca", k_max=5, grid=GRID)
    seen = []
    first = Pipeline(small_demo, settings, tmp_path / "c", on_progress=lambda *a: seen.append(a[2]))
    computed = {r.stage: r.computed for r in first.prepare(with_map=False)}
    assert computed["encoder"] and computed["learned"]
    assert "features" not in computed  # the learned stage stands for it
    assert any(words.startswith("encoder: epochs (loss ") for words in seen)
    X = first.features()
    assert X.shape == (60, learned.feature_width("learned-rotation", GRID)) and X.shape[1] > learned.EMBED_DIM
    again = Pipeline(small_demo, settings, tmp_path / "c")
    assert not again.missing(with_map=False)
    np.testing.assert_array_equal(again.features(), X)
    assert not any(r.computed for r in again.records)


@pytest.mark.parametrize("kind", ["learned", "learned-rotation"])
def test_new_images_get_the_features_the_set_got(small_demo: Path, tmp_path: Path, monkeypatch, kind: str) -> None:
    """What the Classify page and ``predict`` compute for a new image is what the set's own images got
    (for learned-rotation, the codes and the hand-made part beside them, each with the set's scale)."""
    monkeypatch.setattr(learned, "TRAIN_STEPS", 2)
    settings = Settings(features=kind, cluster_space="pca", k_max=4, grid=GRID)
    pipeline = Pipeline(small_demo, settings, tmp_path / "c")
    X = pipeline.features()
    again = pipeline.features_of(np.asarray(pipeline.images().packed[:7]))
    np.testing.assert_allclose(again, X[:7], rtol=1e-4, atol=1e-5)


def test_every_kind_is_a_setting() -> None:
    for kind in FEATURE_KINDS:
        assert Settings(features=kind).features == kind
