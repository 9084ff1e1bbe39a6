"""The ``calcimg`` command: a thin adapter over :mod:`calcimg.pipeline`.

Each subcommand is a module in this package with ``add_parser(subparsers)`` and
``run(args) -> int``; :data:`COMMANDS` lists them in help order.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from calcimg import __version__
from calcimg.errors import CalcimgError

__all__ = ["COMMANDS", "main"]

COMMANDS: tuple[str, ...] = ("analyze", "validate", "explain", "features", "serve")
"""Subcommand modules of :mod:`calcimg.cli`, in help order."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calcimg",
        description="Find and explain soft-tissue calcifications on radiographs.",
    )
    parser.add_argument("--version", action="version", version=f"calcimg {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"calcimg.cli.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``calcimg`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        # pydicom logs every decoder's traceback when all plugins fail; calcimg turns
        # that into one clear error per file, so keep the console readable.
        logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    from calcimg.process import steady_allocator

    steady_allocator()  # films of one run reuse each other's memory (see there)
    try:
        code: int = args.run(args)
    except CalcimgError as exc:
        print(f"calcimg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("calcimg: interrupted; results written so far are kept", file=sys.stderr)
        return 130
    return code
