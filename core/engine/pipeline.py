"""The stages from a folder to clusterings for every k and a map, each cached on disk by its key.

A stage's key is a hash of its settings, its upstream stages' keys and the version of its code and
libraries (core.engine.versions), never of their data, so finding that a stage is cached needs no upstream
work: a warm run reads only what it shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.clustering import algorithms as clustering
from core.clustering import scoring
from core.engine.backends import Backend
from core.engine.cache import Cache, Entry, default_cache_dir, make_key
from core.engine.versions import stage_version
from core.errors import DotmapError, NoImagesError, NoStructureError
from core.reading import folders, images
from core.reading.names import shown
from core.representation import embedding, features, reduction, typical

CLUSTER_SPACES = ("umap", "pca")
SKIPPED_NAMED = 5  # skipped files named in an error; the rest are counted


def _keyed(stage: str, **parts: Any) -> str:
    """A stage's cache key: its settings and upstream keys, and the version of its code and libraries."""
    return make_key(stage, code=stage_version(stage), **parts)


def skipped_words(skipped: list) -> str:
    """The skipped files for an error message: the first few by name with their reason, then a count."""
    if not skipped:
        return ""
    named = "; ".join(f"{shown(path)}: {reason}" for path, reason in skipped[:SKIPPED_NAMED])
    more = f"; and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
    return f" {len(skipped)} file(s) skipped: {named}{more}."


ProgressFn = Callable[[int, int, str], None]


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
        if self.features not in features.FEATURE_KINDS:
            raise DotmapError(f"features={self.features!r} should be one of {features.FEATURE_KINDS}.")
        if self.algorithm not in clustering.ALGORITHMS:
            raise DotmapError(f"algorithm={self.algorithm!r} should be one of {clustering.ALGORITHMS}.")
        if self.cluster_space not in CLUSTER_SPACES:
            raise DotmapError(f"cluster_space={self.cluster_space!r} should be one of {CLUSTER_SPACES}.")
        if self.polarity not in images.POLARITIES:
            raise DotmapError(f"polarity={self.polarity!r} should be one of {images.POLARITIES}.")
        if self.components < 2:
            raise DotmapError(f"components={self.components} should be >= 2.")
        if self.k_min < 2:
            raise DotmapError(f"k_min={self.k_min} should be >= 2 (one cluster is no grouping).")
        if self.k_max < self.k_min:
            raise DotmapError(f"k_max={self.k_max} should be >= k_min={self.k_min}.")
        if self.grid < 8:
            raise DotmapError(f"grid={self.grid} should be >= 8.")

    @property
    def ks(self) -> list[int]:
        return list(range(self.k_min, self.k_max + 1))


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
class Sweep:
    """Clusterings for every k, with ids matched from k to k+1, and their scores.

    labels : ndarray of shape (n_k, n_images), int16; row j is k = ks[j].
    silhouette : ndarray of shape (n_k, n_images), float32, per image.
    distance : ndarray of shape (n_k, n_images), float32, to the own cluster's centre.
    table : one dict per k with k, inertia, silhouette, davies_bouldin, calinski_harabasz,
        stability (mean ARI over the stability runs), stability_spread (their standard deviation), sizes.
    transitions : for each k but the last, the overlap table (k, k+1) of clusters at k and k+1.
    """

    ks: list[int]
    labels: np.ndarray
    centres: list[np.ndarray]
    silhouette: np.ndarray
    distance: np.ndarray
    table: list[dict[str, Any]]
    transitions: list[list[list[int]]]
    recommended_k: int
    sample_size: int
    algorithm: str
    mixtures: list[tuple[np.ndarray, np.ndarray]] | None = None  # Gaussian mixture: (weights, covariances) per k

    def fit(self, k: int) -> clustering.Fit:
        """The clustering of one k as a Fit (labels, centres and, for a mixture, its components)."""
        j = self.row(k)
        weights, covariances = self.mixtures[j] if self.mixtures is not None else (None, None)
        return clustering.Fit(self.labels[j].astype(np.int64), self.centres[j], 0.0, weights, covariances)

    def row(self, k: int) -> int:
        if k not in self.ks:
            raise DotmapError(f"k={k} is outside the prepared range {self.ks[0]}..{self.ks[-1]}.")
        return self.ks.index(k)


@dataclass
class Pipeline:
    """Runs or reuses each stage for one data folder and one set of settings."""

    data_dir: str | Path
    settings: Settings = field(default_factory=Settings)
    cache_dir: str | Path | None = None
    on_progress: ProgressFn | None = None
    inventory: folders.Inventory | None = field(default=None, repr=False)  # a scan of data_dir made just now
    backend: Backend | None = field(default=None, repr=False)  # where parallel work runs (core.engine.backends)

    def __post_init__(self) -> None:
        self.backend = self.backend or Backend()
        if self.inventory is None or Path(self.data_dir).expanduser() != self.inventory.root:
            self.inventory = folders.scan_folder(self.data_dir)  # first: a wrong folder creates nothing
        self.cache = Cache(Path(self.cache_dir) if self.cache_dir else default_cache_dir())
        self.records: list[StageRecord] = []
        self._entries: dict[str, Entry] = {}

    # ---- keys: pure functions of settings and upstream keys -------------------------------
    def key(self, stage: str, k: int | None = None) -> str:
        s = self.settings
        if stage == "images":
            return _keyed(stage, data=self.inventory.fingerprint, grid=s.grid, polarity=s.polarity)
        if stage == "features":
            return _keyed(stage, up=self.key("images"), kind=s.features)
        if stage == "reduction":
            return _keyed(stage, up=self.key("features"), components=s.components, seed=s.seed)
        if stage == "neighbours":
            return _keyed(stage, up=self.key("reduction"), n=reduction.N_NEIGHBORS, seed=s.seed)
        if stage == "space":
            if s.cluster_space == "pca":
                return self.key("reduction")
            return _keyed(
                stage,
                up=self.key("neighbours"),
                seed=s.seed,
                dim=embedding.CLUSTER_SPACE_DIM,
                epochs=embedding.CLUSTER_SPACE_EPOCHS,
            )
        if stage == "fit":
            return _keyed(
                stage,
                up=self.key("space"),
                space=s.cluster_space,
                algorithm=s.algorithm,
                k=k,
                seed=s.seed,
                n_init=clustering.N_INIT,
            )
        if stage == "sweep":
            return _keyed(stage, fits=[self.key("fit", k) for k in s.ks])
        if stage == "typical":
            return _keyed(stage, up=self.key("sweep"), cells=typical.TYPICAL_CELLS)
        if stage == "map":
            return _keyed(stage, up=self.key("neighbours"), seed=s.seed, epochs=embedding.MAP_EPOCHS)
        if stage == "auto":
            return _keyed(
                stage,
                up=self.key("space"),
                graph=self.key("neighbours"),
                share=clustering.AUTO_MIN_SHARE,
                least=clustering.AUTO_MIN_SIZE,
                seed=s.seed,
            )
        raise ValueError(f"unknown stage {stage!r}")

    # ---- running a stage ------------------------------------------------------------------
    def _stage(self, stage: str, compute: Callable[[], tuple[dict, dict]], k: int | None = None) -> Entry:
        name = stage if k is None else f"{stage}-k{k}"
        if name in self._entries:
            return self._entries[name]
        start = time.perf_counter()
        entry, computed = self.cache.get_or_compute(stage, self.key(stage, k), compute)
        self.records.append(StageRecord(name, time.perf_counter() - start, computed))
        self._entries[name] = entry
        return entry

    def _progress(self, done: int, total: int, stage: str) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total, stage)

    def is_cached(self, stage: str, k: int | None = None) -> bool:
        return self.cache.has(stage, self.key(stage, k))

    # ---- stages ---------------------------------------------------------------------------
    def images(self) -> images.ImageSet:
        def compute() -> tuple[dict, dict]:
            if not self.inventory.files:
                raise NoImagesError(f"The folder {self.inventory.root} holds no files.")
            out = self.cache.scratch_file("images", "packed")
            s = self.settings
            read = images.stream_images(
                self.inventory, out, s.grid, s.polarity, on_progress=self.on_progress, backend=self.backend
            )
            meta = {"paths": read.paths, "skipped": read.skipped, "grid": s.grid, "distinct": read.distinct}
            return {"packed": out, "ink": read.ink}, meta

        entry = self._stage("images", compute)
        meta = entry.meta
        return images.ImageSet(entry.arrays["packed"], meta["grid"], meta["paths"], [tuple(x) for x in meta["skipped"]])

    def ink_counts(self) -> np.ndarray:
        """How many ink pixels each image has on the working grid: ndarray of shape (n_images,), int32."""
        self.images()
        return self._entries["images"].arrays["ink"]

    def image_meta(self) -> dict[str, Any]:
        """Paths, skipped files and the count of distinct images, without loading the pixels."""
        if "images" not in self._entries:
            meta = self.cache.meta("images", self.key("images"))
            if meta is not None:
                return meta
            self.images()
        return self._entries["images"].meta

    def features(self) -> np.ndarray:
        def compute() -> tuple[dict, dict]:
            self._check_enough_images()
            out = self.cache.scratch_file("features", "X")
            kind, source = self.settings.features, self._file("images", "packed")
            X = features.compute_features(self.images(), kind, self.on_progress, out, self.backend, source)
            return {"X": X}, {}

        return self._stage("features", compute).arrays["X"]

    def reduction(self) -> reduction.Reduction:
        def compute() -> tuple[dict, dict]:
            self._progress(0, 1, "reduce")
            s = self.settings
            X = self.features()
            r = reduction.reduce_features(X, s.components, s.seed, self.backend, self._file("features", "X"))
            self._progress(1, 1, "reduce")
            return asdict(r), {}

        return reduction.Reduction(**self._stage("reduction", compute).arrays)

    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        def compute() -> tuple[dict, dict]:
            Z = self.reduction().Z
            approximate = len(Z) > reduction.EXACT_NEIGHBOURS_UP_TO
            self._progress(0, 0 if approximate else 1, reduction.APPROXIMATE_WORDS if approximate else "neighbours")
            indices, distances = reduction.nearest_neighbors(Z, seed=self.settings.seed, backend=self.backend)
            self._progress(1, 1, "neighbours")
            return {"indices": indices, "distances": distances}, {}

        arrays = self._stage("neighbours", compute).arrays
        return arrays["indices"], arrays["distances"]

    def space(self) -> np.ndarray:
        """The rows that are clustered: PCA components, or their 10-D UMAP."""
        if self.settings.cluster_space == "pca":
            return self.reduction().Z

        def compute() -> tuple[dict, dict]:
            stage = "cluster space (UMAP)"
            self._progress(0, 0, f"{stage}: {embedding.SETUP_WORDS}")
            indices, distances = self.neighbours()
            U = embedding.umap_embedding(
                self.reduction().Z,
                indices,
                distances,
                embedding.CLUSTER_SPACE_DIM,
                self.settings.seed,
                min_dist=0.0,
                n_epochs=embedding.CLUSTER_SPACE_EPOCHS,
                on_epoch=lambda done, total: self._progress(done, total, f"{stage}: epochs"),
            )
            return {"U": U}, {}

        return self._stage("space", compute).arrays["U"]

    def fit(self, k: int) -> Entry:
        def compute() -> tuple[dict, dict]:
            return scoring.fit_and_score(k, self.space(), self.settings.algorithm, self.settings.seed)

        return self._stage("fit", compute, k)

    def _fit_on_cluster(self, ks: list[int]) -> None:
        """The fits of ``ks`` not cached yet, as one task per k on a cluster backend (each k is independent)."""
        missing = [k for k in ks if f"fit-k{k}" not in self._entries and not self.is_cached("fit", k)]
        if self.backend.name == "local" or not missing:
            return
        s = self.settings
        fit = partial(scoring.fit_and_score, algorithm=s.algorithm, seed=s.seed)
        for i, (k, result) in enumerate(zip(missing, self.backend.map(fit, missing, X=self.space()), strict=True)):
            self._stage("fit", lambda result=result: result, k)
            self._progress(i + 1, len(missing), "clustering")

    def _file(self, stage: str, name: str) -> Path:
        """Where a cached stage keeps one array (a cluster's workers read it there)."""
        return self.cache.path(stage, self.key(stage)) / f"{name}.npy"

    def sweep(self) -> Sweep:
        def compute() -> tuple[dict, dict]:
            self._check_enough_images()
            ks = self.settings.ks
            self._fit_on_cluster(ks)
            fits, previous, transitions = [], None, []
            for i, k in enumerate(ks):
                self._progress(i, len(ks), "clustering")
                entry = self.fit(k)
                a = entry.arrays
                fit = clustering.Fit(
                    a["labels"], a["centres"], entry.meta["inertia"], a.get("weights"), a.get("covariances")
                )
                if previous is None:
                    fit = clustering.order_by_size(fit)
                else:
                    fit, table = clustering.match_to_previous(previous, fit)
                    transitions.append(table.tolist())
                fits.append((fit, entry.meta))
                previous = fit.labels
            self._progress(len(ks), len(ks), "clustering")
            X = self.space()
            metric = "cosine" if self.settings.algorithm == "spherical" else "euclidean"
            sample = scoring.silhouette_sample(len(X), self.settings.seed)
            labels = [f.labels for f, _ in fits]
            sil_scores, per_image = scoring.silhouettes(X, labels, sample, metric, self.on_progress)
            distance = np.stack(
                [
                    clustering.distances_to_centres(X, f.centres, self.settings.algorithm)[np.arange(len(X)), f.labels]
                    for f, _ in fits
                ]
            ).astype(np.float32)
            table = []
            for j, ((f, meta), k) in enumerate(zip(fits, ks, strict=True)):
                sizes = np.bincount(f.labels, minlength=k)
                table.append(
                    {
                        "k": k,
                        "inertia": meta["inertia"],
                        "silhouette": float(sil_scores[j]),
                        "davies_bouldin": meta["davies_bouldin"],
                        "calinski_harabasz": meta["calinski_harabasz"],
                        "stability": meta["stability"],
                        "stability_spread": meta["stability_spread"],
                        "sizes": sizes.tolist(),
                    }
                )
            recommended = scoring.recommend_k(ks, sil_scores, [t["stability"] for t in table])
            arrays = {
                "labels": np.stack(labels).astype(np.int16),
                "centres": np.concatenate([f.centres for f, _ in fits]),
                **(
                    {
                        "weights": np.concatenate([f.weights for f, _ in fits]),
                        "covariances": np.concatenate([f.covariances for f, _ in fits]),
                    }
                    if fits[0][0].weights is not None
                    else {}
                ),
                "silhouette": per_image,
                "distance": distance,
            }
            meta = {
                "ks": ks,
                "table": table,
                "transitions": transitions,
                "recommended_k": recommended,
                "sample_size": int(len(sample)),
                "algorithm": self.settings.algorithm,
            }
            return arrays, meta

        entry = self._stage("sweep", compute)
        a, meta = entry.arrays, entry.meta
        bounds = np.cumsum([0, *meta["ks"]])
        return Sweep(
            ks=meta["ks"],
            labels=a["labels"],
            centres=[a["centres"][bounds[i] : bounds[i + 1]] for i in range(len(meta["ks"]))],
            mixtures=[
                (a["weights"][bounds[i] : bounds[i + 1]], a["covariances"][bounds[i] : bounds[i + 1]])
                for i in range(len(meta["ks"]))
            ]
            if "weights" in a
            else None,
            silhouette=a["silhouette"],
            distance=a["distance"],
            table=meta["table"],
            transitions=meta["transitions"],
            recommended_k=meta["recommended_k"],
            sample_size=meta["sample_size"],
            algorithm=meta["algorithm"],
        )

    def map(self) -> np.ndarray:
        """The 2-D UMAP map: ndarray of shape (n_images, 2), float32."""

        def compute() -> tuple[dict, dict]:
            stage = "map (UMAP)"
            self._progress(0, 0, f"{stage}: {embedding.SETUP_WORDS}")
            indices, distances = self.neighbours()
            xy = embedding.umap_embedding(
                self.reduction().Z,
                indices,
                distances,
                2,
                self.settings.seed,
                on_epoch=lambda done, total: self._progress(done, total, f"{stage}: epochs"),
            )
            return {"xy": xy}, {}

        return self._stage("map", compute).arrays["xy"]

    def cluster_means(self) -> list[np.ndarray]:
        """The typical shape of every cluster of every k (see core.representation.typical): one (k, cells, cells) per k."""
        ks = self.settings.ks

        def compute() -> tuple[dict, dict]:
            self._progress(0, 1, "typical shapes")
            loaded = self.images()
            means = typical.cluster_means(
                loaded.packed,
                loaded.grid,
                self.settings.features,
                self.sweep().labels,
                ks,
                backend=self.backend,
                source=self._file("images", "packed"),
            )
            self._progress(1, 1, "typical shapes")
            return {"means": means}, {}

        means = self._stage("typical", compute).arrays["means"]
        bounds = np.cumsum([0, *ks])
        return [means[bounds[i] : bounds[i + 1]] for i in range(len(ks))]

    def auto_groups(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Groups found without a k (HDBSCAN on the UMAP cluster space; see clustering.auto_groups).

        Returns labels (n_images,) with -1 for noise, and {"groups": how many, "noise": its share}.
        """

        if self.settings.cluster_space != "umap":
            raise DotmapError(
                "Groups without a k are found in the UMAP cluster space; these settings cluster the PCA "
                "components (--cluster-space pca). Use --cluster-space umap for them."
            )

        def compute() -> tuple[dict, dict]:
            self._progress(0, 1, "automatic groups")
            X = self.space()
            graph = self.neighbours()[0] if len(X) > clustering.AUTO_FIT_UP_TO else None  # a sample's groups spread
            labels = clustering.auto_groups(X, graph, seed=self.settings.seed)
            self._progress(1, 1, "automatic groups")
            groups = int(labels.max()) + 1 if len(labels) else 0
            return {"labels": labels}, {"groups": groups, "noise": float(np.mean(labels < 0)) if len(labels) else 0.0}

        entry = self._stage("auto", compute)
        return entry.arrays["labels"], entry.meta

    def pca_map(self) -> np.ndarray:
        """The instant 2-D layout: the first two principal components, (n_images, 2)."""
        return self.reduction().Z[:, :2]

    # ---- checks ---------------------------------------------------------------------------
    def _check_enough_images(self) -> None:
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

    # ---- everything ---------------------------------------------------------------------------
    def plan(self, with_map: bool = True) -> list[Step]:
        """Every stage in the order it runs, upstream first: the one list the CLI, the jobs and the pages use.

        The clustering and its scores come before the 2-D map, so they can be shown while the map is made.
        """
        s = self.settings
        name = clustering.ALGORITHM_WORDS[s.algorithm]
        steps = [
            Step("images", "Read the images", self.images),
            Step("features", f"Compute the `{s.features}` features", self.features),
            Step("reduction", f"PCA to {s.components} components", self.reduction),
        ]
        neighbours = Step("neighbours", "Find each image's nearest neighbours", self.neighbours)
        if s.cluster_space == "umap":
            steps += [neighbours, Step("space", "UMAP cluster space (10-D)", self.space)]
        steps += [
            Step("sweep", f"{name} for k = {s.k_min}..{s.k_max}, and their scores", self.sweep),
            Step("typical", "Typical shape of every cluster", self.cluster_means),
        ]
        if with_map:
            if s.cluster_space != "umap":
                steps.append(neighbours)
            steps.append(Step("map", "2-D map (UMAP)", self.map))
        if s.cluster_space == "umap":  # HDBSCAN wants few dimensions: 50 PCA components would take minutes
            steps.append(Step("auto", "Groups found without a k (HDBSCAN)", self.auto_groups))
        return steps

    def missing(self, with_map: bool = True) -> list[Step]:
        """The steps of :meth:`plan` that are not in the cache yet (no work is done to find out)."""
        return [step for step in self.plan(with_map) if not self.is_cached(step.stage)]

    def prepare(self, with_map: bool = True, on_step: Callable[[Step, bool], None] | None = None) -> list[StageRecord]:
        """Run (or reuse) every stage of :meth:`plan`, upstream first, so each record times its own stage.

        ``on_step(step, starting)`` is called before (True) and after (False) each step that is not
        cached yet. Returns the stage records of this call.
        """
        first = len(self.records)
        if not self.missing(with_map):
            self.image_meta()  # the skipped-file list is part of what a run reports
            return self.records[first:]
        self.cache.remove_orphaned_staging()  # what a killed run left half-written
        for step in self.plan(with_map):
            computing = on_step is not None and not self.is_cached(step.stage)
            if computing:
                on_step(step, True)
            step.run()
            if step.stage == "images":
                self._check_enough_images()
            if computing:
                on_step(step, False)
        return self.records[first:]
