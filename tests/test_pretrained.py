"""Tests of core.representation.pretrained: a network trained on photographs, where its weights are on this machine.

No real ImageNet weights are here (nothing is downloaded): the tests write their own, a VGG16 of random
weights in torchvision's layout and a tiny TorchScript model, and check the route, not its quality.
"""

from pathlib import Path

import numpy as np
import pytest

from core.demo import make_demo
from core.engine.pipeline import Pipeline, Settings
from core.representation import pretrained

torch = pytest.importorskip("torch", reason="the learned features' extra (requirements-learned.txt)")

SEED = 0
GRID = 64
N = 24


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PyTorch hub cache of this test's own, and no $DOTMAP_PRETRAINED."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(pretrained.WEIGHTS_ENV, raising=False)
    return pretrained.hub_file()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_demo(tmp_path / "demo", N, SEED, families=["ring", "line"], size=GRID)


def settings() -> Settings:
    return Settings(features="pretrained", cluster_space="pca", k_max=4, grid=GRID)


def write_vgg16(path: Path, seed: int = SEED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(pretrained.vgg16_state(torch, seed), path)
    return path


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 5, stride=4)

    def forward(self, x):
        return torch.relu(self.conv(x))  # feature maps (n, 6, h, w): averaged into 6 numbers


def test_without_weights_it_says_where_to_put_them(hub: Path, folder: Path, tmp_path: Path) -> None:
    assert pretrained.weights_file() is None
    assert pretrained.weights_fingerprint() == "absent"
    with pytest.raises(pretrained.PretrainedUnavailableError, match=r"none is on this machine") as caught:
        Pipeline(folder, settings(), tmp_path / "c").prepare(with_map=False)
    assert str(hub.parent) in str(caught.value)
    assert pretrained.VGG16_FILE in str(caught.value)
    assert pretrained.WEIGHTS_ENV in str(caught.value)


def test_torchvisions_vgg16_file_in_the_hub_cache_is_used(hub: Path, folder: Path, tmp_path: Path) -> None:
    write_vgg16(hub)
    pipeline = Pipeline(folder, settings(), tmp_path / "c")
    pipeline.prepare(with_map=False)
    X = pipeline.features()
    assert X.shape == (N, 512)
    assert np.isfinite(X).all() and X.std(axis=0).max() > 0  # images differ, so do their features
    assert pipeline.entry("pretrained").meta["network"] == f"VGG16 ({pretrained.VGG16_FILE})"
    np.testing.assert_allclose(
        pipeline.features_of(np.asarray(pipeline.images().packed[:3])), X[:3], rtol=1e-4, atol=1e-5
    )


def test_other_weights_are_other_features_and_another_key(hub: Path, folder: Path, tmp_path: Path) -> None:
    write_vgg16(hub, seed=1)
    first = Pipeline(folder, settings(), tmp_path / "c")
    key, X = first.key("features"), first.features()
    write_vgg16(hub, seed=2)
    second = Pipeline(folder, settings(), tmp_path / "c")
    assert second.key("features") != key
    assert second.missing(with_map=False)
    assert not np.allclose(second.features(), X)


@pytest.mark.parametrize("saved", ["export", "torchscript"])
def test_a_model_file_the_user_gives(hub: Path, folder: Path, tmp_path: Path, monkeypatch, saved: str) -> None:
    torch.manual_seed(SEED)
    if saved == "export":
        model = tmp_path / "mine.pt2"
        batch = torch.export.Dim("batch", min=1)
        program = torch.export.export(TinyNet(), (torch.zeros(2, 3, 112, 112),), dynamic_shapes={"x": {0: batch}})
        torch.export.save(program, str(model))
        words = "the exported model mine.pt2"
    else:
        model = tmp_path / "mine.pt"
        with pytest.warns(DeprecationWarning):  # TorchScript is on its way out; files of it still load
            torch.jit.script(TinyNet()).save(str(model))
        words = "the TorchScript model mine.pt"
    monkeypatch.setenv(pretrained.WEIGHTS_ENV, str(model))
    pipeline = Pipeline(folder, settings(), tmp_path / "c")
    pipeline.prepare(with_map=False)
    assert pipeline.features().shape == (N, 6)
    assert pipeline.entry("pretrained").meta["network"] == words


def test_a_given_path_that_is_no_file_is_said(hub: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(pretrained.WEIGHTS_ENV, str(tmp_path / "nowhere.pt"))
    with pytest.raises(pretrained.PretrainedUnavailableError, match=r"nowhere.pt' is not a file"):
        pretrained.weights_file()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"not a model at all", r"neither a model nor a state dict"),
        (b"not an archive", r"not a model torch.export.load can read"),
        ("other state", r"is a state dict, but not VGG16's features"),
        ("a tensor", r"holds a Tensor, not a state dict"),
    ],
)
def test_a_file_that_is_no_model_dotmap_runs_is_said(hub: Path, tmp_path: Path, content, match) -> None:
    path = tmp_path / ("weights.pt2" if content == b"not an archive" else "weights.pth")
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "other state":
        torch.save({"features.0.weight": torch.zeros(2, 2)}, path)
    else:
        torch.save(torch.zeros(3), path)
    with pytest.raises(pretrained.PretrainedUnavailableError, match=match):
        pretrained.load_network(path)


def test_the_network_sees_dark_ink_on_white_as_imagenet_was_normalised() -> None:
    fine = np.zeros((1, pretrained.FRAME_CELLS, pretrained.FRAME_CELLS), np.float32)
    fine[0, 30:34, 30:34] = 1 / 16
    x = pretrained.network_input(torch, fine)
    assert x.shape == (1, 3, pretrained.INPUT_PIXELS, pretrained.INPUT_PIXELS)
    white = (1.0 - np.array(pretrained.IMAGENET_MEAN)) / np.array(pretrained.IMAGENET_STD)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), white, rtol=1e-5)  # the ground is white
    centre = pretrained.INPUT_PIXELS // 2
    assert (x[0, :, centre, centre].numpy() < white).all()  # the ink is darker
