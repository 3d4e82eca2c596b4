"""Features of a network pretrained on photographs (ImageNet's VGG16, or a model file the user gives): the
route the user was first advised to take, where its weights are on this machine.

Nothing is downloaded. The weights are, in this order:
- the file ``$DOTMAP_PRETRAINED`` names: a model that takes images (n, 3, h, w) and gives features
  (n, d) or feature maps (n, c, h', w'), saved by ``torch.export.save`` (a ``.pt2`` file, its batch
  size dynamic) or as TorchScript (``torch.jit.save``); or a VGG16 state dict in torchvision's layout;
- torchvision's own VGG16 file in PyTorch's hub cache (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``,
  where ``torchvision.models.vgg16(weights="IMAGENET1K_V1")`` leaves it).
Where there is neither, :class:`PretrainedUnavailableError` says what to do.

Each image is given to the network as its centred, scaled ink (the ``shape`` frame, so position and
size do not count), dark ink on a white ground at INPUT_PIXELS, normalised as ImageNet's photographs
were; the features are the last feature maps averaged over the image (512 numbers for VGG16).
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DotmapError
from core.reading.ondisk import let_go, row_blocks
from core.representation.features import gather_rows
from core.representation.learned import _torch_threads, device_name, import_torch

WEIGHTS_ENV = "DOTMAP_PRETRAINED"
VGG16_FILE = "vgg16-397923af.pth"  # torchvision's name for its ImageNet weights
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
INPUT_PIXELS = 112  # VGG16 at 224 px costs 4x as much; a dot pattern has no finer detail to give
FRAME_CELLS = 64
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BATCH = 64
BLOCK_IMAGES = 512  # images a block of the features stage: progress every few seconds on a CPU
WORDS = (
    "The `pretrained` features need a network's weights, and none is on this machine (Dotmap downloads "
    "nothing). Either put torchvision's VGG16 file ({file}) in {hub}, as `torchvision.models.vgg16("
    'weights="IMAGENET1K_V1")` does on a machine with internet, or set {env} to a model file of yours '
    "(a torch.export .pt2 or TorchScript model taking images (n, 3, h, w), or a VGG16 state dict)."
)


class PretrainedUnavailableError(DotmapError):
    """No pretrained weights on this machine, or a file that is not a model Dotmap can run."""


def hub_file() -> Path:
    """Where PyTorch's hub cache keeps torchvision's VGG16 weights ($TORCH_HOME, else ~/.cache/torch)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return Path(home) / "hub" / "checkpoints" / VGG16_FILE


def weights_file() -> Path | None:
    """The weights the ``pretrained`` features use: ``$DOTMAP_PRETRAINED``, else the hub's VGG16 file, else None."""
    given = os.environ.get(WEIGHTS_ENV, "").strip()
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise PretrainedUnavailableError(f"{WEIGHTS_ENV}={given!r} is not a file; give the path of a model file.")
        return path
    found = hub_file()
    return found if found.is_file() else None


def weights_fingerprint() -> str:
    """What the weights' cache key holds: the file's SHA-256 (read again only when its size or time moved),
    or ``absent``."""
    path = weights_file()
    if path is None:
        return "absent"
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _vgg16(torch: Any) -> Any:
    nn, layers, channels = torch.nn, [], 3
    for v in VGG16_LAYERS:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
            channels = v
    return nn.Sequential(*layers)


def vgg16_state(torch: Any, seed: int = 0) -> dict[str, Any]:
    """A VGG16 state dict in torchvision's layout (``features.N.weight``), of random weights: for tests."""
    torch.manual_seed(seed)
    return {f"features.{k}": v for k, v in _vgg16(torch).state_dict().items()}


def missing_words() -> str:
    """What to do where no weights are on this machine."""
    return WORDS.format(file=VGG16_FILE, hub=hub_file().parent, env=WEIGHTS_ENV)


def find_network() -> tuple[Any, str]:
    """The network of this machine's weights (see the module's docstring) and words for it, or the words of
    what to do where there are none."""
    path = weights_file()
    if path is None:
        raise PretrainedUnavailableError(missing_words())
    return load_network(path)


def load_network(path: Path) -> tuple[Any, str]:
    """The network in a weights file, in eval mode, and words for it; a clear error for a file that is neither."""
    torch = import_torch()
    if path.suffix == ".pt2":
        try:
            return torch.export.load(str(path)).module(), f"the exported model {path.name}"
        except Exception as exc:  # a damaged archive, a program of another version: said, not raised as is
            raise PretrainedUnavailableError(
                f"{path} is not a model torch.export.load can read ({type(exc).__name__}: {str(exc)[:200]})."
            ) from None
    if _is_torchscript(path):
        with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export; its files still load
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                return torch.jit.load(str(path), map_location="cpu").eval(), f"the TorchScript model {path.name}"
            except RuntimeError as exc:
                first = str(exc).splitlines()[0]
                raise PretrainedUnavailableError(f"{path} looks like TorchScript but does not load: {first}") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle that weights_only refuses, a truncated zip, ...: said, not raised as is
        raise PretrainedUnavailableError(
            f"{path} is neither a model nor a state dict PyTorch can read safely ({type(exc).__name__})."
        ) from None
    if not isinstance(state, dict):
        raise PretrainedUnavailableError(f"{path} holds a {type(state).__name__}, not a state dict of weights.")
    conv = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    network = _vgg16(torch)
    try:
        network.load_state_dict(conv)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise PretrainedUnavailableError(
            f"{path} is a state dict, but not VGG16's features (torchvision's layout): {first}"
        ) from None
    return network.eval(), f"VGG16 ({path.name})"


def _is_torchscript(path: Path) -> bool:
    """Whether a file is a TorchScript archive (a zip with the model's code in it), without loading it."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.endswith("/constants.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def network_input(torch: Any, fine: np.ndarray) -> Any:
    """Fine densities (n, FRAME_CELLS, FRAME_CELLS) -> images (n, 3, INPUT_PIXELS, INPUT_PIXELS) as ImageNet's
    were normalised: dark ink on a white ground."""
    F = torch.nn.functional
    x = torch.from_numpy(np.ascontiguousarray(fine, np.float32))[:, None]
    x = F.avg_pool2d(x, 3, 1, 1)  # dots become strokes a photograph's filters answer to
    x = x / x.amax((2, 3), keepdim=True).clamp_min(1e-12)
    x = F.interpolate(x, size=(INPUT_PIXELS, INPUT_PIXELS), mode="bilinear", align_corners=False)
    gray = 1.0 - x.clamp(0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (gray.expand(-1, 3, -1, -1) - mean) / std


def features_of(network: Any, fine: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The network's features of fine densities: ndarray of shape (n, d), float32 (feature maps averaged)."""
    torch = import_torch()
    parts = []
    with _torch_threads(torch, device), torch.inference_mode():
        network.to(device)
        for start in range(0, len(fine), BATCH):
            out = network(network_input(torch, fine[start : start + BATCH]).to(device))
            if out.ndim == 4:
                out = out.mean((2, 3))
            if out.ndim != 2:
                raise PretrainedUnavailableError(
                    f"the model gave an output of shape {tuple(out.shape)}; it should be (n, d) or (n, c, h, w)."
                )
            parts.append(out.float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def features_of_packed(network: Any, packed: np.ndarray, grid: int, device: str = "cpu") -> np.ndarray:
    """The network's features of packed images (n rows on ``grid``): ndarray of shape (n, d), float32."""
    from core.representation.typical import pose_free_densities  # it imports features, which names this module's kind

    fine = pose_free_densities(np.atleast_2d(packed), grid, "shape", cells=FRAME_CELLS)
    return features_of(network, fine.reshape(-1, FRAME_CELLS, FRAME_CELLS), device)


def compute_pretrained_features(
    packed: np.ndarray,
    grid: int,
    on_progress: Callable[[int, int, str], None] | None = None,
    out: str | os.PathLike | None = None,
) -> tuple[np.ndarray | Path, dict[str, Any]]:
    """The pretrained features of every image (packed rows), by blocks (streamed into ``out`` when given),
    and meta: the network's words and the device."""
    network, words = find_network()
    device, n = device_name(), len(packed)

    def blocks() -> Iterator[tuple[int, np.ndarray]]:
        for start, stop in row_blocks(n, BLOCK_IMAGES):
            block = features_of_packed(network, np.asarray(packed[start:stop]), grid, device)
            let_go(packed)
            yield stop, block

    return gather_rows(blocks(), n, 0, on_progress, out), {"network": words, "device": device}
