"""Foreign bodies on a radiograph: lead markers, burned-in text and metal.

Part of stage 2 (:mod:`calcimg.anatomy`): :func:`find_foreign` works on the anatomy grid
and returns the mask of foreign bodies (never reported as calcification) and their list
as :class:`~calcimg.result.Confounder` entries (``DOMAIN.md``, "Confounders that look like
calcification").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from calcimg.imageops import disc as _disc
from calcimg.result import Confounder

if TYPE_CHECKING:
    from calcimg.anatomy import AnatomyParams

__all__ = ["ForeignBodies", "find_foreign"]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ForeignBodies:
    """Foreign bodies found on the anatomy grid.

    Attributes
    ----------
    mask : numpy.ndarray
        bool (grid rows, grid columns): pixels of markers, text and metal (grown by
        ``foreign_dilate_mm``).
    confounders : tuple of Confounder
        One entry per object (boxes in film pixels), plus the collimated band if any.
    """

    mask: np.ndarray
    confounders: tuple[Confounder, ...]


def _film_bbox(
    y: int, x: int, bh: int, bw: int, fr: float, fc: float, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A grid box (top, left, height, width) as film pixels (row0, col0, row1, col1)."""
    return (
        int(y * fr),
        int(x * fc),
        min(shape[0], int(np.ceil((y + bh) * fr))),
        min(shape[1], int(np.ceil((x + bw) * fc))),
    )


@dataclass(frozen=True, slots=True)
class _Levels:
    """The film's own intensity levels on the anatomy grid (normalised units)."""

    top: float
    """Densest exposed pixel."""
    soft: float
    """Median soft tissue."""
    bone: float
    """Median large bone."""
    unit: float
    """Contrast unit: bone minus soft tissue, at least ``foreign_unit_floor`` of the
    exposed range (films whose 'soft tissue' is mostly unexposed film have none)."""
    air: float | None
    """Median outside the body (None when the film has no air)."""
    cortex: float | None
    """The cortex (:func:`_cortex`, set once the seeds are known); None when the film has
    no bone or no headroom above it, or ``metal_min_density`` is off."""


def _sample_step(img: np.ndarray) -> int:
    """Stride of a regular subsample of at most ~100k pixels of ``img``: percentiles of a
    film's hundreds of thousands of grid pixels cost more than the rest of this stage."""
    return max(1, int(np.sqrt(img.size / 100_000)))


def _levels(
    img: np.ndarray, body: np.ndarray, bone: np.ndarray, collim: np.ndarray, p: AnatomyParams
) -> _Levels:
    st = _sample_step(img)
    img, body, bone, collim = (
        img[::st, ::st],
        body[::st, ::st],
        bone[::st, ::st],
        collim[::st, ::st],
    )
    exposed = img[~collim] if (~collim).any() else img.ravel()
    lo, top = float(np.percentile(exposed, 1)), float(exposed.max())
    rng = max(top - lo, 1e-6)
    soft_px = body & ~bone
    soft = float(np.median(img[soft_px])) if soft_px.any() else lo
    bone_l = float(np.median(img[bone])) if bone.any() else soft + 0.25 * rng
    unit = max(bone_l - soft, p.foreign_unit_floor * rng)
    outside = ~body & ~collim
    air = float(np.median(img[outside])) if outside.sum() * st * st >= 50 else None
    return _Levels(top=top, soft=soft, bone=bone_l, unit=unit, air=air, cortex=None)


def _cortex(
    img: np.ndarray, bone: np.ndarray, seeds: np.ndarray, lv: _Levels, headroom: float
) -> float | None:
    """The cortex level: 95th percentile of the large bones without the foreign seeds
    (a filling or a screw inside a bone is not its cortex). None without bone, or when
    the film's densest level is less than ``headroom`` x (cortex - soft tissue) above
    it: processing has compressed the top of the range, and metal there is no denser
    than bone (a dental panoramic's fillings are 0.95 of the way to its cortex)."""
    st = _sample_step(img)
    v = img[::st, ::st][bone[::st, ::st] & ~seeds[::st, ::st]]
    if not v.size:
        return None
    cortex = float(np.percentile(v, 95))
    if cortex <= lv.soft or lv.top - cortex < headroom * (cortex - lv.soft):
        return None
    return cortex


def _candidates(
    img: np.ndarray,
    body: np.ndarray,
    collim: np.ndarray,
    lv: _Levels,
    sp: float,
    p: AnatomyParams,
) -> np.ndarray:
    """Seeds of foreign bodies: inside the body, denser than median bone and than the
    body's local mean by ``foreign_local_contrast`` units; outside it, brighter than
    half-way from air to soft tissue (markers and text sit on air)."""
    bf = body.astype(np.float32)
    # the local mean of the body alone: air and unexposed film beside the skin line or
    # the field's edge would make every edge stand out
    mean = _local_mean(img * bf, p.foreign_local_mm / sp)
    mean /= np.maximum(_local_mean(bf, p.foreign_local_mm / sp), np.float32(1e-3))
    seeds = body & (img > lv.bone) & (img - mean > p.foreign_local_contrast * lv.unit)
    if lv.air is not None and min(lv.soft, lv.bone) > lv.air:
        # off the body: above half-way from air to soft tissue and standing out from the
        # local mean by as much (unexposed bands and the skin line do not)
        step = np.float32(0.5 * (min(lv.soft, lv.bone) - lv.air))
        off = ~body & ~collim & (img > lv.air + step)
        if off.any():
            seeds |= off & (img - _local_mean(img, p.foreign_local_mm / sp) > step)
    return _drop_edge_lines(seeds, collim, sp, p)


def _local_mean(img: np.ndarray, box_px: float) -> np.ndarray:
    """Box mean of ``box_px`` pixels, computed on a grid coarser by up to a quarter of the
    box and upsampled (the mean is smooth at that scale; saves most of its cost)."""
    h, w = img.shape
    f = max(1, min(4, int(box_px // 4)))
    if f == 1:
        k = max(3, int(round(box_px)) | 1)
        return np.asarray(cv2.blur(img, (k, k)), dtype=np.float32)
    sh = (max(1, h // f), max(1, w // f))
    small = cv2.resize(img, (sh[1], sh[0]), interpolation=cv2.INTER_AREA)
    k = max(3, int(round(box_px / f)) | 1)
    small = cv2.blur(small, (k, k))
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)


def _drop_edge_lines(
    seeds: np.ndarray, collim: np.ndarray, sp: float, p: AnatomyParams
) -> np.ndarray:
    """Seeds without the thin lines along the film's border or the collimation (processing
    overshoot at the field's edge), so that they neither become objects nor join text
    or a marker beside them."""
    h, w = seeds.shape
    rows, cols = np.flatnonzero(seeds.any(axis=1)), np.flatnonzero(seeds.any(axis=0))
    if rows.size == 0:
        return seeds
    win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    sub = seeds[win]
    n, lab, st, _ = cv2.connectedComponentsWithStats(sub.astype(np.uint8), connectivity=8)
    x, y = st[1:, 0] + cols[0], st[1:, 1] + rows[0]
    bw, bh = st[1:, 2], st[1:, 3]
    border = (x == 0) | (y == 0) | (x + bw >= w) | (y + bh >= h)
    if collim.any():
        near = cv2.dilate(collim.astype(np.uint8), np.ones((3, 3), np.uint8))[win] > 0
        touch = np.zeros(n, dtype=bool)
        touch[np.unique(lab[near & sub])] = True
        border |= touch[1:]
    thin = np.minimum(bw, bh) * sp <= p.edge_line_mm
    long_ = np.maximum(bw, bh) >= p.edge_line_aspect * np.minimum(bw, bh)
    drop = np.zeros(n, dtype=bool)
    drop[1:] = border & thin & long_
    if not drop.any():
        return seeds
    out = seeds.copy()
    out[win] &= ~drop[lab]
    return out
    return seeds


@dataclass(slots=True)
class _Object:
    """One candidate object (a group of seeds within ``foreign_merge_mm``)."""

    window: tuple[slice, slice]
    mask: np.ndarray
    """bool, window-shaped: the object's pixels."""
    area_mm2: float
    extent_mm: float
    """Longer side of the object's box."""
    thickness_mm: float
    """Shorter side of its minimum-area rectangle."""
    length_mm: float
    contrast: float
    """Object (90th percentile) minus its surrounding ring (median), in level units."""
    density: float | None
    """Object (90th percentile) from the soft tissue (0) to the cortex (1); None when
    the film has no bone."""
    inside: float
    """Fraction of the object inside the body."""
    at_edge: bool
    """Touches the film's border, the collimation or (from inside the body) the
    background: field-edge lines and skin-line artefacts do."""
    on_border: bool
    """Touches the film's border."""
    solidity: float
    """Area over convex hull area: a letter's is low, a disc's or a filling's near 1."""
    plateau: float
    """Fraction of the object within a quarter of its contrast of its plateau: metal is
    flat-topped, the tip of a bone graded."""
    saturated: float
    """Fraction at the film's densest level (burned-in text is written at full white)."""
    glyphs: int
    """Components at least ``text_glyph_min_mm2`` with extent <= ``text_glyph_max_mm``."""
    parts: int
    """All components of the object."""


def _measure(
    img: np.ndarray,
    body: np.ndarray,
    collim: np.ndarray,
    seeds: np.ndarray,
    lab: np.ndarray,
    i: int,
    box: tuple[int, int, int, int],
    lv: _Levels,
    sp: float,
    p: AnatomyParams,
) -> _Object | None:
    h, w = img.shape
    x, y, bw, bh = box
    ring_px = max(1, int(round(p.foreign_ring_mm / sp)))
    pad = ring_px + 2
    win = (
        slice(max(0, y - pad), min(h, y + bh + pad)),
        slice(max(0, x - pad), min(w, x + bw + pad)),
    )
    sub = img[win]
    grp = lab[win] == i
    seed = grp & seeds[win]
    if not seed.any():
        return None
    level = float(np.percentile(sub[seed], 90))
    grown = cv2.dilate(grp.astype(np.uint8), _disc(2 * ring_px + 1)) > 0
    ring = grown & ~grp & ~collim[win] & ~seeds[win]
    if not ring.any():
        return None
    ring_level = float(np.median(sub[ring]))
    # the object is what exceeds half-way from its ring to its plateau, near its seeds
    # (the seeds of a wide plateau are only its edges)
    half = 0.5 * (level + ring_level)
    mask = (sub > half) & grp
    if not mask.any():
        return None
    n_px = int(mask.sum())
    rows, cols = np.nonzero(mask)
    extent = (max(int(np.ptp(rows)), int(np.ptp(cols))) + 1) * sp
    pts = np.column_stack([cols, rows]).astype(np.float32)
    (_, _), (rw, rh), _ = cv2.minAreaRect(pts)
    thick, length = (min(rw, rh) + 1) * sp, (max(rw, rh) + 1) * sp
    r0, c0 = win[0].start, win[1].start
    touches_border = rows.min() + r0 == 0 or cols.min() + c0 == 0
    touches_border |= rows.max() + r0 == h - 1 or cols.max() + c0 == w - 1
    reach = 2 * max(1, int(round(1.0 / sp))) + 1  # within 1 mm
    near = cv2.dilate(mask.astype(np.uint8), np.ones((reach, reach), np.uint8)) > 0
    inside = float(body[win][mask].mean())
    outside_body = ~body[win] & ~mask
    at_edge = bool(touches_border or (near & collim[win]).any())
    if inside > 0.5:
        at_edge |= bool((near & outside_body).any())
    n, _, st, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    ext = np.maximum(st[1:, cv2.CC_STAT_WIDTH], st[1:, cv2.CC_STAT_HEIGHT]) * sp
    big = st[1:, cv2.CC_STAT_AREA] * sp * sp >= p.text_glyph_min_mm2
    glyphs = int((big & (ext <= p.text_glyph_max_mm)).sum())
    return _Object(
        window=win,
        mask=mask,
        area_mm2=n_px * sp * sp,
        extent_mm=extent,
        thickness_mm=thick,
        length_mm=length,
        contrast=(level - ring_level) / lv.unit,
        density=None if lv.cortex is None else (level - lv.soft) / (lv.cortex - lv.soft),
        inside=inside,
        at_edge=at_edge,
        on_border=bool(touches_border),
        solidity=n_px
        / max(
            float(cv2.contourArea(cv2.convexHull(pts))) + 0.5 * len(cv2.convexHull(pts)) + 1.0, 1.0
        ),
        plateau=float((sub[mask] >= level - 0.25 * (level - ring_level)).mean()),
        saturated=float((sub[mask] >= lv.top - 0.002).mean()),
        glyphs=glyphs,
        parts=n - 1,
    )


def _kind(o: _Object, p: AnatomyParams) -> str | None:
    """marker, metal or None (not a foreign body), by size, shape and contrast (text is
    decided on groups of objects, :func:`_text_groups`)."""
    if o.area_mm2 < p.foreign_min_area_mm2 or o.area_mm2 > p.foreign_max_area_mm2:
        return None
    if o.contrast < p.foreign_min_contrast:
        return None
    line = o.thickness_mm <= p.edge_line_mm
    line &= o.length_mm >= p.edge_line_aspect * o.thickness_mm
    if o.at_edge and line and o.glyphs < p.text_min_glyphs:
        return None  # a bright line along the film's or the exposed field's edge
    if o.on_border and o.area_mm2 < 3 * p.foreign_min_area_mm2:
        return None  # a speck cut by the film's border (corner pixels of a digitiser)
    compact = p.marker_min_mm <= o.extent_mm <= p.marker_max_mm
    compact &= o.thickness_mm >= p.marker_min_aspect * o.length_mm
    # lead stops nearly the whole beam: a letter is a plateau at the film's densest level
    # or far above its surroundings, wherever it lies
    lead = o.contrast >= p.marker_min_contrast or o.saturated >= p.marker_min_saturated
    letter = lead and o.solidity <= p.marker_max_solidity
    if compact and (o.inside < 0.5 or letter):
        return "marker"
    if o.contrast < p.metal_flat_below and o.plateau < p.metal_min_plateau:
        return None  # a graded bright bone tip, not a flat-topped piece of metal
    if _below_cortex(o, p):
        return None  # a dense calcification (a phlebolith), lifted by edge enhancement
    return "metal"


def _below_cortex(o: _Object, p: AnatomyParams) -> bool:
    """Inside the body, less dense than ``metal_min_density`` of the way to the film's
    cortex and below lead's contrast (``marker_min_contrast``; a lead letter on thin
    tissue can be less dense than the cortex): metal is denser than bone, a
    calcification is not."""
    return (
        p.metal_min_density > 0
        and o.inside > 0.5
        and o.contrast < p.marker_min_contrast
        and o.density is not None
        and o.density < p.metal_min_density
    )


def find_foreign(
    img: np.ndarray,
    *,
    body: np.ndarray,
    bone: np.ndarray,
    collimation: np.ndarray,
    spacing_mm: float,
    film_shape: tuple[int, int],
    params: AnatomyParams,
) -> ForeignBodies:
    """Find lead markers, burned-in text and metal on the anatomy grid.

    Seeds are pixels inside the body denser than median bone and than the body's local
    mean (``foreign_local_mm`` box) by ``foreign_local_contrast`` units, and pixels
    outside the body brighter than half-way from air to soft tissue. Seeds within
    ``foreign_merge_mm`` are one object; the object is what exceeds half-way from its
    surrounding ring (``foreign_ring_mm``) to its plateau. Its contrast is plateau minus
    ring in units of the film's bone - soft-tissue contrast (at least
    ``foreign_unit_floor`` of its exposed range). Objects with at least
    ``foreign_min_contrast`` and ``foreign_min_area_mm2`` .. ``foreign_max_area_mm2``
    are foreign unless they are thin lines (``edge_line_mm``) along the film's border,
    the collimation or the body's edge. Rows of small glyphs (``text_*``) are ``text``;
    compact objects (``marker_min_mm`` .. ``marker_max_mm``) outside the body or of at
    least ``marker_min_contrast`` are ``marker``; the rest ``metal``.

    Parameters
    ----------
    img : numpy.ndarray
        float32 (rows, columns): the film on the anatomy grid, normalised to its value
        range (0 = least, 1 = most attenuation).
    body, bone, collimation : numpy.ndarray
        bool, ``img``-shaped: the body, its large bones and the collimated band.
    spacing_mm : float
        The grid's (isotropic) spacing, mm.
    film_shape : tuple of int
        (rows, columns) of the film, to state the boxes in film pixels.
    params : AnatomyParams
        The ``foreign_*``, ``edge_line_mm``, ``marker_*`` and ``text_*`` parameters.

    Returns
    -------
    ForeignBodies
        The mask (grown by ``foreign_dilate_mm``) and one confounder per object, plus
        the collimated band.
    """
    p = params
    sp = spacing_mm
    h, w = img.shape
    px_area = sp * sp
    collim = collimation
    fr, fc = film_shape[0] / h, film_shape[1] / w
    lv = _levels(img, body, bone, collim, p)
    seeds = _candidates(img, body, collim, lv, sp, p)
    if p.metal_min_density > 0:
        lv = replace(lv, cortex=_cortex(img, bone, seeds, lv, p.metal_density_headroom))
    foreign = np.zeros((h, w), dtype=bool)
    confounders: list[Confounder] = []
    if seeds.any():
        # group (dilate and label) inside the seeds' box only, grown by the merge reach
        m = int(p.foreign_merge_mm / sp) + 1
        rows, cols = np.flatnonzero(seeds.any(axis=1)), np.flatnonzero(seeds.any(axis=0))
        r0, r1 = max(0, rows[0] - m), min(h, rows[-1] + m + 1)
        c0, c1 = max(0, cols[0] - m), min(w, cols[-1] + m + 1)
        grp = cv2.dilate(seeds[r0:r1, c0:c1].astype(np.uint8), _disc(p.foreign_merge_mm / sp))
        n, sub_lab, st, _ = cv2.connectedComponentsWithStats(grp, connectivity=8)
        lab = np.zeros((h, w), dtype=np.int32)
        lab[r0:r1, c0:c1] = sub_lab
        st[:, 0] += c0
        st[:, 1] += r0
        objs: list[tuple[_Object, str]] = []
        for i in range(1, n):
            box = (int(st[i, 0]), int(st[i, 1]), int(st[i, 2]), int(st[i, 3]))
            o = _measure(img, body, collim, seeds, lab, i, box, lv, sp, p)
            if o is None:
                continue
            kind = _kind(o, p)
            speck = o.contrast >= p.foreign_min_contrast and not o.at_edge
            if kind is None and speck and not _below_cortex(o, p):
                # specks too small to list are still never findings
                foreign[o.window] |= o.mask
            if kind is not None:
                objs.append((o, kind))
        for members, kind in _text_groups(objs, sp, p):
            r0 = min(o.window[0].start + int(np.nonzero(o.mask.any(1))[0][0]) for o in members)
            c0 = min(o.window[1].start + int(np.nonzero(o.mask.any(0))[0][0]) for o in members)
            r1 = max(o.window[0].start + int(np.nonzero(o.mask.any(1))[0][-1]) + 1 for o in members)
            c1 = max(o.window[1].start + int(np.nonzero(o.mask.any(0))[0][-1]) + 1 for o in members)
            area = sum(o.area_mm2 for o in members)
            for o in members:
                foreign[o.window] |= o.mask
            bbox = _film_bbox(r0, c0, r1 - r0, c1 - c0, fr, fc, film_shape)
            confounders.append(Confounder(kind=kind, bbox=bbox, area_mm2=round(area, 2)))
    if p.foreign_dilate_mm > 0 and foreign.any():
        foreign = cv2.dilate(foreign.astype(np.uint8), _disc(2 * p.foreign_dilate_mm / sp + 1)) > 0
    if collim.any():
        confounders.append(_collimation_confounder(collim, fr, fc, px_area, film_shape))
    return ForeignBodies(mask=foreign, confounders=tuple(confounders))


def _text_groups(
    objs: list[tuple[_Object, str]], sp: float, p: AnatomyParams
) -> list[tuple[list[_Object], str]]:
    """Objects as listed entries: objects of small glyphs that are saturated or off the
    body and lie within ``text_merge_mm`` of each other form one ``text`` entry when
    they hold at least ``text_min_glyphs`` glyphs in all; every other object is its own
    entry."""
    glyphy = [
        k
        for k, (o, _) in enumerate(objs)
        if o.glyphs >= 1
        and o.glyphs == o.parts
        and (o.saturated >= p.text_min_saturated or o.inside < 0.5)
    ]
    parent = list(range(len(objs)))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    reach = p.text_merge_mm / sp
    boxes = {}
    for k in glyphy:
        o = objs[k][0]
        rows, cols = np.nonzero(o.mask)
        boxes[k] = (
            o.window[0].start + rows.min(),
            o.window[1].start + cols.min(),
            o.window[0].start + rows.max() + 1,
            o.window[1].start + cols.max() + 1,
        )
    for a_i, a in enumerate(glyphy):
        for b in glyphy[a_i + 1 :]:
            ba, bb = boxes[a], boxes[b]
            gap_r = max(ba[0] - bb[2], bb[0] - ba[2], 0)
            gap_c = max(ba[1] - bb[3], bb[1] - ba[3], 0)
            if max(gap_r, gap_c) <= reach:
                parent[root(a)] = root(b)
    clusters: dict[int, list[int]] = {}
    for k in glyphy:
        clusters.setdefault(root(k), []).append(k)
    out: list[tuple[list[_Object], str]] = []
    done: set[int] = set()
    for members in clusters.values():
        if sum(objs[k][0].glyphs for k in members) >= p.text_min_glyphs:
            out.append(([objs[k][0] for k in members], "text"))
            done.update(members)
    out += [([o], kind) for k, (o, kind) in enumerate(objs) if k not in done]
    return out


def _collimation_confounder(
    collim: np.ndarray, fr: float, fc: float, px_area: float, shape: tuple[int, int]
) -> Confounder:
    rows = np.flatnonzero(collim.any(axis=1))
    cols = np.flatnonzero(collim.any(axis=0))
    bbox = _film_bbox(
        int(rows[0]),
        int(cols[0]),
        int(rows[-1] + 1 - rows[0]),
        int(cols[-1] + 1 - cols[0]),
        fr,
        fc,
        shape,
    )
    return Confounder(
        kind="collimation", bbox=bbox, area_mm2=round(float(collim.sum()) * px_area, 1)
    )
