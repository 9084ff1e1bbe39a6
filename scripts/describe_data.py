"""Truth-driven inputs for developing ``calcimg.describe`` on the generated sets.

Reads one generated image (``NAME.dcm`` with ``NAME.mask.png``, ``NAME.anatomy.png`` and
``NAME.truth.json``) and builds what the describer needs without the detector and the
anatomy stage: an :class:`~calcimg.anatomy.AnatomyMap` from the anatomy codes, and one
:class:`~calcimg.detect.Detection` per truth lesion (its connected components are the
particles). ``perturb`` imitates a detector's less clean masks.

Used by ``scripts/eval_describe.py`` and ``scripts/train_describe.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from calcimg.anatomy import AnatomyMap, Joint, Region
from calcimg.detect import Detection, Detections
from calcimg.ingest import read_radiograph
from calcimg.radiograph import Radiograph

PERTURBATIONS = ("none", "dilate", "erode", "drop_small", "threshold")
"""Mask variants: as drawn, dilated or eroded by one pixel, particles < 0.3 mm dropped,
and re-segmented from the image at half the lesion's contrast (as a detector would: thinner,
more fragmented masks)."""


@dataclass(frozen=True)
class Case:
    name: str
    radiograph: Radiograph
    anatomy: AnatomyMap
    lesion_mask: np.ndarray
    truth: dict[str, Any]


def _read_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f"{path}: cannot read PNG")
    return img


def anatomy_from_codes(
    labels: np.ndarray, spacing: tuple[float, float], truth: dict[str, Any]
) -> AnatomyMap:
    """An AnatomyMap from region codes: cortex = 1.5 mm band inside bone edges."""
    labels = labels.astype(np.uint8)
    bone = labels == np.uint8(Region.BONE)
    mean_sp = float(np.sqrt(spacing[0] * spacing[1]))
    k = max(1, round(1.5 / mean_sp))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    cortex = bone & ~cv2.erode(bone.astype(np.uint8), kernel).astype(bool)
    if bone.any():
        dist = cv2.distanceTransform((~bone).astype(np.uint8), cv2.DIST_L2, 5) * mean_sp
    else:
        dist = np.full(labels.shape, np.inf, np.float32)
    n, jl = cv2.connectedComponents((labels == np.uint8(Region.JOINT_SPACE)).astype(np.uint8))
    joints = []
    for lab in range(1, n):
        rr, cc = np.nonzero(jl == lab)
        bbox = (int(rr.min()), int(cc.min()), int(rr.max()) + 1, int(cc.max()) + 1)
        name = None
        for j in truth.get("joints", []):
            b = j["bbox"]
            if b[0] <= rr.mean() < b[2] and b[1] <= cc.mean() < b[3]:
                name = j["name"]
        joints.append(
            Joint(label=lab, name=name, centroid_rc=(float(rr.mean()), float(cc.mean())), bbox=bbox)
        )
    return AnatomyMap.from_arrays(
        labels=labels,
        cortex=cortex,
        joint_labels=jl.astype(np.int32),
        joints=tuple(joints),
        confounders=(),
        distance_to_bone_mm=dist.astype(np.float32),
        body_part=truth.get("anatomy"),
    )


def load_case(dcm: Path) -> Case:
    stem = dcm.name[: -len(".dcm")]
    truth = json.loads((dcm.parent / f"{stem}.truth.json").read_text())
    rg = read_radiograph(dcm)
    labels = _read_png(dcm.parent / f"{stem}.anatomy.png")
    mask = _read_png(dcm.parent / f"{stem}.mask.png")
    return Case(stem, rg, anatomy_from_codes(labels, rg.pixel_spacing_mm, truth), mask, truth)


def iter_cases(folder: Path) -> Iterator[Case]:
    for dcm in sorted(folder.glob("*.dcm")):
        if (dcm.parent / f"{dcm.name[:-4]}.truth.json").is_file():
            yield load_case(dcm)


def _rethreshold(pixels: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Pixels of the (2-pixel dilated) lesion above half its contrast over a ring outside."""
    rr, cc = np.nonzero(m)
    if rr.size == 0:
        return m
    pad = 12
    r0, c0 = max(rr.min() - pad, 0), max(cc.min() - pad, 0)
    r1, c1 = min(rr.max() + pad + 1, m.shape[0]), min(cc.max() + pad + 1, m.shape[1])
    sub = m[r0:r1, c0:c1]
    img = cv2.GaussianBlur(pixels[r0:r1, c0:c1].astype(np.float32), (0, 0), 1.0)
    grown = cv2.dilate(sub, np.ones((5, 5), np.uint8)).astype(bool)
    ring = cv2.dilate(sub, np.ones((21, 21), np.uint8)).astype(bool) & ~cv2.dilate(
        sub, np.ones((9, 9), np.uint8)
    ).astype(bool)
    bg = float(np.median(img[ring])) if ring.any() else float(np.median(img))
    peak = float(np.percentile(img[sub.astype(bool)], 95))
    out = np.zeros_like(m)
    out[r0:r1, c0:c1] = (grown & (img - bg > 0.5 * (peak - bg))).astype(m.dtype)
    return out


def detected_detections(case: Case) -> tuple[AnatomyMap, Detections, list[dict]]:
    """What the pipeline hands to describe: calcimg's own anatomy map and every detector
    candidate (before the confidence cut) that finds a truth lesion, paired with it.

    Returns (anatomy map, detections, the lesion each detection finds).
    """
    from calcimg.anatomy import map_anatomy
    from calcimg.config import load_config
    from calcimg.detect import candidates
    from calcimg.evaluation import candidate_as_finding, finding_hits_lesion

    cfg = load_config()
    amap = map_anatomy(case.radiograph, params=cfg.anatomy)
    found, _ = candidates(case.radiograph, amap, cfg.detect)
    items, lesions = [], []
    for bbox, particles, _feats in found:
        f = candidate_as_finding(bbox, particles)
        hit = [
            les
            for les in case.truth["lesions"]
            if finding_hits_lesion(f, les, case.radiograph.pixel_spacing_mm)
        ]
        if len(hit) != 1:  # a candidate spanning two lesions has no single pattern
            continue
        items.append(Detection(id=len(items) + 1, bbox=bbox, particles=particles, confidence=1.0))
        lesions.append(hit[0])
    return amap, Detections(items=tuple(items)), lesions


def truth_detections(case: Case, perturbation: str = "none") -> tuple[Detections, list[dict]]:
    """One Detection per truth lesion (same order as the returned lesion dicts)."""
    items = []
    lesions = []
    sp = case.radiograph.pixel_spacing_mm
    min_area_px = np.pi * (0.3 / 2) ** 2 / (sp[0] * sp[1])
    for les in case.truth["lesions"]:
        m = (case.lesion_mask == les["id"]).astype(np.uint8)
        if perturbation == "dilate":
            m = cv2.dilate(m, np.ones((3, 3), np.uint8))
        elif perturbation == "erode":
            m = cv2.erode(m, np.ones((3, 3), np.uint8))
        elif perturbation == "threshold":
            m = _rethreshold(case.radiograph.pixels, m)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        if perturbation == "drop_small":
            keep = np.zeros(n, bool)
            keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area_px
            remap = np.zeros(n, np.int32)
            remap[keep] = np.arange(1, keep.sum() + 1)
            lab = remap[lab]
        if not (lab > 0).any():
            continue
        rr, cc = np.nonzero(lab)
        r0, c0, r1, c1 = rr.min(), cc.min(), rr.max() + 1, cc.max() + 1
        items.append(
            Detection(
                id=len(items) + 1,
                bbox=(int(r0), int(c0), int(r1), int(c1)),
                particles=lab[r0:r1, c0:c1].astype(np.int32),
                confidence=1.0,
            )
        )
        lesions.append(les)
    return Detections(items=tuple(items)), lesions
