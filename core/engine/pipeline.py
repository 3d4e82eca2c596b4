"""Runs or reuses each stage of the stage table (core.engine.stages) for one data folder and one set of settings.

A stage's key is a hash of its settings, its upstream stages' keys and the version of its code and
libraries, never of their data, so finding that a stage is cached needs no upstream work: a warm run
reads only what it shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.clustering import scoring
from core.clustering.sweep import Sweep, per_k, sweep_from_arrays
from core.engine import processes, threads, versions
from core.engine.backends import Backend
from core.engine.beside import StagesBeside
from core.engine.cache import Cache, Entry, default_cache_dir, make_key
from core.engine.settings import CLUSTER_SPACES, Settings
from core.engine.stages import STAGES, plan_stages, stage_of, stage_version
from core.errors import DotmapError, NoImagesError, NoStructureError
from core.reading import arrays, folders, images, ondisk
from core.reading.names import shown
from core.representation import learned, pretrained, reduction
from core.representation.features import LEARNED_KINDS, features_from_packed

__all__ = ["CLUSTER_SPACES", "Pipeline", "Settings", "StageRecord", "Step", "Sweep", "skipped_words"]

SKIPPED_NAMED = 5  # skipped files named in an error; the rest are counted
ProgressFn = Callable[[int, int, str], None]


def skipped_words(skipped: list) -> str:
    """The skipped files for an error message: the first few by name with their reason, then a count."""
    if not skipped:
        return ""
    named = "; ".join(f"{shown(path)}: {reason}" for path, reason in skipped[:SKIPPED_NAMED])
    more = f"; and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
    return f" {len(skipped)} file(s) skipped: {named}{more}."


@dataclass
class StageRecord:
    """How one stage went: its name, wall seconds, and whether it was computed (else loaded)."""

    stage: str
    seconds: float
    computed: bool


@dataclass(frozen=True)
class Step:
    """One stage of the plan: its cache name, what a person reads about it, and the call that runs it."""

    stage: str
    words: str
    run: Callable[[], Any] = field(repr=False, compare=False)


@dataclass
class Pipeline:
    """Runs or reuses each stage for one data folder and one set of settings."""

    data_dir: str | Path
    settings: Settings = field(default_factory=Settings)
    cache_dir: str | Path | None = None
    on_progress: ProgressFn | None = None
    inventory: folders.Inventory | None = field(default=None, repr=False)  # a scan of data_dir made just now
    image_shape: tuple[int, int] | None = None  # (h, w) of an array set's flat rows, when they are not square
    backend: Backend | None = field(default=None, repr=False)  # where parallel work runs (core.engine.backends)

    def __post_init__(self) -> None:
        self.backend = self.backend or Backend()
        if self.inventory is None or Path(self.data_dir).expanduser() != self.inventory.root:
            self.inventory = arrays.scan_data(self.data_dir, self.image_shape)  # first: a wrong folder creates nothing
        ondisk.block_bytes()  # a wrong $DOTMAP_BLOCK_MB is said before any work, not half-way
        self.cache = Cache(Path(self.cache_dir) if self.cache_dir else default_cache_dir())
        versions.remember_in(self.cache.root)  # the stages' code versions, derived once for this code
        self.records: list[StageRecord] = []
        self._entries: dict[str, Entry] = {}
        self._network: Any = None  # the network that makes the features (learned, pretrained), once new images need it

    # ---- keys: pure functions of settings and upstream keys, derived from the stage table ----
    def key(self, stage: str, k: int | None = None) -> str:
        """The cache key of a stage (of one k, for a per-k stage)."""
        entry, s = stage_of(stage, self.settings), self.settings
        parts: dict[str, Any] = {name: getattr(s, name) for name in entry.settings}
        if entry.reads_folder:
            parts["data"] = self.inventory.fingerprint
        if entry.fingerprints is not None:
            parts.update(entry.fingerprints(self))
        if entry.per_k:
            if k is None:
                raise ValueError(f"stage {stage!r} has one result per k: give k")
            parts["k"] = k
        for up in entry.inputs:
            parts[f"in:{up}"] = [self.key(up, j) for j in s.ks] if STAGES[up].per_k else self.key(up)
        return make_key(entry.name, code=stage_version(entry.name), **parts)

    def is_cached(self, stage: str, k: int | None = None) -> bool:
        return self.cache.has(stage_of(stage, self.settings).name, self.key(stage, k))

    def file(self, stage: str, name: str) -> Path:
        """Where a cached stage keeps one array (a cluster's workers read it there)."""
        return self.cache.path(stage_of(stage, self.settings).name, self.key(stage)) / f"{name}.npy"

    # ---- running a stage ------------------------------------------------------------------
    def entry(self, stage: str, k: int | None = None) -> Entry:
        """A stage's cached entry, computed first (with its inputs) if it is not in the cache."""
        real = stage_of(stage, self.settings)
        name = real.name if k is None else f"{real.name}-k{k}"
        if name not in self._entries:
            work = partial(real.compute, self, k) if real.per_k else partial(real.compute, self)
            compute = partial(_on_numeric_threads, work)
            needs = partial(real.disk_bytes, self) if real.disk_bytes is not None else None
            start = time.perf_counter()
            entry, computed = self.cache.get_or_compute(real.name, self.key(real.name, k), compute, needs)
            self.records.append(StageRecord(name, time.perf_counter() - start, computed))
            self._entries[name] = entry
        return self._entries[name]

    def progress(self, done: int, total: int, stage: str) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total, stage)

    # ---- each stage's result, as the rest of Dotmap uses it ------------------------------------
    def images(self) -> images.ImageSet:
        entry = self.entry("images")
        meta = entry.meta
        return images.ImageSet(entry.arrays["packed"], meta["grid"], meta["paths"], [tuple(x) for x in meta["skipped"]])

    def ink_counts(self) -> np.ndarray:
        """How many ink pixels each image has on the working grid: ndarray of shape (n_images,), int32."""
        return self.entry("images").arrays["ink"]

    def image_meta(self) -> dict[str, Any]:
        """Paths, skipped files and the count of distinct images, without loading the pixels."""
        if "images" not in self._entries:
            meta = self.cache.meta("images", self.key("images"))
            if meta is not None:
                return meta
        return self.entry("images").meta

    def features(self) -> np.ndarray:
        return self.entry("features").arrays["X"]

    def encoder(self) -> learned.Encoder:
        """The encoder trained on these images (features ``learned``, ``learned-rotation``; needs PyTorch)."""
        entry = self.entry("encoder")
        return learned.Encoder(entry.arrays, entry.meta)

    def features_of(self, packed: np.ndarray) -> np.ndarray:
        """The features of new images (packed rows on this set's grid), as this set's were made: (m, n_features)."""
        s = self.settings
        if s.features in LEARNED_KINDS:
            self._network = self._network or self.encoder()  # built once: every Classify batch would build it again
            return self._network.features_of_packed(packed, s.grid)
        if s.features == "pretrained":
            if self._network is None:
                self._network = pretrained.find_network()[0]
            return pretrained.features_of_packed(self._network, packed, s.grid)
        return features_from_packed(packed, s.grid, s.features)

    def reduction(self) -> reduction.Reduction:
        return reduction.Reduction(**self.entry("reduction").arrays)

    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        arrays = self.entry("neighbours").arrays
        return arrays["indices"], arrays["distances"]

    def space(self) -> np.ndarray:
        """The rows that are clustered: PCA components, or their 10-D UMAP."""
        if stage_of("space", self.settings).name == "reduction":
            return self.reduction().Z
        return self.entry("space").arrays["U"]

    def fit(self, k: int) -> Entry:
        return self.entry("fit", k)

    def fit_on_cluster(self, ks: list[int]) -> None:
        """The fits of ``ks`` not cached yet, one task per k (each k is independent): on a cluster
        backend, or here on a process per core (``core.engine.processes.spread``)."""
        missing = [k for k in ks if f"fit-k{k}" not in self._entries and not self.is_cached("fit", k)]
        if not missing:
            return
        s = self.settings
        fit = partial(scoring.fit_and_score, algorithm=s.algorithm, seed=s.seed)
        X = self.space()
        if self.backend.name == "local":
            missing.sort(reverse=True)  # the largest k takes longest: first, so the last to end are short
            fitted = zip(missing, processes.spread(fit, missing, len(X), X=X), strict=True)
        else:
            fitted = zip(missing, self.backend.map(fit, missing, X=X), strict=True)
        for i, (k, result) in enumerate(fitted):
            start = time.perf_counter()
            entry, computed = self.cache.get_or_compute("fit", self.key("fit", k), lambda result=result: result)
            self.records.append(StageRecord(f"fit-k{k}", time.perf_counter() - start, computed))
            self._entries[f"fit-k{k}"] = entry
            self.progress(i + 1, len(missing), "clustering")

    def sweep(self) -> Sweep:
        entry = self.entry("sweep")
        return sweep_from_arrays(entry.arrays, entry.meta)

    def map(self) -> np.ndarray:
        """The 2-D UMAP map: ndarray of shape (n_images, 2), float32."""
        return self.entry("map").arrays["xy"]

    def cluster_means(self) -> list[np.ndarray]:
        """The typical shape of every cluster of every k (see core.representation.typical): one (k, cells, cells)
        per k."""
        return per_k(self.entry("typical").arrays["means"], self.settings.ks)

    def auto_groups(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Groups found without a k (HDBSCAN on the UMAP cluster space; see clustering.algorithms.auto_groups).

        Returns labels (n_images,) with -1 for noise, and {"groups": how many, "noise": its share}.
        """
        if self.settings.cluster_space != "umap":
            raise DotmapError(
                "Groups without a k are found in the UMAP cluster space; these settings cluster the PCA "
                "components (--cluster-space pca). Use --cluster-space umap for them."
            )
        entry = self.entry("auto")
        return entry.arrays["labels"], entry.meta

    def atlas(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The thumbnail atlas (see core.outputs.atlas.make_atlas): its arrays and meta."""
        entry = self.entry("atlas")
        return entry.arrays, entry.meta

    def pca_map(self) -> np.ndarray:
        """The instant 2-D layout: the first two principal components, (n_images, 2)."""
        return self.reduction().Z[:, :2]

    # ---- checks ---------------------------------------------------------------------------
    def check_enough_images(self) -> None:
        """Refuse, in words, a folder with too few images (or too few distinct ones) for the k range."""
        meta = self.image_meta()
        n, distinct = len(meta["paths"]), meta["distinct"]
        where = shown(str(self.inventory.root))
        if n == 0:
            raise NoImagesError(f"No readable images in {where}.{skipped_words(meta['skipped'])}")
        if n == 1:
            raise NoImagesError(
                f"Only one readable image in {where}; clustering needs several.{skipped_words(meta['skipped'])}"
            )
        if distinct == 1:
            raise NoStructureError(
                f"All {n} images are identical: there is no structure to cluster, so nothing is drawn."
            )
        most = min(distinct, n - 1)  # k = n would put every image alone in its own cluster
        if most < self.settings.k_min:
            raise NoStructureError(
                f"{n} images ({distinct} distinct) are too few to cluster: k={self.settings.k_min} needs at least "
                f"{self.settings.k_min + 1} images, {self.settings.k_min} of them distinct."
            )
        if self.settings.k_max > most:
            raise NoStructureError(
                f"k_max={self.settings.k_max} is more than the data allows: {n} images, {distinct} distinct. "
                f"Use --k-max {most} or lower."
            )

    # ---- everything -----------------------------------------------------------------------
    def plan(self, with_map: bool = True) -> list[Step]:
        """Every stage in the order it runs, upstream first: the one list the CLI, the jobs and the pages use.

        The clustering and its scores come before the 2-D map, so they can be shown while the map is made.
        """
        return [
            Step(stage.name, stage.words(self.settings), partial(self.entry, stage.name))
            for stage in plan_stages(self.settings, with_map)
        ]

    def missing(self, with_map: bool = True) -> list[Step]:
        """The steps of :meth:`plan` that are not in the cache yet (no work is done to find out)."""
        return [step for step in self.plan(with_map) if not self.is_cached(step.stage)]

    def prepare(self, with_map: bool = True, on_step: Callable[[Step, bool], None] | None = None) -> list[StageRecord]:
        """Run (or reuse) every stage of :meth:`plan`, upstream first, so each record times its own stage.

        ``on_step(step, starting)`` is called before (True) and after (False) each step that is not
        cached yet; for a step made beside the others and waited for last (the map), True comes when
        its work begins, and True again when it is waited for. Returns the stage records of this call.
        """
        first = len(self.records)
        if not self.missing(with_map):
            self.image_meta()  # the skipped-file list is part of what a run reports
            return self.records[first:]
        self.cache.remove_orphaned_staging()  # what a killed run left half-written
        steps = self.plan(with_map)
        beside = StagesBeside(self, {step.stage for step in steps}, _stage_beside)
        try:
            while steps:
                step = steps.pop(0)
                if beside.waited_for_last(step.stage) and steps:
                    steps.append(step)
                    continue
                computing = on_step is not None and (step.stage in beside.announced or not self.is_cached(step.stage))
                if computing:
                    on_step(step, True)
                if step.stage in beside:
                    beside.finish(step.stage)
                else:
                    step.run()
                if step.stage == "images":
                    self.check_enough_images()
                begun = beside.begin_ready()
                if computing:
                    on_step(step, False)
                for later in (s for s in steps if s.stage in begun and beside.waited_for_last(s.stage)):
                    if on_step is not None:
                        on_step(later, True)  # it runs from now on; the steps between report their own progress
                        beside.announced.add(later.stage)
        finally:
            beside.close()  # an error stopped the prepare: the work beside is not wanted
        return self.records[first:]


def _stage_beside(stage: str, data_dir, settings, cache_dir, inventory, image_shape, on_progress) -> None:
    """In a process of its own (processes.Beside): one stage of the pipeline, into the shared cache."""
    Pipeline(data_dir, settings, cache_dir, on_progress, inventory=inventory, image_shape=image_shape).entry(stage)


def _on_numeric_threads(work: Callable[[], Any]) -> Any:
    """A stage's work on the numeric threads Dotmap chose (core/engine/threads.py); only when it computes:
    a stage loaded from the cache never imports scikit-learn."""
    with threads.limited():
        return work()
