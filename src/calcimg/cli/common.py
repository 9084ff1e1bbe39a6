"""Options shared by subcommands: parameters, clinical context, spacing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from calcimg.config import Config, load_config
from calcimg.context import ClinicalContext
from calcimg.errors import ContextError

__all__ = ["add_config_options", "config_from_args", "context_from_args"]


def add_config_options(p: argparse.ArgumentParser) -> None:
    """--config, --set, --spacing and --context."""
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
        help="clinical context (labs, history) for every image, as in CONTRACT.md",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
    if getattr(args, "spacing", None) is not None:
        overrides.append(f"ingest.user_spacing_mm=[{args.spacing}, {args.spacing}]")
    return load_config(args.config, overrides)


def context_from_args(args: argparse.Namespace) -> ClinicalContext | None:
    path = getattr(args, "context", None)
    if path is None:
        return None
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContextError(f"{path}: context file not found") from None
    except json.JSONDecodeError as exc:
        raise ContextError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ContextError(
            f"{path}: expected a JSON object of labs and history; found {type(data).__name__}"
        )
    return ClinicalContext.from_dict(data, where=path)
