"""``calcimg features PATH... --out TABLE``: research feature tables (CSV or Parquet)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from calcimg.cli.common import add_config_options, config_from_args, context_from_args
from calcimg.errors import InputError

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "features",
        help="write per-finding or per-image feature tables (CSV or Parquet)",
        description=(
            "Measure every finding (or every region of a user's label mask) and write one "
            "row per finding (--level finding) or per image (--level image), with "
            "provenance in every row. PATH may be files, folders, DICOMDIRs or a batch CSV "
            "with an 'Image' and optional 'Mask' column (other columns are copied to the "
            "rows). Rerunning with the same --out skips inputs already in the table. "
            "Exit code 0 when every input was measured or skipped, 1 when any errored."
        ),
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="images, folders or a batch CSV")
    p.add_argument("--out", metavar="TABLE", help="output table: FILE.csv or FILE.parquet")
    p.add_argument(
        "--level",
        choices=("finding", "image"),
        default="finding",
        help="one row per finding (default) or per image",
    )
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes")
    p.add_argument(
        "--mask",
        metavar="MASK",
        help="label mask for a single image (PNG/TIFF, NRRD/NIfTI, DICOM SEG): measure "
        "its regions instead of running the detector",
    )
    p.add_argument(
        "--pseudonymize",
        metavar="SALT",
        help="replace patient and study identifiers, paths and hashes by HMAC-SHA256 "
        "pseudonyms keyed by SALT (the mapping is never written)",
    )
    p.add_argument("--overwrite", action="store_true", help="start a new table instead of resuming")
    p.add_argument("--list", action="store_true", help="print the feature dictionary and exit")
    add_config_options(p)
    p.set_defaults(run=run)


def _split_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Take ``--set features.NAME=VALUE`` out of the pipeline's overrides."""
    import tomllib

    ours: dict[str, Any] = {}
    rest = []
    for text in args.overrides:
        key, sep, raw = text.partition("=")
        if sep and key.strip().startswith("features."):
            try:
                ours[key.strip()[len("features.") :]] = tomllib.loads(f"v = {raw.strip()}")["v"]
            except tomllib.TOMLDecodeError:
                ours[key.strip()[len("features.") :]] = raw.strip()
        else:
            rest.append(text)
    args.overrides = rest
    return ours


def run(args: argparse.Namespace) -> int:
    from calcimg.features.registry import render_text

    if args.list:
        sys.stdout.write(render_text())
        return 0
    if not args.paths:
        raise InputError("no PATH given; give images, folders or a batch CSV (or --list)")
    if not args.out:
        raise InputError("--out TABLE is required (FILE.csv or FILE.parquet)")
    if args.jobs < 1:
        raise InputError(f"--jobs {args.jobs}; expected 1 or more")

    from calcimg.features.api import require_pandas
    from calcimg.features.extract import (
        file_sha256,
        iter_frame_rows,
        jobs_from_inputs,
        make_settings,
    )
    from calcimg.features.pseudonym import Pseudonymizer
    from calcimg.features.writer import TableWriter, existing_keys, table_format

    if table_format(args.out) == "parquet":
        require_pandas()
    feature_overrides = _split_overrides(args)
    config = config_from_args(args)
    context = context_from_args(args)
    settings = make_settings(
        context=context,
        config=config,
        params=feature_overrides or None,
        image_level=args.level == "image",
        pseudonymize=args.pseudonymize,
    )
    jobs = jobs_from_inputs(args.paths, mask=args.mask)

    out = Path(args.out)
    resume = not args.overwrite and (out.exists() or out.with_name(out.name + ".parts").is_dir())
    done = existing_keys(out) if resume else set()
    pseudo = Pseudonymizer(args.pseudonymize) if args.pseudonymize else None
    todo = []
    n_skipped_done = 0
    for job in jobs:
        if done and isinstance(job.image, str):
            try:
                key = (file_sha256(job.image), file_sha256(job.mask) if job.mask else "")
            except OSError:
                key = ("", "")
            if pseudo is not None:
                key = tuple(pseudo.pseudonym(k) if k else "" for k in key)  # type: ignore[assignment]
            if key in done:
                n_skipped_done += 1
                continue
        todo.append(job)

    t0 = time.perf_counter()
    n_images = n_error = n_regions = 0
    with TableWriter(out, append=resume) as writer:
        for job, frames in iter_frame_rows(todo, settings, n_jobs=args.jobs):
            for fr in frames:
                writer.write([fr.image] if args.level == "image" else fr.findings)
                n_images += 1
                n_regions += fr.n_regions
                status = fr.image.get("status") if fr.image else fr.findings[0].get("status")
                if status == "error":
                    n_error += 1
                    err = fr.findings[0].get("error")
                    print(f"ERROR   {job.image}: {err}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t0
    print(
        f"{n_images} image(s) in {elapsed:.1f} s: {n_regions} region(s), {n_error} error(s); "
        f"{n_skipped_done} input(s) already in {out} skipped; {writer.n_rows} row(s) written",
        file=sys.stderr,
    )
    return 1 if n_error else 0
