"""The command line: ``python -m core demo|prepare|report|export|predict|compare``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import TextIO

from core import demo
from core.cli.curation import add_curate_parser, add_curation_option, cmd_curate, open_curation
from core.clustering.algorithms import ALGORITHMS
from core.clustering.scoring import RECOMMENDATION_RULE
from core.curation import classifier as group_model
from core.engine.backends import BACKEND_HELP, BACKENDS, Where
from core.engine.cache import CACHE_ENV, default_cache_dir
from core.engine.pipeline import CLUSTER_SPACES, Pipeline, Settings
from core.errors import DotmapError
from core.outputs import compare
from core.reading.images import POLARITIES, ImageReadError, read_labels
from core.reading.names import shown
from core.representation import features

SKIPPED_SHOWN = 20


class _Progress:
    """One tqdm bar per stage on stderr, off with --quiet or when stderr is not a terminal.

    A stage that cannot count its steps (a UMAP) shows a ticking clock instead of a frozen bar.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.stage = ""
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def __call__(self, done: int, total: int, stage: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self.stage or self.bar is None or bool(self.bar.total) != (total > 1):
            self.close()
            self.stage = stage
            if total <= 1:  # one step: show how long it has been running
                self.bar = tqdm(desc=f"{stage:<22}", file=sys.stderr, leave=False, bar_format="{desc} {elapsed}")
                self._stop.clear()
                self._ticker = threading.Thread(target=self._tick, daemon=True)
                self._ticker.start()
            else:
                self.bar = tqdm(total=total, desc=f"{stage:<22}", file=sys.stderr, leave=False, dynamic_ncols=True)
        if self.bar.total:
            self.bar.n = done
            self.bar.refresh()
        if done >= total:
            self.close()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            bar = self.bar
            if bar is not None:
                bar.refresh()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _add_settings(parser: argparse.ArgumentParser, optional_data: bool = True) -> None:
    d = Settings()
    kinds = "; ".join(f"{k}: {v}" for k, v in features.FEATURE_HELP.items())
    if optional_data:
        parser.add_argument(
            "data_dir",
            metavar="DATA_DIR",
            nargs="?",
            default=None,
            help="folder of images, searched recursively (default: the built-in demo set)",
        )
    else:
        parser.add_argument("data_dir", metavar="DATA_DIR", help="folder of images, searched recursively")
    parser.add_argument(
        "--features",
        choices=features.FEATURE_KINDS,
        default=d.features,
        help=f"what counts as the same shape (default {d.features}). {kinds}",
    )
    parser.add_argument(
        "--components", type=int, default=d.components, help=f"principal components kept (default {d.components})"
    )
    parser.add_argument("--k-min", type=int, default=d.k_min, help=f"smallest k (default {d.k_min})")
    parser.add_argument("--k-max", type=int, default=d.k_max, help=f"largest k (default {d.k_max})")
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default=d.algorithm,
        help="k-means, spherical k-means (cosine), or a Gaussian mixture (slower; its confidence is a "
        "probability) (default kmeans)",
    )
    parser.add_argument(
        "--cluster-space",
        choices=CLUSTER_SPACES,
        default=d.cluster_space,
        help="cluster a 10-D UMAP of the components (default; best on curved groups) "
        "or the components themselves (faster)",
    )
    parser.add_argument("--grid", type=int, default=d.grid, help=f"working grid in pixels (default {d.grid})")
    parser.add_argument(
        "--polarity",
        choices=POLARITIES,
        default=d.polarity,
        help="ink tone: auto takes each image's majority tone as its ground (default)",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument(
        "--cache", metavar="DIR", default=None, help=f"cache folder (default ${CACHE_ENV} or ~/.cache/dotmap)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        features=args.features,
        components=args.components,
        k_min=args.k_min,
        k_max=args.k_max,
        algorithm=args.algorithm,
        cluster_space=args.cluster_space,
        grid=args.grid,
        polarity=args.polarity,
        seed=args.seed,
    )


def _pipeline(args: argparse.Namespace) -> tuple[Pipeline, _Progress]:
    progress = _Progress(not args.quiet and sys.stderr.isatty())
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = demo.builtin_demo_dir(args.cache or default_cache_dir(), on_progress=progress)
        print(f"using the built-in demo set: {data_dir}", file=sys.stderr)
    pipeline = Pipeline(data_dir, _settings(args), args.cache, on_progress=progress)
    return pipeline, progress


def _report_skipped(pipeline: Pipeline, out: TextIO | None = None) -> None:
    out = sys.stderr if out is None else out
    skipped = pipeline.image_meta()["skipped"]
    if not skipped:
        return
    print(f"skipped {len(skipped)} file(s) that are not usable images:", file=out)
    for path, reason in skipped[:SKIPPED_SHOWN]:
        print(f"  {shown(path)}: {reason}", file=out)
    if len(skipped) > SKIPPED_SHOWN:
        print(f"  ... and {len(skipped) - SKIPPED_SHOWN} more (all are listed by 'report --json')", file=out)


def _notes(pipeline: Pipeline) -> None:
    for note in pipeline.cache.notes:
        print(f"note: {note}", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    progress = _Progress(not args.quiet and sys.stderr.isatty())
    if args.workers is not None and args.workers < 1:
        raise DotmapError(f"--workers {args.workers}: give 1 or more processes.")
    out = demo.make_demo(
        args.out_dir, n=args.n, seed=args.seed, on_progress=progress, kind=args.kind, workers=args.workers
    )
    progress.close()
    groups = {
        "shapes": f"{len(demo.FAMILIES)} shape families",
        "hard-shapes": f"{len(demo.HARD_FAMILIES)} shape families (hard)",
    }
    print(f"wrote {args.n} demo images of {groups.get(args.kind, '10 handwritten digits')} and labels.csv to {out}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise DotmapError(f"--workers {args.workers}: give 1 or more worker processes.")
    where = Where(args.backend, args.scheduler, args.workers)
    if args.job is not None:  # started by the dashboard: progress and the outcome go to the job's folder
        from core.engine.jobs import run_job

        cache = args.cache or default_cache_dir()
        return run_job(args.data_dir, _settings(args), cache, args.job, _print_prepared, where)
    start = time.perf_counter()
    pipeline, progress = _pipeline(args)
    with ExitStack() as stack:
        if pipeline.missing(with_map=not args.no_map):  # a cluster is reached (or started) only for work
            pipeline.backend = stack.enter_context(where.open())
            if pipeline.backend.name != "local":
                print(f"preparing on {pipeline.backend.describe()}", file=sys.stderr)
        pipeline.prepare(with_map=not args.no_map)
    progress.close()
    _print_prepared(pipeline, time.perf_counter() - start)
    return 0


def _print_prepared(pipeline: Pipeline, seconds: float | None = None) -> None:
    """The time of every stage of the plan, whether it was computed or found in the cache, and the skipped files."""
    _notes(pipeline)
    records = {r.stage: r for r in pipeline.records}
    for step in pipeline.plan():
        r = records.get(step.stage)
        if r is not None:
            print(f"{step.words:<48} {r.seconds:8.2f} s  {'computed' if r.computed else 'from cache'}")
    if not any(r.computed for r in records.values()):
        print("everything was already in the cache")
    took = "" if seconds is None else f" in {seconds:.1f} s"
    print(f"{len(pipeline.image_meta()['paths'])} images ready{took}; cache: {pipeline.cache.root}")
    _report_skipped(pipeline)


def _report_data(pipeline: Pipeline) -> dict:
    sweep = pipeline.sweep()
    meta = pipeline.image_meta()
    rows = [dict(r) for r in sweep.table]
    inventory = pipeline.inventory
    truth_names, truth = None, None
    if inventory.labels_path is not None:
        truth, truth_names = read_labels(inventory.labels_path, meta["paths"])
        if (truth >= 0).sum() >= 2:
            for row, scores in zip(rows, compare.truth_scores(truth, sweep.labels), strict=True):
                row["ari"], row["nmi"] = scores
        else:
            truth = None
    auto = None
    if pipeline.settings.cluster_space == "umap":
        labels, found = pipeline.auto_groups()
        auto = {"groups": found["groups"], "noise": found["noise"]}
        if truth is not None:
            auto["ari"], auto["nmi"] = compare.agreement(truth, labels)  # noise is left out
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
        "true_labels": truth_names,
        "per_k": rows,
        "auto": auto,
    }


def cmd_report(args: argparse.Namespace) -> int:
    pipeline, progress = _pipeline(args)
    data = _report_data(pipeline)
    progress.close()
    _notes(pipeline)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
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
    _report_skipped(pipeline, sys.stdout)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.outputs.export import export

    if args.csv is None and args.folders is None:
        raise DotmapError("say what to export: --csv OUT.csv and/or --folders OUT_DIR.")
    for target in (args.csv, args.folders):
        if target is not None and (Path(target).exists() or Path(target).is_symlink()):
            raise DotmapError(f"{shown(target)} already exists; choose a new name (nothing was overwritten).")
    pipeline, progress = _pipeline(args)
    if args.curation is not None:
        if args.k is not None:
            raise DotmapError("give --k or --curation, not both: a curation has its own groups.")
        curation = open_curation(pipeline, args.curation)
        written = export(pipeline, None, args.csv, args.folders, args.link, progress, curation=curation)
        what, folders = "the named groups", "group folders"
    else:
        k = pipeline.sweep().recommended_k if args.k is None else args.k
        written = export(pipeline, k, args.csv, args.folders, link=args.link, on_progress=progress)
        what, folders = f"the clusters of k={k}", f"{k} cluster folders"
    progress.close()
    if args.csv is not None:
        print(f"wrote {what} to {shown(str(written[0]))}")
    if args.folders is not None:
        print(f"{'linked' if args.link else 'copied'} the images into {folders} under {shown(str(written[-1]))}")
    _notes(pipeline)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from core.outputs.predict import Predictor

    pipeline, progress = _pipeline(args)
    pipeline.prepare(with_map=False)  # a new image's cluster never needs the 2-D map
    progress.close()
    if args.curation is not None and args.k is not None:
        raise DotmapError("give --k or --curation, not both: new images go to the clusters of a k or to the groups.")
    curation = open_curation(pipeline, args.curation) if args.curation is not None else None
    predictor = Predictor(
        pipeline, args.k, use_umap_map=pipeline.is_cached("map"), curation=curation, method=args.method
    )
    results, failures = [], []
    for image in args.images:
        try:
            results.append(predictor.predict(image).to_dict())
        except ImageReadError as exc:
            failures.append({"name": image, "error": str(exc)})
    if args.json:
        into = {"curation": True, "method": args.method} if curation is not None else {"k": predictor.k}
        print(json.dumps({**into, "predictions": results, "errors": failures}, indent=2))
    else:
        for r in results:
            if curation is not None:
                flag = "  UNLIKE EVERY GROUP" if r["unusual"] else ""
                where = f"group {shown(r['group'])!r}, distance to its mean {r['distance']:.3f}"
            else:
                flag = "  UNLIKE EVERY CLUSTER" if r["unusual"] else ""
                where = f"cluster {r['cluster']} of k={r['k']}, distance {r['distance']:.3f}"
            print(f"{shown(r['name'])}: {where}, confidence {r['confidence']:.2f}{flag}")
            print(f"  nearest: {', '.join(shown(p) for p in r['neighbour_paths'][:5])}")
        for f in failures:
            print(f"{shown(f['name'])}: skipped: {f['error']}", file=sys.stderr)
    _notes(pipeline)
    return 0 if not failures else 1


def cmd_curation(args: argparse.Namespace) -> int:
    pipeline, progress = _pipeline(args)
    pipeline.sweep()
    progress.close()
    code = cmd_curate(args, pipeline)
    _notes(pipeline)
    return code


B_CHOICES = {
    "features": features.FEATURE_KINDS,
    "algorithm": ALGORITHMS,
    "cluster_space": CLUSTER_SPACES,
    "polarity": POLARITIES,
}


def _add_b_settings(parser: argparse.ArgumentParser) -> None:
    """``--b-<setting>`` for each setting of result B (default: A's); ``--a-<setting>`` is ``--<setting>``."""
    for setting in fields(Settings):
        flag = setting.name.replace("_", "-")
        kind = {"choices": B_CHOICES[setting.name]} if setting.name in B_CHOICES else {"type": int, "metavar": "N"}
        parser.add_argument(
            f"--b-{flag}", dest=f"b_{setting.name}", default=None, help=f"B's --{flag} (default: A's)", **kind
        )
        parser.add_argument(f"--a-{flag}", dest=setting.name, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kind)


def _settings_b(args: argparse.Namespace, a: Settings) -> Settings:
    given = {s.name: getattr(args, f"b_{s.name}") for s in fields(Settings)}
    b = replace(a, **{name: value for name, value in given.items() if value is not None})
    if b == a:
        raise DotmapError("B has the same settings as A: give B a setting that differs, such as --b-features shape.")
    return b


def _words(s: Settings) -> str:
    return f"{s.features} features, {s.algorithm} in {s.cluster_space} space, {s.components} components"


def cmd_compare(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise DotmapError(f"--top {args.top} should be >= 0.")
    settings_b = _settings_b(args, _settings(args))  # a wrong request is said before the folder is read
    pipeline, progress = _pipeline(args)
    root, inventory = pipeline.inventory.root, pipeline.inventory
    other = Pipeline(root, settings_b, args.cache, on_progress=progress, inventory=inventory)
    result = compare.compare_results(pipeline, other, args.k)
    progress.close()
    _notes(pipeline)
    _notes(other)
    paths = [shown(path) for path in pipeline.image_meta()["paths"]]
    data = {
        "data_dir": str(pipeline.inventory.root),
        "n_images": len(paths),
        "settings": {"a": asdict(pipeline.settings), "b": asdict(settings_b)},
        **result.to_dict(paths, args.top),
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    recommended = data["recommended_k"]
    print(f"A: {_words(pipeline.settings)}; recommended k = {recommended['a']}")
    print(f"B: {_words(settings_b)}; recommended k = {recommended['b']}")
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
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="Dotmap: find and explore clusters of black-and-white dot images."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="write demo images of known shape families, with labels.csv")
    p.add_argument("out_dir", metavar="OUT_DIR", help="a new (or empty) folder")
    p.add_argument("--n", type=int, default=2000, help="number of images (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--kind",
        choices=demo.KINDS,
        default="shapes",
        help="shapes (8 families, the built-in demo), hard-shapes (10 families with near-alike pairs, "
        "open curves, partial shapes, clutter) or digits (scikit-learn's real handwritten digits as dots)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help=f"processes drawing a set of more than {demo.SUBFOLDER_FROM:,} images (default: every core)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("prepare", help="run every stage (read, features, reduce, cluster every k, map)")
    _add_settings(p)
    p.add_argument("--no-map", action="store_true", help="skip the 2-D UMAP map")
    p.add_argument(
        "--job",
        metavar="FOLDER",
        default=None,
        help="run as the dashboard's background job: write status.json (progress, outcome) into FOLDER",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="; ".join(f"{name}: {words}" for name, words in BACKEND_HELP.items()) + " (default local)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="the Dask scheduler, e.g. tcp://10.0.0.5:8786; workers must see DATA_DIR and --cache at the same paths",
    )
    p.add_argument("--workers", type=int, default=None, help="Dask without --scheduler: local worker processes")
    p.set_defaults(run=cmd_prepare)

    p = sub.add_parser("report", help="the scores of every k and the recommended k")
    _add_settings(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_report)

    p = sub.add_parser("export", help="write a CSV of assignments and/or per-cluster folders")
    _add_settings(p)
    p.add_argument("--k", type=int, default=None, help="number of clusters (default: the recommended k)")
    p.add_argument("--csv", metavar="OUT.csv", default=None, help="a new CSV file: path,cluster,distance,silhouette")
    p.add_argument("--folders", metavar="OUT_DIR", default=None, help="a new folder with one folder per cluster")
    p.add_argument("--link", action="store_true", help="symlink the images instead of copying them")
    add_curation_option(p, "export")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("predict", help="assign new images to the clusters of a prepared folder")
    _add_settings(p, optional_data=False)
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files to classify")
    p.add_argument("--k", type=int, default=None, help="number of clusters (default: the recommended k)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_curation_option(p, "assign to")
    p.add_argument(
        "--method",
        choices=group_model.METHODS,
        default=group_model.DEFAULT_METHOD,
        help=f"with --curation, how new images are assigned to the groups (default {group_model.DEFAULT_METHOD})",
    )
    p.set_defaults(run=cmd_predict)

    p = add_curate_parser(sub)
    _add_settings(p)
    p.set_defaults(run=cmd_curation)

    p = sub.add_parser(
        "compare",
        help="how far two settings agree on one folder: ARI/NMI per k, the overlap table, the images they disagree on",
        description="Result A has the usual settings (--features ..., or --a-features ...); result B the same, "
        "except each --b-<setting> given. What is not prepared of either is computed (never the 2-D map).",
    )
    _add_settings(p)
    _add_b_settings(p)
    p.add_argument("--k", type=int, default=None, help="the k of the overlap table (default: A's recommended k)")
    p.add_argument(
        "--top",
        type=int,
        default=compare.DISAGREEMENTS_SHOWN,
        help=f"disagreeing images listed (default {compare.DISAGREEMENTS_SHOWN})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DotmapError as exc:  # a problem with the data, settings or folders: one line says it
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted; finished stages stay in the cache", file=sys.stderr)
        return 130
    except Exception:  # a bug of ours must not pass for a mistake of the user's: show where it failed
        traceback.print_exc()
        print(
            "error: Dotmap failed unexpectedly (a bug, not a problem with your data). Finished stages stay "
            "in the cache. Please report it with the lines above.",
            file=sys.stderr,
        )
        return 2
