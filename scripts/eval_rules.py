"""Score patterns and categories against a generated set's truth (issue 5's figures).

For every ``NAME.dcm`` with ``NAME.truth.json`` in DATA_DIR, runs the pipeline with the
truth's clinical context and matches findings to truth lesions (a finding matches a
lesion when its centroid lies in the lesion's bbox grown by ``--tolerance-mm``, or the
lesion's centroid in the finding's bbox; nearest first, one to one). Reports, on matched
findings: pattern accuracy and confusion matrix, per-pattern recall, and how often the
truth's ``expected_category`` is top-1 / in the top 3 (and top-1 within
``acceptable_categories``), overall and per expected category.

``--truth-masks`` skips detection: each truth lesion's mask becomes one detection (its
connected components the particles), so the figures measure describe + rules alone;
``--truth-anatomy`` (with it) also replaces the anatomy stage by the truth's region map
(``anatomy_from_codes`` of the describe branch's ``scripts/describe_data.py``).

Usage::

    PYTHONPATH=src python scripts/eval_rules.py /work/data/val [--truth-masks] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from calcimg.anatomy import map_anatomy
from calcimg.config import load_config
from calcimg.context import ClinicalContext
from calcimg.describe import describe
from calcimg.detect import Detection, Detections
from calcimg.ingest import read_radiograph
from calcimg.pipeline import analyze
from calcimg.result import Finding, Pattern
from calcimg.rules import rank


def _mask_detections(mask: np.ndarray, lesions: list[dict[str, Any]]) -> Detections:
    items = []
    for les in lesions:
        m = (mask == les["id"]).astype(np.uint8)
        n, lab = cv2.connectedComponents(m, connectivity=8)
        if n <= 1:
            continue
        rr, cc = np.nonzero(lab)
        r0, c0, r1, c1 = int(rr.min()), int(cc.min()), int(rr.max()) + 1, int(cc.max()) + 1
        items.append(
            Detection(
                id=int(les["id"]),
                bbox=(r0, c0, r1, c1),
                particles=lab[r0:r1, c0:c1].astype(np.int32),
                confidence=1.0,
            )
        )
    return Detections(items=tuple(items))


def _truth_mask_findings(
    dcm: Path, truth: dict[str, Any], ctx: ClinicalContext | None, truth_anatomy: bool
) -> list:
    """(lesion id, pattern, ranked category names) per truth lesion, detection bypassed."""
    cfg = load_config()
    rg = read_radiograph(dcm, params=cfg.ingest)
    if truth_anatomy:
        from describe_data import anatomy_from_codes  # scripts/ of the describe branch

        codes = cv2.imread(str(dcm.with_name(dcm.name[:-4] + ".anatomy.png")), cv2.IMREAD_UNCHANGED)
        anatomy = anatomy_from_codes(codes, rg.pixel_spacing_mm, truth)
    else:
        anatomy = map_anatomy(rg, params=cfg.anatomy)
    mask = cv2.imread(str(dcm.with_name(dcm.name[:-4] + ".mask.png")), cv2.IMREAD_UNCHANGED)
    dets = _mask_detections(mask, truth["lesions"])
    descs = describe(rg, anatomy, dets, params=cfg.describe)
    a = rank(descs, context=ctx, params=cfg.rules)
    cats = {fa.finding_id: [c.name.value for c in fa.categories] for fa in a.findings}
    return [(d.detection_id, d.pattern.value, cats.get(d.detection_id, [])) for d in descs.items]


def _match(findings: tuple[Finding, ...], lesions: list[dict], tol_px: float) -> dict[int, Finding]:
    pairs = []
    for f in findings:
        fr, fc = f.centroid_rc
        for les in lesions:
            r0, c0, r1, c1 = les["bbox"]
            lr, lc = les["centroid_rc"]
            inside = r0 - tol_px <= fr < r1 + tol_px and c0 - tol_px <= fc < c1 + tol_px
            b = f.bbox
            covers = b[0] <= lr < b[2] and b[1] <= lc < b[3]
            if inside or covers:
                pairs.append((float(np.hypot(fr - lr, fc - lc)), f.id, les["id"], f))
    out: dict[int, Finding] = {}
    used: set[int] = set()
    for _, fid, lid, f in sorted(pairs, key=lambda t: t[0]):
        if fid in used or lid in out:
            continue
        used.add(fid)
        out[lid] = f
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--truth-masks", action="store_true", help="bypass detection")
    ap.add_argument(
        "--truth-anatomy", action="store_true", help="with --truth-masks: truth region map"
    )
    ap.add_argument("--no-context", action="store_true", help="ignore the truth's context")
    ap.add_argument("--tolerance-mm", type=float, default=5.0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="print every miss")
    args = ap.parse_args(argv)

    dcms = sorted(p for p in args.data.glob("*.dcm") if p.with_suffix(".truth.json").is_file())
    if args.limit:
        dcms = dcms[: args.limit]
    if not dcms:
        print(f"{args.data}: no NAME.dcm with NAME.truth.json", file=sys.stderr)
        return 2
    confusion: Counter[tuple[str, str]] = Counter()
    per_cat: dict[str, Counter[str]] = defaultdict(Counter)
    n_lesions = n_matched = 0
    for dcm in dcms:
        truth = json.loads(dcm.with_suffix(".truth.json").read_text())
        ctx = None
        if truth.get("context") and not args.no_context:
            ctx = ClinicalContext.from_dict(truth["context"], where=str(dcm))
        lesions = truth["lesions"]
        n_lesions += len(lesions)
        if args.truth_masks:
            rows = _truth_mask_findings(dcm, truth, ctx, args.truth_anatomy)
        else:
            r = analyze(dcm, context=ctx)
            spacing = r.image.pixel_spacing_mm[0] if r.image else 0.15
            matched = _match(r.findings, lesions, args.tolerance_mm / spacing)
            rows = [
                (lid, f.pattern.value, [c.name.value for c in f.categories])
                for lid, f in matched.items()
            ]
        by_id = {les["id"]: les for les in lesions}
        for lid, pattern, cats in rows:
            les = by_id[lid]
            n_matched += 1
            confusion[(les["pattern"], pattern)] += 1
            exp = les.get("expected_category")
            ok_set = set(les.get("acceptable_categories") or []) | {exp}
            c = per_cat[exp]
            c["n"] += 1
            c["top1"] += bool(cats) and cats[0] == exp
            c["top3"] += exp in cats[:3]
            c["top1_acceptable"] += bool(cats) and cats[0] in ok_set
            if args.verbose and (not cats or cats[0] != exp):
                print(
                    f"  {dcm.name} lesion {lid} {les['pattern']}/{les.get('subtype')}: expected "
                    f"{exp}, got {pattern} -> {cats[:3]}"
                )
    patterns = [p.value for p in Pattern]
    correct = sum(v for (t, p), v in confusion.items() if t == p)
    print(f"{len(dcms)} images, {n_lesions} lesions, {n_matched} matched findings")
    if not n_matched:
        return 1
    print(f"pattern accuracy {correct / n_matched:.3f}")
    print("\nconfusion (rows truth, columns predicted):")
    print(f"| truth \\ predicted | {' | '.join(patterns)} | recall |")
    print("|---|" + "---|" * (len(patterns) + 1))
    for t in patterns:
        row = [confusion[(t, p)] for p in patterns]
        n = sum(row)
        rec = f"{row[patterns.index(t)] / n:.2f}" if n else "-"
        print(f"| {t} | {' | '.join(map(str, row))} | {rec} |")
    tot = Counter[str]()
    for c in per_cat.values():
        tot.update(c)
    print(
        f"\ncategory: top-1 {tot['top1'] / tot['n']:.3f}, top-3 {tot['top3'] / tot['n']:.3f}, "
        f"top-1 acceptable {tot['top1_acceptable'] / tot['n']:.3f} (n={tot['n']})"
    )
    print("| expected category | n | top-1 | top-3 | top-1 acceptable |")
    print("|---|---|---|---|---|")
    for cat, c in sorted(per_cat.items()):
        print(
            f"| {cat} | {c['n']} | {c['top1'] / c['n']:.2f} | {c['top3'] / c['n']:.2f} | "
            f"{c['top1_acceptable'] / c['n']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
