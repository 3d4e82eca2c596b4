"""The settings that change a result, and their command-line flags: the one mapping between the two."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.clustering.algorithms import ALGORITHMS
from core.errors import DotmapError, SettingError
from core.reading.decode import POLARITIES
from core.representation.features import FEATURE_HELP, FEATURE_KINDS

CLUSTER_SPACES = ("umap", "pca")
GRID_RANGE = (8, 1024)  # pixels: a 1024 grid holds 131 kB per image packed and 1 MB while one is read
SEED_RANGE = (0, 2**32 - 1)  # what scikit-learn and numpy take as a random seed


@dataclass(frozen=True)
class Settings:
    """Everything that changes a result. Defaults are the measured best for shapes of dots."""

    features: str = "shape-rotation"
    components: int = 50
    k_min: int = 2
    k_max: int = 20
    algorithm: str = "kmeans"
    cluster_space: str = "umap"
    grid: int = 200
    polarity: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise DotmapError(f"{name}={getattr(self, name)!r} should be one of {choices}.")
        if self.components < 2:
            raise DotmapError(f"components={self.components} should be >= 2.")
        if self.k_min < 2:
            raise DotmapError(f"k_min={self.k_min} should be >= 2 (one cluster is no grouping).")
        if self.k_max < self.k_min:
            raise DotmapError(f"k_max={self.k_max} should be >= k_min={self.k_min}.")
        low, high = GRID_RANGE
        if self.grid < low:
            raise SettingError(f"grid={self.grid} should be >= {low}.")
        if self.grid > high:
            packed = -(-high * high // 8) // 1000
            raise SettingError(
                f"grid={self.grid} should be {low}..{high} pixels: every image is worked on as grid x grid "
                f"pixels, and {high} already takes {packed} kB per image in the cache."
            )
        if not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise SettingError(f"seed={self.seed} should be {SEED_RANGE[0]}..{SEED_RANGE[1]:,} (2^32 - 1).")

    @property
    def ks(self) -> list[int]:
        return list(range(self.k_min, self.k_max + 1))


CHOICES: dict[str, tuple[str, ...]] = {
    "features": FEATURE_KINDS,
    "algorithm": ALGORITHMS,
    "cluster_space": CLUSTER_SPACES,
    "polarity": POLARITIES,
}

_D = Settings()
HELP: dict[str, str] = {
    "features": f"what counts as the same shape (default {_D.features}). "
    + "; ".join(f"{k}: {v}" for k, v in FEATURE_HELP.items()),
    "components": f"principal components kept (default {_D.components})",
    "k_min": f"smallest k (default {_D.k_min})",
    "k_max": f"largest k (default {_D.k_max})",
    "algorithm": "k-means, spherical k-means (cosine), or a Gaussian mixture (slower; its confidence is a "
    f"probability) (default {_D.algorithm})",
    "cluster_space": "cluster a 10-D UMAP of the components (default; best on curved groups) "
    "or the components themselves (faster)",
    "grid": f"working grid in pixels, {GRID_RANGE[0]}..{GRID_RANGE[1]} (default {_D.grid})",
    "polarity": "ink tone: auto takes each image's majority tone as its ground (default)",
    "seed": f"random seed, {SEED_RANGE[0]}..{SEED_RANGE[1]} (default {_D.seed})",
}


def flag(name: str, prefix: str = "") -> str:
    """The command-line flag of one setting: ``k_min`` -> ``--k-min`` (``--b-k-min`` with prefix ``b``)."""
    return "--" + (f"{prefix}-" if prefix else "") + name.replace("_", "-")


def _kind(name: str) -> dict[str, Any]:
    return {"choices": CHOICES[name]} if name in CHOICES else {"type": int}


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, with its default and its help."""
    for setting in fields(Settings):
        parser.add_argument(
            flag(setting.name),
            dest=setting.name,
            default=getattr(_D, setting.name),
            help=HELP[setting.name],
            **_kind(setting.name),
        )


def add_other_setting_flags(parser: argparse.ArgumentParser, prefix: str, also: str) -> None:
    """``--<prefix>-<setting>`` for a second set of settings (default: the first's), and ``--<also>-<setting>``
    as a hidden other name of ``--<setting>``."""
    for setting in fields(Settings):
        name, kind = setting.name, _kind(setting.name)
        parser.add_argument(
            flag(name, prefix),
            dest=f"{prefix}_{name}",
            default=None,
            help=f"{prefix.upper()}'s {flag(name)} (default: {also.upper()}'s)",
            metavar=None if "choices" in kind else "N",
            **kind,
        )
        parser.add_argument(flag(name, also), dest=name, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kind)


def settings_from_flags(args: argparse.Namespace, prefix: str = "", base: Settings | None = None) -> Settings:
    """The settings the flags give; with a ``prefix`` and a ``base``, the base with what the prefixed flags change."""
    if base is None:
        return Settings(**{s.name: getattr(args, s.name) for s in fields(Settings)})
    given = {s.name: getattr(args, f"{prefix}_{s.name}") for s in fields(Settings)}
    return Settings(**{**asdict(base), **{name: value for name, value in given.items() if value is not None}})


def setting_flags(settings: Settings) -> list[str]:
    """The command-line flags of ``python -m core`` that give these settings."""
    out = []
    for name, value in asdict(settings).items():
        out += [flag(name), str(value)]
    return out
