"""The command line's curation commands: ``curate`` (start a curation from a k, or show one) and the
``--curation FILE`` of ``export`` and ``predict``."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.curation import file as curation_file
from core.curation import prepared
from core.curation.model import Curation
from core.engine.pipeline import Pipeline
from core.errors import DotmapError
from core.reading.names import shown


def open_curation(pipeline: Pipeline, path: str | None) -> Curation:
    """The curation in ``path`` (default: the folder's own file) fitted to the images of the pipeline."""
    target = Path(path) if path else prepared.default_path(pipeline)
    if not path and not target.exists():
        raise DotmapError(
            f"This folder has no curation with these settings yet ({shown(str(target))}). Start one with "
            "`python -m core curate DATA_DIR --from-k K`, or in the dashboard's Curate page."
        )
    return curation_file.load(target, pipeline.image_meta()["paths"])


def summary_lines(curation: Curation, path: Path) -> list[str]:
    sizes = curation.sizes()
    lines = [f"curation {shown(str(path))}: {len(sizes)} groups of {len(curation.paths):,} images"]
    width = max((len(shown(n)) for n in curation.names.values()), default=5)
    for group, name in curation.names.items():
        lines.append(f"  {shown(name):<{width}}  {sizes[group]:>7,}")
    for word, value in (("outliers", -2), ("unassigned", -1)):
        count = int((curation.labels == value).sum())
        if count:
            lines.append(f"  {word:<{width}}  {count:>7,}")
    lines += [f"note: {note}" for note in curation.notes]
    return lines


def cmd_curate(args: argparse.Namespace, pipeline: Pipeline) -> int:
    target = Path(args.file) if args.file else prepared.default_path(pipeline)
    if args.from_k is not None:
        if target.exists() or target.is_symlink():
            raise DotmapError(
                f"{shown(str(target))} already exists (nothing was overwritten). Open it in the dashboard, "
                "or give --file NEW.json for another curation."
            )
        curation = prepared.from_k(pipeline, args.from_k)
        curation_file.save(curation, target)
    else:
        curation = open_curation(pipeline, args.file)
    print("\n".join(summary_lines(curation, target)))
    return 0


def add_curate_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "curate",
        help="start a curation (named groups) from the clusters of a k, or show one",
        description="A curation is the user's own grouping, kept in a JSON file outside the cache "
        f"(default: under {shown(str(curation_file.curations_dir()))}, one per folder and settings). "
        "Name, merge, split and move in the dashboard's Curate page; export it with `export --curation`, "
        "sort new images into it with `predict --curation`.",
    )
    p.add_argument("--from-k", type=int, default=None, metavar="K", help="start a new curation from the clusters of K")
    p.add_argument("--file", default=None, metavar="FILE.json", help="the curation file (default: the folder's own)")
    return p


def add_curation_option(parser: argparse.ArgumentParser, doing: str) -> None:
    parser.add_argument(
        "--curation",
        nargs="?",
        const="",
        default=None,
        metavar="FILE.json",
        help=f"{doing} the named groups of a curation instead of the clusters of a k "
        "(no FILE: the folder's own curation)",
    )
