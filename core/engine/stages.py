"""The stage table: every stage declared once, with its inputs, the settings in its key and its compute function.

Each compute function takes the :class:`~core.engine.pipeline.Pipeline` (its settings, its upstream
stages' results, its progress callback, its backend and cache) and returns the stage's arrays and
JSON meta. The pipeline derives from this table alone: the cache key of a stage (its settings, its
inputs' keys and :func:`stage_version`), the plan (the stages in the order they run, an input
pulled in just before the first stage that needs it) and the stages still missing. The code version
is derived from the compute function (core.engine.versions), so nothing is listed by hand. Adding
a stage is one entry here and its compute function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from core.clustering import algorithms as clustering
from core.clustering import scoring, sweep
from core.engine import versions
from core.errors import NoImagesError
from core.outputs import atlas
from core.reading import folders, images, rows
from core.representation import embedding, features, learned, pretrained, reduction, typical

if TYPE_CHECKING:
    from core.engine.pipeline import Pipeline
    from core.engine.settings import Settings

Result = tuple[dict[str, Any], dict[str, Any]]  # a stage's arrays (or the .npy files it streamed) and its meta


@dataclass(frozen=True)
class Stage:
    """One stage: its cache name, what a person reads, its inputs, the settings in its key, and its work.

    inputs : upstream stages; a per-k input stands for its result at every k of the settings.
    settings : the names of the Settings fields in its key.
    per_k : one result per k (computed inside the stage that takes it as an input, not a step of its own).
    reads_folder : the data folder's fingerprint is in its key.
    wanted : whether the plan runs it for itself, given the settings and whether a map is wanted; a stage
        not wanted runs only as some wanted stage's input.
    stands_for : under these settings, the stage whose result this one is (its key and its result are that one's).
    fingerprints : what outside the settings its result depends on (a weights file's digest), in its key.
    disk_bytes : about how many bytes its entry takes, for a full disk's message; given for the stages that
        stream their arrays into the cache as they compute (the others' are counted when written).
    """

    name: str
    words: Callable[[Settings], str]
    compute: Callable[..., Result]
    inputs: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    per_k: bool = False
    reads_folder: bool = False
    wanted: Callable[[Settings, bool], bool] = lambda settings, with_map: True
    stands_for: Callable[[Settings], str | None] = lambda settings: None
    disk_bytes: Callable[[Pipeline], int] | None = None
    fingerprints: Callable[[Pipeline], dict[str, str]] | None = None


def read_images(p: Pipeline) -> Result:
    if not p.inventory.files:
        if p.inventory.array is None:
            raise NoImagesError(folders.no_files_words(p.inventory))
        raise NoImagesError(f"The array {p.inventory.root} holds no rows.")
    out = p.cache.scratch_file("images", "packed")
    s = p.settings
    if p.inventory.array is not None:
        read = rows.stream_array(p.inventory, out, s.grid, s.polarity, on_progress=p.on_progress, backend=p.backend)
    else:
        read = images.stream_images(p.inventory, out, s.grid, s.polarity, on_progress=p.on_progress, backend=p.backend)
    meta = {"paths": read.paths, "skipped": read.skipped, "grid": s.grid, "distinct": read.distinct}
    return {"packed": out, "ink": read.ink}, meta


def images_bytes(p: Pipeline) -> int:
    """The packed rows and ink counts of every candidate file: ceil(grid * grid / 8) + 4 bytes each."""
    grid = p.settings.grid
    return len(p.inventory.files) * ((grid * grid + 7) // 8 + np.dtype(np.int32).itemsize)


def features_bytes(p: Pipeline) -> int:
    """One float32 row of features per image read, as wide as the kind of features makes it."""
    s = p.settings
    if s.features in features.NETWORK_KINDS:
        width = learned.feature_width(s.features, s.grid) if _learned(s) else 512  # VGG16's; another model's may differ
        return len(p.image_meta()["paths"]) * width * np.dtype(np.float32).itemsize
    blank = np.zeros((1, (s.grid * s.grid + 7) // 8), np.uint8)
    width = features.features_from_packed(blank, s.grid, s.features).shape[1]
    return len(p.image_meta()["paths"]) * width * np.dtype(np.float32).itemsize


def compute_features(p: Pipeline) -> Result:
    p.check_enough_images()
    out = p.cache.scratch_file("features", "X")
    source = p.file("images", "packed")
    return {"X": features.compute_features(p.images(), p.settings.features, p.on_progress, out, p.backend, source)}, {}


def train_encoder(p: Pipeline) -> Result:
    p.check_enough_images()
    s, loaded = p.settings, p.images()
    p.progress(0, 0, "encoder: what it sees of each image")
    packed = np.asarray(loaded.packed[learned.training_rows(len(loaded), s.seed)])
    fine = learned.encoder_input(packed, loaded.grid, s.features)
    on_epoch = lambda done, total, loss: p.progress(done, total, f"encoder: epochs (loss {loss:.3f})")  # noqa: E731
    weights, meta = learned.train_encoder(fine, s.features, s.seed, on_epoch=on_epoch)
    hand = learned.BESIDE_HAND_MADE[s.features]
    if hand is not None:  # the two parts' scales, from the images it trained on
        p.progress(0, 0, f"encoder: scaling its numbers and the `{hand}` features beside them")
        codes = learned.Encoder(weights, meta).features(fine)
        meta = {**meta, "balance": learned.balance(codes, features.features_from_packed(packed, loaded.grid, hand))}
    return weights, meta


def learned_features(p: Pipeline) -> Result:
    loaded, out = p.images(), p.cache.scratch_file("learned", "X")
    kind, encoder = p.settings.features, p.encoder()
    X = learned.compute_learned_features(loaded.packed, loaded.grid, kind, encoder, p.on_progress, out)
    return {"X": X}, {}


def pretrained_features(p: Pipeline) -> Result:
    p.check_enough_images()
    loaded, out = p.images(), p.cache.scratch_file("pretrained", "X")
    X, meta = pretrained.compute_pretrained_features(loaded.packed, loaded.grid, p.on_progress, out)
    return {"X": X}, meta


def _learned(s: Settings) -> bool:
    return s.features in features.LEARNED_KINDS


def _network_stage(s: Settings) -> str | None:
    """The stage whose features these settings use, when a network makes them."""
    return "learned" if _learned(s) else "pretrained" if s.features == "pretrained" else None


def compute_reduction(p: Pipeline) -> Result:
    p.progress(0, 1, "reduce")
    s = p.settings
    r = reduction.reduce_features(p.features(), s.components, s.seed, p.backend, p.file("features", "X"))
    p.progress(1, 1, "reduce")
    return asdict(r), {}


def find_neighbours(p: Pipeline) -> Result:
    Z = p.reduction().Z
    approximate = len(Z) > reduction.EXACT_NEIGHBOURS_UP_TO
    p.progress(0, 0 if approximate else 1, reduction.APPROXIMATE_WORDS if approximate else "neighbours")
    indices, distances = reduction.nearest_neighbors(Z, seed=p.settings.seed, backend=p.backend)
    p.progress(1, 1, "neighbours")
    return {"indices": indices, "distances": distances}, {}


def _umap(p: Pipeline, stage: str, dim: int, **options: Any) -> Any:
    p.progress(0, 0, f"{stage}: {embedding.SETUP_WORDS}")
    indices, distances = p.neighbours()
    on_epoch = lambda done, total: p.progress(done, total, f"{stage}: epochs")  # noqa: E731
    return embedding.umap_embedding(
        p.reduction().Z, indices, distances, dim, p.settings.seed, on_epoch=on_epoch, **options
    )


def cluster_space(p: Pipeline) -> Result:
    dim, epochs = embedding.CLUSTER_SPACE_DIM, embedding.CLUSTER_SPACE_EPOCHS
    return {"U": _umap(p, "cluster space (UMAP)", dim, min_dist=0.0, n_epochs=epochs)}, {}


def fit_one_k(p: Pipeline, k: int) -> Result:
    return scoring.fit_and_score(k, p.space(), p.settings.algorithm, p.settings.seed)


def sweep_every_k(p: Pipeline) -> Result:
    p.check_enough_images()
    s = p.settings
    p.fit_on_cluster(s.ks)

    def fit_of(k: int) -> Result:
        entry = p.fit(k)
        return entry.arrays, entry.meta

    return sweep.assemble_sweep(p.space(), s.ks, fit_of, s.algorithm, s.seed, p.on_progress)


def typical_shapes(p: Pipeline) -> Result:
    p.progress(0, 1, "typical shapes")
    loaded, s = p.images(), p.settings
    source = p.file("images", "packed")
    means = typical.cluster_means(
        loaded.packed,
        loaded.grid,
        s.features,
        p.sweep().labels,
        s.ks,
        backend=p.backend,
        source=source,
        sample=typical.TYPICAL_SAMPLE,
        seed=s.seed,
    )
    p.progress(1, 1, "typical shapes")
    return {"means": means}, {}


def thumbnail_atlas(p: Pipeline) -> Result:
    loaded = p.images()
    on_tiles = lambda done, total: p.progress(done, total, "thumbnails")  # noqa: E731
    return atlas.make_atlas(loaded.packed, loaded.grid, on_tiles)


def two_d_map(p: Pipeline) -> Result:
    return {"xy": _umap(p, "map (UMAP)", 2)}, {}


def groups_without_k(p: Pipeline) -> Result:
    p.progress(0, 1, "automatic groups")
    X = p.space()
    graph = p.neighbours()[0] if len(X) > clustering.AUTO_FIT_UP_TO else None  # a sample's groups spread
    labels = clustering.auto_groups(X, graph, seed=p.settings.seed)
    p.progress(1, 1, "automatic groups")
    groups = int(labels.max()) + 1 if len(labels) else 0
    return {"labels": labels}, {"groups": groups, "noise": float(np.mean(labels < 0)) if len(labels) else 0.0}


def _umap_space(s: Settings, with_map: bool = True) -> bool:
    return s.cluster_space == "umap"


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "images",
            lambda s: "Read the images",
            read_images,
            settings=("grid", "polarity"),
            reads_folder=True,
            disk_bytes=images_bytes,
        ),
        Stage(
            "features",
            lambda s: f"Compute the `{s.features}` features",
            compute_features,
            ("images",),
            ("features",),
            stands_for=_network_stage,
            disk_bytes=features_bytes,
        ),
        Stage(
            "encoder",
            lambda s: "Train an encoder on the images (learned features)",
            train_encoder,
            ("images",),
            ("features", "seed"),
            wanted=lambda s, with_map: False,
        ),
        Stage(
            "learned",
            lambda s: f"Compute the `{s.features}` features with the trained encoder",
            learned_features,
            ("images", "encoder"),
            ("features",),
            wanted=lambda s, with_map: False,
            disk_bytes=features_bytes,
        ),
        Stage(
            "pretrained",
            lambda s: "Compute the `pretrained` features (a network trained on photographs)",
            pretrained_features,
            ("images",),
            ("features",),
            wanted=lambda s, with_map: False,
            fingerprints=lambda p: {"weights": pretrained.weights_fingerprint()},
            disk_bytes=features_bytes,
        ),
        Stage(
            "reduction",
            lambda s: f"PCA to {s.components} components",
            compute_reduction,
            ("features",),
            ("components", "seed"),
        ),
        Stage(
            "neighbours",
            lambda s: "Find each image's nearest neighbours",
            find_neighbours,
            ("reduction",),
            ("seed",),
            wanted=lambda s, with_map: False,
        ),
        Stage(
            "space",
            lambda s: "UMAP cluster space (10-D)",
            cluster_space,
            ("reduction", "neighbours"),
            ("seed",),
            stands_for=lambda s: None if _umap_space(s) else "reduction",
        ),
        Stage(
            "fit",
            lambda s: f"{clustering.ALGORITHM_WORDS[s.algorithm]} for one k",
            fit_one_k,
            ("space",),
            ("cluster_space", "algorithm", "seed"),
            per_k=True,
        ),
        Stage(
            "sweep",
            lambda s: f"{clustering.ALGORITHM_WORDS[s.algorithm]} for k = {s.k_min}..{s.k_max}, and their scores",
            sweep_every_k,
            ("space", "fit"),
            ("algorithm", "seed"),
        ),
        Stage(
            "typical",
            lambda s: "Typical shape of every cluster",
            typical_shapes,
            ("images", "sweep"),
            ("features", "seed"),
        ),
        Stage(
            "atlas",
            lambda s: "Thumbnails of the images for the map",
            thumbnail_atlas,
            ("images",),
            wanted=lambda s, with_map: with_map,
        ),
        Stage(
            "map",
            lambda s: "2-D map (UMAP)",
            two_d_map,
            ("reduction", "neighbours"),
            ("seed",),
            wanted=lambda s, with_map: with_map,
        ),
        # HDBSCAN wants few dimensions: on 50 PCA components it would take minutes
        Stage(
            "auto",
            lambda s: "Groups found without a k (HDBSCAN)",
            groups_without_k,
            ("space", "neighbours"),
            ("seed",),
            wanted=_umap_space,
        ),
    )
}


@cache
def stage_version(name: str) -> str:
    """A hash of the code and library versions behind one stage's result (see core.engine.versions)."""
    if name not in STAGES:
        raise KeyError(f"stage {name!r} is not in the stage table (core.engine.stages.STAGES)")
    return versions.code_version(STAGES[name].compute)


def stage_of(name: str, settings: Settings) -> Stage:
    """The stage that gives ``name``'s result under these settings (itself, or the one it stands for)."""
    if name not in STAGES:
        raise KeyError(f"stage {name!r} is not in the stage table (core.engine.stages.STAGES)")
    stood = STAGES[name].stands_for(settings)
    return STAGES[stood] if stood else STAGES[name]


def plan_stages(settings: Settings, with_map: bool = True) -> list[Stage]:
    """Every stage that runs for these settings, upstream first: the wanted ones in table order, each
    input pulled in just before the first stage that needs it (per-k inputs run inside their stage)."""
    order: dict[str, Stage] = {}

    def add(name: str) -> None:
        stage = stage_of(name, settings)
        if stage.name in order:
            return
        for up in stage.inputs:
            if not STAGES[up].per_k:
                add(up)
        order[stage.name] = stage

    for stage in STAGES.values():
        if not stage.per_k and stage.wanted(settings, with_map):
            add(stage.name)
    return list(order.values())
