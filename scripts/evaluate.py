"""Score calcimg over a folder of simulated radiographs with truth (NAME.truth.json).

Usage::

    PYTHONPATH=src python scripts/evaluate.py sample_dicoms [--json metrics.json]
    PYTHONPATH=src python scripts/evaluate.py DIR --results results.jsonl
    PYTHONPATH=src python scripts/evaluate.py DIR --set anatomy.grid_mm=0.4

Without ``--results`` it runs ``calcimg.analyze`` on every ``truth["image"]`` with the
truth's clinical context; with it, it reads the given results (matched to truths by the
file name of ``source``); ``--set stage.name=value`` (repeatable) scores a site's
overrides as ``calcimg analyze --set`` would apply them. Prints the report of
:func:`calcimg.evaluation.evaluate` and writes the same metrics as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from calcimg.config import Config, load_config
from calcimg.errors import ConfigError
from calcimg.evaluation import evaluate, format_report


def load_truths(folder: Path) -> list[dict[str, Any]]:
    truths = []
    for p in sorted(folder.glob("*.truth.json")):
        t = json.loads(p.read_text())
        t["_path"] = str(folder / t["image"])
        truths.append(t)
    return truths


def run_pipeline(
    truths: list[dict[str, Any]], write_results: Path | None, config: Config | None = None
) -> dict[str, dict[str, Any]]:
    from calcimg import analyze

    out: dict[str, dict[str, Any]] = {}
    fh = write_results.open("w") if write_results else None
    try:
        for t in truths:
            t0 = time.perf_counter()
            r = analyze(t["_path"], context=t.get("context"), config=config).to_dict()
            out[t["image"]] = r
            print(
                f"  {t['image']}: {r['status']} {len(r.get('findings', []))} findings "
                f"({time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
            )
            if fh:
                fh.write(json.dumps(r) + "\n")
    finally:
        if fh:
            fh.close()
    return out


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[Path(str(r.get("source", ""))).name] = r
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="folder with NAME.dcm + NAME.truth.json")
    p.add_argument("--json", type=Path, default=None, help="write the metrics here")
    p.add_argument(
        "--results", type=Path, default=None, help="score these results (JSONL) instead of running"
    )
    p.add_argument(
        "--save-results", type=Path, default=None, help="write the pipeline's results (JSONL)"
    )
    p.add_argument("--set", action="append", default=[], help="stage.name=value parameter override")
    p.add_argument("--iou", type=float, default=0.1, help="IoU for a hit (default 0.1)")
    p.add_argument("--grow-mm", type=float, default=2.0, help="bbox growth for centroid hits (mm)")
    a = p.parse_args(argv)
    if a.results and a.set:
        p.error("--set applies to a run of the pipeline; --results scores results already made")
    try:  # before any film is read, so that a bad key costs nothing
        config = None if a.results else load_config(overrides=a.set)
    except ConfigError as exc:
        print(f"evaluate.py: {exc}", file=sys.stderr)
        return 2
    truths = load_truths(a.folder)
    if not truths:
        print(f"{a.folder}: no *.truth.json files", file=sys.stderr)
        return 2
    results = read_results(a.results) if a.results else run_pipeline(truths, a.save_results, config)
    pairs = [(t, results.get(t["image"])) for t in truths]
    metrics = evaluate(pairs, iou_min=a.iou, grow_mm=a.grow_mm)
    print(format_report(metrics))
    if a.json:
        a.json.write_text(json.dumps(metrics, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
