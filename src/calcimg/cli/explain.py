"""``calcimg explain RESULT_OR_IMAGE``: a readable account of one image's result.

Given a ``results.jsonl`` (or one result ``.json``), explains the line picked by
``--source`` or ``--index`` (every line when neither is given); given an image, runs
:func:`calcimg.analyze_file` on it with the clinical context options and explains each
frame. The text comes from :func:`calcimg.explain.render`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from calcimg.cli.common import add_config_options, config_from_args, context_from_args
from calcimg.errors import InputError
from calcimg.explain import render
from calcimg.pipeline import analyze_file
from calcimg.result import Result, Status

__all__ = ["add_parser", "load_results", "run", "select_results"]


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "explain",
        help="explain one image: findings, patterns, categories, evidence, work-up",
        description=(
            "Print a readable account of a result: the image, spacing and calibration, "
            "each finding (pattern and why, size, location), its categories and the "
            "evidence for them, the image-level ranking, differential and work-up. "
            "RESULT_OR_IMAGE is a results.jsonl / result .json (pick a line with --source "
            "or --index) or an image, which is analysed first (with --context, "
            "--context-csv and sidecar <image>.context.json). Exit code 1 when an "
            "explained result has status error."
        ),
    )
    p.add_argument("target", metavar="RESULT_OR_IMAGE", help="results.jsonl, result.json or image")
    p.add_argument("--finding", type=int, metavar="N", help="explain only finding N (its id)")
    p.add_argument(
        "--source",
        metavar="PATH",
        help="in a results.jsonl, the line whose source is PATH (or ends with it)",
    )
    p.add_argument("--index", type=int, metavar="I", help="in a results.jsonl, line I (0-based)")
    add_config_options(p)
    p.set_defaults(run=run)


def load_results(path: Path) -> list[Result]:
    """Read every result of a ``results.jsonl`` (or a single-object ``.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: results file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the results file: {exc}") from exc
    stripped = text.strip()
    if path.suffix == ".json" and stripped.startswith("{") and "\n{" not in stripped:
        chunks = [stripped]
    else:
        chunks = [line for line in text.splitlines() if line.strip()]
    out: list[Result] = []
    for n, chunk in enumerate(chunks, start=1):
        try:
            out.append(Result.from_dict(json.loads(chunk)))
        except (json.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"{path} line {n}: expected a calcimg.result/1 object; {type(exc).__name__}: {exc}"
            ) from exc
    if not out:
        raise InputError(f"{path}: no results in the file")
    return out


def select_results(
    results: list[Result], *, source: str | None, index: int | None, where: str
) -> list[Result]:
    """Pick results by index or by source (exact, or the stored path ends with it)."""
    if index is not None:
        if not 0 <= index < len(results):
            raise InputError(
                f"{where}: --index {index} is out of range; expected 0-{len(results) - 1}"
            )
        results = [results[index]]
    if source is not None:
        norm = os.path.normpath(source)
        picked = [
            r
            for r in results
            if os.path.normpath(r.source) == norm
            or os.path.normpath(r.source).endswith(os.sep + norm)
        ]
        if not picked:
            names = ", ".join(r.source for r in results[:5])
            more = f" (and {len(results) - 5} more)" if len(results) > 5 else ""
            raise InputError(f"{where}: no result with source {source!r}; sources: {names}{more}")
        results = picked
    return results


def _is_results_file(path: Path) -> bool:
    if path.suffix in (".jsonl", ".json"):
        return True
    try:
        with path.open("rb") as fh:
            return fh.read(1) == b"{"
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if not target.exists():
        raise InputError(f"{target}: no such file")
    texts: list[str] = []
    failed = False
    if _is_results_file(target):
        if args.context or args.context_csv:
            print(
                "calcimg explain: note: --context/--context-csv apply when explaining an "
                "image; a results file already holds the ranking made with its context",
                file=sys.stderr,
            )
        results = select_results(
            load_results(target), source=args.source, index=args.index, where=str(target)
        )
        for r in results:
            texts.append(_render(r, args, None, show_context=False))
            failed |= r.status is Status.ERROR
    else:
        if args.source is not None or args.index is not None:
            raise InputError("--source and --index select lines of a results.jsonl, not images")
        config = config_from_args(args)
        resolver = context_from_args(args)
        for r in analyze_file(str(target), context=resolver, config=config):
            ctx = None
            if r.status is Status.OK:
                ctx = resolver.resolve(source=r.source, sop_instance_uid=r.sop_instance_uid)
            texts.append(_render(r, args, ctx, show_context=True))
            failed |= r.status is Status.ERROR
    print(("\n\n" + "=" * 72 + "\n\n").join(texts))
    return 1 if failed else 0


def _render(r: Result, args: argparse.Namespace, ctx: Any, *, show_context: bool) -> str:
    try:
        return render(r, finding=args.finding, context=ctx, show_context=show_context)
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from None
