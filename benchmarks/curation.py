"""How fast each curation action answers on a large prepared set: the change itself and the save of the file.

Every action of the Curate page is a core call (core.curation.model) followed by core.curation.file.save;
the page draws again after both. This times the two together per action (medians over --repeats),
plus reading the file back (a new session, or a page run after another tab's change), the split's
preview (clustering a group's members again) and the typical shape of a changed group.

    python3 benchmarks/curation.py                       # the 32,000-image demo of benchmarks/dashboard.py
    python3 benchmarks/curation.py --folder DIR --cache DIR --repeats 7

The default set and cache are those of benchmarks/dashboard.py (made and prepared on first use).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import DATA, demo_folder

from core.curation import file as curation_file
from core.curation import prepared
from core.curation.model import OUTLIER, Curation, split_parts
from core.engine.pipeline import Pipeline, Settings
from core.representation.typical import group_shape

TARGET_MS = 300  # the bound for one action on the server


def timed(action, repeats: int) -> float:
    """Median milliseconds of ``action()`` over ``repeats`` runs (each returns nothing)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help="a folder of images (default: a 32,000-image demo)")
    parser.add_argument("--cache", default=str(DATA / "dashboard-cache-32000"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    folder = args.folder or str(demo_folder(32000, 1))  # the set benchmarks/dashboard.py uses
    pipeline = Pipeline(folder, Settings(), args.cache)
    if pipeline.missing():
        print(f"preparing {folder} in {args.cache} (once)", flush=True)
        pipeline.prepare()
    sweep, paths = pipeline.sweep(), pipeline.image_meta()["paths"]
    k = sweep.recommended_k
    space, images = pipeline.space(), pipeline.images()
    n = len(paths)
    print(f"{n:,} images, curation started from k = {k}, median of {args.repeats} runs, ms", flush=True)
    path = Path(tempfile.mkdtemp()) / "curation.json"
    curation = prepared.from_k(pipeline, k)
    curation_file.save(curation, path)
    rng = np.random.default_rng(0)

    def step(change) -> None:
        change(curation)
        curation_file.save(curation, path)

    def merge_and_undo() -> None:  # a merge moves a whole group; undo it so each repeat merges the same
        step(lambda c: c.merge([0, 1]))
        step(Curation.undo)

    rows = {}
    results = {
        "rename": timed(lambda: step(lambda c: c.rename(0, f"rings {rng.integers(1e9)}")), args.repeats),
        "move 50 images": timed(lambda: step(lambda c: c.move(rng.choice(n, 50, replace=False), 3)), args.repeats),
        "move 2,000 images (a lasso)": timed(
            lambda: step(lambda c: c.move(rng.choice(n, 2000, replace=False), 4)), args.repeats
        ),
        "mark 20 outliers": timed(
            lambda: step(lambda c: c.move(rng.choice(n, 20, replace=False), OUTLIER)), args.repeats
        ),
        "merge two groups + undo (two actions)": timed(merge_and_undo, args.repeats),
        "undo": timed(
            lambda: (step(lambda c: c.rename(0, f"x {rng.integers(1e9)}")), step(Curation.undo)), args.repeats
        )
        / 2,
        "split preview (cluster a group again, 2 parts)": timed(
            lambda: rows.__setitem__("parts", split_parts(space[curation.members(2)], 2)), args.repeats
        ),
        "split apply": timed(lambda: (step(lambda c: c.split(2, rows["parts"])), step(Curation.undo)), args.repeats)
        / 2,
        "read the file (new session)": timed(lambda: curation_file.load(path, paths), args.repeats),
        "typical shape of a changed group": timed(
            lambda: group_shape(images.packed, images.grid, pipeline.settings.features, curation.members(2)),
            args.repeats,
        ),
    }
    width = max(map(len, results))
    for name, ms in results.items():
        print(f"  {name:<{width}}  {ms:8.1f}")
    print(f"file size {path.stat().st_size / 1e6:.2f} MB with {len(curation.history)} undo steps")
    slowest = max(results, key=results.get)
    print(f"slowest: {slowest} {results[slowest]:.0f} ms (bound {TARGET_MS} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
