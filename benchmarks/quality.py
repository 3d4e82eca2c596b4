"""The quality suite: how well each setting finds known groups on data sets unlike the demo.

For every data set, features x cluster space x algorithm, it prints ARI and NMI against the true
groups at the true k, the recommended k against the true k, and the ARI there. Defaults are
chosen by this table over all sets, never by one.

    python3 benchmarks/quality.py                          # every set and setting (~10 min, 2 cores)
    python3 benchmarks/quality.py --sets digits --features shape --spaces pca
    python3 benchmarks/quality.py --seeds 0 1 2 3 4 --features shape-rotation --spaces umap
    python3 benchmarks/quality.py --json quality.json      # everything, machine-readable

Data sets (made once under --work, default ~/.cache/dotmap-quality):
- shapes: the built-in demo's 8 families at any position, size, angle and mirror (solved: a guard);
- hard-shapes: 10 families with near-alike pairs (ring/ellipse, square/rectangle), an open curve
  (arc), partial shapes, clutter dots, dot sizes 1-3 px and 25-250 dots;
- digits: scikit-learn's 1,797 real handwritten digits (UCI), drawn as dot clouds at a random
  place and size: data nobody here wrote;
- dense: the demo's 8 families drawn with the ink of real scans (40-400 dots of 3-5 px);
- glyphs: the letters A-J of 12 Hershey typefaces (roman, italic, script; the hershey-fonts package's
  files), their strokes drawn as dots, upright give or take a slant: real glyphs nobody here drew.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from harness import make_demo_once

from core.clustering.agreement import agreement
from core.clustering.algorithms import ALGORITHMS
from core.engine.pipeline import CLUSTER_SPACES, Pipeline, Settings
from core.reading.labels import read_labels
from core.representation.features import FEATURE_KINDS


@dataclass(frozen=True)
class DataSet:
    kind: str
    n: int
    true_k: int
    seed: int = 101
    held_out: tuple[str, ...] = ()  # groups left out of the set for the novelty test


SETS = {
    "shapes": DataSet("shapes", 2000, 8, held_out=("spiral", "two-blobs")),
    "hard-shapes": DataSet("hard-shapes", 2000, 10, held_out=("spiral", "cross")),
    "digits": DataSet("digits", 1797, 10, held_out=("3", "7")),
    "dense": DataSet("dense", 2000, 8, held_out=("spiral", "two-blobs")),
    "glyphs": DataSet("glyphs", 2000, 10, held_out=("C", "H")),
}
NOVELTY_TRAIN, NOVELTY_FRESH, ODD_EACH = 1500, 400, 25
K_MAX = 15


def data_folder(work: Path, name: str, scale: float = 1.0) -> Path:
    """The set's folder, made on first use (labels.csv last, so a half-made folder is redone)."""
    spec = SETS[name]
    n = max(spec.true_k * 20, int(spec.n * scale))
    return make_demo_once(work / f"{name}-{n}-seed{spec.seed}", n, spec.seed, say=False, kind=spec.kind)


def evaluate(folder: Path, true_k: int, settings: Settings, cache: Path) -> dict:
    """Scores of one setting on one set: ARI/NMI at the true k, the recommended k and its ARI."""
    start = time.perf_counter()
    pipeline = Pipeline(folder, settings, cache)
    sweep = pipeline.sweep()
    seconds = time.perf_counter() - start
    truth, _ = read_labels(pipeline.inventory.labels_path, pipeline.image_meta()["paths"])
    ari, nmi = agreement(truth, sweep.labels[sweep.row(true_k)])
    rec = sweep.recommended_k
    rec_ari, _ = agreement(truth, sweep.labels[sweep.row(rec)])
    stability = {row["k"]: row["stability"] for row in sweep.table}
    per_k = [
        {
            "k": row["k"],
            "silhouette": round(row["silhouette"], 4),
            "stability": round(row["stability"], 4),
            "stability_spread": round(row.get("stability_spread", 0.0), 4),
            "ari": round(agreement(truth, labels)[0], 4),
        }
        for row, labels in zip(sweep.table, sweep.labels, strict=True)
    ]
    auto = None
    if settings.cluster_space == "umap":
        groups, found = pipeline.auto_groups()
        auto = {
            "groups": found["groups"],
            "noise": round(found["noise"], 3),
            "ari": round(agreement(truth, groups)[0], 3),
        }
    return {
        "auto": auto,
        "per_k": per_k,
        "ari": round(ari, 3),
        "nmi": round(nmi, 3),
        "recommended_k": rec,
        "true_k": true_k,
        "ari_recommended": round(rec_ari, 3),
        "stability_true_k": round(stability[true_k], 3),
        "seconds": round(seconds, 1),
    }


def odd_images(rng: np.random.Generator, size: int = 200) -> dict[str, list[np.ndarray]]:
    """Kinds of image absent from every set: noise, a dot grid, a checkerboard, a filled square."""
    out: dict[str, list[np.ndarray]] = {"noise": [], "grid": [], "checkerboard": [], "filled square": []}
    for _ in range(ODD_EACH):
        out["noise"].append(rng.random((size, size)) < rng.uniform(0.02, 0.3))
        step = int(rng.integers(6, 20))
        grid = np.zeros((size, size), bool)
        grid[::step, ::step] = True
        out["grid"].append(grid)
        cell = int(rng.integers(8, 40))
        yy, xx = np.mgrid[:size, :size]
        out["checkerboard"].append(((yy // cell + xx // cell) % 2 == 0) & (rng.random((size, size)) < 0.3))
        square = np.zeros((size, size), bool)
        side = int(rng.integers(40, 150))
        top, left = rng.integers(0, size - side, 2)
        square[top : top + side, left : left + side] = rng.random((side, side)) < 0.5
        out["filled square"].append(square)
    return out


def novelty_rates(work: Path, name: str, settings: Settings, cache: Path) -> dict:
    """Hit rates of "unlike every cluster" on groups left out of the set and on odd images, and its
    false alarms on fresh members, for the flag and each of its measures."""
    from core.outputs.predict import Predictor
    from core.reading.decode import decode_image

    spec = SETS[name]
    kept = sorted(set(_labels_of(spec)) - set(spec.held_out))
    train = make_demo_once(
        work / f"novelty-{name}-train", NOVELTY_TRAIN, spec.seed + 1, say=False, families=kept, kind=spec.kind
    )
    fresh = make_demo_once(work / f"novelty-{name}-fresh", NOVELTY_FRESH, spec.seed + 2, say=False, kind=spec.kind)
    predictor = Predictor(Pipeline(train, settings, cache), k=len(kept), use_umap_map=False)
    truth, names = read_labels(fresh / "labels.csv", sorted(p.name for p in fresh.glob("*.png")))
    masks = np.stack([decode_image(fresh / f"dots_{i:03d}.png") for i in range(len(truth))])
    held = np.isin(np.array(names)[truth], spec.held_out)
    groups = {"fresh members (false alarms)": masks[~held], "left-out groups (hits)": masks[held]}
    for kind, images in odd_images(np.random.default_rng(spec.seed)).items():
        groups[f"{kind} (hits)"] = np.stack(images)
    out = {}
    for group, images in groups.items():
        predictions = predictor.predict_masks(images, [str(i) for i in range(len(images))])
        parts = _parts(predictor, images)
        out[group] = {
            "n": len(images),
            "flag": round(float(np.mean([p.unusual for p in predictions])), 3),
            **{m: round(float(np.mean(v > 1.0)), 3) for m, v in parts.items()},
        }
    return out


def _labels_of(spec: DataSet) -> list[str]:
    from core.demo import FAMILIES, GLYPH_LETTERS, HARD_FAMILIES

    if spec.kind == "digits":
        return [str(d) for d in range(10)]
    if spec.kind == "glyphs":
        return list(GLYPH_LETTERS)
    return list(HARD_FAMILIES if spec.kind == "hard-shapes" else FAMILIES)


def _parts(predictor, masks: np.ndarray) -> dict[str, np.ndarray]:
    from core.outputs.predict import N_SIMILAR
    from core.reading import images
    from core.representation.reduction import N_NEIGHBORS, nearest_neighbors

    X = predictor.pipeline.features_of(images.pack_masks(masks))
    Z = predictor.reduction.project(X)
    _, distances = nearest_neighbors(predictor.reduction.Z, max(N_NEIGHBORS, N_SIMILAR), Z)
    return predictor.novelty_parts(distances, np.count_nonzero(masks.reshape(len(masks), -1), axis=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--features", nargs="+", default=list(FEATURE_KINDS), choices=FEATURE_KINDS)
    parser.add_argument("--spaces", nargs="+", default=list(CLUSTER_SPACES), choices=CLUSTER_SPACES)
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--scale", type=float, default=1.0, help="share of each set's size (for a quick run)")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "dotmap-quality")
    parser.add_argument("--json", type=Path, default=None, help="also write every result to this file")
    parser.add_argument(
        "--novelty", action="store_true", help="only the 'unlike every cluster' test (default features, or --features)"
    )
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    cache = args.work / "cache"
    if args.novelty:
        kinds = [Settings().features] if args.features == list(FEATURE_KINDS) else args.features
        print("| set | features | images | n | flag | gap | ink |")
        print("|---|---|---|---:|---:|---:|---:|")
        for name in args.sets:
            for kind in kinds:
                for group, r in novelty_rates(args.work, name, Settings(features=kind, k_max=K_MAX), cache).items():
                    print(
                        f"| {name} | {kind} | {group} | {r['n']} | {r['flag']:.2f} | {r['gap']:.2f} | {r['ink']:.2f} |",
                        flush=True,
                    )
        return 0
    results = []
    print(
        "| set | features | space | algorithm | seed | ARI at true k | NMI | recommended k (true) | ARI there | "
        "stability at true k | s |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.sets:
        folder = data_folder(args.work, name, args.scale)
        true_k = SETS[name].true_k
        for features in args.features:
            for space in args.spaces:
                for algorithm in args.algorithms:
                    for seed in args.seeds:
                        settings = Settings(
                            features=features, cluster_space=space, algorithm=algorithm, k_max=K_MAX, seed=seed
                        )
                        r = evaluate(folder, true_k, settings, cache)
                        r.update(set=name, features=features, space=space, algorithm=algorithm, seed=seed)
                        results.append(r)
                        print(
                            f"| {name} | {features} | {space} | {algorithm} | {seed} | {r['ari']:.3f} | "
                            f"{r['nmi']:.3f} | {r['recommended_k']} ({true_k}) | {r['ari_recommended']:.3f} | "
                            f"{r['stability_true_k']:.2f} | {r['seconds']:.0f} |",
                            flush=True,
                        )
    if len(args.seeds) > 1:
        print("\nrecommended k over seeds (the rule must not depend on luck):")
        groups: dict[tuple, list[int]] = {}
        for r in results:
            groups.setdefault((r["set"], r["features"], r["space"], r["algorithm"]), []).append(r["recommended_k"])
        for key, ks in groups.items():
            print(f"  {' / '.join(key)}: {ks}  ({'same' if len(set(ks)) == 1 else 'DIFFERS'})")
    autos = [r for r in results if r["auto"] is not None and r["algorithm"] == args.algorithms[0]]
    if autos:
        print("\ngroups found without a k (HDBSCAN on the UMAP cluster space; ARI on the images in a group):")
        for r in autos:
            a = r["auto"]
            print(
                f"  {r['set']} / {r['features']} / seed {r['seed']}: {a['groups']} groups (true {r['true_k']}), "
                f"{a['noise']:.0%} in none, ARI {a['ari']:.3f} "
                f"({r['algorithm']} at the recommended k: {r['ari_recommended']:.3f})"
            )
    by_setting: dict[tuple, list[float]] = {}
    for r in results:
        by_setting.setdefault((r["features"], r["space"], r["algorithm"]), []).append(r["ari"])
    print("\nmean ARI at the true k over the sets, best first:")
    for key, aris in sorted(by_setting.items(), key=lambda item: -statistics.mean(item[1])):
        print(f"  {' / '.join(key)}: {statistics.mean(aris):.3f}  {aris}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
