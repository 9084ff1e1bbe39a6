"""Calcifications of the five DOMAIN.md patterns, drawn as excess projected attenuation.

Each drawer returns a :class:`Drawn` lesion (a crop of added line integral and its
visible-extent mask) or None when it finds no place for it. Sizes are in mm and follow
DOMAIN.md's pattern table; densities are set relative to the film's cortical bone
(``scene.cortex_ref``) so that calcification lies between soft tissue and cortex.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from calcimg.synth.geometry import dist_mm, exact_distance
from calcimg.synth.scene import JOINT, SOFT, JointRender, Scene, chord

__all__ = [
    "Drawn",
    "chondral_line",
    "clump",
    "globular_mass",
    "phlebolith",
    "ring_and_arc_bodies",
    "sheet",
    "speckled_field",
    "tram_track",
]


@dataclass(slots=True)
class Drawn:
    pattern: str
    subtype: str
    origin: tuple[int, int]
    delta: np.ndarray  # float32 crop: added line integral
    mask: np.ndarray  # bool crop: visible extent (truth)
    joint: str | None = None
    intra_articular: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _pick(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    i = int(idx[rng.integers(idx.size)])
    return divmod(i, mask.shape[1])


def _fits(
    scene: Scene, d: Drawn, allowed: tuple[int, ...] = (SOFT,), min_frac: float = 0.995
) -> bool:
    r0, c0 = d.origin
    h, w = d.mask.shape
    if r0 < 0 or c0 < 0 or r0 + h > scene.shape[0] or c0 + w > scene.shape[1]:
        return False
    lab = scene.labels[r0 : r0 + h, c0 : c0 + w][d.mask]
    if lab.size == 0:
        return False
    if float(np.isin(lab, allowed).mean()) < min_frac:
        return False
    assert scene.occupied is not None
    if scene.occupied[r0 : r0 + h, c0 : c0 + w][d.mask].any():
        return False
    if scene.field_mask is not None:
        inner = scene.field_mask[r0 : r0 + h, c0 : c0 + w][d.mask]
        if not inner.all():
            return False
    return True


def _soft_candidates(
    scene: Scene, d_bone: np.ndarray, *, bone_min: float, bone_max: float, skin_min: float
) -> np.ndarray:
    m = (
        (scene.labels == SOFT)
        & (d_bone >= bone_min)
        & (d_bone <= bone_max)
        & (scene.d_skin_mm >= skin_min)
    )
    if scene.field_mask is not None:
        m &= scene.field_mask
    assert scene.occupied is not None
    return m & ~scene.occupied


def _sphere(radius_px: float, pad: int = 2) -> tuple[np.ndarray, int]:
    """Normalised projected chord of a sphere (peak 1) on a small grid; returns (img, half)."""
    h = math.ceil(radius_px) + pad
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1].astype(np.float32)
    rho2 = yy * yy + xx * xx
    img = np.sqrt(np.maximum(1.0 - rho2 / max(radius_px * radius_px, 0.25), 0.0))
    return img.astype(np.float32), h


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), max(sigma_px, 0.3)) if sigma_px > 0.3 else img


# --------------------------------------------------------------------------- amorphous


def clump(
    scene: Scene,
    rng: np.random.Generator,
    d_bone: np.ndarray,
    *,
    size_mm: float,
    peak: float,
    center: tuple[int, int] | None = None,
    subtype: str = "clump",
    tries: int = 25,
) -> Drawn | None:
    """Ill-defined cloud of merged densities without internal structure (5-30 mm)."""
    s = scene.spacing_mm
    for _ in range(tries):
        c = center or _pick(
            _soft_candidates(
                scene, d_bone, bone_min=1.5, bone_max=60, skin_min=min(size_mm / 2, 8)
            ),
            rng,
        )
        if c is None:
            return None
        half = int(size_mm / s * 0.75) + 4
        n = 2 * half + 1
        noise = rng.standard_normal((n, n)).astype(np.float32)
        f = _blur(noise, size_mm / s / 7)
        f /= float(f.std()) + 1e-6
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
        ang = rng.uniform(0, math.pi)
        a = size_mm / 2 / s
        b = a * rng.uniform(0.5, 1.0)
        u = (yy * math.cos(ang) + xx * math.sin(ang)) / a
        v = (-yy * math.sin(ang) + xx * math.cos(ang)) / b
        env = 1.0 - (u * u + v * v)
        blob = (env + 0.35 * f) > 0.15
        # merged densities of varying thickness, no internal structure (amorphous)
        lumpy = _blur(rng.standard_normal((n, n)).astype(np.float32), max(1.2, size_mm / 8) / s)
        lumpy /= float(lumpy.std()) + 1e-6
        dens = _blur(blob.astype(np.float32), 0.8 / s) * (0.75 + 0.25 * np.clip(lumpy, -2, 2))
        dens = np.clip(dens, 0, None) * peak
        mask = dens > 0.25 * peak
        if center is None and mask.sum() * s * s < 5:
            continue
        d = Drawn("amorphous", subtype, (c[0] - half, c[1] - half), dens.astype(np.float32), mask)
        if _fits(scene, d):
            return d
        size_mm = max(2.5, size_mm * 0.93)  # a smaller clump may fit where this one did not
    return None


def sheet(
    scene: Scene,
    rng: np.random.Generator,
    d_bone: np.ndarray,
    *,
    length_mm: float,
    peak: float,
    tries: int = 25,
) -> Drawn | None:
    """Sheet-like plates along fascial planes (calcinosis universalis)."""
    s = scene.spacing_mm
    axis = math.radians(scene.template.axis_deg - scene.placement.angle_deg)
    for _ in range(tries):
        c = _pick(_soft_candidates(scene, d_bone, bone_min=2, bone_max=40, skin_min=5), rng)
        if c is None:
            return None
        half = int(length_mm / s * 0.6) + 4
        n = 2 * half + 1
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
        th = axis + rng.normal(0, 0.15)
        along = yy * math.sin(th) + xx * math.cos(th)
        across = -yy * math.cos(th) + xx * math.sin(th)
        # the limb axis as a direction in (row, col): sin(theta) rows, cos(theta) cols
        w = rng.uniform(4, 12) / s
        env = 1 - (along / (length_mm / 2 / s)) ** 2 - (across / (w / 2)) ** 2
        noise = _blur(rng.standard_normal((n, n)).astype(np.float32), 1.5 / s)
        noise /= float(noise.std()) + 1e-6
        streak = _blur(rng.standard_normal((n, n)).astype(np.float32), 0.6 / s)
        streak /= float(streak.std()) + 1e-6
        blob = (env + 0.25 * noise) > 0.1
        dens = (
            _blur(blob.astype(np.float32), 0.5 / s) * (0.75 + 0.25 * np.clip(streak, -2, 2)) * peak
        )
        mask = dens > 0.25 * peak
        if mask.sum() * s * s < 20:
            continue
        d = Drawn("amorphous", "sheet", (c[0] - half, c[1] - half), dens.astype(np.float32), mask)
        if _fits(scene, d):
            return d
    return None


# ---------------------------------------------------------------------- finely speckled


def speckled_field(
    scene: Scene,
    rng: np.random.Generator,
    d_bone: np.ndarray,
    *,
    region_mm: float,
    peak: float,
    tries: int = 25,
) -> Drawn | None:
    """Many punctate densities (0.3-2 mm) scattered over a 20-60 mm region."""
    s = scene.spacing_mm
    for _ in range(tries):
        c = _pick(
            _soft_candidates(
                scene, d_bone, bone_min=2, bone_max=50, skin_min=min(region_mm / 2, 10)
            ),
            rng,
        )
        if c is None:
            return None
        half = int(region_mm / s * 0.55) + 6
        n = 2 * half + 1
        dens = np.zeros((n, n), np.float32)
        ang = rng.uniform(0, math.pi)
        a, b = region_mm / 2, region_mm / 2 * rng.uniform(0.5, 1.0)
        count = int(rng.integers(15, 90))
        placed = 0
        for _k in range(count * 3):
            if placed >= count:
                break
            u, v = rng.uniform(-1, 1, 2)
            if u * u + v * v > 1:
                continue
            dy = (u * a * math.cos(ang) - v * b * math.sin(ang)) / s
            dx = (u * a * math.sin(ang) + v * b * math.cos(ang)) / s
            diam = float(np.clip(rng.lognormal(math.log(0.9), 0.45), 0.4, 2.0))
            img, h = _sphere(diam / 2 / s, pad=1)
            pk = peak * (0.55 + 0.45 * min(diam, 1.5) / 1.5) * rng.uniform(0.8, 1.15)
            cy, cx = round(half + dy), round(half + dx)
            if cy - h < 0 or cx - h < 0 or cy + h + 1 > n or cx + h + 1 > n:
                continue
            win = dens[cy - h : cy + h + 1, cx - h : cx + h + 1]
            np.maximum(win, img * pk, out=win)
            placed += 1
        dens = _blur(dens, 0.08 / s)
        mask = dens > 0.3 * peak
        if placed < 10:
            continue
        d = Drawn("finely_speckled", "speckled_field", (c[0] - half, c[1] - half), dens, mask)
        if _fits(scene, d):
            return d
    return None


# ------------------------------------------------------------------ globular periarticular


def globular_mass(
    scene: Scene,
    rng: np.random.Generator,
    d_bone: np.ndarray,
    joint: JointRender,
    *,
    size_mm: float,
    peak: float,
    tries: int = 30,
) -> Drawn | None:
    """Lobulated mass of rounded globules (5-20 mm) with lucent septa beside a joint."""
    s = scene.spacing_mm
    jr, jc = joint.center_rc
    reach = (size_mm / 2 + 25) / s
    for _ in range(tries):
        cand = _soft_candidates(
            scene,
            d_bone,
            bone_min=size_mm * 0.45,
            bone_max=size_mm * 0.6 + 10,
            skin_min=size_mm * 0.4,
        )
        r0 = max(0, int(jr - reach))
        c0 = max(0, int(jc - reach))
        local = np.zeros_like(cand)
        local[r0 : int(jr + reach), c0 : int(jc + reach)] = cand[
            r0 : int(jr + reach), c0 : int(jc + reach)
        ]
        c = _pick(local, rng)
        if c is None:
            size_mm *= 0.85
            continue
        half = int(size_mm / s * 0.6) + 6
        n = 2 * half + 1
        dens = np.zeros((n, n), np.float32)
        sep = rng.uniform(0.6, 1.5)
        # packed from the centre outwards: a lobulated mass, globules separated only by
        # thin lucent septa
        cands = []
        for _k in range(600):
            rg = rng.uniform(2.5, min(10.0, size_mm / 4))
            u, v = rng.uniform(-1, 1, 2)
            if u * u + v * v <= 1:
                cands.append((u * (size_mm / 2 - rg), v * (size_mm / 2 - rg) * 0.8, rg))
        cands.sort(key=lambda g: math.hypot(g[0], g[1]) + 0.5 * g[2])
        globs: list[tuple[float, float, float]] = []
        for gy, gx, rg in cands:
            if all(math.hypot(gy - y, gx - x) >= rg + r + sep for y, x, r in globs):
                globs.append((gy, gx, rg))
        fluid = bool(rng.random() < 0.25)
        level = rng.uniform(-0.1, 0.4) * size_mm / 2
        kept = 0
        for gy, gx, rg in globs:
            cy, cx = c[0] + gy / s, c[1] + gx / s
            img, h = _sphere(rg / s, pad=1)
            iy, ix = round(cy), round(cx)
            if (
                iy - h < 0
                or ix - h < 0
                or iy + h + 1 > scene.shape[0]
                or ix + h + 1 > scene.shape[1]
            ):
                continue
            if (scene.labels[iy - h : iy + h + 1, ix - h : ix + h + 1][img > 0] != SOFT).any():
                continue
            prof = np.power(img, 0.6) * peak * rng.uniform(0.8, 1.1)
            if fluid:
                rows = (np.arange(-h, h + 1, dtype=np.float32)[:, None] * s + gy) > level
                prof = prof * np.where(rows, 1.35, 0.85)
            ly, lx = iy - c[0] + half, ix - c[1] + half
            if ly - h < 0 or lx - h < 0 or ly + h + 1 > n or lx + h + 1 > n:
                continue
            win = dens[ly - h : ly + h + 1, lx - h : lx + h + 1]
            np.maximum(win, prof.astype(np.float32), out=win)
            kept += 1
        if kept < 3:
            size_mm = max(20.0, size_mm * 0.92)
            continue
        dens = _blur(dens, 0.15 / s)
        mask = dens > 0.2 * peak
        d = Drawn(
            "globular_periarticular",
            "mass",
            (c[0] - half, c[1] - half),
            dens,
            mask,
            joint=joint.name,
            extra={"n_globules": kept, "fluid_level": fluid},
        )
        if _fits(scene, d, min_frac=0.99):
            return d
    return None


def ring_and_arc_bodies(
    scene: Scene,
    rng: np.random.Generator,
    d_bone: np.ndarray,
    joint: JointRender,
    *,
    peak: float,
    tries: int = 6,
) -> Drawn | None:
    """Many similar-sized intra-articular loose bodies with ring-and-arc calcification."""
    s = scene.spacing_mm
    jr, jc = joint.center_rc
    rad = 45.0 / s
    r0, c0 = max(0, int(jr - rad)), max(0, int(jc - rad))
    r1, c1 = min(scene.shape[0], int(jr + rad)), min(scene.shape[1], int(jc + rad))
    for _attempt in range(tries):
        lab = scene.labels[r0:r1, c0:c1]
        allowed = (
            ((lab == SOFT) | (lab == JOINT))
            & (d_bone[r0:r1, c0:c1] <= 14)
            & (scene.d_skin_mm[r0:r1, c0:c1] >= 4)
        )
        assert scene.occupied is not None
        allowed &= ~scene.occupied[r0:r1, c0:c1]
        yy, xx = np.mgrid[r0:r1, c0:c1]
        allowed &= (yy - jr) ** 2 + (xx - jc) ** 2 <= rad * rad
        # inside the capsule: within ~20 mm of the joint space, its recesses and margins
        in_js = np.zeros(allowed.shape, np.uint8)
        jb = joint.bbox
        a0, b0 = max(jb[0], r0), max(jb[1], c0)
        a1, b1 = min(jb[2], r1), min(jb[3], c1)
        if a0 < a1 and b0 < b1:
            in_js[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = joint.mask[
                a0 - jb[0] : a1 - jb[0], b0 - jb[1] : b1 - jb[1]
            ]
        allowed &= dist_mm(in_js == 0, s) <= 20.0
        if scene.field_mask is not None:
            allowed &= scene.field_mask[r0:r1, c0:c1]
        diam = rng.uniform(3.0, 7.0) * (0.85**_attempt)
        count = int(rng.integers(5, 16))
        dens = np.zeros((r1 - r0, c1 - c0), np.float32)
        body_mask = np.zeros_like(allowed)
        placed = 0
        for _k in range(count * 25):
            if placed >= count:
                break
            p = _pick(allowed & ~body_mask, rng)
            if p is None:
                break
            dd = diam * float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.2))
            ro = dd / 2 / s
            h = math.ceil(ro) + 2
            py, px = p
            if py - h < 0 or px - h < 0 or py + h + 1 > dens.shape[0] or px + h + 1 > dens.shape[1]:
                continue
            gy, gx = np.mgrid[-h : h + 1, -h : h + 1].astype(np.float32)
            rho = np.sqrt(gy * gy + gx * gx)
            if not allowed[py - h : py + h + 1, px - h : px + h + 1][rho <= ro + 1].all():
                continue
            if body_mask[py - h : py + h + 1, px - h : px + h + 1][rho <= ro + 0.5 / s + 1].any():
                continue
            prof = _ring_and_arc(gy, gx, ro, s, rng) * peak * rng.uniform(0.85, 1.1)
            win = dens[py - h : py + h + 1, px - h : px + h + 1]
            np.maximum(win, prof.astype(np.float32), out=win)
            body_mask[py - h : py + h + 1, px - h : px + h + 1] |= rho <= ro + 0.5 / s
            placed += 1
        if placed < 4:
            continue
        dens = _blur(dens, 0.12 / s)
        mask = (dens > 0.25 * peak) & allowed
        bb = _crop_to(mask)
        if bb is None:
            continue
        a0, b0, a1, b1 = bb
        d = Drawn(
            "globular_periarticular",
            "ring_and_arc",
            (r0 + a0, c0 + b0),
            dens[a0:a1, b0:b1],
            mask[a0:a1, b0:b1],
            joint=joint.name,
            intra_articular=True,
            extra={"n_bodies": placed, "body_diameter_mm": round(diam, 2)},
        )
        if _fits(scene, d, allowed=(SOFT, JOINT)):
            return d
    return None


def _ring_and_arc(
    gy: np.ndarray, gx: np.ndarray, ro: float, s: float, rng: np.random.Generator
) -> np.ndarray:
    """Chondroid calcification: a peripheral ring broken into arcs, one or two inner
    C-shaped arcs, over a faint matrix (peak about 1)."""
    rho = np.sqrt(gy * gy + gx * gx)
    ang = np.arctan2(gy, gx)
    wall = max(0.35 / s, ro * 0.18)
    ri = max(ro - wall, 0.5)
    shell = chord(ro - rho, ro) - chord(ri - rho, ri)
    shell /= float(shell.max()) + 1e-6
    keep = np.ones_like(rho)
    for _ in range(int(rng.integers(1, 3))):  # 1-2 gaps of 30-70 degrees in the ring
        a0 = rng.uniform(-math.pi, math.pi)
        width = math.radians(rng.uniform(30, 70))
        dist = np.abs((ang - a0 + math.pi) % (2 * math.pi) - math.pi)
        keep *= np.clip((dist - width / 2) / 0.25, 0.15, 1.0)
    out = shell * keep
    for _ in range(int(rng.integers(1, 3))):  # inner arcs
        cy, cx = rng.uniform(-0.3, 0.3, 2) * ro
        r2 = ro * rng.uniform(0.3, 0.55)
        rr = np.sqrt((gy - cy) ** 2 + (gx - cx) ** 2)
        a2 = np.arctan2(gy - cy, gx - cx)
        mid = rng.uniform(-math.pi, math.pi)
        span = math.radians(rng.uniform(90, 200))
        on = np.abs((a2 - mid + math.pi) % (2 * math.pi) - math.pi) <= span / 2
        arc = np.clip(1 - np.abs(rr - r2) / (wall * 0.8), 0, 1) * on
        out = np.maximum(out, 0.8 * arc * (rho <= ro))
    matrix = 0.15 * np.sqrt(np.maximum(1 - (rho / max(ro, 1.0)) ** 2, 0))
    return (out + matrix).astype(np.float32)


def _crop_to(mask: np.ndarray, pad: int = 2) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return (
        max(0, ys.min() - pad),
        max(0, xs.min() - pad),
        min(mask.shape[0], ys.max() + pad + 1),
        min(mask.shape[1], xs.max() + pad + 1),
    )


# ---------------------------------------------------------------------------- vascular


def tram_track(
    scene: Scene,
    rng: np.random.Generator,
    d_bone: np.ndarray,
    *,
    length_mm: float,
    peak: float,
    tries: int = 30,
) -> Drawn | None:
    """Two parallel thin lines (the calcified wall of an artery seen side-on) along a smooth
    curved course: wall 0.3-1 mm, lines 2-6 mm apart, 30-150 mm long, interrupted."""
    s = scene.spacing_mm
    axis = math.radians(scene.template.axis_deg - scene.placement.angle_deg)
    ok_region = (scene.labels == SOFT) & (scene.d_skin_mm >= 3) & (d_bone >= 1.0)
    if scene.field_mask is not None:
        ok_region &= scene.field_mask
    assert scene.occupied is not None
    ok_region &= ~scene.occupied
    for _ in range(tries):
        c = _pick(ok_region & (d_bone >= 3) & (scene.d_skin_mm >= 6), rng)
        if c is None:
            return None
        th0 = axis + rng.normal(0, 0.25) + (math.pi if rng.random() < 0.5 else 0.0)
        curv = rng.normal(0, 0.004)
        pts: list[tuple[float, float]] = []
        for direction in (1, -1):
            y, x, th = float(c[0]), float(c[1]), th0 if direction == 1 else th0 + math.pi
            seg = []
            k = curv * direction
            for _step in range(int(length_mm / 2 / 0.5)):
                k = 0.97 * k + rng.normal(0, 0.0015)
                th += k * 0.5
                y += math.sin(th) * 0.5 / s
                x += math.cos(th) * 0.5 / s
                iy, ix = int(y), int(x)
                if (
                    not (0 <= iy < scene.shape[0] and 0 <= ix < scene.shape[1])
                    or not ok_region[iy, ix]
                ):
                    break
                seg.append((y, x))
            pts = seg[::-1] if direction == 1 else [*pts, (float(c[0]), float(c[1])), *seg]
        total = (len(pts) - 1) * 0.5
        if total < 30:
            continue
        rad = rng.uniform(1.0, 3.0)  # lumen radius: lines 2-6 mm apart
        wall = float(np.clip(rng.uniform(0.3, 1.0), 0.3, rad * 0.6))
        ys = np.array([p[0] for p in pts])
        xs = np.array([p[1] for p in pts])
        pad = int((rad + 2) / s) + 2
        r0, c0 = int(ys.min()) - pad, int(xs.min()) - pad
        h, w = int(ys.max()) + pad - r0 + 1, int(xs.max()) + pad - c0 + 1
        # the calcified media seen side-on: two lines at +-(rad - wall/2) from the axis,
        # each interrupted on its own (runs of 5-30 mm, gaps of 1-8 mm), and a faint
        # tube between them (pipe-stem when the wall calcifies all round)
        py, px = ys - r0, xs - c0
        ty, tx = np.gradient(py), np.gradient(px)
        norm = np.hypot(ty, tx) + 1e-9
        ny, nx = -tx / norm, ty / norm
        off = (rad - wall / 2) / s
        prof = np.zeros((h, w), np.float32)
        for side in (1.0, -1.0):
            line = np.full((h, w), 255, np.uint8)
            i = int(rng.integers(0, 10))
            while i < len(pts) - 1:
                run = int(rng.uniform(5, 30) / 0.5)
                sl = slice(i, i + run + 1)
                run_px = np.stack(
                    [(px[sl] + side * off * nx[sl]) * 16, (py[sl] + side * off * ny[sl]) * 16], 1
                ).astype(np.int32)
                if len(run_px) >= 2:
                    cv2.polylines(line, [run_px], False, 0, 1, cv2.LINE_8, 4)
                i += run + int(rng.uniform(1, 8) / 0.5)
            dist = exact_distance(line) * s
            wobble = rng.uniform(0.75, 1.0)
            prof = np.maximum(
                prof, wobble * np.sqrt(np.maximum(1 - (dist / (wall / 2 + 0.5 * s)) ** 2, 0))
            )
        axis_img = np.full((h, w), 255, np.uint8)
        cv2.polylines(
            axis_img, [np.stack([px * 16, py * 16], 1).astype(np.int32)], False, 0, 1, cv2.LINE_8, 4
        )
        dist_axis = exact_distance(axis_img) * s
        lines_px = np.where(prof > 0.5, 0, 255).astype(np.uint8)
        near = cv2.distanceTransform(lines_px, cv2.DIST_L2, 3) * s <= 2 * rad
        fill = rng.uniform(0.0, 0.2) * ((dist_axis < rad - wall / 2) & near)
        prof = np.maximum(prof, fill.astype(np.float32))
        dens = _blur(prof.astype(np.float32), 0.08 / s) * peak
        mask = dens > 0.3 * peak
        d = Drawn(
            "vascular",
            "tram_track",
            (r0, c0),
            dens,
            mask,
            extra={
                "line_spacing_mm": round(2 * rad - wall, 2),
                "wall_mm": round(wall, 2),
                "length_mm": round(total, 1),
            },
        )
        if _fits(scene, d, min_frac=0.97):
            return d
    return None


def phlebolith(
    scene: Scene,
    rng: np.random.Generator,
    d_bone: np.ndarray,
    *,
    zone: np.ndarray | None,
    peak: float,
    tries: int = 30,
) -> Drawn | None:
    """Round or oval 2-5 mm body, often (66%) with a lucent centre."""
    s = scene.spacing_mm
    cand = _soft_candidates(scene, d_bone, bone_min=1.0, bone_max=200, skin_min=10)
    if zone is not None:
        cand &= zone
    for _ in range(tries):
        c = _pick(cand, rng)
        if c is None:
            return None
        diam = rng.uniform(2.0, 5.0)
        ro = diam / 2 / s
        h = math.ceil(ro * 1.3) + 3
        gy, gx = np.mgrid[-h : h + 1, -h : h + 1].astype(np.float32)
        ang = rng.uniform(0, math.pi)
        ecc = rng.uniform(0.75, 1.0)
        u = gy * math.cos(ang) + gx * math.sin(ang)
        v = (-gy * math.sin(ang) + gx * math.cos(ang)) / ecc
        rho = np.sqrt(u * u + v * v)
        lucent = bool(rng.random() < 0.66)
        prof = chord(ro - rho, ro)
        if lucent:
            ri = ro * rng.uniform(0.45, 0.65)
            prof = prof - 0.9 * chord(ri - rho, ri)
        prof /= float(prof.max()) + 1e-6
        dens = _blur(prof * peak, 0.1 / s).astype(np.float32)
        mask = dens > 0.3 * peak
        d = Drawn(
            "vascular",
            "phlebolith",
            (c[0] - h, c[1] - h),
            dens,
            mask,
            extra={"lucent_center": lucent, "diameter_mm": round(diam, 2)},
        )
        if _fits(scene, d):
            return d
    return None


# ---------------------------------------------------------------------- chondral line


def chondral_line(
    scene: Scene,
    rng: np.random.Generator,
    joint: JointRender,
    *,
    length_mm: float,
    peak: float,
    subtype: str,
    tries: int = 12,
) -> Drawn | None:
    """Thin line inside the joint space parallel to (0.5-2 mm from) the bone surface,
    0.5-1.5 mm thick, 10-40 mm long; ``meniscal`` fills the marginal triangle instead."""
    s = scene.spacing_mm
    js = joint.mask
    for _ in range(tries):
        side = joint.dist_a if rng.random() < 0.5 else joint.dist_b
        if subtype == "meniscal":
            band = js & (joint.dist_a >= 0.4) & (joint.dist_b >= 0.4)
            # the meniscus sits at the margins of the joint: the ends of the space
            ys, xs = np.nonzero(band)
            if ys.size == 0:
                return None
            cy, cx = joint.center_rc[0] - joint.bbox[0], joint.center_rc[1] - joint.bbox[1]
            far = np.hypot(ys - cy, xs - cx)
            sel = far >= np.percentile(far, 80)
            k = int(rng.choice(np.flatnonzero(sel)))
            center = (ys[k], xs[k])
        else:
            th = rng.uniform(0.5, min(1.5, max(0.5, joint.gap_mm - 1.2)))
            d0 = rng.uniform(0.5, max(0.55, min(2.0, joint.gap_mm - th - 0.4)))
            band = js & (np.abs(side - (d0 + th / 2)) <= th / 2)
            p = _pick(band, rng)
            if p is None:
                continue
            center = p
        yy, xx = np.mgrid[0 : js.shape[0], 0 : js.shape[1]]
        win = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= (length_mm / 2 / s) ** 2
        line = band & win
        if subtype != "meniscal":
            stip = _blur(rng.standard_normal(js.shape).astype(np.float32), 0.8 / s)
            line &= stip > np.percentile(stip[line], 20) if line.any() else line
        if line.sum() * s * s < 3:
            continue
        dens = _blur(line.astype(np.float32), 0.12 / s) * peak * rng.uniform(0.85, 1.1)
        mask = line & (dens > 0.3 * peak)
        bb = _crop_to(mask)
        if bb is None:
            continue
        a0, b0, a1, b1 = bb
        d = Drawn(
            "chondral_line",
            subtype,
            (joint.bbox[0] + a0, joint.bbox[1] + b0),
            dens[a0:a1, b0:b1].astype(np.float32),
            mask[a0:a1, b0:b1],
            joint=joint.name,
            intra_articular=True,
        )
        if _fits(scene, d, allowed=(JOINT,), min_frac=1.0):
            return d
    return None
