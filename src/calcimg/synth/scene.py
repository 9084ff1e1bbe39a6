"""The scene: a template rendered to per-pixel projected attenuation and region labels.

The quantity built here is the line integral of the linear attenuation coefficient
along the beam (dimensionless, ``mu * path``), with soft tissue as fat and muscle, bone
as a cortical shell around textured trabecular bone. Bone, calcification and metal are
added as their excess over the soft tissue they displace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calcimg.synth.anatomies import BoneSpec, JointSpec, Template
from calcimg.synth.geometry import (
    Placement,
    Prim,
    bbox_of,
    blur_large,
    crop_bbox,
    dist_mm,
    draw_prims,
    thickness_mm,
)

__all__ = [
    "BACKGROUND",
    "BONE",
    "FOREIGN",
    "JOINT",
    "SOFT",
    "JointRender",
    "Scene",
    "chord",
    "render_scene",
]

BACKGROUND, SOFT, BONE, JOINT, FOREIGN = 0, 1, 2, 3, 4

# Effective linear attenuation coefficients (1/mm) at a 55-65 kV beam's mean energy
# (NIST XCOM mass attenuation times density), soft tissue as the baseline for excesses.
MU_FAT = 0.0185
MU_MUSCLE_EXCESS = 0.0035  # muscle over fat
MU_SKIN_EXCESS = 0.006
MU_CORTEX_EXCESS = 0.055  # cortical bone (1.9 g/cm3) over soft tissue, ~60 keV
MU_TRABECULAR_EXCESS = 0.013  # trabecular bone with marrow over soft tissue


def chord(d: np.ndarray, r: np.ndarray | float) -> np.ndarray:
    """Chord length through a circle of radius r at depth d (clipped) from its edge."""
    dc = np.clip(d, 0.0, r)
    return (2.0 * np.sqrt(np.maximum(dc * (2.0 * r - dc), 0.0))).astype(np.float32)


@dataclass(slots=True)
class BoneMask:
    spec: BoneSpec
    bbox: tuple[int, int, int, int]
    mask: np.ndarray  # bool crop
    cortex: np.ndarray  # float32 crop, cortical thickness (mm) to use


@dataclass(slots=True)
class JointRender:
    name: str
    bbox: tuple[int, int, int, int]
    mask: np.ndarray  # bool crop of the joint space
    dist_a: np.ndarray  # float32 crop: distance (mm) to the first bone group
    dist_b: np.ndarray
    center_rc: tuple[float, float]
    gap_mm: float


@dataclass(slots=True)
class Scene:
    shape: tuple[int, int]
    spacing_mm: float
    placement: Placement
    template: Template
    atten: np.ndarray  # float32 line integral
    atten_bone: np.ndarray
    labels: np.ndarray  # uint8 region codes
    body: np.ndarray  # bool: inside the skin outline
    d_skin_mm: np.ndarray  # float32 inside distance to skin
    bones: dict[str, BoneMask]
    joints: list[JointRender]
    texture: np.ndarray
    field_mask: np.ndarray | None = None  # collimated field (True = exposed)
    occupied: np.ndarray | None = None  # bool: lesions / confounders already placed
    cortex_ref: float = 1.0
    notes: list[str] = field(default_factory=list)

    def px(self, mm: float) -> float:
        return mm / self.spacing_mm

    def bone_mask(self) -> np.ndarray:
        return self.labels == BONE

    def d_bone_mm(self) -> np.ndarray:
        """Distance (mm) from each non-bone pixel to the nearest bone."""
        return dist_mm(self.labels != BONE, self.spacing_mm)


def _trabecular_texture(
    shape: tuple[int, int], spacing: float, rng: np.random.Generator
) -> np.ndarray:
    """A labyrinth of bright struts: the zero set of band-pass noise (mean about 1)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    s1 = max(0.25 / spacing, 0.7)
    s2 = max(0.8 / spacing, 1.8)
    bp = cv2.GaussianBlur(noise, (0, 0), s1) - blur_large(noise, s2)
    bp /= float(bp.std()) + 1e-6
    coarse = blur_large(noise, max(3.0 / spacing, 4.0))
    coarse /= float(coarse.std()) + 1e-6
    # struts (zero set of band-pass noise) over a slowly varying bone density
    tex = (0.7 + 0.6 * np.exp(-2.0 * bp * bp)) * (1.0 + 0.12 * coarse)
    return (tex / float(tex.mean())).astype(np.float32)


def _draw_bone(spec: BoneSpec, where: Placement, shape: tuple[int, int]) -> BoneMask | None:
    full = np.zeros(shape, np.uint8)
    draw_prims(full, spec.prims, where, 1)
    bb = bbox_of(full)
    if bb is None:
        return None
    margin = int(where.length_px(4)) + 2
    bb = crop_bbox(bb, margin, shape)
    r0, c0, r1, c1 = bb
    crop = full[r0:r1, c0:c1].copy()
    if spec.minus:
        sub = np.zeros(shape, np.uint8)
        draw_prims(sub, spec.minus, where, 1)
        crop[sub[r0:r1, c0:c1] > 0] = 0
    # round the joins between primitives (shaft to metaphysis) as real bone is
    crop = (cv2.GaussianBlur(crop.astype(np.float32), (0, 0), where.length_px(1.2)) > 0.5).astype(
        np.uint8
    )
    cort = np.full(crop.shape, spec.cortex_mm, np.float32)
    for pr in spec.prims:
        if pr.cortex_mm is not None:
            tmp = np.zeros(shape, np.uint8)
            draw_prims(tmp, [pr], where, 1)
            cort[tmp[r0:r1, c0:c1] > 0] = pr.cortex_mm
    sig = max(1.0, where.length_px(2.0))
    cort = np.asarray(cv2.GaussianBlur(cort, (0, 0), sig), np.float32)
    return BoneMask(spec, bb, crop > 0, cort)


def project_bone(bm: BoneMask, spacing: float, texture: np.ndarray) -> np.ndarray:
    """Excess line integral of one bone over soft tissue (crop of its bbox)."""
    r0, c0, r1, c1 = bm.bbox
    mask = bm.mask.astype(np.uint8)
    d = dist_mm(mask, spacing)
    cap = bm.spec.cap_mm
    t_out, r = thickness_mm(mask, spacing, cap_mm=cap, reach_mm=cap * 1.3 + 5, d=d)
    din = d - bm.cortex
    r_in = np.maximum(r - bm.cortex, 0.3)
    t_in = np.where(din > 0, chord(din, r_in), 0.0).astype(np.float32)
    tex = texture[r0:r1, c0:c1]
    out = MU_CORTEX_EXCESS * (t_out - t_in) + MU_TRABECULAR_EXCESS * bm.spec.trab * tex * t_in
    out[~bm.mask] = 0.0
    return out.astype(np.float32)


def _fat_planes(
    atten: np.ndarray,
    body: np.ndarray,
    d_skin: np.ndarray,
    template: Template,
    where: Placement,
    rng: np.random.Generator,
) -> None:
    """Intermuscular fat planes: faint lucent bands 1-4 mm wide along the limb axis."""
    s = where.spacing_mm
    axis = np.radians(template.axis_deg - where.angle_deg)
    inner = np.flatnonzero((d_skin > 10).ravel()[::7])
    if inner.size == 0:
        return
    for _ in range(int(rng.integers(1, 5))):
        r, c = divmod(int(inner[rng.integers(inner.size)]) * 7, atten.shape[1])
        th = axis + rng.normal(0, 0.15)
        pts = []
        y, x, k = float(r), float(c), 0.0
        for _step in range(int(rng.uniform(40, 150) / 1.0)):
            k = 0.95 * k + rng.normal(0, 0.004)
            th += k
            y += np.sin(th) / s
            x += np.cos(th) / s
            pts.append((x, y))
        arr = np.array(pts)
        pad = int(6 / s) + 2
        c0, r0 = int(arr[:, 0].min()) - pad, int(arr[:, 1].min()) - pad
        c1, r1 = int(arr[:, 0].max()) + pad, int(arr[:, 1].max()) + pad
        a0, b0 = max(r0, 0), max(c0, 0)
        a1, b1 = min(r1, atten.shape[0]), min(c1, atten.shape[1])
        if a0 >= a1 or b0 >= b1:
            continue
        line = np.full((a1 - a0, b1 - b0), 255, np.uint8)
        poly = ((arr - [b0, a0]) * 16).astype(np.int32)
        cv2.polylines(line, [poly], False, 0, 1, cv2.LINE_8, 4)
        width = rng.uniform(0.5, 2.0)
        amp = rng.uniform(0.01, 0.03)
        if line.all():
            # no part of the line falls on the film (a crop cut thin by the film's edge):
            # nothing to add, and OpenCV's distances would all be float32's largest
            continue
        dist = cv2.distanceTransform(line, cv2.DIST_L2, 3) * s
        fade = np.clip((d_skin[a0:a1, b0:b1] - 3.0) / 5.0, 0, 1)
        atten[a0:a1, b0:b1] -= amp * np.exp(-((dist / width) ** 2)) * fade * body[a0:a1, b0:b1]


def render_scene(
    template: Template,
    where: Placement,
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    extra_bone_prims: dict[str, list[Prim]] | None = None,
) -> Scene:
    """Render soft tissue, bones and joint spaces of ``template`` on a ``shape`` grid."""
    s = where.spacing_mm
    # soft tissue outline, smoothed so that primitive joins leave no corners
    body8 = np.zeros(shape, np.uint8)
    draw_prims(body8, template.soft, where, 255)
    body_f = blur_large(body8.astype(np.float32), where.length_px(4.0))
    body = body_f > 127.0
    d_skin = dist_mm(body, s)
    cap = template.soft_cap_mm * where.scale
    t_soft, r_soft = thickness_mm(body, s, cap_mm=cap, reach_mm=cap * 1.3, d=d_skin)
    fat = float(rng.uniform(0.06, 0.2)) * cap
    t_mus = chord(d_skin - fat, np.maximum(r_soft - fat, 0.5))
    t_mus[d_skin <= fat] = 0.0
    skin = 1.2
    t_skin_in = chord(d_skin - skin, np.maximum(r_soft - skin, 0.5))
    t_skin_in[d_skin <= skin] = 0.0
    atten = MU_FAT * t_soft + MU_MUSCLE_EXCESS * t_mus + MU_SKIN_EXCESS * (t_soft - t_skin_in)
    for pr, depth in template.lucent:
        m = np.zeros(shape, np.uint8)
        draw_prims(m, [pr], where, 1)
        if not m.any():
            continue
        bb = crop_bbox(bbox_of(m) or (0, 0, 1, 1), int(where.length_px(6)) + 2, shape)
        r0, c0, r1, c1 = bb
        m8 = cv2.GaussianBlur(m[r0:r1, c0:c1].astype(np.float32), (0, 0), where.length_px(2.0))
        t, _ = thickness_mm(
            (m8 > 0.5).astype(np.uint8), s, cap_mm=depth * where.scale / 2, reach_mm=depth
        )
        atten[r0:r1, c0:c1] -= (MU_FAT + MU_MUSCLE_EXCESS) * t * body[r0:r1, c0:c1]
    _fat_planes(atten, body, d_skin, template, where, rng)
    atten = np.maximum(atten, 0.0).astype(np.float32)

    texture = _trabecular_texture(shape, s, rng)
    bones: dict[str, BoneMask] = {}
    atten_bone = np.zeros(shape, np.float32)
    labels = np.where(body, SOFT, BACKGROUND).astype(np.uint8)
    for spec in template.bones:
        if extra_bone_prims and spec.name in extra_bone_prims:
            spec = BoneSpec(
                spec.name,
                spec.prims + extra_bone_prims[spec.name],
                spec.cortex_mm,
                spec.cap_mm,
                spec.trab,
                spec.minus,
            )
        bm = _draw_bone(spec, where, shape)
        if bm is None:
            continue
        bones[spec.name] = bm
        r0, c0, r1, c1 = bm.bbox
        atten_bone[r0:r1, c0:c1] += project_bone(bm, s, texture)
        labels[r0:r1, c0:c1][bm.mask] = BONE
    # bone outside the skin outline cannot be: clip it (edges of the field of view)
    labels[(labels == BONE) & ~body] = BACKGROUND
    atten_bone[~body] = 0.0

    joints = []
    for js in template.joints:
        jr = _render_joint(js, bones, where, shape, labels)
        if jr is not None:
            joints.append(jr)
            r0, c0, r1, c1 = jr.bbox
            labels[r0:r1, c0:c1][jr.mask] = JOINT
    bone_px = labels == BONE
    ref = float(np.percentile(atten_bone[bone_px], 90)) if bone_px.any() else 0.5
    return Scene(
        shape=shape,
        spacing_mm=s,
        placement=where,
        template=template,
        atten=atten + atten_bone,
        atten_bone=atten_bone,
        labels=labels,
        body=body,
        d_skin_mm=d_skin,
        bones=bones,
        joints=joints,
        texture=texture,
        occupied=np.zeros(shape, bool),
        cortex_ref=max(ref, 0.2),
    )


def _group_mask(
    names: tuple[str, ...], bones: dict[str, BoneMask], bb: tuple[int, int, int, int]
) -> np.ndarray:
    r0, c0, r1, c1 = bb
    out = np.zeros((r1 - r0, c1 - c0), bool)
    for n in names:
        bm = bones.get(n)
        if bm is None:
            continue
        br0, bc0, br1, bc1 = bm.bbox
        ir0, ic0, ir1, ic1 = max(r0, br0), max(c0, bc0), min(r1, br1), min(c1, bc1)
        if ir0 >= ir1 or ic0 >= ic1:
            continue
        out[ir0 - r0 : ir1 - r0, ic0 - c0 : ic1 - c0] |= bm.mask[
            ir0 - br0 : ir1 - br0, ic0 - bc0 : ic1 - bc0
        ]
    return out


def _render_joint(
    js: JointSpec,
    bones: dict[str, BoneMask],
    where: Placement,
    shape: tuple[int, int],
    labels: np.ndarray,
) -> JointRender | None:
    s = where.spacing_mm
    cr, cc = where.px(js.center)
    rad = where.length_px(js.radius_mm)
    bb = crop_bbox((int(cr - rad), int(cc - rad), int(cr + rad) + 1, int(cc + rad) + 1), 0, shape)
    r0, c0, r1, c1 = bb
    if r1 - r0 < 4 or c1 - c0 < 4:
        return None
    a = _group_mask(js.bones_a, bones, bb)
    b = _group_mask(js.bones_b, bones, bb)
    if not a.any() or not b.any():
        return None
    da = dist_mm(~a, s)
    db = dist_mm(~b, s)
    gap = js.gap_mm * where.scale
    yy, xx = np.mgrid[r0:r1, c0:c1]
    disc = (yy - cr) ** 2 + (xx - cc) ** 2 <= rad * rad
    local = labels[r0:r1, c0:c1]
    m = (
        (local == SOFT)
        & disc
        & (da + db <= gap * 1.3 + 0.8)
        & (da <= gap + 1.0)
        & (db <= gap + 1.0)
    )
    # keep the component(s) touching both bones: the joint space proper
    n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    keep = np.zeros_like(m)
    for i in range(1, n):
        comp = lab == i
        if comp.sum() * s * s >= 2.0:
            keep |= comp
    if not keep.any():
        return None
    jb = bbox_of(keep)
    assert jb is not None
    return JointRender(
        js.name,
        (r0 + jb[0], c0 + jb[1], r0 + jb[2], c0 + jb[3]),
        keep[jb[0] : jb[2], jb[1] : jb[3]],
        da[jb[0] : jb[2], jb[1] : jb[3]],
        db[jb[0] : jb[2], jb[1] : jb[3]],
        (cr, cc),
        gap,
    )
