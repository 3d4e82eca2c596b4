"""The command line: ``python -m core demo|prepare|report|export|predict|compare``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from core import demo
from core.cli.curation import add_curate_parser, add_curation_option, cmd_curate, open_curation
from core.cli.progress import Progress
from core.cli.reports import notes, print_comparison, print_prepared, print_report, report_data
from core.curation import classifier as group_model
from core.engine import disk
from core.engine.backends import BACKEND_HELP, BACKENDS, Where
from core.engine.cache import CACHE_ENV, default_cache_dir
from core.engine.pipeline import Pipeline
from core.engine.settings import (
    SEED_RANGE,
    Settings,
    add_other_setting_flags,
    add_setting_flags,
    settings_from_flags,
)
from core.errors import DotmapError, SettingError
from core.outputs import compare
from core.reading.arrays import is_array_file, scan_array
from core.reading.decode import ImageReadError
from core.reading.images import unpack_masks
from core.reading.names import shown
from core.reading.rows import array_blocks

DATA_HELP = (
    "a folder of images (searched recursively), or an .npy/.npz array of images: (n, h, w) or (n, h * w), "
    "bool (True is ink), integers 0..255 or floats 0..1"
)


def image_shape(text: str) -> tuple[int, int]:
    """``--image-shape``: "HxW" (or one number, a square side) -> (h, w)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        h, w = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (None, None)
    except ValueError:
        h = w = None
    if h is None or h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"{text!r} should be HEIGHTxWIDTH in pixels, e.g. 200x200")
    return h, w


def _add_settings(parser: argparse.ArgumentParser, optional_data: bool = True) -> None:
    if optional_data:
        parser.add_argument(
            "data_dir",
            metavar="DATA_DIR",
            nargs="?",
            default=None,
            help=f"{DATA_HELP} (default: the built-in demo set)",
        )
    else:
        parser.add_argument("data_dir", metavar="DATA_DIR", help=DATA_HELP)
    parser.add_argument(
        "--image-shape",
        metavar="HxW",
        type=image_shape,
        default=None,
        help="the height and width of an array's flat rows (n, h * w) when they are not square",
    )
    add_setting_flags(parser)
    parser.add_argument(
        "--cache", metavar="DIR", default=None, help=f"cache folder (default ${CACHE_ENV} or ~/.cache/dotmap)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _pipeline(args: argparse.Namespace) -> tuple[Pipeline, Progress]:
    progress = Progress(not args.quiet and sys.stderr.isatty())
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = demo.builtin_demo_dir(args.cache or default_cache_dir(), on_progress=progress)
        print(f"using the built-in demo set: {data_dir}", file=sys.stderr)
    settings = settings_from_flags(args)
    pipeline = Pipeline(data_dir, settings, args.cache, on_progress=progress, image_shape=args.image_shape)
    return pipeline, progress


def cmd_demo(args: argparse.Namespace) -> int:
    progress = Progress(not args.quiet and sys.stderr.isatty())
    if args.workers is not None and args.workers < 1:
        raise DotmapError(f"--workers {args.workers}: give 1 or more processes.")
    if args.n < 1:
        raise SettingError(f"--n {args.n}: give 1 or more images.")
    if not SEED_RANGE[0] <= args.seed <= SEED_RANGE[1]:
        raise SettingError(f"--seed {args.seed} should be {SEED_RANGE[0]}..{SEED_RANGE[1]:,} (2^32 - 1).")
    out = demo.make_demo(
        args.out_dir, n=args.n, seed=args.seed, on_progress=progress, kind=args.kind, workers=args.workers
    )
    progress.close()
    groups = {
        "shapes": f"{len(demo.FAMILIES)} shape families",
        "hard-shapes": f"{len(demo.HARD_FAMILIES)} shape families (hard)",
        "dense": f"{len(demo.FAMILIES)} shape families with dense ink",
        "glyphs": f"the letters {demo.GLYPH_LETTERS[0]}-{demo.GLYPH_LETTERS[-1]} of {len(demo.GLYPH_FONTS)} typefaces",
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
        settings = settings_from_flags(args)
        return run_job(args.data_dir, settings, cache, args.job, print_prepared, where, args.image_shape)
    start = time.perf_counter()
    pipeline, progress = _pipeline(args)
    with ExitStack() as stack:
        if pipeline.missing(with_map=not args.no_map):  # a cluster is reached (or started) only for work
            pipeline.backend = stack.enter_context(where.open())
            if pipeline.backend.name != "local":
                print(f"preparing on {pipeline.backend.describe()}", file=sys.stderr)
        pipeline.prepare(with_map=not args.no_map)
    progress.close()
    print_prepared(pipeline, time.perf_counter() - start)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    pipeline, progress = _pipeline(args)
    data = report_data(pipeline)
    progress.close()
    notes(pipeline)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print_report(data, pipeline)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.outputs.export import export

    if args.csv is None and args.folders is None:
        raise DotmapError("say what to export: --csv OUT.csv and/or --folders OUT_DIR.")
    for target in (args.csv, args.folders):
        if target is not None and disk.exists(Path(target).expanduser()):  # a path that cannot be looked at: words
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
    notes(pipeline)
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
        if is_array_file(image):  # every row of an array of new images
            s = pipeline.settings
            for packed, names, bad in array_blocks(scan_array(image), s.grid, s.polarity, workers=1):
                found = predictor.predict_masks(unpack_masks(packed, s.grid), [f"{image}: {n}" for n in names])
                results.extend(r.to_dict() for r in found)
                failures.extend({"name": f"{image}: {name}", "error": reason} for name, reason in bad)
            continue
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
    notes(pipeline)
    return 0 if not failures else 1


def cmd_curation(args: argparse.Namespace) -> int:
    pipeline, progress = _pipeline(args)
    pipeline.sweep()
    progress.close()
    code = cmd_curate(args, pipeline)
    notes(pipeline)
    return code


def _settings_b(args: argparse.Namespace, a: Settings) -> Settings:
    b = settings_from_flags(args, "b", a)
    if b == a:
        raise DotmapError("B has the same settings as A: give B a setting that differs, such as --b-features shape.")
    return b


def cmd_compare(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise DotmapError(f"--top {args.top} should be >= 0.")
    settings_b = _settings_b(args, settings_from_flags(args))  # a wrong request is said before the folder is read
    pipeline, progress = _pipeline(args)
    root, inventory = pipeline.inventory.root, pipeline.inventory
    other = Pipeline(root, settings_b, args.cache, on_progress=progress, inventory=inventory)
    result = compare.compare_results(pipeline, other, args.k)
    progress.close()
    notes(pipeline)
    notes(other)
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
    print_comparison(data, result, pipeline.settings, settings_b)
    return 0


def build_parser() -> argparse.ArgumentParser:
    prog = "dotmap" if Path(sys.argv[0]).name == "dotmap" else "python -m core"  # the installed command, or -m
    parser = argparse.ArgumentParser(
        prog=prog, description="Dotmap: find and explore clusters of black-and-white dot images."
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
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (or .npy/.npz arrays of images) to classify")
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
    add_other_setting_flags(p, "b", also="a")
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
