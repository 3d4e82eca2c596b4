"""What the command line prints: the prepared stages, the scores of every k, two settings compared."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import asdict
from typing import TextIO

from core.clustering.scoring import RECOMMENDATION_RULE
from core.engine.pipeline import Pipeline, Settings
from core.errors import DotmapError
from core.outputs import compare
from core.outputs.truth import Truth, truth_of
from core.reading.labels import labels_of
from core.reading.names import shown

SKIPPED_SHOWN = 20


def report_skipped(pipeline: Pipeline, out: TextIO | None = None) -> None:
    out = sys.stderr if out is None else out
    skipped = pipeline.image_meta()["skipped"]
    if not skipped:
        return
    print(f"skipped {len(skipped)} {pipeline.inventory.kind}(s) that are not usable images:", file=out)
    for path, reason in skipped[:SKIPPED_SHOWN]:
        print(f"  {shown(path)}: {reason}", file=out)
    if len(skipped) > SKIPPED_SHOWN:
        print(f"  ... and {len(skipped) - SKIPPED_SHOWN} more (all are listed by 'report --json')", file=out)


def notes(pipeline: Pipeline) -> None:
    for note in pipeline.cache.notes:
        print(f"note: {note}", file=sys.stderr)


def labels_warned(pipeline: Pipeline) -> Truth | None:
    """The agreement with the set's labels, or None; labels that cannot be read (or are given twice) are a
    warning line on stderr naming the file and the problem, and the report goes on without the scores."""
    try:
        truth = truth_of(pipeline)
    except DotmapError as exc:
        print(f"warning: {exc} The agreement scores (ARI, NMI) are left out.", file=sys.stderr)
        return None
    for note in [] if truth is None else truth.notes:
        print(f"warning: {note}", file=sys.stderr)
    return truth


def warn_labels(pipeline: Pipeline) -> None:
    """Read the set's labels now (they are not used by preparing) and warn, as :func:`labels_warned`, when they
    cannot be read: the user learns it from ``prepare``, not first from ``report``."""
    notes: list[str] = []
    try:
        labels_of(pipeline.inventory, pipeline.image_meta()["paths"], notes)
    except DotmapError as exc:
        notes.append(f"{exc} The agreement scores (ARI, NMI) will be left out.")
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def print_prepared(pipeline: Pipeline, seconds: float | None = None) -> None:
    """The time of every stage of the plan, whether it was computed or found in the cache, and the skipped files."""
    notes(pipeline)
    records = {r.stage: r for r in pipeline.records}
    for step in pipeline.plan():
        r = records.get(step.stage)
        if r is not None:
            print(f"{step.words:<48} {r.seconds:8.2f} s  {'computed' if r.computed else 'from cache'}")
    if not any(r.computed for r in records.values()):
        print("everything was already in the cache")
    took = "" if seconds is None else f" in {seconds:.1f} s"
    print(f"{len(pipeline.image_meta()['paths'])} images ready{took}; cache: {pipeline.cache.root}")
    report_skipped(pipeline)
    warn_labels(pipeline)


def report_data(pipeline: Pipeline) -> dict:
    sweep = pipeline.sweep()
    meta = pipeline.image_meta()
    rows = [dict(r) for r in sweep.table]
    inventory = pipeline.inventory
    truth = labels_warned(pipeline)
    if truth is not None:
        for row, ari, nmi in zip(rows, truth.ari, truth.nmi, strict=True):
            row["ari"], row["nmi"] = ari, nmi
    auto = None
    if pipeline.settings.cluster_space == "umap":
        labels, found = pipeline.auto_groups()
        auto = {"groups": found["groups"], "noise": found["noise"]}
        if truth is not None:
            auto["ari"], auto["nmi"] = truth.of(labels)  # noise is left out
    return {
        "data_dir": str(inventory.root),
        "settings": asdict(pipeline.settings),
        "n_images": len(meta["paths"]),
        "n_distinct": meta["distinct"],
        "skipped": [[shown(path), reason] for path, reason in meta["skipped"]],
        "components": int(pipeline.reduction().Z.shape[1]),
        "explained_variance": float(pipeline.reduction().explained_variance_ratio.sum()),
        "silhouette_sample": sweep.sample_size,
        "recommended_k": sweep.recommended_k,
        "recommendation_rule": RECOMMENDATION_RULE,
        "true_labels": None if truth is None else truth.names,
        "per_k": rows,
        "auto": auto,
    }


def settings_words(s: Settings) -> str:
    return f"{s.features} features, {s.algorithm} in {s.cluster_space} space, {s.components} components"


def print_report(data: dict, pipeline: Pipeline) -> None:
    """The scores of every k, the recommended one, the groups without a k, and the skipped files."""
    has_truth = "ari" in data["per_k"][0]
    header = f"{'k':>3} {'silhouette':>10} {'davies-b.':>9} {'calinski-h.':>11} {'inertia':>11} {'stability':>9}"
    print(
        f"{data['n_images']} images ({data['n_distinct']} distinct), {data['settings']['features']} features, "
        f"{data['settings']['algorithm']} in {data['settings']['cluster_space']} space; "
        f"silhouette on {data['silhouette_sample']} images"
    )
    print(f"PCA: {data['components']} components keep {data['explained_variance']:.1%} of the feature variance")
    print(header + ("   ARI    NMI" if has_truth else ""))
    for r in data["per_k"]:
        mark = "  <- recommended" if r["k"] == data["recommended_k"] else ""
        line = (
            f"{r['k']:>3} {r['silhouette']:>10.3f} {r['davies_bouldin']:>9.3f} "
            f"{r['calinski_harabasz']:>11.0f} {r['inertia']:>11.4g} {r['stability']:>9.3f}"
        )
        if has_truth:
            line += f" {r['ari']:>6.3f} {r['nmi']:>6.3f}"
        print(line + mark)
    print(f"recommended k = {data['recommended_k']}: {RECOMMENDATION_RULE}.")
    auto = data["auto"]
    if auto is not None:
        scores = f" (ARI {auto['ari']:.3f}, NMI {auto['nmi']:.3f} on the images in a group)" if "ari" in auto else ""
        print(
            f"groups found without a k (HDBSCAN): {auto['groups']}, with {auto['noise']:.1%} of the images in "
            f"no group{scores}."
        )
    report_skipped(pipeline, sys.stdout)


def print_comparison(data: dict, result: compare.Comparison, a: Settings, b: Settings) -> None:
    """Two settings compared: ARI/NMI per k, the overlap table at one k, and the images they disagree on."""
    recommended = data["recommended_k"]
    print(f"A: {settings_words(a)}; recommended k = {recommended['a']}")
    print(f"B: {settings_words(b)}; recommended k = {recommended['b']}")
    print(f"{data['n_images']} images; agreement of A and B for each k (1: the same groups, about 0: unrelated)")
    print(f"{'k':>3} {'ARI':>6} {'NMI':>6}")
    for r in data["per_k"]:
        print(f"{r['k']:>3} {r['ari']:>6.3f} {r['nmi']:>6.3f}" + ("  <- below" if r["k"] == result.k else ""))
    k = result.k
    print(f"\nAt k = {k}, images in cluster i of A (rows) and j of B (columns); * marks the matched clusters:")
    width = max(len(str(result.overlap.max())), len(str(k - 1)) + 1) + 2
    print("    " + "".join(f"{'B' + str(j):>{width}}" for j in range(k)))
    for i, row in enumerate(result.overlap):
        cells = (f"{v}{'*' if result.match[i] == j else ' '}" for j, v in enumerate(row))
        print((f"{'A' + str(i):<4}" + "".join(f"{c:>{width}}" for c in cells)).rstrip())
    rule = compare.DISAGREE_RULE[0].upper() + compare.DISAGREE_RULE[1:]
    print(f"\n{data['n_disagreeing']} of {data['n_images']} images disagree at k = {k}.")
    print(textwrap.fill(f"{rule}.", width=100, break_on_hyphens=False))
    for d in data["disagreeing"]:
        print(f"  A {d['a']} -> B {d['b']} (matched: B {d['b_matched']}), surety {d['surety']:.2f}: {d['path']}")
