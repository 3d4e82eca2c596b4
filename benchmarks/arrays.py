"""An array set against the folder of the same images: the read stage and a whole cold `prepare`, time and
peak memory, each in a fresh process from an empty cache.

The array is what the user of the mission holds: every image flattened to h * w uint8 values, one row
per image, saved as one .npy (32,000 x 40,000 = 1.28 GB at 200x200). It is made once from a demo set
(decoding each PNG to grey levels) and kept under benchmarks/data with the names of the files beside it,
so both sources give the same images in the same order; the benchmark checks they give the same packed
images bit for bit.

    python3 benchmarks/arrays.py                      # 32,000 images: read x3, whole prepare x1 per source
    python3 benchmarks/arrays.py --n 4000 --repeats 3 --whole-repeats 3
    python3 benchmarks/arrays.py --whole-repeats 0 --busy   # the read stage while one core is kept busy
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from harness import DATA, busy_core, demo_folder, peak_mb, run_fresh

SEED = 0


def make_array(folder: str, out: str) -> dict:
    """Inside a fresh process: the grey levels of every image of a folder, as one (n, h * w) uint8 .npy."""
    import numpy as np
    from PIL import Image

    from core.reading.folders import scan_folder

    files = [e.path for e in scan_folder(folder).files if e.path.endswith(".png")]
    first = np.asarray(Image.open(Path(folder) / files[0]).convert("L"))
    rows = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(len(files), first.size))
    for i, rel in enumerate(files):
        rows[i] = np.asarray(Image.open(Path(folder) / rel).convert("L")).reshape(-1)
    rows.flush()
    del rows
    Path(out).with_name(Path(out).stem + ".names.txt").write_text("".join(f"{p}\n" for p in files))
    return {"rows": len(files), "bytes": Path(out).stat().st_size}


def child_read(data: str, cache: str) -> dict:
    """Inside the measured process: the read stage alone."""
    from core.engine.pipeline import Pipeline, Settings

    pipeline = Pipeline(data, Settings(), cache)
    start = time.perf_counter()
    pipeline.entry("images")
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb(), "images": len(pipeline.image_meta()["paths"])}


def child_prepare(data: str, cache: str) -> dict:
    """Inside the measured process: every stage of a cold `prepare`, map and groups included."""
    from core.engine.pipeline import Pipeline, Settings

    start = time.perf_counter()
    pipeline = Pipeline(data, Settings(), cache)
    pipeline.prepare(with_map=True)
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb()}


def child_same(folder_cache: str, array_cache: str, folder: str, array: str) -> bool:
    """Whether both sources gave the same packed images, paths and clusters."""
    import numpy as np

    from core.engine.pipeline import Pipeline, Settings

    a, b = Pipeline(folder, Settings(), folder_cache), Pipeline(array, Settings(), array_cache)
    same = np.array_equal(a.images().packed, b.images().packed) and a.image_meta()["paths"] == b.image_meta()["paths"]
    if a.is_cached("sweep") and b.is_cached("sweep"):
        same = same and np.array_equal(a.sweep().labels, b.sweep().labels)
    return bool(same)


def measure(child: str, data: Path, cache: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        shutil.rmtree(cache, ignore_errors=True)
        runs.append(run_fresh("arrays", child, str(data), str(cache)))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_mb": statistics.median(r["peak_mb"] for r in runs),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3, help="read-stage runs per source (median)")
    parser.add_argument("--whole-repeats", type=int, default=1, help="whole cold prepares per source (0: none)")
    parser.add_argument("--busy", action="store_true", help="with another process keeping one core busy")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    folder = demo_folder(args.n, SEED)
    array = DATA / f"array-{args.n}-seed{SEED}.npy"
    if not array.exists():
        print(f"making the array {array}", flush=True)
        made = run_fresh("arrays", "make_array", str(folder), str(array) + ".part.npy")
        Path(str(array) + ".part.npy").rename(array)
        Path(str(array) + ".part.names.txt").rename(array.with_name(array.stem + ".names.txt"))
        print(f"  {made['rows']:,} rows, {made['bytes'] / 2**30:.2f} GiB", flush=True)
    result: dict = {"n": args.n}
    print(f"{'source':<8} {'stage':<16} {'median s':>9} {'peak MB':>8}")
    for name, data in (("folder", folder), ("array", array)):
        for stage, child, repeats in (("read", "child_read", args.repeats), ("whole prepare", "child_prepare", 0)):
            repeats = repeats or args.whole_repeats
            if repeats == 0:
                continue
            with busy_core(args.busy):
                got = measure(child, data, DATA / f"arrays-cache-{name}", repeats)
            result[f"{name} {stage}"] = got
            print(f"{name:<8} {stage:<16} {got['seconds']:9.1f} {got['peak_mb']:8.0f}", flush=True)
    caches = [str(DATA / f"arrays-cache-{name}") for name in ("folder", "array")]
    same = run_fresh("arrays", "child_same", *caches, str(folder), str(array))
    result["same_results"] = same
    print(f"same packed images{' and clusters' if args.whole_repeats else ''} from both: {same}")
    for name in ("folder", "array"):
        shutil.rmtree(DATA / f"arrays-cache-{name}", ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
