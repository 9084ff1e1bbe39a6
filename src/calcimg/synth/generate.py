"""One simulated radiograph with exact truth, deterministic for a seed.

:func:`generate` picks an anatomy and a clinical scenario (DOMAIN.md categories), draws
the scene, the lesions and the confounders, exposes the film and returns a
:class:`Sample`; :func:`write_sample` writes ``NAME.dcm``, ``NAME.truth.json``,
``NAME.mask.png`` (uint16 lesion ids) and ``NAME.anatomy.png`` (uint8 region codes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from calcimg.synth import confounders as cf
from calcimg.synth import lesions as ls
from calcimg.synth.anatomies import ANATOMIES, build_template
from calcimg.synth.dicomout import TRANSFER_SYNTAXES, DicomOptions, write_dicom
from calcimg.synth.geometry import Placement, bbox_of
from calcimg.synth.physics import expose
from calcimg.synth.scene import FOREIGN, Scene, render_scene

__all__ = [
    "HELD_OUT_SCENARIOS",
    "SCENARIOS",
    "TRUTH_SCHEMA",
    "Sample",
    "generate",
    "write_sample",
]

TRUTH_SCHEMA = "calcimg.truth/1"

# scenario -> (weight, anatomies it can appear on)
SCENARIOS: dict[str, tuple[float, tuple[str, ...]]] = {
    "negative": (0.25, tuple(ANATOMIES)),
    "dystrophic": (
        0.13,
        (
            "knee_ap",
            "knee_lat",
            "elbow_ap",
            "shoulder_ap",
            "leg_ap",
            "ankle_lat",
            "hand_pa",
            "pelvis_ap",
        ),
    ),
    "metastatic": (0.09, ("knee_ap", "shoulder_ap", "elbow_ap", "hand_pa", "leg_ap", "pelvis_ap")),
    "tumoral_calcinosis": (0.07, ("shoulder_ap", "pelvis_ap", "elbow_ap")),
    "synovial_chondromatosis": (
        0.07,
        ("knee_ap", "knee_lat", "knee_ap", "elbow_ap", "pelvis_ap", "shoulder_ap"),
    ),
    "chondrocalcinosis_cppd": (0.09, ("knee_ap", "knee_ap", "hand_pa", "pelvis_ap", "knee_lat")),
    "vascular_arterial": (
        0.10,
        ("leg_ap", "knee_ap", "ankle_lat", "hand_pa", "knee_lat", "pelvis_ap"),
    ),
    "phlebolith": (0.06, ("pelvis_ap", "pelvis_ap", "leg_ap")),
    "calcinosis_circumscripta": (0.05, ("hand_pa",)),
    "calcinosis_universalis": (0.04, ("leg_ap", "elbow_ap", "knee_ap", "shoulder_ap")),
    "iatrogenic": (0.03, ("hand_pa", "elbow_ap", "ankle_lat")),
}

# Held-out anatomies (anatomies.HELD_OUT_ANATOMIES, one entry each) are never drawn
# from SCENARIOS: adding them there would change the draws of every existing seed. When
# one is forced without a scenario, the scenario is drawn with the SCENARIOS weights
# among these only (DOMAIN.md):
# - foot_dp: vascular (medial arterial calcification of the pedal arteries with diabetes
#   and dialysis), calcinosis circumscripta (limited to an extremity: the toe pulps),
#   iatrogenic (heel sticks), dystrophic and metastatic (periarticular deposits in renal
#   failure); no large joint for tumoral calcinosis or chondromatosis, and CPPD's sites
#   (knee, wrist, symphysis) are not in the field.
# - forearm_ap: vascular (radial and ulnar arteries in dialysis), calcinosis universalis
#   (sheet-like along the fascial planes of the limbs in dermatomyositis), iatrogenic
#   (calcium extravasated from an IV line), dystrophic, metastatic; the elbow and wrist
#   are only partly in the field, so no joint-centred scenario.
# - chest_pa: dystrophic, metastatic (metastatic calcification in renal failure),
#   vascular (aortic, axillary and chest-wall arteries), calcinosis universalis (chest
#   wall and axilla); the shoulders sit at the film's corners, cut by the edge.
HELD_OUT_SCENARIOS: dict[str, tuple[str, ...]] = {
    "foot_dp": (
        "negative",
        "dystrophic",
        "metastatic",
        "vascular_arterial",
        "calcinosis_circumscripta",
        "iatrogenic",
    ),
    "forearm_ap": (
        "negative",
        "dystrophic",
        "metastatic",
        "vascular_arterial",
        "calcinosis_universalis",
        "iatrogenic",
    ),
    "chest_pa": (
        "negative",
        "dystrophic",
        "metastatic",
        "vascular_arterial",
        "calcinosis_universalis",
    ),
}

NORMAL_LABS = {
    "serum_calcium_mg_dl": (8.8, 10.1),
    "serum_phosphate_mg_dl": (2.8, 4.4),
    "albumin_g_dl": (3.6, 4.8),
    "alkaline_phosphatase_u_l": (50, 120),
}


@dataclass(slots=True)
class Sample:
    seed: int
    anatomy: str
    pixels: np.ndarray  # uint16, higher = more attenuation
    bits: int
    spacing_mm: float
    labels: np.ndarray  # uint8 region codes
    lesion_mask: np.ndarray  # uint16 lesion ids
    truth: dict[str, Any]
    options: DicomOptions
    body_part: str
    view: str
    laterality: str | None
    scenario: str
    extra: dict[str, Any] = field(default_factory=dict)


def _labs(rng: np.random.Generator, **over: tuple[float, float]) -> dict[str, float]:
    out = {}
    for k, (a, b) in {**NORMAL_LABS, **over}.items():
        out[k] = round(float(rng.uniform(a, b)), 1 if "alkaline" not in k else 0)
    return out


def _context(scenario: str, rng: np.random.Generator) -> dict[str, Any] | None:
    base: dict[str, Any] = {
        "renal_failure": False,
        "dialysis": False,
        "connective_tissue_disease": None,
        "trauma": False,
        "calcium_or_phosphate_administration": False,
        "age_years": int(rng.integers(25, 85)),
    }
    if scenario == "negative":
        return None if rng.random() < 0.3 else {**base, **_labs(rng)}
    if scenario == "dystrophic":
        if rng.random() < 0.2:
            return None
        return {**base, **_labs(rng), "trauma": bool(rng.random() < 0.5)}
    if scenario == "metastatic":
        # Ca x P > 70 mg2/dL2 with renal failure (DOMAIN.md: metastatic)
        ca, p = float(rng.uniform(9.8, 11.8)), 0.0
        p = max(float(rng.uniform(6.5, 9.5)), 72.0 / ca)
        ctx = {
            **base,
            **_labs(rng),
            "serum_calcium_mg_dl": round(ca, 1),
            "serum_phosphate_mg_dl": round(p + 0.1, 1),
        }
        ctx["renal_failure"] = True
        ctx["dialysis"] = bool(rng.random() < 0.6)
        return ctx
    if scenario == "tumoral_calcinosis":
        return {
            **base,
            **_labs(rng, serum_phosphate_mg_dl=(3.5, 5.8)),
            "age_years": int(rng.integers(10, 30)),
        }
    if scenario == "synovial_chondromatosis":
        return (
            None
            if rng.random() < 0.25
            else {**base, **_labs(rng), "age_years": int(rng.integers(25, 60))}
        )
    if scenario == "chondrocalcinosis_cppd":
        return (
            None
            if rng.random() < 0.25
            else {**base, **_labs(rng), "age_years": int(rng.integers(60, 90))}
        )
    if scenario == "vascular_arterial":
        if rng.random() < 0.2:
            return None
        dial = bool(rng.random() < 0.4)
        ctx = {
            **base,
            **_labs(rng),
            "age_years": int(rng.integers(50, 88)),
            "renal_failure": dial,
            "dialysis": dial,
        }
        return ctx
    if scenario == "phlebolith":
        return None if rng.random() < 0.3 else {**base, **_labs(rng)}
    if scenario == "calcinosis_circumscripta":
        return {
            **base,
            **_labs(rng),
            "connective_tissue_disease": "scleroderma",
            "age_years": int(rng.integers(35, 75)),
        }
    if scenario == "calcinosis_universalis":
        return {
            **base,
            **_labs(rng),
            "connective_tissue_disease": "dermatomyositis",
            "age_years": int(rng.integers(8, 60)),
        }
    if scenario == "iatrogenic":
        return {**base, **_labs(rng), "calcium_or_phosphate_administration": True}
    raise ValueError(f"unknown scenario {scenario!r}")


def _categories(scenario: str, d: ls.Drawn, ctx: dict[str, Any] | None) -> tuple[str, list[str]]:
    """Expected and acceptable categories of one lesion given the context (DOMAIN.md)."""
    dialysis = bool(ctx and ctx.get("dialysis"))
    renal = bool(ctx and ctx.get("renal_failure"))
    if d.subtype == "phlebolith":
        return "phlebolith", ["phlebolith"]
    if d.subtype == "tram_track":
        acc = ["vascular_arterial"] + (["calciphylaxis", "metastatic"] if dialysis or renal else [])
        return "vascular_arterial", acc
    if d.pattern == "chondral_line":
        return "chondrocalcinosis_cppd", ["chondrocalcinosis_cppd"]
    if d.subtype == "ring_and_arc":
        return "synovial_chondromatosis", ["synovial_chondromatosis"]
    if d.subtype == "mass":
        if renal:
            return "metastatic", ["metastatic", "tumoral_calcinosis"]
        return "tumoral_calcinosis", ["tumoral_calcinosis", "metastatic"]
    if scenario == "metastatic":
        return "metastatic", ["metastatic", "calciphylaxis"] if dialysis else ["metastatic"]
    if d.pattern == "finely_speckled":
        return "metastatic", ["metastatic", "dystrophic"]
    if scenario == "calcinosis_circumscripta":
        return "calcinosis_circumscripta", ["calcinosis_circumscripta", "dystrophic"]
    if scenario == "calcinosis_universalis":
        return "calcinosis_universalis", ["calcinosis_universalis", "dystrophic"]
    if scenario == "iatrogenic":
        return "iatrogenic", ["iatrogenic", "dystrophic"]
    return "dystrophic", ["dystrophic"] if ctx is not None else ["dystrophic", "metastatic"]


def _peak(
    scene: Scene, rng: np.random.Generator, lo: float = 0.25, hi: float = 0.65
) -> tuple[float, bool]:
    """Lesion excess attenuation relative to the film's cortical bone; 25% subtle."""
    if rng.random() < 0.25:
        return scene.cortex_ref * float(rng.uniform(0.09, 0.18)), True
    return scene.cortex_ref * float(rng.uniform(lo, hi)), False


def _draw_lesions(
    scenario: str, scene: Scene, rng: np.random.Generator, d_bone: np.ndarray
) -> list[tuple[ls.Drawn, bool]]:
    out: list[tuple[ls.Drawn, bool]] = []

    def add(d: ls.Drawn | None, subtle: bool) -> None:
        if d is None:
            return
        out.append((d, subtle))
        r0, c0 = d.origin
        h, w = d.mask.shape
        assert scene.occupied is not None
        grown = (
            cv2.dilate(
                d.mask.astype(np.uint8), np.ones((2 * int(3 / scene.spacing_mm) + 1,) * 2, np.uint8)
            )
            > 0
        )
        scene.occupied[r0 : r0 + h, c0 : c0 + w] |= grown

    joints = scene.joints
    if scenario in ("dystrophic", "iatrogenic"):
        for _ in range(1 if rng.random() < 0.75 else 2):
            pk, sub = _peak(scene, rng)
            add(ls.clump(scene, rng, d_bone, size_mm=float(rng.uniform(5, 30)), peak=pk), sub)
    elif scenario == "metastatic":
        for _ in range(int(rng.integers(1, 4))):
            pk, sub = _peak(scene, rng)
            if rng.random() < 0.6:
                add(
                    ls.speckled_field(
                        scene, rng, d_bone, region_mm=float(rng.uniform(20, 60)), peak=pk * 1.3
                    ),
                    sub,
                )
            else:
                add(ls.clump(scene, rng, d_bone, size_mm=float(rng.uniform(8, 30)), peak=pk), sub)
        if rng.random() < 0.3:
            pk, sub = _peak(scene, rng)
            add(
                ls.tram_track(scene, rng, d_bone, length_mm=float(rng.uniform(30, 150)), peak=pk),
                sub,
            )
    elif scenario == "tumoral_calcinosis":
        cands = [j for j in joints if j.name in scene.template.extensor_joints] or joints
        if cands:
            j = cands[int(rng.integers(len(cands)))]
            pk, _sub = _peak(scene, rng, 0.35, 0.7)
            add(
                ls.globular_mass(
                    scene, rng, d_bone, j, size_mm=float(rng.uniform(25, 80)), peak=pk
                ),
                False,
            )
    elif scenario == "synovial_chondromatosis":
        big = [j for j in joints if j.name in ("knee", "hip", "elbow", "shoulder")] or joints
        if big:
            j = big[int(rng.integers(len(big)))]
            pk, sub = _peak(scene, rng, 0.3, 0.6)
            add(ls.ring_and_arc_bodies(scene, rng, d_bone, j, peak=pk), sub)
    elif scenario == "chondrocalcinosis_cppd":
        pref = {
            "knee_ap": ("knee",),
            "knee_lat": ("knee",),
            "hand_pa": ("wrist",),
            "pelvis_ap": ("symphysis_pubis", "hip"),
        }
        names = pref.get(scene.template.anatomy, ())
        cands = [j for j in joints if j.name in names] or joints
        rng.shuffle(cands)
        for j in cands[: 1 if rng.random() < 0.6 else 2]:
            sub_t = {
                "knee": "meniscal" if rng.random() < 0.5 else "hyaline",
                "wrist": "tfcc",
                "symphysis_pubis": "symphysis",
            }.get(j.name, "hyaline")
            pk, sub = _peak(scene, rng, 0.3, 0.7)
            add(
                ls.chondral_line(
                    scene, rng, j, length_mm=float(rng.uniform(10, 40)), peak=pk, subtype=sub_t
                ),
                sub,
            )
    elif scenario == "vascular_arterial":
        for _ in range(1 if rng.random() < 0.6 else 2):
            pk, sub = _peak(scene, rng, 0.3, 0.7)
            add(
                ls.tram_track(scene, rng, d_bone, length_mm=float(rng.uniform(30, 150)), peak=pk),
                sub,
            )
    elif scenario == "phlebolith":
        zone = None
        if scene.template.phlebolith_zone:
            from calcimg.synth.geometry import draw_prims

            z = np.zeros(scene.shape, np.uint8)
            draw_prims(z, scene.template.phlebolith_zone, scene.placement, 1)
            zone = z > 0
        for _ in range(int(rng.integers(1, 6))):
            pk, sub = _peak(scene, rng, 0.35, 0.8)
            add(ls.phlebolith(scene, rng, d_bone, zone=zone, peak=pk), sub)
    elif scenario == "calcinosis_circumscripta":
        tips = list(scene.template.fingertips)
        rng.shuffle(tips)
        for tip in tips[: int(rng.integers(1, 4))]:
            cr, cc = scene.placement.px(tip)
            pk, sub = _peak(scene, rng, 0.4, 0.9)
            add(
                ls.clump(
                    scene,
                    rng,
                    d_bone,
                    size_mm=float(rng.uniform(2.5, 4.5)),
                    peak=pk,
                    center=(int(cr), int(cc)),
                    subtype="fingertip",
                ),
                sub,
            )
        if not out:
            pk, sub = _peak(scene, rng)
            add(ls.clump(scene, rng, d_bone, size_mm=float(rng.uniform(5, 12)), peak=pk), sub)
    elif scenario == "calcinosis_universalis":
        for _ in range(int(rng.integers(1, 3))):
            pk, sub = _peak(scene, rng, 0.3, 0.6)
            add(ls.sheet(scene, rng, d_bone, length_mm=float(rng.uniform(30, 80)), peak=pk), sub)
    return out


def _spacing(fov: tuple[float, float], rng: np.random.Generator, max_side_px: int) -> float:
    lo = max(0.1, max(fov) / max_side_px)
    if lo > 0.2 and max_side_px >= 1200:
        lo = 0.2  # keep radiograph spacings (0.1-0.2 mm); the film is then larger
    hi = max(0.2, lo)
    return round(float(rng.uniform(lo, hi)), 3)


def generate(
    seed: int,
    *,
    max_side_px: int = 2400,
    anatomy: str | None = None,
    scenario: str | None = None,
    transfer_syntax: str | None = None,
    force: Sequence[str] = (),
    bits: int | None = None,
    fov_scale: float = 1.0,
) -> Sample:
    """Generate the sample of ``seed`` (same seed, same arguments -> identical sample).

    Parameters
    ----------
    seed : int
    max_side_px : int
        Longest image side; small values (tests) raise the spacing above 0.2 mm.
    anatomy, scenario, transfer_syntax : str, optional
        Force a choice (else drawn from the seed). The held-out anatomies
        (``foot_dp``, ``forearm_ap``, ``chest_pa``) are only generated when forced;
        their scenario is then drawn among :data:`HELD_OUT_SCENARIOS`.
    force : sequence of str
        Confounder kinds to include for certain ("marker", "text", "collimation",
        "skin_fold", "sesamoid", "bone_island", "osteophyte",
        "heterotopic_ossification", "metal" or "metal:KIND" with KIND one of pin,
        clips, button, ring, bracelet, zip).
    bits : int, optional
        Bits stored (12-14; else drawn from the seed).
    fov_scale : float
        Shrinks the field of view around the anatomy's centre (smaller files).
    """
    rng = np.random.default_rng([seed, 20261121])
    if anatomy is not None and anatomy in HELD_OUT_SCENARIOS:
        # a separate branch so that the draws for the other anatomies stay as they were
        names = list(HELD_OUT_SCENARIOS[anatomy])
        w = np.array([SCENARIOS[n][0] for n in names])
        scen = scenario or names[int(rng.choice(len(names), p=w / w.sum()))]
        anat = anatomy
    else:
        names = list(SCENARIOS)
        w = np.array([SCENARIOS[n][0] for n in names])
        scen = scenario or names[int(rng.choice(len(names), p=w / w.sum()))]
        opts = SCENARIOS[scen][1]
        anat = anatomy or opts[int(rng.integers(len(opts)))]
    template = build_template(anat, rng)
    scale = float(rng.uniform(0.9, 1.1))
    fov = (
        template.fov_mm[0] * rng.uniform(0.92, 1.05) * fov_scale,
        template.fov_mm[1] * rng.uniform(0.92, 1.05) * fov_scale,
    )
    s = _spacing(fov, rng, max_side_px)
    shape = (int(fov[0] / s) // 2 * 2, int(fov[1] / s) // 2 * 2)
    where = Placement(
        s,
        (template.fov_mm[0] / 2, template.fov_mm[1] / 2),
        (
            shape[0] / 2 + rng.normal(0, 0.03) * shape[0],
            shape[1] / 2 + rng.normal(0, 0.03) * shape[1],
        ),
        scale,
        float(rng.uniform(-6, 6)),
    )
    scene = render_scene(template, where, shape, rng)
    laterality: str | None = "L" if rng.random() < 0.5 else "R"
    if anat == "chest_pa":
        laterality = None  # a chest film has no side
    # the pelvis and the chest are shown in one orientation (the heart on the film's
    # right, the patient's left)
    flip = anat not in ("pelvis_ap", "chest_pa") and rng.random() < 0.5
    confs: list[dict[str, Any]] = []
    confs += cf.overlaps(scene)
    forced = {f.split(":")[0] for f in force}
    metal_kind = next((f.split(":")[1] for f in force if f.startswith("metal:")), None)

    def want(kind: str, p: float) -> bool:
        return bool(rng.random() < p) or kind in forced  # always draw: same stream

    if want("collimation", 0.6):
        confs += cf.collimation_field(scene, rng)
    d_bone = scene.d_bone_mm()
    # confounders that are bone come first (they change where soft tissue is)
    if want("sesamoid", 0.7 if template.sesamoid_sites else 0.1):
        confs += cf.add_sesamoid(scene, rng, d_bone)
    if want("osteophyte", 0.3):
        confs += cf.add_osteophyte(scene, rng)
    if want("heterotopic_ossification", 0.1):
        confs += cf.add_heterotopic_ossification(scene, rng, d_bone)
    if want("bone_island", 0.2):
        confs += cf.add_bone_island(scene, rng)
    d_bone = scene.d_bone_mm()
    if want("marker", 0.9):
        confs += cf.add_marker(scene, rng, "L" if rng.random() < 0.5 else "R", mirror=flip)
    if want("metal", 0.3):
        kinds = ["pin", "clips", "button", "bracelet", "zip"] + (
            ["ring", "ring"] if anat == "hand_pa" else []
        )
        if anat == "chest_pa":
            kinds = ["pin", "clips", "button", "zip"]  # no bracelet on a chest film
        kind = kinds[int(rng.integers(len(kinds)))]
        confs += cf.add_metal(scene, rng, metal_kind or kind)
    if want("skin_fold", 0.15):
        confs += cf.add_skin_fold(scene, rng)

    ctx = _context(scen, rng)
    drawn = _draw_lesions(scen, scene, rng, d_bone)
    lesion_mask = np.zeros(shape, np.uint16)
    for i, (d, _sub) in enumerate(drawn, start=1):
        r0, c0 = d.origin
        h, w_ = d.mask.shape
        scene.atten[r0 : r0 + h, c0 : c0 + w_] += d.delta
        lesion_mask[r0 : r0 + h, c0 : c0 + w_][
            d.mask & (lesion_mask[r0 : r0 + h, c0 : c0 + w_] == 0)
        ] = i

    drawn_bits = int(rng.choice([12, 12, 14, 14, 13]))
    bits = bits or drawn_bits
    pixels, exposure = expose(scene.atten, scene.body, scene.field_mask, s, rng, bits=bits)
    labels = scene.labels.copy()

    burn = want("text", 0.6)
    if flip:
        pixels = pixels[:, ::-1].copy()
        labels = labels[:, ::-1].copy()
        lesion_mask = lesion_mask[:, ::-1].copy()
        width = shape[1]
        for c in confs:
            r0, c0, r1, c1 = c["bbox"]
            c["bbox"] = [r0, width - c1, r1, width - c0]
    # burned-in annotation (after processing and flipping, at full white)
    if burn:
        confs += _burn_text(
            pixels, labels, lesion_mask, rng, bits, seed, template.body_part, template.view, s
        )
    joints_truth = []
    for j in scene.joints:
        r0, c0, r1, c1 = j.bbox
        if flip:
            c0, c1 = shape[1] - c1, shape[1] - c0
        joints_truth.append({"name": j.name, "bbox": [int(r0), int(c0), int(r1), int(c1)]})

    lesions_truth = []
    for i, (d, subtle) in enumerate(drawn, start=1):
        m = lesion_mask == i
        bb = bbox_of(m)
        if bb is None:
            continue
        ys, xs = np.nonzero(m[bb[0] : bb[2], bb[1] : bb[3]])
        n_comp, _ = cv2.connectedComponents(
            m[bb[0] : bb[2], bb[1] : bb[3]].astype(np.uint8), connectivity=8
        )
        exp, acc = _categories(scen, d, ctx)
        cen = (float(ys.mean() + bb[0]), float(xs.mean() + bb[1]))
        joint = d.joint or _nearest_joint(cen, joints_truth, s, 30.0)
        rec: dict[str, Any] = {
            "id": i,
            "pattern": d.pattern,
            "subtype": d.subtype,
            "expected_category": exp,
            "acceptable_categories": acc,
            "bbox": [int(v) for v in bb],
            "centroid_rc": [round(cen[0], 2), round(cen[1], 2)],
            "area_mm2": round(float(m.sum()) * s * s, 3),
            "n_particles": int(n_comp - 1),
            "joint": joint,
            "intra_articular": bool(d.intra_articular),
            "subtle": bool(subtle),
            "peak_rel_cortex": round(float(d.delta.max()) / scene.cortex_ref, 3),
        }
        rec.update({k: v for k, v in d.extra.items()})
        lesions_truth.append(rec)

    ts = transfer_syntax or list(TRANSFER_SYNTAXES)[int(rng.integers(len(TRANSFER_SYNTAXES)))]
    sop = "DX" if rng.random() < 0.5 else "CR"
    mode = ["pixel", "imager", "imager_ermf", "pixel_calibrated"][int(rng.integers(4))]
    options = DicomOptions(
        sop=sop,
        photometric="MONOCHROME1" if rng.random() < 0.5 else "MONOCHROME2",
        spacing_mode=mode,
        transfer_syntax=ts,
        magnification=float(rng.choice([1.1, 1.2, 1.25])),
    )
    truth: dict[str, Any] = {
        "schema": TRUTH_SCHEMA,
        "image": None,
        "seed": seed,
        "anatomy": anat,
        "scenario": scen,
        "rows": shape[0],
        "columns": shape[1],
        "pixel_spacing_mm": [s, s],
        "photometric_interpretation": options.photometric,
        "transfer_syntax": str(TRANSFER_SYNTAXES[ts]),
        "sop_class": sop,
        "spacing_mode": mode,
        "bits_stored": bits,
        "flag": bool(lesions_truth),
        "context": ctx,
        "joints": joints_truth,
        "lesions": lesions_truth,
        "confounders": confs,
        "exposure": {
            "photons_per_mm2": round(exposure.photons_per_mm2, 1),
            "heel": round(exposure.heel, 3),
            "scatter_fraction": round(exposure.scatter_fraction, 3),
            "blur_mm": round(exposure.blur_mm, 3),
            "equalization": round(exposure.equalization, 3),
        },
        "cortex_ref": round(scene.cortex_ref, 4),
    }
    return Sample(
        seed,
        anat,
        pixels,
        bits,
        s,
        labels,
        lesion_mask,
        truth,
        options,
        template.body_part,
        template.view,
        laterality,
        scen,
    )


def _nearest_joint(
    cen: tuple[float, float], joints: list[dict[str, Any]], s: float, max_mm: float
) -> str | None:
    best, name = math.inf, None
    for j in joints:
        r0, c0, r1, c1 = j["bbox"]
        dr = max(r0 - cen[0], 0, cen[0] - r1)
        dc = max(c0 - cen[1], 0, cen[1] - c1)
        dist = math.hypot(dr, dc) * s
        if dist < best:
            best, name = dist, j["name"]
    return name if best <= max_mm else None


def _burn_text(
    pixels: np.ndarray,
    labels: np.ndarray,
    lesion_mask: np.ndarray,
    rng: np.random.Generator,
    bits: int,
    seed: int,
    body_part: str,
    view: str,
    s: float,
) -> list[dict[str, Any]]:
    top = (1 << bits) - 1
    h, w = pixels.shape
    lines = [
        f"{body_part} {view}",
        f"SYN{seed:06d}",
        "STANDING" if rng.random() < 0.3 else "SUPINE",
    ]
    scale = max(0.6, 4.0 / s / 22.0)
    thick = max(1, int(0.5 / s))
    corner = int(rng.integers(4))
    canvas = np.zeros((h, w), np.uint8)
    y = int(6 / s) + 10
    for text in lines[: int(rng.integers(1, 4))]:
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        x = int(5 / s) if corner in (0, 2) else w - tw - int(5 / s)
        yy = y if corner in (0, 1) else h - y
        cv2.putText(canvas, text, (x, yy), cv2.FONT_HERSHEY_SIMPLEX, scale, 1, thick, cv2.LINE_AA)
        y += int(th * 1.6)
    m = canvas > 0
    if (lesion_mask[cv2.dilate(canvas, np.ones((15, 15), np.uint8)) > 0] > 0).any():
        return []
    pixels[m] = top
    labels[m] = FOREIGN
    bb = bbox_of(m)
    return [] if bb is None else [{"kind": "text", "bbox": [int(v) for v in bb]}]


def write_sample(sample: Sample, out_dir: Path, name: str | None = None) -> Path:
    """Write the four files of one sample; returns the DICOM path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"synth_{sample.seed:04d}"
    dcm = out_dir / f"{name}.dcm"
    ctx = sample.truth.get("context")
    spacing = write_dicom(
        dcm,
        sample.pixels,
        bits=sample.bits,
        spacing_mm=sample.spacing_mm,
        options=sample.options,
        seed=sample.seed,
        body_part=sample.body_part,
        view=sample.view,
        laterality=sample.laterality,
        age_years=None if ctx is None else ctx.get("age_years"),
    )
    truth = dict(sample.truth)
    truth["image"] = dcm.name
    truth["pixel_spacing_mm"] = [spacing[0], spacing[1]]
    (out_dir / f"{name}.truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    cv2.imwrite(str(out_dir / f"{name}.mask.png"), sample.lesion_mask)
    cv2.imwrite(str(out_dir / f"{name}.anatomy.png"), sample.labels)
    return dcm
