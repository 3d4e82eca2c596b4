"""Speed, memory and quality of Dotmap against the naive pipeline, on generated demo images.

Every measured run is a fresh Python process (so "cold" includes imports and UMAP's JIT) with a
fresh or warm cache as stated; medians over --repeats runs; peak memory is the process's own
maximum resident set size. Run from the repository root:

    python benchmarks/run.py                      # 4k, 8k, 16k, 32k, 3 repeats, quality on 10k
    python benchmarks/run.py --sizes 4000 --repeats 1 --no-naive   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from harness import RESULTS, ChildFailed, demo_folder, peak_mb, run_fresh


# ---- what runs inside a measured process -------------------------------------------------
def child_prepare(folder: str, cache: str, space: str, with_map: bool, predict: bool) -> dict:
    start = time.perf_counter()
    from core.engine.pipeline import Pipeline, Settings

    pipeline = Pipeline(folder, Settings(cluster_space=space), cache)
    records = pipeline.prepare(with_map=with_map)
    seconds = time.perf_counter() - start
    out = {
        "seconds": seconds,
        "peak_mb": peak_mb(),
        "stages": {r.stage: round(r.seconds, 3) for r in records if not r.stage.startswith("fit-")},
        "kmeans_all_k": round(sum(r.seconds for r in records if r.stage.startswith("fit-")), 3),
        "computed": any(r.computed for r in records),
    }
    if predict:
        from core.outputs.predict import Predictor

        predictor = Predictor(pipeline)
        image = sorted(Path(folder).glob("*.png"))[0].read_bytes()
        times = []
        for _ in range(21):
            t = time.perf_counter()
            predictor.predict(image, "probe.png")
            times.append(time.perf_counter() - t)
        out["predict_ms"] = statistics.median(times[1:]) * 1000
    return out


def child_naive(folder: str) -> dict:
    """The user's first try: flatten every image, stack, TruncatedSVD(100), k-means for each k.

    The pixels are stacked as they come (uint8); TruncatedSVD converts them to float64, as it
    did for the user (22 GB at 32,000 images).
    """
    import numpy as np
    from PIL import Image
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD

    start = time.perf_counter()
    files = sorted(Path(folder).glob("*.png"))
    X = np.stack([np.asarray(Image.open(f).convert("L")).ravel() for f in files])
    read = time.perf_counter() - start
    Z = TruncatedSVD(100, random_state=0).fit_transform(X)
    svd = time.perf_counter() - start - read
    labels = {k: KMeans(k, n_init=1, random_state=0).fit(Z).labels_ for k in range(2, 21)}
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "read": read, "svd": svd, "peak_mb": peak_mb()}
    from core.clustering.agreement import agreement
    from core.reading.labels import read_labels

    truth, names = read_labels(Path(folder) / "labels.csv", [f.name for f in files])
    out["ari_true_k"] = agreement(truth, labels[len(names)])[0]
    return out


def child_quality(folder: str, cache: str, features: str, space: str) -> dict:
    from core.clustering.agreement import agreement
    from core.engine.pipeline import Pipeline, Settings
    from core.reading.labels import read_labels

    pipeline = Pipeline(folder, Settings(features=features, cluster_space=space), cache)
    pipeline.prepare(with_map=False)
    sweep = pipeline.sweep()
    truth, names = read_labels(pipeline.inventory.labels_path, pipeline.image_meta()["paths"])
    true_k = len(names)
    ari, nmi = agreement(truth, sweep.labels[sweep.row(true_k)])
    ari_rec, _ = agreement(truth, sweep.labels[sweep.row(sweep.recommended_k)])
    return {
        "true_k": true_k,
        "ari_true_k": ari,
        "nmi_true_k": nmi,
        "recommended_k": sweep.recommended_k,
        "ari_recommended_k": ari_rec,
    }


def run_child(function: str, *args: object, memory_limit: int | None = None, cold_jit: bool = False) -> dict:
    """Run one measurement in a fresh process; ``cold_jit`` gives numba an empty cache folder,
    so UMAP's compilation is paid in full, as on a machine that never ran it."""
    env = dict(os.environ)
    jit_cache = tempfile.mkdtemp(prefix="dotmap-numba-") if cold_jit else None
    if jit_cache is not None:
        env["NUMBA_CACHE_DIR"] = jit_cache
    try:
        return run_fresh("run", function, *args, env=env, memory_limit=memory_limit)
    except ChildFailed as error:
        if memory_limit is not None and "MemoryError" in error.stderr:
            return {"error": f"ran out of memory (limit {memory_limit / 2**30:.1f} GiB)"}
        raise
    finally:
        if jit_cache is not None:
            shutil.rmtree(jit_cache, ignore_errors=True)


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 8000, 16000, 32000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality-n", type=int, default=10000)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pipeline")
    parser.add_argument("--no-quality", action="store_true", help="skip the quality runs")
    args = parser.parse_args()
    report: dict = {"sizes": {}, "quality": {}, "repeats": args.repeats, "cpus": os.cpu_count()}
    for n in args.sizes:
        folder = str(demo_folder(n, seed=1))
        first, cold, warm = [], [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="dotmap-bench-") as cache:
                first.append(run_child("child_prepare", folder, cache, "pca", False, False))
            with tempfile.TemporaryDirectory(prefix="dotmap-bench-") as cache:
                cold.append(run_child("child_prepare", folder, cache, "umap", True, False, cold_jit=True))
                warm.append(run_child("child_prepare", folder, cache, "umap", True, True))
        row = {
            "first_clustering_s": median_of(first, "seconds"),
            "first_clustering_peak_mb": max(r["peak_mb"] for r in first),
            "first_clustering_stages": first[0]["stages"] | {"kmeans_all_k": first[0]["kmeans_all_k"]},
            "cold_default_s": median_of(cold, "seconds"),
            "cold_default_peak_mb": max(r["peak_mb"] for r in cold),
            "cold_default_stages": cold[0]["stages"] | {"kmeans_all_k": cold[0]["kmeans_all_k"]},
            "warm_s": median_of(warm, "seconds"),
            "warm_recomputed_anything": any(r["computed"] for r in warm),
            "predict_ms": median_of(warm, "predict_ms"),
        }
        if not args.no_naive:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            naive = run_child("child_naive", folder, memory_limit=int(0.9 * total))
            row["naive"] = naive
            if "seconds" in naive:
                row["speedup_vs_naive"] = naive["seconds"] / row["first_clustering_s"]
                row["memory_ratio_vs_naive"] = naive["peak_mb"] / row["first_clustering_peak_mb"]
        report["sizes"][n] = row
        print(json.dumps({n: row}, indent=1), flush=True)
    if not args.no_quality:
        folder = str(demo_folder(args.quality_n, seed=2))
        for features, space in [
            ("shape-rotation", "umap"),
            ("shape-rotation", "pca"),
            ("shape", "umap"),
            ("pixels", "umap"),
        ]:
            with tempfile.TemporaryDirectory(prefix="dotmap-bench-") as cache:
                report["quality"][f"{features}/{space}"] = run_child("child_quality", folder, cache, features, space)
            print(features, space, report["quality"][f"{features}/{space}"], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps(report, indent=2))
    print_summary(report)
    print(f"\nfull results: {out}")


def print_summary(report: dict) -> None:
    print(f"\nmedians of {report['repeats']} fresh-process runs on {report['cpus']} cores")
    print(
        f"{'images':>7} {'first clustering':>17} {'peak MB':>8} {'cold all':>9} {'warm':>6} "
        f"{'predict':>8} {'naive':>8} {'naive MB':>9} {'speedup':>8}"
    )
    for n, r in report["sizes"].items():
        naive = r.get("naive") or {}
        naive_s = f"{naive['seconds']:7.1f}s" if "seconds" in naive else ("    OOM " if naive else "     -  ")
        naive_mb = f"{naive['peak_mb']:8.0f}" if "seconds" in naive else "       - "
        speed = f"{r['speedup_vs_naive']:7.1f}x" if "speedup_vs_naive" in r else "      - "
        print(
            f"{n:>7} {r['first_clustering_s']:16.1f}s {r['first_clustering_peak_mb']:8.0f} "
            f"{r['cold_default_s']:8.1f}s {r['warm_s']:5.2f}s {r['predict_ms']:6.1f}ms {naive_s} {naive_mb} {speed}"
        )
    for name, q in report["quality"].items():
        print(
            f"quality {name:<22} ARI at true k={q['true_k']}: {q['ari_true_k']:.3f}  "
            f"recommended k={q['recommended_k']} (ARI {q['ari_recommended_k']:.3f})"
        )


if __name__ == "__main__":
    main()
