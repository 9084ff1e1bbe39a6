"""``calcimg validate PATH...``: what ``analyze`` would do, from headers only."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from calcimg.batch import Selector
from calcimg.cli.analyze import add_select_option
from calcimg.errors import CalcimgError, NotAnImageError
from calcimg.ingest import iter_inputs, read_header

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "validate",
        help="list what analyze would analyse and why the rest is skipped",
        description=(
            "Read the headers (never the pixels) of every input under PATH and list what "
            "calcimg analyze would analyse, and why the rest would be skipped (not an "
            "image, not selected by --select, a repeated SOP Instance UID) or fail (not "
            "readable DICOM). A header that reads can still fail at decoding. Exit code 0 "
            "when nothing would error, 1 otherwise."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or DICOMDIRs")
    add_select_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    select = Selector.parse(args.select)
    counts: Counter[str] = Counter()
    seen_sop: dict[str, str] = {}
    for item in iter_inputs(args.paths):
        path = str(item.path)
        entry: dict[str, Any] = {"source": path}
        try:
            h = read_header(path)
        except NotAnImageError as exc:
            entry.update(action="skip", reason=str(exc))
        except CalcimgError as exc:
            entry.update(action="error", reason=f"{type(exc).__name__}: {exc}")
        else:
            entry.update(
                modality=h.modality,
                body_part=h.body_part_examined,
                series_description=h.series_description,
                frames=h.n_frames,
                sop_instance_uid=h.sop_instance_uid,
            )
            why = select.reason(h) if select else None
            if why is not None:
                entry.update(action="skip", reason=f"not selected: {why}")
            elif h.sop_instance_uid and h.sop_instance_uid in seen_sop:
                entry.update(
                    action="reuse",
                    reason=f"same SOP Instance UID as {seen_sop[h.sop_instance_uid]}; "
                    "analysed once, result reused",
                )
            else:
                if h.sop_instance_uid:
                    seen_sop[h.sop_instance_uid] = path
                entry.update(action="analyse", reason=None)
        counts[entry["action"]] += 1
        if args.json:
            print(json.dumps(entry), flush=True)
        else:
            print(_line(entry), flush=True)
    print(
        f"{sum(counts.values())} input(s): {counts['analyse']} to analyse, "
        f"{counts['reuse']} repeated, {counts['skip']} skipped, {counts['error']} "
        "unreadable",
        file=sys.stderr if args.json else sys.stdout,
    )
    return 1 if counts["error"] else 0


def _line(e: dict[str, Any]) -> str:
    if e["action"] == "analyse":
        what = ", ".join(
            str(v)
            for v in (e.get("modality"), e.get("body_part"), e.get("series_description"))
            if v
        )
        frames = e.get("frames") or 1
        return f"ANALYSE {e['source']} ({what or 'no metadata'}; {frames} frame(s))"
    reason = str(e["reason"])
    if not reason.startswith(e["source"]):
        reason = f"{e['source']}: {reason}"
    return f"{e['action'].upper():7s} {reason}"
