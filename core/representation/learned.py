"""Features learned from the user's own images: a small convolutional encoder trained without labels (PyTorch).

What the encoder sees of an image is its ink density in the frame of the hand-made features
(core.representation.typical.pose_free_densities): centred on the dots and scaled to their spread,
so position and size never count; for ``learned-rotation`` also turned to the dots' principal axes.
What else does not count is taught by the augmentations it is trained with: dots dropped and added,
thicker or thinner, a small shift, turn, stretch and shear. For ``learned-rotation`` which way the
principal axes point does not count either: the images are flipped in training (the contrastive
training turns and mirrors them any way), and the codes are the mean of the four flips' codes. Its
features are those codes with the hand-made ``shape-rotation`` features beside them (BESIDE_HAND_MADE).

Two ways to train it (``METHODS``), both measured on the quality suite (docs/quality.md):
- ``contrastive``: two augmented views of each image are pulled together and pushed from the other
  images of the batch (SimCLR's NT-Xent loss on a projection head); the features are the encoder's.
- ``autoencoder``: the encoder and a decoder rebuild the clean density from an augmented one (a
  denoising autoencoder, the first step of N2D); the features are the code in the middle.

PyTorch is an extra (requirements-learned.txt): without it a clear error says what to install. It
trains on a CUDA device when there is one, else on the CPU's cores.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DotmapError
from core.reading.ondisk import image_block_rows, let_go, row_blocks
from core.representation.features import FRAME, LEARNED_KINDS, features_from_packed, gather_rows

TURNS = {"learned": False, "learned-rotation": True}  # whether any turn and a mirror are augmentations
# the hand-made features beside the codes, each part scaled to a total variance of 1 (docs/quality.md: hard
# shapes 0.718 -> 0.825); learned's beside shape's lost on digits and letters, so its codes stay alone
BESIDE_HAND_MADE: dict[str, str | None] = {"learned": None, "learned-rotation": "shape-rotation"}
METHODS = ("contrastive", "autoencoder")
# the quality suite's choice (docs/quality.md, benchmarks/quality.py): the autoencoder scored higher on digits
# (0.751 against 0.730) and glyphs (0.561 against 0.389), lower on hard shapes (0.733 against 0.751), in 60% of
# the time (one view a batch, not two)
METHOD = "autoencoder"
INPUT_CELLS = 32  # the encoder's input grid
FINE_CELLS = 64  # augmentations work on this finer grid, then it is pooled to INPUT_CELLS
CHANNELS = (16, 32, 64)  # (32, 64, 128) cost 3.7x the time a batch on 2 cores
EMBED_DIM = 64
PROJECTION_DIM = 32
BATCH = 256
TRAIN_SAMPLE = 8192  # images the encoder trains on (seeded); the features are of every image
TRAIN_STEPS = 480  # batches of training in all, over as many epochs as that takes (at most MAX_EPOCHS)
MAX_EPOCHS = 60  # a small set: 240 images train 60 batches (15 s on 2 cores)
LEARNING_RATE = 2e-3
TEMPERATURE = 0.2
ENCODE_BATCH = 1024
INSTALL = "python3 -m pip install -r requirements-learned.txt"
INSTALL_WORDS = (
    "The learned features need PyTorch, which is not installed here. Install it with "
    f"`{INSTALL}` (the CPU build on Linux: about 0.9 GB, half a minute), or choose other features "
    "(shape, shape-rotation or pixels)."
)

EpochFn = Callable[[int, int, float], None]


class LearnedUnavailableError(DotmapError):
    """PyTorch, which the learned features need, is not installed."""


def import_torch() -> Any:
    """PyTorch, or a LearnedUnavailableError saying what to install.

    Its OpenMP threads wait passively (``OMP_WAIT_POLICY``, read when PyTorch loads; a value the user set is
    kept): training 2 epochs of 4,096 images on 2 threads took 7.1 s quiet and 19.9 s with another process
    keeping a core busy; waiting passively, 7.3 s and 12.3 s (one thread: 12.9 s and 11.5 s)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        raise LearnedUnavailableError(INSTALL_WORDS) from None
    return torch


def learned_available() -> bool:
    """Whether PyTorch is installed, without importing it (a second, and memory, in the dashboard's server)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def device_name() -> str:
    """Where the encoder trains: ``cuda`` when a CUDA device is there (``DOTMAP_DEVICE=cpu`` says no), else ``cpu``."""
    torch = import_torch()
    wanted = os.environ.get("DOTMAP_DEVICE", "").strip().lower()
    if wanted not in ("", "cpu", "cuda"):
        raise DotmapError(f"DOTMAP_DEVICE={wanted!r} should be cpu or cuda.")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise DotmapError("DOTMAP_DEVICE=cuda, but PyTorch sees no CUDA device here; unset it to train on the CPU.")
    return "cuda" if wanted != "cpu" and torch.cuda.is_available() else "cpu"


def encoder_input(packed: np.ndarray, grid: int, kind: str) -> np.ndarray:
    """The fine ink densities the encoder's input is made from: ndarray of shape (n, FINE_CELLS, FINE_CELLS),
    float32, each row summing to 1 (an image with no ink: zeros)."""
    from core.representation.typical import pose_free_densities

    if kind not in LEARNED_KINDS:
        raise ValueError(f"kind={kind!r} should be one of {LEARNED_KINDS}.")
    density = pose_free_densities(packed, grid, FRAME[kind], cells=FINE_CELLS)
    return density.reshape(-1, FINE_CELLS, FINE_CELLS)


def _network(torch: Any, method: str) -> tuple[Any, Any]:
    """The encoder, and its head: a projection (contrastive) or a decoder (autoencoder)."""
    nn = torch.nn
    a, b, c = CHANNELS

    def block(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    side = INPUT_CELLS // 8
    encoder = nn.Sequential(
        *block(1, a), *block(a, a), nn.MaxPool2d(2),
        *block(a, b), *block(b, b), nn.MaxPool2d(2),
        *block(b, c), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c * side * side, EMBED_DIM),
    )  # fmt: skip
    if method == "contrastive":
        head = nn.Sequential(
            nn.ReLU(), nn.Linear(EMBED_DIM, EMBED_DIM), nn.ReLU(), nn.Linear(EMBED_DIM, PROJECTION_DIM)
        )
    else:
        head = nn.Sequential(
            nn.Linear(EMBED_DIM, c * side * side), nn.ReLU(), nn.Unflatten(1, (c, side, side)),
            nn.ConvTranspose2d(c, b, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(b, a, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(a, 1, 4, 2, 1),
        )  # fmt: skip
    return encoder, head


def _blur(torch: Any, x: Any, sigma: Any) -> Any:
    """Each image of (B, 1, H, W) blurred by its own Gaussian width ``sigma`` (B,), in fine cells."""
    radius = 4
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, 2r+1)
    B, _, H, W = x.shape
    flat = x.reshape(1, B, H, W)
    F = torch.nn.functional
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0)), kernel[:, None, None, :], groups=B)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius)), kernel[:, None, :, None], groups=B)
    return flat.reshape(B, 1, H, W)


def _to_input(torch: Any, fine: Any, sigma: Any) -> Any:
    """Fine densities (B, 1, FINE, FINE) -> the encoder's input (B, 1, INPUT_CELLS, INPUT_CELLS): blurred,
    pooled, square-rooted (Hellinger, as the hand-made features) and scaled to about unit values."""
    pooled = torch.nn.functional.avg_pool2d(_blur(torch, fine, sigma), FINE_CELLS // INPUT_CELLS)
    return torch.sqrt(pooled.clamp_min(0) * (FINE_CELLS // INPUT_CELLS) ** 2) * INPUT_CELLS


def _augment(torch: Any, fine: Any, turns: bool, generator: Any) -> Any:
    """An augmented view of a batch of fine densities (B, 1, FINE, FINE): the encoder's input."""
    B, dev = fine.shape[0], fine.device

    def uniform(low: float, high: float, *shape: int) -> Any:
        return torch.rand(*(shape or (B,)), generator=generator, device=dev) * (high - low) + low

    keep = uniform(0.6, 1.0)[:, None, None, None]
    dropped = fine * (torch.rand(fine.shape, generator=generator, device=dev) < keep)
    mass = fine.sum((1, 2, 3), keepdim=True) / (fine > 0).sum((1, 2, 3), keepdim=True).clamp_min(1)
    added = (torch.rand(fine.shape, generator=generator, device=dev) < uniform(0, 0.01)[:, None, None, None]) * mass
    x = dropped + added
    angle = uniform(0, 2 * math.pi) if turns else uniform(-0.25, 0.25)
    scale = uniform(0.85, 1.15)
    stretch = uniform(0.9, 1.1)
    shear = uniform(-0.15, 0.15)
    cos, sin = torch.cos(angle), torch.sin(angle)
    mirror = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0) if turns else torch.ones(B, device=dev)
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0] = cos * scale * stretch * mirror
    theta[:, 0, 1] = -sin * scale + shear
    theta[:, 1, 0] = sin * scale * stretch * mirror
    theta[:, 1, 1] = cos * scale
    theta[:, :, 2] = uniform(-0.08, 0.08, B, 2)
    F = torch.nn.functional
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _to_input(torch, x, uniform(0.6, 1.6))


FLIPS = ((), (3,), (2,), (2, 3))  # none, left-right, up-down, both (a half turn)


def _flip(torch: Any, x: Any, which: Any) -> Any:
    """Each image of (B, 1, H, W) flipped by its own FLIPS[which[i]]."""
    out = x.clone()
    for i, dims in enumerate(FLIPS[1:], start=1):
        chosen = which == i
        if dims and bool(chosen.any()):
            out[chosen] = torch.flip(x[chosen], dims)
    return out


def _nt_xent(torch: Any, a: Any, b: Any) -> Any:
    """SimCLR's loss: each view's partner is its positive, the batch's other 2B - 2 views its negatives."""
    F = torch.nn.functional
    z = F.normalize(torch.cat([a, b]), dim=1)
    similarity = z @ z.T / TEMPERATURE
    n = len(a)
    similarity.fill_diagonal_(float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(similarity, partner)


def _batches(n: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    for start in range(0, n - BATCH // 2 + 1 if n > BATCH else 1, BATCH):
        yield order[start : start + BATCH]


def train_encoder(
    fine: np.ndarray,
    kind: str,
    seed: int = 0,
    method: str | None = None,
    epochs: int | None = None,
    on_epoch: EpochFn | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train the encoder on the fine densities (n, FINE_CELLS, FINE_CELLS) of images (see
    :func:`training_rows`), without labels, seeded.

    ``epochs`` defaults to enough for TRAIN_STEPS batches. ``on_epoch(done, epochs, loss)`` follows the
    training (it may raise to cancel it). Returns the encoder's weights as named arrays, and meta: the
    method, the loss of each epoch, the device and the seconds.
    """
    torch = import_torch()
    method = method or METHOD
    if kind not in LEARNED_KINDS:
        raise ValueError(f"kind={kind!r} should be one of {LEARNED_KINDS}.")
    if method not in METHODS:
        raise ValueError(f"method={method!r} should be one of {METHODS}.")
    if len(fine) < 2:
        raise ValueError(f"n_images={len(fine)} should be >= 2 to train an encoder.")
    device = device_name()
    start = time.perf_counter()
    with _torch_threads(torch, device):
        torch.manual_seed(seed)
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        rng = np.random.default_rng(seed)
        encoder, head = _network(torch, method)
        encoder.to(device).train()
        head.to(device).train()
        parameters = list(encoder.parameters()) + list(head.parameters())
        optimiser = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=1e-4)
        per_epoch = sum(1 for _ in _batches(len(fine), np.random.default_rng(0)))
        epochs = epochs or min(MAX_EPOCHS, math.ceil(TRAIN_STEPS / per_epoch))
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, LEARNING_RATE, total_steps=epochs * per_epoch)
        data = torch.from_numpy(np.ascontiguousarray(fine, np.float32)).to(device)[:, None]
        losses = []
        for epoch in range(epochs):
            total, count = 0.0, 0
            for rows in _batches(len(fine), rng):
                batch = data[torch.from_numpy(np.sort(rows)).to(device)]
                if method == "contrastive":
                    a = head(encoder(_augment(torch, batch, TURNS[kind], generator)))
                    b = head(encoder(_augment(torch, batch, TURNS[kind], generator)))
                    loss = _nt_xent(torch, a, b)
                else:
                    if TURNS[kind]:  # the principal axes' signs are arbitrary: any of the four flips, in both
                        batch = _flip(torch, batch, torch.randint(4, (len(batch),), generator=generator, device=device))
                    clean = _to_input(torch, batch, torch.ones(len(batch), device=device))
                    loss = torch.nn.functional.mse_loss(head(encoder(_augment(torch, batch, False, generator))), clean)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total, count = total + loss.item() * len(rows), count + len(rows)
            losses.append(total / max(count, 1))
            if on_epoch is not None:
                on_epoch(epoch + 1, epochs, losses[-1])
        state = encoder.state_dict()
    weights = {f"w{i:02d}": tensor.detach().cpu().numpy() for i, tensor in enumerate(state.values())}
    meta = {
        "kind": kind,
        "method": method,
        "names": list(state.keys()),
        "losses": [round(x, 5) for x in losses],
        "device": device,
        "seconds": round(time.perf_counter() - start, 2),
        "epochs": epochs,
        "images": len(fine),
    }
    return weights, meta


def training_rows(n: int, seed: int, sample: int = TRAIN_SAMPLE) -> np.ndarray:
    """The images the encoder trains on: a seeded sample of ``sample`` of the ``n`` (all when fewer), sorted."""
    if n <= sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))


def balance(codes: np.ndarray, hand: np.ndarray) -> list[float]:
    """Factors giving the training sample's codes (n, EMBED_DIM) and hand-made features (n, d) a total
    variance of 1 each, so that PCA weighs the two views alike."""
    return [float(1 / math.sqrt(max(float(part.astype(np.float64).var(0).sum()), 1e-12))) for part in (codes, hand)]


def feature_width(kind: str, grid: int) -> int:
    """How many numbers the features of ``kind`` have an image: the codes, and the hand-made part beside them."""
    hand, blank = BESIDE_HAND_MADE[kind], np.zeros((1, (grid * grid + 7) // 8), np.uint8)
    return EMBED_DIM + (0 if hand is None else features_from_packed(blank, grid, hand).shape[1])


def compute_learned_features(
    packed: np.ndarray,
    grid: int,
    kind: str,
    encoder: Encoder,
    on_progress: Callable[[int, int, str], None] | None = None,
    out: str | os.PathLike | None = None,
) -> np.ndarray | Path:
    """The learned features of every image (packed rows, n): ndarray of shape (n, feature_width(kind, grid)),
    float32, by blocks (:meth:`Encoder.features_of_packed`); with ``out``, streamed into that .npy file,
    whose path is returned."""
    n = len(packed)

    def blocks() -> Iterator[tuple[int, np.ndarray]]:
        for start, stop in row_blocks(n, image_block_rows()):
            block = encoder.features_of_packed(np.asarray(packed[start:stop]), grid)
            let_go(packed)
            yield stop, block

    return gather_rows(blocks(), n, feature_width(kind, grid), on_progress, out)


class Encoder:
    """A trained encoder, ready to turn images into features (on the CPU: a few thousand images a second)."""

    def __init__(self, weights: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        torch = import_torch()
        self._torch = torch
        encoder, _ = _network(torch, meta["method"])
        state = {name: torch.from_numpy(np.array(weights[f"w{i:02d}"])) for i, name in enumerate(meta["names"])}
        encoder.load_state_dict(state)
        self._device = device_name()
        self._encoder = encoder.eval().to(self._device)
        self._kind = meta.get("kind", "")
        self._flips = TURNS.get(self._kind, False)
        self._hand = BESIDE_HAND_MADE.get(self._kind)
        self._balance = meta.get("balance")

    def features_of_packed(self, packed: np.ndarray, grid: int) -> np.ndarray:
        """Features of images (packed rows, n) as the set's were made: ndarray of shape (n, width), float32: the
        codes and, for a kind of BESIDE_HAND_MADE, the hand-made features, each part times ``meta["balance"]``."""
        codes = self.features(encoder_input(packed, grid, self._kind))
        if self._hand is None:
            return codes
        if self._balance is None:  # an older Dotmap trained it
            raise DotmapError(f"This `{self._kind}` encoder lacks its scales; prepare the set again.")
        hand = features_from_packed(packed, grid, self._hand)
        return np.hstack([codes * self._balance[0], hand * self._balance[1]]).astype(np.float32)

    def features(self, fine: np.ndarray) -> np.ndarray:
        """Features of fine densities (n, FINE_CELLS, FINE_CELLS): ndarray of shape (n, EMBED_DIM), float32.

        For ``learned-rotation`` the mean of the codes of the four flips of each image: which way the dots'
        principal axes point is arbitrary, so the features do not depend on it."""
        torch = self._torch
        out = np.zeros((len(fine), EMBED_DIM), np.float32)
        with _torch_threads(torch, self._device), torch.inference_mode():
            for start in range(0, len(fine), ENCODE_BATCH):
                part = np.ascontiguousarray(fine[start : start + ENCODE_BATCH], np.float32)
                batch = torch.from_numpy(part)[:, None].to(self._device)
                x = _to_input(torch, batch, torch.ones(len(batch), device=self._device))
                views = [torch.flip(x, dims) if dims else x for dims in FLIPS] if self._flips else [x]
                codes = torch.stack([self._encoder(v) for v in views]).mean(0)
                out[start : start + len(batch)] = codes.cpu().numpy()
        return out


@contextmanager
def _torch_threads(torch: Any, device: str) -> Iterator[None]:
    """Inside, PyTorch runs on every core (Dotmap's other stages run on one BLAS thread: core.engine.threads);
    its own pool, not the BLAS one, so it does not spin against them. On CUDA nothing changes."""
    from core.engine.processes import cores

    before = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(cores())
    try:
        yield
    finally:
        torch.set_num_threads(before)
