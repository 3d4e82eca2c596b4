"""Which way of assigning new images to curated groups is right most often, measured on held-out images.

For each data set of the quality suite, feature kind and curation, it holds out 20% of the curated
images (stratified, several seeds), fits every method on the rest in PCA space and scores the
held-out against their curated group: accuracy, macro-F1, fit seconds and predict milliseconds per
image; medians over seeds. Three curations: "truth" (the set's true labels), "kmeans" (the k-means
clusters at the true k in the default cluster space, what a person starts from), and "truth, a
group of 2" (group 0 keeps only 2 curated images: does a tiny group ever win?). Then the fit and
one-image predict times of each method at 32,000 x 40. DEFAULT_METHOD is chosen by this table
over all sets, never by one.

    python3 benchmarks/groups.py                                # every set, both feature kinds (~1-2 min)
    python3 benchmarks/groups.py --sets digits --features shape-rotation --seeds 0 1
    python3 benchmarks/groups.py --json groups.json             # also every result, machine-readable
    python3 benchmarks/groups.py --timing-only                  # only the 32,000 x 40 timings

Data sets are made once by benchmarks/quality.py's data_folder under --work (default
~/.cache/dotmap-quality) and prepared with core.engine.pipeline, reusing its cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from quality import SETS, data_folder

from core.curation.classifier import DEFAULT_METHOD, GROUP_NEIGHBOURS, GROUP_SIZE_POWER, METHODS, GroupModel, fit_groups
from core.engine.pipeline import Pipeline, Settings
from core.reading.labels import read_labels

HELD_OUT = 0.2  # share of the curated images held out, per group
NEIGHBOUR_COUNTS = (1, 5, 10, 15, 25)  # each plain and weighted, at GROUP_SIZE_POWER
SIZE_POWERS = (0.0, 0.5, 1.0)  # with the default count, weighted
SMALL_GROUP = 2  # the "truth, a group of 2" curation: group 0 keeps only this many curated images
TIE_MARGIN = 0.005  # accuracy differences below this (half a point) count as a tie
TIMING_N, TIMING_D, TIMING_GROUPS = 32_000, 40, 10
TIMING_SINGLE = 200  # one-image predictions timed, median reported
FEATURES = ("shape-rotation", "shape")  # the default first


CENTROID = "centroid (baseline)"  # nearest group mean: measured here, not shipped (never won a cell)


def variants() -> list[tuple[str, str, dict]]:
    """(name, method, fit options) of every variant measured; method CENTROID is the local baseline."""
    out = []
    for k in NEIGHBOUR_COUNTS:
        for weighted in (False, True):
            name = f"neighbours k={k}{' weighted' if weighted else ''}"
            out.append((name, "neighbours", {"n_neighbours": k, "weighted": weighted}))
    for power in SIZE_POWERS:
        if power != GROUP_SIZE_POWER:
            name = f"neighbours k={GROUP_NEIGHBOURS} weighted, size power {power}"
            out.append((name, "neighbours", {"n_neighbours": GROUP_NEIGHBOURS, "weighted": True, "size_power": power}))
    out += [(method, method, {}) for method in METHODS if method != "neighbours"]
    return [*out, (CENTROID, CENTROID, {})]


class _Centroids:
    """The baseline: each image goes to the group whose mean curated image is nearest."""

    def __init__(self, Z: np.ndarray, groups: np.ndarray) -> None:
        used = groups >= 0
        self.classes = np.unique(groups[used])
        self.centres = np.stack([Z[used][groups[used] == g].mean(axis=0) for g in self.classes])

    def predict(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gaps = ((Z[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2)
        return self.classes[np.argmin(gaps, axis=1)], np.ones(len(Z))


def fit_variant(Z: np.ndarray, groups: np.ndarray, method: str, seed: int, options: dict) -> GroupModel | _Centroids:
    return _Centroids(Z, groups) if method == CENTROID else fit_groups(Z, groups, method, seed, **options)


def stratified_split(groups: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row ids of (kept, held out): round(share * size) of each group held out, at least one kept."""
    rng = np.random.default_rng(seed)
    held = []
    for g in np.unique(groups[groups >= 0]):
        rows = rng.permutation(np.flatnonzero(groups == g))
        held.extend(rows[: min(round(share * len(rows)), len(rows) - 1)])
    held = np.sort(np.array(held, np.int64))
    kept = np.setdiff1d(np.flatnonzero(groups >= 0), held)
    return kept, held


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Unweighted mean of the per-group F1 over the groups present in ``truth``."""
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, labels=np.unique(truth), average="macro", zero_division=0))


def score(Z: np.ndarray, groups: np.ndarray, seeds: list[int], small: int | None = None) -> dict[str, dict]:
    """Medians over seeds of accuracy, macro-F1, the smallest curated group's recall, fit s and
    predict ms/image for every variant. With ``small``, group 0 keeps only that many curated images
    (its held-out images stay as many as in a full split)."""
    per: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        kept, held = stratified_split(groups, HELD_OUT, seed)
        if small is not None:
            kept = np.setdiff1d(kept, kept[groups[kept] == 0][small:])
        curated = np.full(len(groups), -1, np.int64)
        curated[kept] = groups[kept]
        sizes = np.bincount(groups[kept])
        smallest = int(np.flatnonzero(sizes)[np.argmin(sizes[sizes > 0])])
        its = held[groups[held] == smallest]
        for name, method, options in variants():
            start = time.perf_counter()
            model = fit_variant(Z, curated, method, seed, options)
            fitted = time.perf_counter() - start
            predicted, _ = model.predict(Z[held])
            predict_ms = (time.perf_counter() - start - fitted) * 1000 / len(held)
            r = per.setdefault(
                name, {"accuracy": [], "macro_f1": [], "smallest_recall": [], "fit_s": [], "predict_ms": []}
            )
            r["accuracy"].append(float(np.mean(predicted == groups[held])))
            r["macro_f1"].append(macro_f1(groups[held], predicted))
            r["smallest_recall"].append(float(np.mean(predicted[np.searchsorted(held, its)] == smallest)))
            r["fit_s"].append(fitted)
            r["predict_ms"].append(predict_ms)
    return {
        name: {
            **{m: statistics.median(v) for m, v in r.items()},
            "accuracy_spread": max(r["accuracy"]) - min(r["accuracy"]),
        }
        for name, r in per.items()
    }


def curations(name: str, features: str, work: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """PCA coordinates (n, d) of the set and its curations {"truth": (n,), "kmeans": (n,)}; the
    third, "truth, a group of 2", is made from "truth" by score(small=SMALL_GROUP)."""
    folder = data_folder(work, name)
    pipeline = Pipeline(folder, Settings(features=features), work / "cache")
    Z = pipeline.reduction().Z
    truth, _ = read_labels(pipeline.inventory.labels_path, pipeline.image_meta()["paths"])
    # the fit at the true k is the sweep's row at that k up to renumbering (same partition),
    # without the other k's fits and their stability runs
    kmeans = pipeline.fit(SETS[name].true_k).arrays["labels"].astype(np.int64)
    return Z, {"truth": truth.astype(np.int64), "kmeans": kmeans}


def timings(seed: int = 0) -> dict[str, dict]:
    """Fit s and one-image predict ms of each method at TIMING_N x TIMING_D, TIMING_GROUPS groups."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (TIMING_GROUPS, TIMING_D))
    groups = rng.integers(0, TIMING_GROUPS, TIMING_N)
    Z = (centres[groups] + rng.normal(0, 1, (TIMING_N, TIMING_D))).astype(np.float32)
    out = {}
    for method in METHODS:
        fits = []
        for _ in range(3):
            start = time.perf_counter()
            model = fit_groups(Z, groups, method, seed)
            fits.append(time.perf_counter() - start)
        singles = []
        for i in range(TIMING_SINGLE):
            start = time.perf_counter()
            model.predict(Z[i])
            singles.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.predict(Z[:1000])
        batch = (time.perf_counter() - start) * 1000 / 1000
        out[method] = {
            "fit_s": statistics.median(fits),
            "one_image_ms": statistics.median(singles) * 1000,
            "batch_ms_per_image": batch,
        }
    return out


def winners(rows: list[dict]) -> list[str]:
    """One line per (set, features, curation): the best variant and every one tied with it."""
    lines = []
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["set"], r["features"], r["curation"]), []).append(r)
    for (name, features, curation), cell in cells.items():
        best = max(cell, key=lambda r: r["accuracy"])
        tied = [r["variant"] for r in cell if best["accuracy"] - r["accuracy"] < TIE_MARGIN and r is not best]
        also = f" (tied within {TIE_MARGIN:.3f}: {', '.join(tied)})" if tied else ""
        lines.append(f"{name} / {features} / {curation}: {best['variant']} {best['accuracy']:.3f}{also}")
    return lines


def overall(rows: list[dict]) -> list[dict]:
    """Per variant over every cell: mean accuracy, mean gap to the cell's best, worst gap, mean
    macro-F1, and the mean recall of the group of SMALL_GROUP curated images."""
    best = {}
    for r in rows:
        key = (r["set"], r["features"], r["curation"])
        best[key] = max(best.get(key, 0.0), r["accuracy"])
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        v = out.setdefault(r["variant"], {"accuracy": [], "gap": [], "macro_f1": [], "small_recall": []})
        if r["curation"].startswith("truth, a group of"):
            v["small_recall"].append(r["smallest_recall"])
        v["accuracy"].append(r["accuracy"])
        v["gap"].append(best[(r["set"], r["features"], r["curation"])] - r["accuracy"])
        v["macro_f1"].append(r["macro_f1"])
    return sorted(
        (
            {
                "variant": name,
                "mean_accuracy": float(np.mean(v["accuracy"])),
                "mean_gap": float(np.mean(v["gap"])),
                "worst_gap": float(np.max(v["gap"])),
                "mean_macro_f1": float(np.mean(v["macro_f1"])),
                "small_recall": float(np.mean(v["small_recall"])) if v["small_recall"] else float("nan"),
            }
            for name, v in out.items()
        ),
        key=lambda r: r["mean_gap"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--features", nargs="+", default=list(FEATURES), choices=FEATURES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "dotmap-quality")
    parser.add_argument("--json", type=Path, default=None, help="also write every result to this file")
    parser.add_argument("--timing-only", action="store_true", help="only the 32,000 x 40 timings")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    if not args.timing_only:
        args.work.mkdir(parents=True, exist_ok=True)
        print(f"held out {HELD_OUT:.0%} per group, medians over seeds {args.seeds}")
        print(f"neighbour variants without 'size power' divide votes by group size ** {GROUP_SIZE_POWER}\n")
        print(
            "| set | features | curation | method | accuracy | (spread) | macro-F1 | smallest group's recall | "
            "fit s | predict ms/image |"
        )
        print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
        for name in args.sets:
            for features in args.features:
                Z, curated = curations(name, features, args.work)
                runs = [(c, groups, None) for c, groups in curated.items()]
                runs.append((f"truth, a group of {SMALL_GROUP}", curated["truth"], SMALL_GROUP))
                for curation, groups, small in runs:
                    for variant, r in score(Z, groups, args.seeds, small).items():
                        rows.append({"set": name, "features": features, "curation": curation, "variant": variant, **r})
                        print(
                            f"| {name} | {features} | {curation} | {variant} | {r['accuracy']:.3f} | "
                            f"{r['accuracy_spread']:.3f} | {r['macro_f1']:.3f} | {r['smallest_recall']:.3f} | "
                            f"{r['fit_s']:.3f} | {r['predict_ms']:.3f} |",
                            flush=True,
                        )
        print("\nwinner of each cell (median held-out accuracy):")
        for line in winners(rows):
            print("  " + line)
        summary = overall(rows)
        print("\nover every cell (gap = the cell's best accuracy minus this one's):")
        print(f"| method | mean accuracy | mean gap | worst gap | mean macro-F1 | recall of a group of {SMALL_GROUP} |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in summary:
            print(
                f"| {r['variant']} | {r['mean_accuracy']:.3f} | {r['mean_gap']:.3f} | {r['worst_gap']:.3f} | "
                f"{r['mean_macro_f1']:.3f} | {r['small_recall']:.3f} |"
            )
        print(f"\nDEFAULT_METHOD today: {DEFAULT_METHOD}; lowest mean gap: {summary[0]['variant']}")
    timing = timings()
    print(f"\nat {TIMING_N:,} x {TIMING_D}, {TIMING_GROUPS} groups (medians):")
    print("| method | fit s | one image ms | ms/image in a batch of 1,000 |")
    print("|---|---:|---:|---:|")
    for method, t in timing.items():
        print(f"| {method} | {t['fit_s']:.3f} | {t['one_image_ms']:.2f} | {t['batch_ms_per_image']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "timing": timing}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
