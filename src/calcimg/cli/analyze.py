"""``calcimg analyze PATH... [--out DIR]``: analyse files, folders and DICOMDIRs."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

from calcimg.cli.common import add_config_options, config_from_args, context_from_args
from calcimg.ingest import iter_inputs
from calcimg.pipeline import analyze_file
from calcimg.report import ResultsWriter
from calcimg.result import Result, Status

__all__ = ["add_parser", "run", "summary_line"]


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "analyze",
        help="analyse radiographs and write results.jsonl",
        description=(
            "Analyse DICOM radiographs (files, folders searched recursively, DICOMDIRs) and "
            "PNG/TIFF/PGM exports. Writes one line per image (per frame) to "
            "DIR/results.jsonl in the calcimg.result/1 contract, or prints the lines when "
            "--out is not given. Exit code 0 when every input was analysed or skipped, 1 "
            "when any errored."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or DICOMDIRs")
    p.add_argument("--out", metavar="DIR", help="write DIR/results.jsonl (default: print lines)")
    add_config_options(p)
    p.set_defaults(run=run)


def summary_line(r: Result) -> str:
    """One human line per result: status, flag, counts, top pattern and category."""
    where = r.source if r.frame == 0 else f"{r.source} [frame {r.frame}]"
    if r.status is not Status.OK:
        reason = r.error.message if r.error else ""
        if not reason.startswith(r.source):
            reason = f"{where}: {reason}"
        return f"{r.status.value.upper():7s} {reason}"
    n = len(r.findings)
    text = f"{'FLAG' if r.flag else 'ok':7s} {where}: {n} finding{'s' if n != 1 else ''}"
    if r.findings:
        patterns = Counter(f.pattern.value for f in r.findings)
        text += " (" + ", ".join(f"{k} x{v}" for k, v in patterns.most_common()) + ")"
    if r.categories:
        text += f"; likely {r.categories[0].name.value}"
    if r.image and not r.image.calibrated:
        text += f"; spacing {r.image.spacing_source}, uncalibrated"
    return text


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    context = context_from_args(args)
    counts: Counter[str] = Counter()
    flagged = 0
    t0 = time.perf_counter()
    summary_out = sys.stdout if args.out else sys.stderr
    writer = ResultsWriter(args.out) if args.out else ResultsWriter(stream=sys.stdout)
    with writer:
        for item in iter_inputs(args.paths):
            for result in analyze_file(item.path, context=context, config=config):
                writer.write(result)
                counts[result.status.value] += 1
                flagged += int(result.flag)
                print(summary_line(result), file=summary_out, flush=True)
    elapsed = time.perf_counter() - t0
    total = sum(counts.values())
    print(
        f"{total} image(s) in {elapsed:.1f} s: {counts['ok']} analysed ({flagged} flagged), "
        f"{counts['skipped']} skipped, {counts['error']} error(s)"
        + (f"; results in {writer.path}" if writer.path else ""),
        file=summary_out,
    )
    return 1 if counts["error"] else 0
