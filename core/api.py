"""Dotmap from Python: prepare a folder, an array file or an array in memory, and read its results.

>>> from core.api import prepare
>>> result = prepare("images.npy", features="shape", k_max=15)
>>> result.recommended_k, result.scores.head()
>>> labels = result.labels()              # (n_images,) clusters of the recommended k
>>> result.predict(new_images)            # a DataFrame: cluster, confidence, unlike every cluster, ...

The cache is the command line's and the dashboard's (``$DOTMAP_CACHE`` or ``~/.cache/dotmap``): a
result prepared here opens at once in the dashboard (give it ``result.data``), and the other way round.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.engine.atomic import write_text
from core.engine.cache import default_cache_dir
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError
from core.outputs import export as exporting
from core.outputs.predict import Prediction, Predictor
from core.reading.arrays import is_array_file, scan_array
from core.reading.images import unpack_masks
from core.reading.rows import array_blocks, masks_of_array

__all__ = ["Result", "prepare"]

ProgressFn = Callable[[int, int, str], None]
ARRAYS_FOLDER = "arrays"  # where an array given in memory is kept, under the cache, as an .npy named by its content
HASH_BLOCK = 64 * 2**20


def prepare(
    data: str | os.PathLike | np.ndarray,
    *,
    names: Sequence[str] | None = None,
    labels: Sequence[Any] | None = None,
    image_shape: tuple[int, int] | None = None,
    cache: str | os.PathLike | None = None,
    with_map: bool = True,
    progress: ProgressFn | bool | None = None,
    **settings: Any,
) -> Result:
    """Prepare a data set (or find it prepared in the cache) and return its :class:`Result`.

    Parameters
    ----------
    data : a folder of image files; an .npy or .npz file of images; or an ndarray of images,
        (n, h, w) or (n, h * w): bool (True is ink), integers 0..255 or floats 0..1 (0 black). An array in
        memory is written once into the cache as an .npy named by its content (``Result.data``).
    names, labels : for an array in memory, a name and a true class per row (optional).
    image_shape : (h, w) of flat rows that are not square.
    cache : the cache folder (default ``$DOTMAP_CACHE`` or ``~/.cache/dotmap``).
    with_map : also make the 2-D map (UMAP); the clusters never need it.
    progress : ``on_progress(done, total, stage)``; True or None: a bar where tqdm is installed; False: none.
    **settings : any field of :class:`core.engine.settings.Settings` (features, components, k_min,
        k_max, algorithm, cluster_space, grid, polarity, seed).
    """
    cache_dir = Path(cache).expanduser() if cache is not None else default_cache_dir()
    try:
        chosen = Settings(**settings)
    except TypeError as exc:
        raise DotmapError(f"{exc}; the settings are {', '.join(Settings.__dataclass_fields__)}.") from None
    if isinstance(data, np.ndarray):
        data = keep_array(data, cache_dir, names, labels)
    elif names is not None or labels is not None:
        raise DotmapError("names and labels are for an array in memory; a folder has its file names and labels.csv.")
    bar = _Bars() if progress is None or progress is True else None
    on_progress = bar.update if bar is not None else (progress or None)
    try:
        pipeline = Pipeline(data, chosen, cache_dir, on_progress=on_progress, image_shape=image_shape)
        pipeline.prepare(with_map=with_map)
    finally:
        if bar is not None:
            bar.close()
    return Result(pipeline)


def keep_array(
    images: np.ndarray, cache_dir: Path, names: Sequence[str] | None = None, labels: Sequence[Any] | None = None
) -> Path:
    """Write an array of images (with its names and labels) into the cache once, as an .npy named by its content."""
    if images.dtype.kind not in "biuf" or images.ndim not in (2, 3):
        raise DotmapError(
            f"an array of shape {images.shape} and dtype {images.dtype}: images are (n, h, w) or (n, h * w) of "
            "bool, integers 0..255 or floats 0..1."
        )
    for what, values in (("names", names), ("labels", labels)):
        if values is not None and len(values) != len(images):
            raise DotmapError(f"{len(values):,} {what} for {len(images):,} images: give one per row.")
    digest = hashlib.sha256(f"{images.shape}\0{images.dtype.str}\n".encode())
    rows = max(1, HASH_BLOCK // max(1, images[0].nbytes)) if len(images) else 1
    for start in range(0, len(images), rows):
        digest.update(np.ascontiguousarray(images[start : start + rows]).data)
    for values in (names, labels):
        digest.update(b"\0" + "\n".join(map(str, values)).encode("utf-8", "surrogateescape") if values else b"\1")
    folder = cache_dir / ARRAYS_FOLDER
    path = folder / f"{digest.hexdigest()[:32]}.npy"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    for what, values in (("names", names), ("labels", labels)):
        if values is not None:
            write_text(path.with_name(f"{path.stem}.{what}.txt"), "".join(f"{v}\n" for v in values))
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "xb") as out:  # a file object: np.save would add .npy to a name
            np.save(out, np.ascontiguousarray(images), allow_pickle=False)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise DotmapError(f"Cannot keep the array in {folder}: {exc.strerror or exc}.") from None
    return path


@dataclass
class Result:
    """A prepared data set: its clusters for every k, their scores, the map, typical shapes and predictions.

    Images are in the order of ``names`` (a folder's sorted paths, an array's rows less the rows that
    could not be used: ``skipped`` names them with why).
    """

    pipeline: Pipeline
    _predictors: dict[tuple[int, bool], Predictor] = field(default_factory=dict, repr=False)

    @property
    def data(self) -> Path:
        """The folder or array file prepared: give it to the dashboard (or the CLI) to open this result."""
        return Path(self.pipeline.inventory.root)

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings

    @property
    def names(self) -> list[str]:
        """Each image's path in the folder, or name in the array, in the order of every result."""
        return list(self.pipeline.image_meta()["paths"])

    @property
    def rows(self) -> np.ndarray | None:
        """For an array set, each image's row in the array, (n_images,) int64; None for a folder."""
        rows = exporting.array_rows(self.pipeline)
        return None if rows is None else np.array(rows, dtype=np.int64)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(path or name, reason) of everything that was not used as an image."""
        return [tuple(x) for x in self.pipeline.image_meta()["skipped"]]

    @property
    def ks(self) -> list[int]:
        return list(self.settings.ks)

    @property
    def recommended_k(self) -> int:
        return int(self.pipeline.sweep().recommended_k)

    @property
    def scores(self) -> Any:
        """The scores of every k as a pandas DataFrame indexed by k (silhouette, davies_bouldin,
        calinski_harabasz, inertia, stability, stability_spread, sizes, recommended; ari and nmi with labels).
        A labels.csv that cannot be read is a warning naming it and its problem, and leaves ari and nmi out."""
        import pandas as pd

        from core.outputs.truth import truth_of

        table = pd.DataFrame([dict(row) for row in self.pipeline.sweep().table]).set_index("k")
        table["recommended"] = table.index == self.recommended_k
        try:
            truth = truth_of(self.pipeline)
        except DotmapError as exc:  # labels only feed these two columns: the scores go on without them
            warnings.warn(f"{exc} The agreement scores (ARI, NMI) are left out.", stacklevel=2)
            truth = None
        for note in [] if truth is None else truth.notes:
            warnings.warn(note, stacklevel=2)
        if truth is not None:
            table["ari"], table["nmi"] = truth.ari, truth.nmi
        return table

    def _k(self, k: int | None) -> int:
        if k is None:
            return self.recommended_k
        if k not in self.ks:
            raise DotmapError(f"k={k} was not prepared; the k range is {self.ks[0]}..{self.ks[-1]}.")
        return int(k)

    def labels(self, k: int | None = None) -> np.ndarray:
        """The cluster of every image for one k (default: the recommended k): ndarray of shape (n_images,), int64."""
        sweep = self.pipeline.sweep()
        return sweep.labels[sweep.row(self._k(k))].astype(np.int64)

    def map(self) -> np.ndarray:
        """The 2-D UMAP map: ndarray of shape (n_images, 2), float32 (made now if ``with_map`` was False)."""
        return np.asarray(self.pipeline.map())

    def typical_shapes(self, k: int | None = None) -> np.ndarray:
        """The typical shape of every cluster of one k: ndarray of shape (k, cells, cells), ink density 0..1."""
        k = self._k(k)
        return np.asarray(self.pipeline.cluster_means()[self.ks.index(k)])

    def groups_without_k(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Groups found without a k (HDBSCAN): labels (n_images,) with -1 for noise, and {"groups", "noise"}."""
        return self.pipeline.auto_groups()

    def predict(
        self, images: np.ndarray | str | os.PathLike | Sequence[str | os.PathLike], k: int | None = None
    ) -> Any:
        """The cluster of new images: an ndarray ((h, w), (m, h, w) or (m, h * w)), image files, or an array file.

        Returns a pandas DataFrame, one row per image: name, cluster, confidence, unusual (unlike every
        cluster), distance, novelty, nearest (the name of the most similar image of the set).
        """
        import pandas as pd

        found = self.predictions(images, k)
        return pd.DataFrame(
            [
                {
                    "name": p.name,
                    "cluster": p.cluster,
                    "confidence": p.confidence,
                    "unusual": p.unusual,
                    "distance": p.distance,
                    "novelty": p.novelty,
                    "nearest": p.neighbour_paths[0],
                }
                for p in found
            ]
        )

    def predictions(
        self, images: np.ndarray | str | os.PathLike | Sequence[str | os.PathLike], k: int | None = None
    ) -> list[Prediction]:
        """As :meth:`predict`, as :class:`core.outputs.predict.Prediction` objects (neighbours, map place)."""
        k = self._k(k)
        key = (k, self.pipeline.is_cached("map"))
        if key not in self._predictors:
            self._predictors[key] = Predictor(self.pipeline, k, use_umap_map=key[1])
        predictor, s = self._predictors[key], self.settings
        if isinstance(images, np.ndarray):
            masks = masks_of_array(images, s.grid, s.polarity)
            return predictor.predict_masks(masks, [f"image {i}" for i in range(len(masks))])
        paths = [images] if isinstance(images, str | os.PathLike) else list(images)
        out: list[Prediction] = []
        for path in paths:
            if is_array_file(path):
                for packed, names, bad in array_blocks(scan_array(path), s.grid, s.polarity, workers=1):
                    if bad:
                        raise DotmapError(f"{path}: {bad[0][0]}: {bad[0][1]}.")
                    out += predictor.predict_masks(unpack_masks(packed, s.grid), names)
            else:
                out.append(predictor.predict(path))
        return out

    def export(
        self,
        csv: str | os.PathLike | None = None,
        folders: str | os.PathLike | None = None,
        k: int | None = None,
        link: bool = False,
    ) -> list[Path]:
        """Write the assignments of one k as a new CSV and/or copy the images into a new folder per cluster
        (a folder set only: an array set's CSV names each image's row). Nothing existing is overwritten."""
        return exporting.export(self.pipeline, self._k(k), csv, folders, link=link)


class _Bars:
    """A tqdm bar per stage, where tqdm is installed; else nothing."""

    def __init__(self) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self._tqdm, self._bar, self._stage = tqdm, None, None

    def update(self, done: int, total: int, stage: str) -> None:
        if self._tqdm is None:
            return
        if stage != self._stage or self._bar is None:
            self.close()
            self._bar, self._stage = self._tqdm(total=total, desc=stage, leave=False), stage
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
