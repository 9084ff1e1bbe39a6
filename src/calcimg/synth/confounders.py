"""Dense or edge-like things on a real film that are not calcification (DOMAIN.md,
"Confounders that look like calcification"). Each adder draws into the scene in place
and returns the truth records ``{"kind", "bbox"}`` it produced."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from calcimg.synth.anatomies import BoneSpec
from calcimg.synth.geometry import bbox_of, crop_bbox
from calcimg.synth.scene import BONE, FOREIGN, SOFT, BoneMask, Scene, project_bone

__all__ = [
    "add_bone_island",
    "add_heterotopic_ossification",
    "add_marker",
    "add_metal",
    "add_osteophyte",
    "add_sesamoid",
    "add_skin_fold",
    "collimation_field",
    "overlaps",
]

# lead and steel stop nearly all of a 60 kV beam: excess line integral of several units
LEAD_EXCESS = 6.0
STEEL_EXCESS_PER_MM = 1.6

Rec = dict[str, Any]


def _rec(kind: str, bbox: tuple[int, int, int, int] | None) -> list[Rec]:
    return [] if bbox is None else [{"kind": kind, "bbox": [int(v) for v in bbox]}]


def _pick(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    return divmod(int(idx[rng.integers(idx.size)]), mask.shape[1])


def _stamp(
    scene: Scene, delta: np.ndarray, origin: tuple[int, int], label: int | None, thr: float
) -> tuple[int, int, int, int] | None:
    """Add ``delta`` at ``origin`` (clipped to the image), label where delta > thr."""
    r0, c0 = origin
    h, w = delta.shape
    a0, b0 = max(0, r0), max(0, c0)
    a1, b1 = min(scene.shape[0], r0 + h), min(scene.shape[1], c0 + w)
    if a0 >= a1 or b0 >= b1:
        return None
    sub = delta[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0]
    scene.atten[a0:a1, b0:b1] += sub
    m = sub > thr
    if label is not None:
        scene.labels[a0:a1, b0:b1][m] = label
    assert scene.occupied is not None
    scene.occupied[a0:a1, b0:b1] |= cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    bb = bbox_of(m)
    if bb is None:
        return None
    return (a0 + bb[0], b0 + bb[1], a0 + bb[2], b0 + bb[3])


# ------------------------------------------------------------------------ collimation


def collimation_field(scene: Scene, rng: np.random.Generator) -> list[Rec]:
    """Rectangular collimated field, slightly rotated; outside it is unexposed."""
    h, w = scene.shape
    s = scene.spacing_mm
    margins = [rng.uniform(0, 0.12) if rng.random() < 0.6 else 0.0 for _ in range(4)]
    top, left, bottom, right = (
        margins[0] * h,
        margins[1] * w,
        h - margins[2] * h,
        w - margins[3] * w,
    )
    ang = rng.uniform(-2.5, 2.5)
    box = cv2.boxPoints(
        (((left + right) / 2, (top + bottom) / 2), (right - left, bottom - top), ang)
    )
    field = np.zeros(scene.shape, np.uint8)
    cv2.fillPoly(field, [np.round(box).astype(np.int32)], 1)
    scene.field_mask = field > 0
    recs: list[Rec] = []
    band = max(2, int(3 / s))
    edge = (
        cv2.morphologyEx(field, cv2.MORPH_GRADIENT, np.ones((2 * band + 1, 2 * band + 1), np.uint8))
        > 0
    )
    edge[:band, :] = edge[-band:, :] = False
    edge[:, :band] = edge[:, -band:] = False
    # one record per side of the field that falls inside the film
    for k in range(4):
        p0, p1 = box[k], box[(k + 1) % 4]
        side = np.zeros(scene.shape, np.uint8)
        cv2.line(side, (round(p0[0]), round(p0[1])), (round(p1[0]), round(p1[1])), 1, 2 * band + 1)
        m = (side > 0) & edge
        if m.sum() * s * s > 50:
            bb = bbox_of(m)
            recs += _rec("collimation", bb)
    scene.labels[~scene.field_mask] = 0
    return recs if any(m > 0 for m in margins) else []


# ------------------------------------------------------------------------------ lead


def add_marker(
    scene: Scene, rng: np.random.Generator, letter: str, *, mirror: bool = False
) -> list[Rec]:
    """A lead positional marker (L/R letter), usually in a corner over air."""
    s = scene.spacing_mm
    height_mm = rng.uniform(8, 14)
    scale = height_mm / s / 22.0
    thick = max(2, int(1.6 / s))
    (tw, th), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = int(3 / s)
    canvas = np.zeros((th + 2 * pad, tw + 2 * pad), np.uint8)
    cv2.putText(
        canvas, letter, (pad, th + pad), cv2.FONT_HERSHEY_SIMPLEX, scale, 1, thick, cv2.LINE_AA
    )
    if mirror:  # the film is flipped later; the letter must read correctly on it
        canvas = canvas[:, ::-1].copy()
    delta = canvas.astype(np.float32) * LEAD_EXCESS
    delta[pad // 3 : -pad // 3 or None, pad // 3 : -pad // 3 or None] += 0.04  # plastic holder
    field = scene.field_mask if scene.field_mask is not None else np.ones(scene.shape, bool)
    inner = cv2.erode(field.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=1) > 0
    for _ in range(40):
        air = rng.random() < 0.75
        cand = (
            inner & (scene.labels == 0)
            if air
            else inner & (scene.labels == SOFT) & (scene.d_skin_mm < 15)
        )
        p = _pick(cand, rng)
        if p is None:
            continue
        r0, c0 = p[0] - delta.shape[0] // 2, p[1] - delta.shape[1] // 2
        if (
            r0 < 0
            or c0 < 0
            or r0 + delta.shape[0] > scene.shape[0]
            or c0 + delta.shape[1] > scene.shape[1]
        ):
            continue
        if not field[r0 : r0 + delta.shape[0], c0 : c0 + delta.shape[1]].all():
            continue
        assert scene.occupied is not None
        if scene.occupied[r0 : r0 + delta.shape[0], c0 : c0 + delta.shape[1]].any():
            continue
        return _rec("marker", _stamp(scene, delta, (r0, c0), FOREIGN, 1.0))
    return []


# ------------------------------------------------------------------------------ metal


def add_metal(scene: Scene, rng: np.random.Generator, kind: str) -> list[Rec]:
    """Pins, clips, buttons, jewellery (ring or bracelet) or a zip."""
    s = scene.spacing_mm
    body = (scene.labels == SOFT) | (scene.labels == BONE)
    if scene.field_mask is not None:
        body &= scene.field_mask
    assert scene.occupied is not None
    body &= ~scene.occupied
    recs: list[Rec] = []
    if kind == "pin":
        p = _pick((scene.labels == BONE) & body, rng)
        if p is None:
            return []
        length = rng.uniform(30, 80) / s
        ang = rng.uniform(0, math.pi)
        rad = rng.uniform(0.8, 2.5) / s
        half = int(length / 2 + rad) + 4
        img = np.zeros((2 * half + 1, 2 * half + 1), np.uint8)
        dy, dx = math.sin(ang) * length / 2, math.cos(ang) * length / 2
        cv2.line(
            img,
            (int(half - dx), int(half - dy)),
            (int(half + dx), int(half + dy)),
            1,
            max(1, int(2 * rad)),
            cv2.LINE_AA,
        )
        if rng.random() < 0.6:  # screw thread
            for t in np.linspace(-0.45, 0.25, 12):
                cy, cx = half + math.sin(ang) * length * t, half + math.cos(ang) * length * t
                cv2.circle(img, (int(cx), int(cy)), max(1, int(rad * 1.3)), 1, -1)
        dist = cv2.distanceTransform(img, cv2.DIST_L2, 3) * s
        delta = np.minimum(dist * 2 * STEEL_EXCESS_PER_MM, 6.0).astype(np.float32)
        return _rec(
            "metal",
            _stamp(
                scene,
                cv2.GaussianBlur(delta, (0, 0), 0.6),
                (p[0] - half, p[1] - half),
                FOREIGN,
                0.5,
            ),
        )
    if kind == "clips":
        p = _pick((scene.labels == SOFT) & body & (scene.d_skin_mm > 8), rng)
        if p is None:
            return []
        for _ in range(int(rng.integers(1, 4))):
            size = rng.uniform(5, 9) / s
            half = int(size) + 4
            img = np.zeros((2 * half + 1, 2 * half + 1), np.uint8)
            ang = rng.uniform(0, 2 * math.pi)
            th = max(1, int(0.7 / s))
            a = (half + math.cos(ang) * size * 0.5, half + math.sin(ang) * size * 0.5)
            b = (half + math.cos(ang + 0.35) * size * 0.5, half + math.sin(ang + 0.35) * size * 0.5)
            cv2.line(img, (half, half), (int(a[0]), int(a[1])), 1, th)
            cv2.line(img, (half, half), (int(b[0]), int(b[1])), 1, th)
            off = rng.normal(0, 10 / s, 2)
            recs += _rec(
                "metal",
                _stamp(
                    scene,
                    img.astype(np.float32) * 2.5,
                    (int(p[0] + off[0]) - half, int(p[1] + off[1]) - half),
                    FOREIGN,
                    0.5,
                ),
            )
        return recs
    if kind == "button":
        p = _pick(body, rng)
        if p is None:
            return []
        rad = rng.uniform(5, 11) / s
        half = int(rad) + 3
        img = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
        cv2.circle(img, (half, half), int(rad), 1.0, -1, cv2.LINE_AA)
        cv2.circle(img, (half, half), int(rad * 0.8), 0.7, max(1, int(0.6 / s)), cv2.LINE_AA)
        nh = int(rng.choice([2, 4]))
        for k in range(nh):
            a_k = 2 * math.pi * k / nh + 0.3
            cv2.circle(
                img,
                (int(half + math.cos(a_k) * rad * 0.3), int(half + math.sin(a_k) * rad * 0.3)),
                max(1, int(rad * 0.12)),
                0.0,
                -1,
            )
        return _rec(
            "metal",
            _stamp(scene, img * rng.uniform(1.5, 4.0), (p[0] - half, p[1] - half), FOREIGN, 0.5),
        )
    if kind == "ring":  # a finger ring: band across the proximal phalanx
        bones = [b for n, b in scene.bones.items() if n.endswith("_1") and n.startswith("ray")]
        if not bones:
            return add_metal(scene, rng, "bracelet")
        bm = bones[int(rng.integers(len(bones)))]
        r0, c0, r1, c1 = bm.bbox
        cy, cx = (r0 + r1) // 2, (c0 + c1) // 2
        half = int(14 / s)
        img = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
        ys = np.abs(np.arange(-half, half + 1))[:, None] * s
        xs = np.abs(np.arange(-half, half + 1))[None, :] * s
        wid = rng.uniform(2, 4) / 2
        fw = rng.uniform(8.5, 10.5)
        band = (ys <= wid) & (xs <= fw)
        img[band] = 3.0
        img[(ys <= wid) & (xs > fw - 1.2) & (xs <= fw)] = 6.0  # tangential edges
        return _rec(
            "metal",
            _stamp(scene, cv2.GaussianBlur(img, (0, 0), 0.8), (cy - half, cx - half), FOREIGN, 0.5),
        )
    if kind in ("bracelet", "zip"):
        p = _pick(body & (scene.d_skin_mm > 3), rng)
        if p is None:
            return []
        ang = rng.uniform(0, math.pi)
        n = int(rng.integers(6, 16))
        step = (rng.uniform(3, 6) if kind == "bracelet" else rng.uniform(2, 3)) / s
        half = int(n * step / 2 + 6 / s)
        img = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
        for k in range(n):
            t = (k - n / 2) * step
            cy, cx = half + math.sin(ang) * t, half + math.cos(ang) * t
            if kind == "bracelet":
                cv2.ellipse(
                    img,
                    (int(cx), int(cy)),
                    (int(step * 0.6), int(step * 0.4)),
                    math.degrees(ang),
                    0,
                    360,
                    3.0,
                    max(1, int(0.8 / s)),
                )
            else:
                side = float((k % 2) * 2 - 1)
                cy += math.cos(ang) * side * 1.2 / s
                cx -= math.sin(ang) * side * 1.2 / s
                cv2.rectangle(
                    img,
                    (int(cx - 0.9 / s), int(cy - 0.9 / s)),
                    (int(cx + 0.9 / s), int(cy + 0.9 / s)),
                    2.5,
                    -1,
                )
        return _rec("metal", _stamp(scene, img, (p[0] - half, p[1] - half), FOREIGN, 0.5))
    raise ValueError(f"unknown metal kind {kind!r}")


# ------------------------------------------------------------------------- soft tissue


def add_skin_fold(scene: Scene, rng: np.random.Generator) -> list[Rec]:
    """A fold of skin seen edge-on: a sharp edge of extra soft tissue fading away."""
    s = scene.spacing_mm
    p = _pick((scene.labels == SOFT) & (scene.d_skin_mm > 5) & (scene.d_skin_mm < 40), rng)
    if p is None:
        return []
    length = rng.uniform(50, 140) / s
    half = int(length / 2) + 4
    r0, c0 = p[0] - half, p[1] - half
    crop = crop_bbox((r0, c0, p[0] + half + 1, p[1] + half + 1), 0, scene.shape)
    a0, b0, a1, b1 = crop
    yy, xx = np.mgrid[a0:a1, b0:b1].astype(np.float32)
    ang = rng.uniform(0, math.pi)
    u = (yy - p[0]) * math.cos(ang) + (xx - p[1]) * math.sin(ang)
    v = -(yy - p[0]) * math.sin(ang) + (xx - p[1]) * math.cos(ang)
    bend = rng.normal(0, 0.0015) * s
    sd = (u - bend * v * v) * s  # signed distance (mm) across the fold
    along = np.clip(1 - (v / (length / 2)) ** 2, 0, 1)
    amp = rng.uniform(0.04, 0.12)
    delta = np.where(sd > 0, amp * np.exp(-sd / rng.uniform(6, 18)), 0.0) * along
    inside = (scene.labels[a0:a1, b0:b1] != 0).astype(np.float32)
    delta = cv2.GaussianBlur((delta * inside).astype(np.float32), (0, 0), 0.15 / s)
    scene.atten[a0:a1, b0:b1] += delta
    m = delta > amp * 0.3
    bb = bbox_of(m)
    return _rec(
        "skin_fold", None if bb is None else (a0 + bb[0], b0 + bb[1], a0 + bb[2], b0 + bb[3])
    )


# -------------------------------------------------------------------------------- bone


def _add_bone(
    scene: Scene,
    name: str,
    mask: np.ndarray,
    origin: tuple[int, int],
    *,
    cortex_mm: float,
    cap_mm: float,
    trab: float = 1.0,
) -> tuple[int, int, int, int] | None:
    pad = int(3 / scene.spacing_mm) + 2
    big = np.pad(mask, pad)
    r0, c0 = origin[0] - pad, origin[1] - pad
    h, w = big.shape
    if r0 < 0 or c0 < 0 or r0 + h > scene.shape[0] or c0 + w > scene.shape[1]:
        return None
    bm = BoneMask(
        BoneSpec(name, [], cortex_mm, cap_mm, trab),
        (r0, c0, r0 + h, c0 + w),
        big,
        np.full(big.shape, cortex_mm, np.float32),
    )
    delta = project_bone(bm, scene.spacing_mm, scene.texture)
    scene.atten[r0 : r0 + h, c0 : c0 + w] += delta
    scene.atten_bone[r0 : r0 + h, c0 : c0 + w] += delta
    scene.labels[r0 : r0 + h, c0 : c0 + w][big] = BONE
    assert scene.occupied is not None
    scene.occupied[r0 : r0 + h, c0 : c0 + w] |= (
        cv2.dilate(big.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    )
    scene.bones[name] = bm
    bb = bbox_of(big)
    assert bb is not None
    return (r0 + bb[0], c0 + bb[1], r0 + bb[2], c0 + bb[3])


def _blob(rng: np.random.Generator, radius_px: float, irregular: float) -> np.ndarray:
    h = int(radius_px * (1 + irregular)) + 3
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1].astype(np.float32)
    ang = np.arctan2(yy, xx)
    r = radius_px * (
        1
        + irregular
        * (0.5 * np.sin(2 * ang + rng.uniform(0, 6)) + 0.3 * np.sin(3 * ang + rng.uniform(0, 6)))
    )
    e = rng.uniform(0.6, 1.0)
    return np.hypot(yy, xx * e) <= r


def add_sesamoid(scene: Scene, rng: np.random.Generator, d_bone: np.ndarray) -> list[Rec]:
    """A sesamoid or accessory ossicle: a small bone with cortex, near a joint."""
    s = scene.spacing_mm
    sites = scene.template.sesamoid_sites
    if sites:
        (pr, pc), rad = sites[int(rng.integers(len(sites)))]
        cr, cc = scene.placement.px((pr, pc))
        p: tuple[int, int] | None = (int(cr), int(cc))
        rad_mm = rad * scene.placement.scale * rng.uniform(0.85, 1.15)
    else:
        cand = (scene.labels == SOFT) & (d_bone > 1.5) & (d_bone < 6) & (scene.d_skin_mm > 5)
        p = _pick(cand, rng)
        rad_mm = rng.uniform(2.5, 5)
    if p is None:
        return []
    m = _blob(rng, rad_mm / s, 0.08)
    h = m.shape[0] // 2
    return _rec(
        "sesamoid",
        _add_bone(scene, "sesamoid", m, (p[0] - h, p[1] - h), cortex_mm=0.8, cap_mm=rad_mm),
    )


def add_heterotopic_ossification(
    scene: Scene, rng: np.random.Generator, d_bone: np.ndarray
) -> list[Rec]:
    """Mature heterotopic ossification (myositis ossificans): cortex and trabeculae."""
    s = scene.spacing_mm
    size = rng.uniform(12, 35)
    cand = (scene.labels == SOFT) & (d_bone > 3) & (d_bone < 20) & (scene.d_skin_mm > size / 2 + 2)
    assert scene.occupied is not None
    cand &= ~scene.occupied
    for _ in range(20):
        p = _pick(cand, rng)
        if p is None:
            return []
        m = _blob(rng, size / 2 / s, 0.25)
        h = m.shape[0] // 2
        win = scene.labels[p[0] - h : p[0] + h + 1, p[1] - h : p[1] + h + 1]
        if win.shape != m.shape or (win[m] != SOFT).any():
            continue
        return _rec(
            "heterotopic_ossification",
            _add_bone(
                scene,
                "heterotopic",
                m,
                (p[0] - h, p[1] - h),
                cortex_mm=rng.uniform(0.8, 1.5),
                cap_mm=size / 3,
                trab=1.2,
            ),
        )
    return []


def add_bone_island(scene: Scene, rng: np.random.Generator) -> list[Rec]:
    """An enostosis: a dense round focus inside trabecular bone (2-10 mm)."""
    s = scene.spacing_mm
    bone = scene.labels == BONE
    inner = (
        cv2.erode(bone.astype(np.uint8), np.ones((int(8 / s) | 1, int(8 / s) | 1), np.uint8)) > 0
    )
    p = _pick(inner, rng)
    if p is None:
        return []
    rad = rng.uniform(1.0, 5.0) / s
    m = _blob(rng, rad, 0.15).astype(np.float32)
    m = cv2.GaussianBlur(m, (0, 0), 0.5 / s) * scene.cortex_ref * rng.uniform(0.5, 0.9)
    h = m.shape[0] // 2
    return _rec("bone_island", _stamp(scene, m, (p[0] - h, p[1] - h), None, 0.1 * scene.cortex_ref))


def add_osteophyte(scene: Scene, rng: np.random.Generator) -> list[Rec]:
    """A bony spur at the margin of a joint, continuous with the bone."""
    s = scene.spacing_mm
    if not scene.joints:
        return []
    j = scene.joints[int(rng.integers(len(scene.joints)))]
    ys, xs = np.nonzero(j.mask)
    if ys.size == 0:
        return []
    gy, gx = ys + j.bbox[0], xs + j.bbox[1]
    far = np.hypot(gy - j.center_rc[0], gx - j.center_rc[1])
    k = int(np.argmax(far + rng.uniform(0, 2, far.size)))
    my, mx = gy[k], gx[k]
    dy, dx = my - j.center_rc[0], mx - j.center_rc[1]
    n = math.hypot(dy, dx) or 1.0
    dy, dx = dy / n, dx / n
    length = rng.uniform(3, 8) / s
    base = rng.uniform(2, 4) / s
    h = int(length + base) + 3
    img = np.zeros((2 * h + 1, 2 * h + 1), np.uint8)
    side = 1 if rng.random() < 0.5 else -1
    tip = (h + dx * length + side * dy * length * 0.2, h + dy * length - side * dx * length * 0.2)
    p1 = (
        h - dy * base * side * 0.5 * -1 - dx * base * 0.3,
        h + dx * base * side * 0.5 * -1 - dy * base * 0.3,
    )
    p2 = (h + dy * base * 0.8 - dx * base * 0.3, h - dx * base * 0.8 - dy * base * 0.3)
    pts = np.array(
        [[int(tip[0]), int(tip[1])], [int(p1[0]), int(p1[1])], [int(p2[0]), int(p2[1])]], np.int32
    )
    cv2.fillPoly(img, [pts], 1)
    cv2.circle(img, (h, h), int(base * 0.7), 1, -1)
    # keep it outside the joint space proper and the other bone
    m = img > 0
    win = scene.labels[my - h : my + h + 1, mx - h : mx + h + 1]
    if win.shape != m.shape:
        return []
    m &= win == SOFT
    if m.sum() < 4:
        return []
    return _rec(
        "osteophyte", _add_bone(scene, "osteophyte", m, (my - h, mx - h), cortex_mm=0.6, cap_mm=3)
    )


def overlaps(scene: Scene, min_area_mm2: float = 30.0) -> list[Rec]:
    """Regions where two bones overlap in projection (double cortical contours)."""
    recs: list[Rec] = []
    names = list(scene.bones)
    s2 = scene.spacing_mm**2
    for i, a in enumerate(names):
        ba = scene.bones[a]
        for b in names[i + 1 :]:
            bb = scene.bones[b]
            r0, c0 = max(ba.bbox[0], bb.bbox[0]), max(ba.bbox[1], bb.bbox[1])
            r1, c1 = min(ba.bbox[2], bb.bbox[2]), min(ba.bbox[3], bb.bbox[3])
            if r0 >= r1 or c0 >= c1:
                continue
            ma = ba.mask[r0 - ba.bbox[0] : r1 - ba.bbox[0], c0 - ba.bbox[1] : c1 - ba.bbox[1]]
            mb = bb.mask[r0 - bb.bbox[0] : r1 - bb.bbox[0], c0 - bb.bbox[1] : c1 - bb.bbox[1]]
            inter = ma & mb
            if inter.sum() * s2 >= min_area_mm2:
                box = bbox_of(inter)
                assert box is not None
                recs += _rec("overlap", (r0 + box[0], c0 + box[1], r0 + box[2], c0 + box[3]))
    return recs
