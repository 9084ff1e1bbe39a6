"""Options shared by subcommands: parameters, clinical context, spacing."""

from __future__ import annotations

import argparse

from calcimg.config import Config, load_config
from calcimg.context import ContextResolver, load_context_csv, load_context_file

__all__ = ["add_config_options", "config_from_args", "context_from_args"]


def add_config_options(p: argparse.ArgumentParser) -> None:
    """--config, --set, --spacing, --context, --context-csv and --no-sidecars."""
    p.add_argument("--config", metavar="FILE.toml", help="site parameter file (sectioned TOML)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="STAGE.NAME=VALUE",
        help="override one parameter, e.g. --set detect.min_cnr=4 (repeatable)",
    )
    p.add_argument(
        "--spacing",
        type=float,
        metavar="MM",
        help="pixel spacing in mm for files without a usable one (PNG/TIFF exports)",
    )
    p.add_argument(
        "--context",
        metavar="FILE.json",
        help="clinical context (labs, history) for every image, as in CONTRACT.md; a "
        "sidecar <image>.context.json or a --context-csv row wins over it",
    )
    p.add_argument(
        "--context-csv",
        metavar="FILE.csv",
        help="per-image context: one row per image keyed by a sop_instance_uid or file "
        "column, other columns are context keys (empty cells = not known)",
    )
    p.add_argument(
        "--no-sidecars",
        action="store_true",
        help="ignore <image>.context.json files beside the images",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
    if getattr(args, "spacing", None) is not None:
        overrides.append(f"ingest.user_spacing_mm=[{args.spacing}, {args.spacing}]")
    return load_config(args.config, overrides)


def context_from_args(args: argparse.Namespace) -> ContextResolver:
    """The per-image context resolver of --context, --context-csv and sidecar files.

    Files given on the command line are read now, so that their errors stop the run
    before any image is analysed; sidecars (``<image>.context.json``) are read per image
    unless ``--no-sidecars``.
    """
    path = getattr(args, "context", None)
    csv_path = getattr(args, "context_csv", None)
    return ContextResolver(
        default=None if path is None else load_context_file(path),
        table=None if csv_path is None else load_context_csv(csv_path),
        sidecars=not getattr(args, "no_sidecars", False),
    )
