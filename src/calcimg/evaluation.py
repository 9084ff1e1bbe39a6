"""Scoring calcimg results against simulated truth (``calcimg.truth/1``).

Pure functions on plain dicts: a truth sidecar (``NAME.truth.json``) and a result in
the contract (``Result.to_dict()`` or one line of ``results.jsonl``). The protocol
follows mammography micro-calcification work (DOMAIN.md, "How detection is scored"):

- a true lesion is *found* when some finding's bbox overlaps the lesion's bbox with
  IoU >= ``iou_min`` (0.1) or the finding's centroid lies inside the lesion's bbox grown
  by ``grow_mm`` (2 mm) on every side;
- a finding that finds no lesion is a false positive;
- pattern and category agreement are measured on the found lesions, each paired with
  its best finding (highest IoU, then centroid inside, then highest confidence);
- FROC points sweep the finding confidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "PATTERNS",
    "ImageScore",
    "bbox_iou",
    "candidate_as_finding",
    "evaluate",
    "finding_hits_lesion",
    "format_report",
    "froc_points",
    "score_image",
]

PATTERNS = ("amorphous", "finely_speckled", "globular_periarticular", "vascular", "chondral_line")

Box = Sequence[float]


def bbox_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (row_min, col_min, row_max, col_max) boxes, max exclusive."""
    r0, c0 = max(a[0], b[0]), max(a[1], b[1])
    r1, c1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, r1 - r0) * max(0.0, c1 - c0)
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _centroid_inside(
    finding: Mapping[str, Any], lesion: Mapping[str, Any], grow_px: tuple[float, float]
) -> bool:
    r, c = finding["centroid_rc"]
    r0, c0, r1, c1 = lesion["bbox"]
    return (r0 - grow_px[0]) <= r < (r1 + grow_px[0]) and (c0 - grow_px[1]) <= c < (c1 + grow_px[1])


def candidate_as_finding(bbox: Sequence[int], particles: np.ndarray) -> dict[str, Any]:
    """A detector candidate (film-pixel bbox, bbox-sized particle labels) in the
    ``bbox`` / ``centroid_rc`` form :func:`finding_hits_lesion` scores."""
    ys, xs = np.nonzero(particles)
    return {"bbox": list(bbox), "centroid_rc": [bbox[0] + ys.mean(), bbox[1] + xs.mean()]}


def finding_hits_lesion(
    finding: Mapping[str, Any],
    lesion: Mapping[str, Any],
    spacing_mm: Sequence[float],
    *,
    iou_min: float = 0.1,
    grow_mm: float = 2.0,
) -> bool:
    """Whether ``finding`` finds ``lesion`` (IoU >= iou_min or centroid in the grown bbox)."""
    grow = (grow_mm / spacing_mm[0], grow_mm / spacing_mm[1])
    return bbox_iou(finding["bbox"], lesion["bbox"]) >= iou_min or _centroid_inside(
        finding, lesion, grow
    )


@dataclass(slots=True)
class ImageScore:
    """Per-image matching: which lesions were found, by which finding, and the FPs."""

    image: str
    truth_flag: bool
    result_flag: bool
    status: str
    lesions: list[dict[str, Any]]
    found: list[bool]
    best_finding: list[dict[str, Any] | None]
    fp_findings: list[dict[str, Any]]
    findings: list[dict[str, Any]] = field(default_factory=list)
    hits: list[list[int]] = field(default_factory=list)
    """For each finding, the indices of the lesions it finds."""


def score_image(
    truth: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    *,
    iou_min: float = 0.1,
    grow_mm: float = 2.0,
) -> ImageScore:
    """Match one result's findings to one truth's lesions.

    A missing result or one with status other than ``"ok"`` has no findings and flag false.
    """
    spacing = truth["pixel_spacing_mm"]
    lesions = list(truth.get("lesions", []))
    ok = result is not None and result.get("status") == "ok"
    findings = list(result.get("findings", [])) if ok and result is not None else []
    hits: list[list[int]] = []
    for f in findings:
        hits.append(
            [
                i
                for i, les in enumerate(lesions)
                if finding_hits_lesion(f, les, spacing, iou_min=iou_min, grow_mm=grow_mm)
            ]
        )
    found = [False] * len(lesions)
    best: list[dict[str, Any] | None] = [None] * len(lesions)
    best_key: list[tuple[float, int, float]] = [(-1.0, 0, 0.0)] * len(lesions)
    grow = (grow_mm / spacing[0], grow_mm / spacing[1])
    for f, h in zip(findings, hits, strict=True):
        for i in h:
            found[i] = True
            key = (
                bbox_iou(f["bbox"], lesions[i]["bbox"]),
                int(_centroid_inside(f, lesions[i], grow)),
                float(f.get("confidence", 0.0)),
            )
            if key > best_key[i]:
                best_key[i] = key
                best[i] = dict(f)
    fps = [dict(f) for f, h in zip(findings, hits, strict=True) if not h]
    return ImageScore(
        image=str(truth.get("image")),
        truth_flag=bool(truth.get("flag", bool(lesions))),
        result_flag=bool(result.get("flag", False)) if ok and result is not None else False,
        status=str(result.get("status")) if result is not None else "missing",
        lesions=lesions,
        found=found,
        best_finding=best,
        fp_findings=fps,
        findings=[dict(f) for f in findings],
        hits=hits,
    )


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _category_names(finding: Mapping[str, Any]) -> list[str]:
    cats = list(finding.get("categories") or [])
    cats.sort(key=lambda c: -float(c.get("score", 0.0)))
    return [str(c["name"]) for c in cats]


def froc_points(scores: Sequence[ImageScore]) -> list[dict[str, float]]:
    """Lesion sensitivity against false-positive findings per image, sweeping confidence.

    One point per distinct finding confidence (descending): a finding counts when its
    confidence is >= the threshold. Empty when there are no findings.
    """
    n_images = len(scores)
    n_lesions = sum(len(s.lesions) for s in scores)
    confs = sorted(
        {float(f.get("confidence", 0.0)) for s in scores for f in s.findings}, reverse=True
    )
    points = []
    for t in confs:
        found = 0
        fp = 0
        for s in scores:
            hit = set()
            for f, h in zip(s.findings, s.hits, strict=True):
                if float(f.get("confidence", 0.0)) >= t:
                    if h:
                        hit.update(h)
                    else:
                        fp += 1
            found += len(hit)
        points.append(
            {
                "threshold": t,
                "sensitivity": found / n_lesions if n_lesions else 0.0,
                "fp_per_image": fp / n_images if n_images else 0.0,
            }
        )
    return points


def evaluate(
    pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]],
    *,
    iou_min: float = 0.1,
    grow_mm: float = 2.0,
) -> dict[str, Any]:
    """Score (truth, result) pairs; returns the metrics as a JSON-ready dict.

    Keys: ``n_images``, ``n_errors`` (results missing or not ok), ``image`` (tp, fp, fn,
    tn, sensitivity, specificity of ``flag``), ``lesion`` (n, found, sensitivity,
    ``per_pattern``, and ``per_conspicuity``: ``subtle`` and ``conspicuous`` for the
    lesions whose truth carries the simulator's ``subtle`` flag, empty when none does),
    ``fp_findings``, ``fp_per_image``, ``pattern`` (n_matched, accuracy,
    confusion[truth][predicted]), ``category`` (n_matched, top1, top3, top1_acceptable,
    as fractions of found lesions), ``froc`` (points), ``per_image``.
    Fractions with an empty denominator are None.
    """
    scores = [score_image(t, r, iou_min=iou_min, grow_mm=grow_mm) for t, r in pairs]
    tp = sum(s.truth_flag and s.result_flag for s in scores)
    fn = sum(s.truth_flag and not s.result_flag for s in scores)
    fp = sum((not s.truth_flag) and s.result_flag for s in scores)
    tn = sum((not s.truth_flag) and not s.result_flag for s in scores)
    per_pattern: dict[str, dict[str, Any]] = {}
    per_conspicuity: dict[str, dict[str, Any]] = {}
    n_les = n_found = 0
    confusion: dict[str, dict[str, int]] = {}
    n_match = pat_ok = top1 = top3 = top1_acc = 0
    for s in scores:
        for les, fnd, best in zip(s.lesions, s.found, s.best_finding, strict=True):
            p = str(les["pattern"])
            d = per_pattern.setdefault(p, {"n": 0, "found": 0})
            d["n"] += 1
            n_les += 1
            c = None
            if "subtle" in les:  # the simulator's faint lesions (DOMAIN's subtle deposits)
                c = per_conspicuity.setdefault(
                    "subtle" if les["subtle"] else "conspicuous", {"n": 0, "found": 0}
                )
                c["n"] += 1
            if not fnd or best is None:
                continue
            d["found"] += 1
            if c is not None:
                c["found"] += 1
            n_found += 1
            n_match += 1
            pred = str(best.get("pattern"))
            confusion.setdefault(p, {})
            confusion[p][pred] = confusion[p].get(pred, 0) + 1
            pat_ok += int(pred == p)
            names = _category_names(best)
            exp = les.get("expected_category")
            acc = set(les.get("acceptable_categories") or [exp])
            top1 += int(bool(names) and names[0] == exp)
            top3 += int(exp in names[:3])
            top1_acc += int(bool(names) and names[0] in acc)
    for d in (*per_pattern.values(), *per_conspicuity.values()):
        d["sensitivity"] = _ratio(d["found"], d["n"])
    n_fp = sum(len(s.fp_findings) for s in scores)
    return {
        "n_images": len(scores),
        "n_errors": sum(s.status != "ok" for s in scores),
        "image": {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp),
        },
        "lesion": {
            "n": n_les,
            "found": n_found,
            "sensitivity": _ratio(n_found, n_les),
            "per_pattern": dict(sorted(per_pattern.items())),
            "per_conspicuity": dict(sorted(per_conspicuity.items())),
        },
        "fp_findings": n_fp,
        "fp_per_image": _ratio(n_fp, len(scores)),
        "pattern": {
            "n_matched": n_match,
            "accuracy": _ratio(pat_ok, n_match),
            "confusion": confusion,
        },
        "category": {
            "n_matched": n_match,
            "top1": _ratio(top1, n_match),
            "top3": _ratio(top3, n_match),
            "top1_acceptable": _ratio(top1_acc, n_match),
        },
        "froc": froc_points(scores),
        "per_image": [
            {
                "image": s.image,
                "status": s.status,
                "truth_flag": s.truth_flag,
                "result_flag": s.result_flag,
                "n_lesions": len(s.lesions),
                "n_found": sum(s.found),
                "n_findings": len(s.findings),
                "n_fp": len(s.fp_findings),
            }
            for s in scores
        ],
    }


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def format_report(m: Mapping[str, Any]) -> str:
    """A plain-text report of :func:`evaluate`'s metrics."""
    im = m["image"]
    le = m["lesion"]
    lines = [
        f"images: {m['n_images']} (not ok: {m['n_errors']})",
        f"image flag: sensitivity {_fmt(im['sensitivity'])} ({im['tp']}/{im['tp'] + im['fn']}), "
        f"specificity {_fmt(im['specificity'])} ({im['tn']}/{im['tn'] + im['fp']})",
        f"lesions: sensitivity {_fmt(le['sensitivity'])} ({le['found']}/{le['n']})",
    ]
    for p, d in le["per_pattern"].items():
        lines.append(f"  {p:24s} {_fmt(d['sensitivity'])} ({d['found']}/{d['n']})")
    if le.get("per_conspicuity"):
        lines.append(
            "  by the truth's subtle flag: "
            + ", ".join(
                f"{k} {_fmt(d['sensitivity'])} ({d['found']}/{d['n']})"
                for k, d in le["per_conspicuity"].items()
            )
        )
    lines.append(
        f"false-positive findings: {m['fp_findings']} ({_fmt(m['fp_per_image'])} per image)"
    )
    pa = m["pattern"]
    lines.append(f"pattern accuracy on matched: {_fmt(pa['accuracy'])} (n={pa['n_matched']})")
    if pa["confusion"]:
        preds = sorted({p for row in pa["confusion"].values() for p in row})
        lines.append("  confusion (rows truth, columns predicted): " + ", ".join(preds))
        for t, row in sorted(pa["confusion"].items()):
            lines.append(f"  {t:24s} " + " ".join(f"{row.get(p, 0):4d}" for p in preds))
    ca = m["category"]
    lines.append(
        f"category on matched: top-1 {_fmt(ca['top1'])}, top-3 {_fmt(ca['top3'])}, "
        f"top-1 within acceptable {_fmt(ca['top1_acceptable'])} (n={ca['n_matched']})"
    )
    froc = m["froc"]
    if froc:
        lines.append("FROC (threshold: sensitivity @ FP/image):")
        step = max(1, len(froc) // 10)
        for pt in froc[::step] + ([froc[-1]] if (len(froc) - 1) % step else []):
            lines.append(
                f"  {pt['threshold']:.3f}: {pt['sensitivity']:.3f} @ {pt['fp_per_image']:.3f}"
            )
    else:
        lines.append("FROC: no findings")
    return "\n".join(lines)
