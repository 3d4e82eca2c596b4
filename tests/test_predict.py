"""Tests of core.outputs.predict: new images assigned to the clusters of a small prepared demo set."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.demo import CANVAS, FAMILIES, draw_demo_image, make_demo
from core.engine.pipeline import Pipeline, Settings
from core.outputs.predict import N_SIMILAR, Predictor
from core.reading.decode import ImageReadError, decode_image
from core.reading.labels import read_labels

SEED = 0
N_IMAGES = 96  # 12 of each of the 8 families
K = 8
MEMBER_ROWS = [0, 37, 95]


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def unlike_anything(kind: str) -> np.ndarray:
    """A (CANVAS, CANVAS) uint8 image that looks like none of the demo families."""
    if kind == "all black":
        return np.zeros((CANVAS, CANVAS), np.uint8)
    if kind == "filled square":
        image = np.full((CANVAS, CANVAS), 255, np.uint8)
        image[50:150, 50:150] = 0
        return image
    noise = np.random.default_rng(SEED).random((CANVAS, CANVAS)) < 0.5
    return np.where(noise, 0, 255).astype(np.uint8)


def prepared(root: Path, settings: Settings, with_map: bool) -> tuple[Path, Pipeline]:
    data_dir = make_demo(root / "d", n=N_IMAGES, seed=SEED)
    pipeline = Pipeline(data_dir, settings, cache_dir=root / "cache")
    pipeline.prepare(with_map=with_map)
    return data_dir, pipeline


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Predictor]:
    """The demo folder and a predictor at k=8 over PCA space and the PCA layout (no UMAP)."""
    settings = Settings(cluster_space="pca", k_min=2, k_max=10)
    data_dir, pipeline = prepared(tmp_path_factory.mktemp("predict"), settings, with_map=False)
    return data_dir, Predictor(pipeline, k=K, use_umap_map=False)


def own_labels(predictor: Predictor) -> np.ndarray:
    return predictor.sweep.labels[predictor.row]


@pytest.mark.parametrize("row", MEMBER_ROWS)
def test_a_member_is_its_own_first_neighbour(demo, row) -> None:
    data_dir, predictor = demo
    prediction = predictor.predict(data_dir / predictor.paths[row])
    assert prediction.neighbours[0] == row
    assert prediction.neighbour_distances[0] == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("row", MEMBER_ROWS)
def test_a_member_lands_in_its_own_cluster(demo, row) -> None:
    data_dir, predictor = demo
    prediction = predictor.predict(data_dir / predictor.paths[row])
    assert (prediction.k, prediction.cluster) == (K, own_labels(predictor)[row])


def test_every_member_lands_in_its_own_cluster(demo) -> None:
    _, predictor = demo
    masks = predictor.pipeline.images().unpack()
    predictions = predictor.predict_masks(masks, predictor.paths)
    np.testing.assert_array_equal([p.cluster for p in predictions], own_labels(predictor))


def test_bytes_predict_like_the_path(demo) -> None:
    data_dir, predictor = demo
    path = data_dir / predictor.paths[37]
    from_path = predictor.predict(path).to_dict()
    from_bytes = predictor.predict(path.read_bytes()).to_dict()
    assert (from_path.pop("name"), from_bytes.pop("name")) == (str(path), "upload")
    assert from_bytes == from_path


def test_predict_uses_the_given_name(demo) -> None:
    data_dir, predictor = demo
    assert predictor.predict((data_dir / predictor.paths[0]).read_bytes(), name="mine.png").name == "mine.png"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_fresh_image_lands_where_most_of_its_family_is(demo, family) -> None:
    data_dir, predictor = demo
    truth, names = read_labels(data_dir / "labels.csv", predictor.paths)
    family_labels = own_labels(predictor)[truth == names.index(family)]
    majority = np.bincount(family_labels).argmax()
    image = draw_demo_image(family, np.random.default_rng(SEED + 1000))
    assert predictor.predict(png_bytes(image)).cluster == majority


def test_a_text_file_is_not_an_image(demo) -> None:
    _, predictor = demo
    with pytest.raises(ImageReadError, match="not a PNG, JPEG"):
        predictor.predict(b"filename,label\nthis is text, not pixels\n")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_confidence_is_between_zero_and_one(demo, family) -> None:
    _, predictor = demo
    image = draw_demo_image(family, np.random.default_rng(SEED + 2000))
    assert 0.0 <= predictor.predict(png_bytes(image)).confidence <= 1.0


def test_confidence_of_members_is_between_zero_and_one(demo) -> None:
    _, predictor = demo
    predictions = predictor.predict_masks(predictor.pipeline.images().unpack(), predictor.paths)
    confidences = np.array([p.confidence for p in predictions])
    assert np.all((confidences >= 0.0) & (confidences <= 1.0))


@pytest.mark.parametrize("kind", ["all black", "filled square", "noise"])
def test_an_image_unlike_anything_is_unusual(demo, kind) -> None:
    _, predictor = demo
    assert predictor.predict(png_bytes(unlike_anything(kind))).unusual


def test_neighbours_are_the_ten_nearest_paths(demo) -> None:
    data_dir, predictor = demo
    prediction = predictor.predict(data_dir / predictor.paths[5])
    assert len(prediction.neighbours) == len(prediction.neighbour_paths) == N_SIMILAR == 10
    assert prediction.neighbour_paths == [predictor.paths[j] for j in prediction.neighbours]
    assert len(set(prediction.neighbours)) == N_SIMILAR
    assert prediction.neighbour_distances == sorted(prediction.neighbour_distances)


def test_map_xy_is_finite_and_within_the_map(demo) -> None:
    _, predictor = demo
    image = draw_demo_image("ring", np.random.default_rng(SEED + 3000))
    xy = np.array(predictor.predict(png_bytes(image)).map_xy)
    assert xy.shape == (2,) and np.isfinite(xy).all()
    # a weighted mean of neighbours' places lies within their bounding box
    assert np.all(xy >= predictor.map_xy.min(0)) and np.all(xy <= predictor.map_xy.max(0))


@pytest.mark.slow
def test_a_member_lands_in_its_own_cluster_in_umap_space_and_map(tmp_path) -> None:
    _, pipeline = prepared(tmp_path, Settings(k_min=2, k_max=10), with_map=True)
    assert pipeline.settings.cluster_space == "umap"
    predictor = Predictor(pipeline, k=K)
    predictions = predictor.predict_masks(pipeline.images().unpack(), predictor.paths)
    np.testing.assert_array_equal([p.cluster for p in predictions], own_labels(predictor))
    assert np.isfinite([p.map_xy for p in predictions]).all()


@pytest.fixture(scope="module")
def larger(tmp_path_factory) -> Predictor:
    """A predictor over 480 demo images: the set's own percentiles need more than a handful per family."""
    root = tmp_path_factory.mktemp("larger")
    pipeline = Pipeline(make_demo(root / "d", n=480, seed=SEED), Settings(cluster_space="pca", k_max=9), root / "c")
    pipeline.prepare(with_map=False)
    return Predictor(pipeline, k=K, use_umap_map=False)


def test_fresh_members_of_the_families_are_rarely_unusual(larger) -> None:
    predictor = larger
    rng = np.random.default_rng(SEED + 3000)
    families = sorted(FAMILIES)
    masks = np.stack([decode_image(png_bytes(draw_demo_image(families[i % 8], rng))) for i in range(80)])
    predictions = predictor.predict_masks(masks, [str(i) for i in range(80)])
    assert sum(p.unusual for p in predictions) <= 4  # about 1% by construction (quality suite: 1-2%)


@pytest.mark.parametrize("kind", ["noise", "filled square"])
def test_a_canvas_full_of_ink_is_unusual_though_its_density_looks_like_a_disk(larger, kind) -> None:
    prediction = larger.predict(png_bytes(unlike_anything(kind)))
    assert prediction.unusual and prediction.novelty > 1.0


def test_novelty_is_the_gap_to_the_nearest_images_against_the_sets_own(demo) -> None:
    data_dir, predictor = demo
    member = predictor.predict(data_dir / predictor.paths[3])
    assert member.novelty == pytest.approx(0.0, abs=1e-6) or member.novelty < 1.0
    odd = predictor.predict(png_bytes(unlike_anything("noise")))
    assert odd.novelty > 1.0 and odd.unusual


def test_a_gaussian_mixture_gives_its_posterior_as_the_confidence(tmp_path: Path) -> None:
    from core.clustering.algorithms import membership

    data = make_demo(tmp_path / "d", n=160, seed=SEED)
    pipeline = Pipeline(data, Settings(cluster_space="pca", algorithm="gmm", k_max=9), tmp_path / "c")
    pipeline.prepare(with_map=False)
    sweep = pipeline.sweep()
    assert sweep.mixtures is not None and len(sweep.mixtures) == len(sweep.ks)
    predictor = Predictor(pipeline, k=K, use_umap_map=False)
    masks = pipeline.images().unpack()
    predictions = predictor.predict_masks(masks, predictor.paths)
    posterior = membership(pipeline.reduction().Z, sweep.fit(K))
    np.testing.assert_allclose([p.confidence for p in predictions], posterior.max(1), atol=1e-4)
    agree = np.mean([p.cluster for p in predictions] == sweep.labels[sweep.row(K)])
    assert agree >= 0.99  # the likeliest component is the image's own cluster
