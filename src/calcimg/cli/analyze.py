"""``calcimg analyze PATH... [--out DIR]``: analyse files, folders and DICOMDIRs."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from calcimg.batch import OVERLAY_CHOICES, SELECT_KEYS, BatchOptions, Selector, run_batch
from calcimg.batch import summary_table as batch_summary_table
from calcimg.cli.common import add_config_options, config_from_args, context_from_args
from calcimg.errors import ConfigError
from calcimg.result import Result, Status

__all__ = ["add_parser", "add_select_option", "default_workers", "run", "summary_line"]


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def add_select_option(p: argparse.ArgumentParser) -> None:
    """``--select KEY=PATTERN[,PATTERN...]`` (shared with ``calcimg validate``)."""
    p.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="KEY=PATTERNS",
        help=(
            "analyse only inputs whose header matches, e.g. --select modality=CR,DX "
            "--select body_part=KNEE --select 'series_description=*knee*'; keys: "
            f"{', '.join(SELECT_KEYS)}; case-insensitive globs; repeatable (all keys must "
            "match); the rest are skipped with the reason"
        ),
    )


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "analyze",
        help="analyse radiographs and write results.jsonl",
        description=(
            "Analyse DICOM radiographs (files, folders searched recursively, DICOMDIRs) and "
            "PNG/TIFF/PGM exports. Writes one line per image (per frame) to "
            "DIR/results.jsonl in the calcimg.result/1 contract, plus images.csv, "
            "findings.csv, overlays/ and report.html; or prints the lines when --out is not "
            "given. A re-run with the same --out resumes: inputs already analysed (same path "
            "and content hash, same version and parameters) are skipped. Exit code 0 when "
            "every input was analysed or skipped, 1 when any errored, 130 when interrupted."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or DICOMDIRs")
    p.add_argument("--out", metavar="DIR", help="write DIR/results.jsonl (default: print lines)")
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        metavar="N",
        help="worker processes (default: the cores present, here %(default)s); 0 analyses "
        "in this process",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on Dask distributed: tcp://host:8786 for a running scheduler, or 'local' "
        "for a LocalCluster of --workers processes",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="re-analyse everything; start DIR/results.jsonl afresh",
    )
    add_select_option(p)
    p.add_argument(
        "--overlays",
        choices=OVERLAY_CHOICES,
        default="flagged",
        help="overlay PNGs under DIR/overlays/ for flagged images (default), all or none",
    )
    p.add_argument(
        "--no-overlays",
        dest="overlays",
        action="store_const",
        const="none",
        help="same as --overlays none",
    )
    p.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write DIR/report.html (default: on)",
    )
    p.add_argument(
        "--parquet",
        action="store_true",
        help="also write images.parquet and findings.parquet (needs pyarrow)",
    )
    p.add_argument(
        "--dicom-out",
        metavar="DIR",
        help="also write a Comprehensive SR (TID 1500) and a binary SEG of every analysed "
        "DICOM image into DIR (needs the dicom extra)",
    )
    p.add_argument(
        "--brief",
        action="store_true",
        help="with --out, print lines only for flagged and errored images",
    )
    add_config_options(p)
    p.set_defaults(run=run)


def _dicom_out(path: str | None) -> Path | None:
    if path is None:
        return None
    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise ConfigError("--dicom-out needs highdicom: pip install 'calcimg[dicom]'") from None
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


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
    options = BatchOptions(
        out_dir=Path(args.out) if args.out else None,
        workers=args.workers,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        select=Selector.parse(args.select),
        overlays=args.overlays,
        report=args.report,
        parquet=args.parquet,
        config=config_from_args(args),
        context=context_from_args(args),
        dicom_out=_dicom_out(args.dicom_out),
    )
    brief = bool(args.brief)

    if args.out:
        # Results go to files; the console gets one line per image (only the flagged and
        # errored ones with --brief), a progress bar or periodic lines, and a summary.
        def show(r: Result) -> None:
            if not brief or r.flag or r.status is Status.ERROR:
                if sys.stderr.isatty():
                    sys.stderr.write("\r\x1b[K")
                print(summary_line(r), flush=True)
    else:

        def show(r: Result) -> None:
            print(summary_line(r), file=sys.stderr, flush=True)

    summary = run_batch(args.paths, options, stream=sys.stdout, on_result=show)
    out = sys.stdout if args.out else sys.stderr
    print(batch_summary_table(summary), file=out)
    if args.out:
        print(f"results in {Path(args.out) / 'results.jsonl'}", file=out)
    if summary.interrupted:
        print("calcimg: interrupted; results written so far are kept", file=sys.stderr)
        return 130
    return 1 if summary.final_errors else 0
