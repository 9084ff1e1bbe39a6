"""Detection: candidate soft-tissue calcifications grouped into findings.

Stage 3 of the pipeline. ``detect`` takes a radiograph and its anatomy map and returns
:class:`Detections`: each a group of particles (a speckled field or a tram-track is one
finding) with its pixel mask and a detection confidence in [0, 1].

Method (sizes in mm, intensities in units of the local noise):

1. Candidates: white top-hats of the analysis-grid image at three scales (particles
   and lines, ``fine_se_mm`` on the analysis grid; phleboliths and globules,
   ``medium_se_mm`` on a ``medium_spacing_mm`` grid; clumps and masses, ``coarse_se_mm``
   on a ``coarse_spacing_mm`` grid). A top-hat keeps bright structures narrower than its
   structuring element and is zero on a step edge, so the skin line and the flanks of
   bones do not respond. Each response is turned into a contrast-to-noise ratio (CNR)
   with its own robust median and MAD over soft tissue, modulated by the local pixel
   noise; the candidate map is the maximum CNR over scales.
2. Candidates are restricted to soft tissue more than ``bone_margin_mm`` from bone, plus
   the joint spaces (chondral lines), never foreign objects or background. Particles are
   hysteresis components (``grow_cnr`` around a peak of at least ``particle_cnr``).
3. False-positive reduction on measured features: size, shape, and the relation to bone
   margins. Cortical bone edges and overlapping bone margins are the main source of false
   positives (``DOMAIN.md``, "Confounders"): a thin particle lying along the bone surface
   (all of it within ``hug_distance_mm``, elongated, at a near-constant distance) is
   dropped unless it lies inside a joint space, where it is the chondral-line pattern.
4. Grouping: particles within ``group_distance_mm`` of each other form one finding
   (single linkage through a dilated mask), so a speckled field, a tram-track or a
   cluster of loose bodies is one finding (``DOMAIN.md``, mammography cluster rule).
5. Confidence: a logistic function of the finding's features (``confidence_weights``
   over ``CONFIDENCE_FEATURES``, fitted on generated tuning data by
   ``scripts/tune_detect.py``); findings under ``min_confidence`` are dropped.
6. Particles are delineated at the native resolution inside each finding's box.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from calcimg.anatomy import (
    AnalysisGrid,
    AnatomyMap,
    AnatomyParams,
    Region,
    map_anatomy,
)
from calcimg.errors import ConfigError
from calcimg.params import check_range
from calcimg.radiograph import Radiograph

__all__ = [
    "CONFIDENCE_FEATURES",
    "DetectParams",
    "Detection",
    "Detections",
    "candidate_features",
    "detect",
]

CONFIDENCE_FEATURES = (
    "log_cnr_max",
    "log_n_particles",
    "log_area_mm2",
    "hug_fraction",
    "elongation_max",
    "log_n_strong",
    "denser_than_cortex",
)
"""Features of a finding, in the order of ``DetectParams.confidence_weights[1:]``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectParams:
    """Parameters of :func:`detect` (section ``[detect]``).

    Sizes in mm; CNR thresholds in units of the local noise of each scale's response.
    """

    fine_se_mm: float = 2.5
    """Top-hat structuring element (diameter) for particles and lines."""
    medium_se_mm: float = 8.0
    """Top-hat structuring element for phleboliths and globules."""
    medium_spacing_mm: float = 0.5
    coarse_se_mm: float = 30.0
    """Top-hat structuring element for clumps and masses."""
    coarse_spacing_mm: float = 1.0
    medium_gain: float = 1.5
    coarse_gain: float = 2.0
    """Weights of the medium and coarse scales' CNR against the fine scale's."""
    presmooth_mm: float = 0.2
    """Gaussian sigma applied before the fine top-hat (noise suppression)."""
    edge_margin_mm: float = 3.0
    """No findings within this of the film's edge."""
    quiet_margin_mm: float = 3.0
    """Noise is measured in soft tissue at least this far from bone and skin."""
    particle_cnr: float = 6.5
    """A particle's peak CNR must reach this."""
    grow_cnr: float = 3.0
    """Particles extend over pixels with at least this CNR."""
    min_particle_mm2: float = 0.2
    max_finding_mm2: float = 8000.0
    bone_margin_mm: float = 1.5
    """Outside joint spaces, candidate pixels are at least this far from bone."""
    hug_distance_mm: float = 2.5
    hug_elongation: float = 2.5
    hug_spread: float = 0.35
    """A particle hugs the cortex when (max - min) distance to bone < hug_spread * length."""
    group_distance_mm: float = 3.0
    large_area_mm2: float = 100.0
    large_min_density: float = 0.3
    """Findings larger than ``large_area_mm2`` need a peak contrast of at least this
    fraction of the bone-over-soft-tissue contrast."""
    wall_ring_mm: float = 2.0
    walled_fraction: float = 0.5
    """Findings whose surrounding ``wall_ring_mm`` ring is more than this much bone are
    dropped: bone interiors the anatomy map missed."""
    min_confidence: float = 0.5
    confidence_weights: tuple[float, ...] = (-9.2, 4.0, 1.0, 0.0, -3.0, 0.0, 0.5, -2.0)
    """Intercept then one weight per :data:`CONFIDENCE_FEATURES` entry."""

    def __post_init__(self) -> None:
        q = "detect."
        check_range(q + "fine_se_mm", self.fine_se_mm, 0.3, 20.0)
        check_range(q + "medium_se_mm", self.medium_se_mm, 1.0, 50.0)
        check_range(q + "medium_spacing_mm", self.medium_spacing_mm, 0.05, 2.0)
        check_range(q + "coarse_se_mm", self.coarse_se_mm, 2.0, 200.0)
        check_range(q + "coarse_spacing_mm", self.coarse_spacing_mm, 0.1, 5.0)
        check_range(q + "medium_gain", self.medium_gain, 0.1, 10.0)
        check_range(q + "coarse_gain", self.coarse_gain, 0.1, 10.0)
        check_range(q + "presmooth_mm", self.presmooth_mm, 0.0, 2.0)
        check_range(q + "edge_margin_mm", self.edge_margin_mm, 0.0, 50.0)
        check_range(q + "quiet_margin_mm", self.quiet_margin_mm, 0.0, 50.0)
        check_range(q + "particle_cnr", self.particle_cnr, 0.0, 100.0)
        check_range(q + "grow_cnr", self.grow_cnr, 0.0, 100.0)
        if self.grow_cnr > self.particle_cnr:
            raise ConfigError(
                f"parameter detect.grow_cnr = {self.grow_cnr!r} exceeds detect.particle_cnr = "
                f"{self.particle_cnr!r}; expected grow_cnr <= particle_cnr (hysteresis)"
            )
        check_range(q + "min_particle_mm2", self.min_particle_mm2, 0.0, 100.0)
        check_range(q + "max_finding_mm2", self.max_finding_mm2, 1.0, 1e6)
        check_range(q + "bone_margin_mm", self.bone_margin_mm, 0.0, 20.0)
        check_range(q + "hug_distance_mm", self.hug_distance_mm, 0.0, 20.0)
        check_range(q + "hug_elongation", self.hug_elongation, 1.0, 100.0)
        check_range(q + "hug_spread", self.hug_spread, 0.0, 10.0)
        check_range(q + "large_area_mm2", self.large_area_mm2, 0.0, 1e6)
        check_range(q + "large_min_density", self.large_min_density, 0.0, 10.0)
        check_range(q + "wall_ring_mm", self.wall_ring_mm, 0.1, 20.0)
        check_range(q + "walled_fraction", self.walled_fraction, 0.0, 1.0)
        check_range(q + "group_distance_mm", self.group_distance_mm, 0.0, 100.0)
        check_range(q + "min_confidence", self.min_confidence, 0.0, 1.0)
        n = len(CONFIDENCE_FEATURES) + 1
        if len(self.confidence_weights) != n:
            raise ConfigError(
                f"parameter detect.confidence_weights has {len(self.confidence_weights)} values; "
                f"expected {n} (intercept, then {', '.join(CONFIDENCE_FEATURES)})"
            )


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Detection:
    """One finding: a group of calcified particles.

    Attributes
    ----------
    id : int
        1-based, unique within the image.
    bbox : tuple of int
        (row_min, col_min, row_max, col_max) in pixels, max exclusive.
    particles : numpy.ndarray
        int32, bbox-sized: 0 background, 1..n_particles the particles of this finding.
    confidence : float
        That this is a real calcification, in [0, 1].
    features : Mapping[str, float]
        The measured features false-positive reduction used (names carry units).
    """

    id: int
    bbox: tuple[int, int, int, int]
    particles: np.ndarray
    confidence: float
    features: Mapping[str, float] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        """bool, bbox-sized: the union of the particles."""
        return self.particles > 0

    @property
    def n_particles(self) -> int:
        return int(self.particles.max(initial=0))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Detections:
    """All findings of one image, ordered by id."""

    items: tuple[Detection, ...] = ()
    n_candidates: int = 0


def _disc(diameter_px: float) -> np.ndarray:
    r = max(1, round(diameter_px / 2.0))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _resize(img: np.ndarray, shape: tuple[int, int], interp: int) -> np.ndarray:
    if img.shape == shape:
        return img
    return cv2.resize(img, (shape[1], shape[0]), interpolation=interp)


@functools.lru_cache(maxsize=32)
def _white_noise_tophat(se_px: int, presmooth_px: float) -> float:
    """Robust sigma of the top-hat of unit white noise (a floor for the noise scale)."""
    rng = np.random.default_rng(12345)
    noise = rng.standard_normal((192, 192)).astype(np.float32)
    if presmooth_px >= 0.3:
        noise = cv2.GaussianBlur(noise, (0, 0), presmooth_px).astype(np.float32)
    th = cv2.morphologyEx(noise, cv2.MORPH_TOPHAT, _disc(se_px))
    med = float(np.median(th))
    return float(np.median(np.abs(th - med))) * 1.4826


def _scale_cnr(
    grid: AnalysisGrid,
    quiet: np.ndarray,
    *,
    se_mm: float,
    spacing_mm: float,
    presmooth_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """CNR and top-hat (normalised units) of one scale, on the analysis grid.

    The top-hat's noise is its RMS (clipped at three RMS) over quiet soft tissue
    (away from bone and skin), so that correlated detector noise and fine anatomical
    clutter are accounted for; it is never taken below the spread the same top-hat
    gives on white noise of the measured pixel noise (quantised, noise-free films). The
    local pixel-noise map modulates it (thicker parts of a film are noisier).
    """
    img = grid.image
    h, w = img.shape
    sp = grid.spacing_mm
    if spacing_mm > sp * 1.2:
        shape = (max(8, round(h * sp / spacing_mm)), max(8, round(w * sp / spacing_mm)))
        work = _resize(img, shape, cv2.INTER_AREA)
        wquiet = _resize(quiet.astype(np.uint8), shape, cv2.INTER_NEAREST).astype(bool)
        wsp = h * sp / shape[0]
        noise = _resize(grid.noise, shape, cv2.INTER_AREA) * np.float32(sp / wsp)
    else:
        work, wquiet, wsp, noise = img, quiet, sp, grid.noise
    pre_px = presmooth_mm / wsp
    if pre_px >= 0.3:
        work = cv2.GaussianBlur(work, (0, 0), pre_px)
    se_px = max(3, round(se_mm / wsp))
    # outside the body the film is set bright, so that the structuring element may reach
    # over the skin line: a finger narrower than the element is not a "bright structure"
    outside = _resize(
        (grid.labels == np.uint8(Region.BACKGROUND)).astype(np.uint8), work.shape, cv2.INTER_NEAREST
    ).astype(bool)
    se = _disc(se_px)
    if outside.any():
        hi, lo = np.float32(work.max() + 1.0), np.float32(work.min() - 1.0)
        eroded = cv2.erode(np.where(outside, hi, work).astype(np.float32), se)
        opened = cv2.dilate(np.where(outside, lo, eroded).astype(np.float32), se)
        tophat = np.where(outside, np.float32(0.0), work - opened).astype(np.float32)
    else:
        tophat = cv2.morphologyEx(work, cv2.MORPH_TOPHAT, se).astype(np.float32)
    step = max(1, int(np.sqrt(wquiet.size / 250_000)))
    sample = tophat[::step, ::step][wquiet[::step, ::step]]
    nsample = noise[::step, ::step][wquiet[::step, ::step]]
    if sample.size < 32:
        sample = tophat.ravel()
        nsample = noise.ravel()
    # a top-hat is one-sided with many exact zeros: its RMS (over values clipped at
    # the 99th percentile, so that calcifications do not count) is the robust scale
    cap = float(np.percentile(sample, 90.0))
    rms = float(np.sqrt(np.mean(np.minimum(sample, cap) ** 2)))
    # once more with the cap at three RMS, so that neither a large lesion nor the
    # clipping itself sets the scale
    rms = float(np.sqrt(np.mean(np.minimum(sample, 3.0 * rms) ** 2)))
    noise_med = max(float(np.median(nsample)), 1e-7)
    floor = _white_noise_tophat(se_px, round(pre_px, 2)) * noise_med
    sigma = max(rms, floor, 1e-7)
    rel = np.clip(noise / np.float32(noise_med), 0.7, 2.0)
    cnr = tophat / (np.float32(sigma) * rel)
    if work.shape != img.shape:
        cnr = _resize(cnr.astype(np.float32), (h, w), cv2.INTER_LINEAR)
        tophat = _resize(tophat, (h, w), cv2.INTER_LINEAR)
    return cnr.astype(np.float32), tophat.astype(np.float32)


def candidate_features(
    grid: AnalysisGrid, params: DetectParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CNR map, its top-hat contrast and the mask of pixels allowed to hold findings.

    Parameters
    ----------
    grid : AnalysisGrid
    params : DetectParams

    Returns
    -------
    cnr : numpy.ndarray
        float32 (h, w): maximum CNR over scales, modulated by the local noise.
    contrast : numpy.ndarray
        float32 (h, w): top-hat contrast of the scale giving the maximum, normalised units.
    allowed : numpy.ndarray
        bool (h, w): soft tissue beyond the bone margin, or joint space.
    """
    labels = grid.labels
    soft = labels == np.uint8(Region.SOFT_TISSUE)
    joint = labels == np.uint8(Region.JOINT_SPACE)
    allowed = (soft & (grid.distance_to_bone_mm >= params.bone_margin_mm)) | joint
    # keep off the film's edge (collimator rims, detector border)
    edge = max(1, round(params.edge_margin_mm / grid.spacing_mm))
    allowed[:edge] = False
    allowed[-edge:] = False
    allowed[:, :edge] = False
    allowed[:, -edge:] = False
    # quiet soft tissue for the noise estimates: away from bone and from the skin line
    k = max(3, round(2.0 * params.quiet_margin_mm / grid.spacing_mm) | 1)
    not_body = (labels == np.uint8(Region.BACKGROUND)) | (labels == np.uint8(Region.FOREIGN))
    near_edge = cv2.dilate(not_body.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    quiet = soft & (grid.distance_to_bone_mm >= params.quiet_margin_mm) & ~near_edge
    if quiet.sum() < 1000:
        quiet = soft | joint
    best_cnr: np.ndarray | None = None
    best_con: np.ndarray | None = None
    for se_mm, sp_mm, pre, gain in (
        (params.fine_se_mm, grid.spacing_mm, params.presmooth_mm, 1.0),
        (params.medium_se_mm, params.medium_spacing_mm, 0.0, params.medium_gain),
        (params.coarse_se_mm, params.coarse_spacing_mm, 0.0, params.coarse_gain),
    ):
        cnr, con = _scale_cnr(grid, quiet, se_mm=se_mm, spacing_mm=sp_mm, presmooth_mm=pre)
        # the wider scales' noise is mostly anatomical clutter (soft-tissue curvature):
        # their CNR is weighted to the same false-alarm rate as the fine scale's
        cnr *= np.float32(gain)
        if best_cnr is None or best_con is None:
            best_cnr, best_con = cnr, con
        else:
            better = cnr > best_cnr
            best_cnr = np.where(better, cnr, best_cnr)
            best_con = np.where(better, con, best_con)
    assert best_cnr is not None and best_con is not None
    return best_cnr, best_con, allowed


def _logistic(weights: tuple[float, ...], feats: Mapping[str, float]) -> float:
    z = weights[0] + sum(
        w * float(feats[n]) for w, n in zip(weights[1:], CONFIDENCE_FEATURES, strict=True)
    )
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))


def detect(radiograph: Radiograph, anatomy: AnatomyMap, *, params: DetectParams) -> Detections:
    """Find soft-tissue calcifications.

    Parameters
    ----------
    radiograph : Radiograph
    anatomy : AnatomyMap
        From :func:`~calcimg.anatomy.map_anatomy` (its analysis grid is reused).
    params : DetectParams

    Returns
    -------
    Detections
        Findings with confidence >= ``min_confidence``, ordered by position; ``n_candidates``
        counts the particles considered before false-positive reduction.
    """
    grid = anatomy.grid
    if grid is None:
        grid = map_anatomy(radiograph, params=AnatomyParams()).grid
        assert grid is not None
    p = params
    sp = grid.spacing_mm
    area_px = sp * sp
    cnr, contrast, allowed = candidate_features(grid, p)

    grow = (cnr >= p.grow_cnr) & allowed
    n, lab, stats, _ = cv2.connectedComponentsWithStats(grow.astype(np.uint8), connectivity=8)
    if n <= 1:
        return Detections()
    peak = np.zeros(n, dtype=np.float32)
    np.maximum.at(peak, lab[grow], cnr[grow])
    dist = grid.distance_to_bone_mm
    joint = grid.labels == np.uint8(Region.JOINT_SPACE)
    bone_contrast = max(grid.bone_level - grid.soft_tissue_level, 1e-3)

    keep = np.zeros(n, dtype=bool)
    pfeat: dict[int, dict[str, float]] = {}
    n_candidates = 0
    for i in range(1, n):
        if peak[i] < p.particle_cnr:
            continue
        area = int(stats[i, cv2.CC_STAT_AREA])
        if area * area_px < p.min_particle_mm2:
            continue
        n_candidates += 1
        x0, y0, bw, bh = (int(v) for v in stats[i, :4])
        comp = lab[y0 : y0 + bh, x0 : x0 + bw] == i
        rr, cc = np.nonzero(comp)
        d = dist[y0 : y0 + bh, x0 : x0 + bw][comp]
        d = np.where(np.isfinite(d), d, 1e6)
        in_joint = float(joint[y0 : y0 + bh, x0 : x0 + bw][comp].mean())
        # shape from second moments: elongation = major / minor axis
        if rr.size >= 3:
            cov = np.cov(np.vstack([rr, cc]).astype(np.float64))
            ev = np.sort(np.linalg.eigvalsh(cov))
            major = 4.0 * np.sqrt(max(ev[1], 1e-6))
            minor = 4.0 * np.sqrt(max(ev[0], 1e-6))
        else:
            major = minor = 1.0
        elong = float(np.clip(major / max(minor, 1.0), 1.0, 100.0))
        length_mm = max(major * sp, sp)
        hugging = float(d.max()) < p.hug_distance_mm or (
            float(np.median(d)) < p.hug_distance_mm
            and elong >= p.hug_elongation
            and float(d.max() - d.min()) < p.hug_spread * length_mm
        )
        if hugging and in_joint < 0.5:
            continue
        keep[i] = True
        pfeat[i] = {
            "cnr": float(peak[i]),
            "area_mm2": area * area_px,
            "elongation": elong,
            "near_bone": float((d < p.hug_distance_mm).mean()),
            "in_joint": in_joint,
            "contrast": float(contrast[y0 : y0 + bh, x0 : x0 + bw][comp].max()),
        }
    if not keep.any():
        return Detections(n_candidates=n_candidates)

    particles_grid = keep[lab]
    # single-linkage grouping: particles closer than group_distance_mm share a finding
    link = cv2.dilate(particles_grid.astype(np.uint8), _disc(max(1.0, p.group_distance_mm / sp)))
    n_g, lab_g, st_g, _ = cv2.connectedComponentsWithStats(link, connectivity=8)
    group_of = np.zeros(n, dtype=np.int32)
    kept_ids = np.nonzero(keep)[0]
    for k in kept_ids:
        i = int(k)
        x0, y0 = int(stats[i, 0]), int(stats[i, 1])
        bw, bh = int(stats[i, 2]), int(stats[i, 3])
        rr, cc = np.nonzero(lab[y0 : y0 + bh, x0 : x0 + bw] == i)
        group_of[i] = lab_g[y0 + rr[0], x0 + cc[0]]

    fr, fc = grid.scale_rc
    rows, cols = radiograph.shape
    ring_px = max(1, round(p.wall_ring_mm / sp))
    ring_se = _disc(2 * ring_px + 1)
    found: list[tuple[tuple[int, int, int, int], np.ndarray, float, dict[str, float]]] = []
    for g in range(1, n_g):
        members = kept_ids[group_of[kept_ids] == g]
        if members.size == 0:
            continue
        feats = [pfeat[int(i)] for i in members]
        area_mm2 = float(sum(f["area_mm2"] for f in feats))
        if area_mm2 > p.max_finding_mm2:
            continue
        cnr_max = max(f["cnr"] for f in feats)
        # large and faint: bone interiors or soft-tissue overlap, not a calcified mass
        # (calcified masses approach cortical density; DOMAIN.md "density relative to
        # cortical bone")
        if area_mm2 > p.large_area_mm2 and (
            max(f["contrast"] for f in feats) / bone_contrast < p.large_min_density
        ):
            continue
        n_strong = sum(1 for f in feats if f["cnr"] >= 2.0 * p.particle_cnr)
        hug = float(sum(f["near_bone"] * f["area_mm2"] for f in feats) / max(area_mm2, 1e-6))
        in_joint = float(sum(f["in_joint"] * f["area_mm2"] for f in feats) / max(area_mm2, 1e-6))
        conf_feats = {
            "log_cnr_max": float(np.log(cnr_max)),
            "log_n_particles": float(np.log(len(feats))),
            "log_area_mm2": float(np.log(max(area_mm2, 1e-3))),
            "hug_fraction": hug * (1.0 - in_joint),
            "elongation_max": float(np.log(max(f["elongation"] for f in feats))),
            "log_n_strong": float(np.log1p(n_strong)),
            # far denser than cortical bone: metal or a marker the anatomy missed
            "denser_than_cortex": float(
                max(0.0, max(f["contrast"] for f in feats) / bone_contrast - 2.0)
            ),
        }
        confidence = _logistic(p.confidence_weights, conf_feats)
        if confidence < p.min_confidence:
            continue
        x0, y0, bw, bh = (int(v) for v in st_g[g, :4])
        sel = np.isin(lab[y0 : y0 + bh, x0 : x0 + bw], members)
        # a region walled in by bone is bone the anatomy map missed (a medullary canal,
        # an epiphysis), not a calcification lying against it
        pad = ring_px + 1
        ys0, xs0 = max(0, y0 - pad), max(0, x0 - pad)
        ys1, xs1 = min(lab.shape[0], y0 + bh + pad), min(lab.shape[1], x0 + bw + pad)
        big = np.zeros((ys1 - ys0, xs1 - xs0), dtype=np.uint8)
        big[y0 - ys0 : y0 - ys0 + bh, x0 - xs0 : x0 - xs0 + bw] = sel
        ring = cv2.dilate(big, ring_se).astype(bool) & ~big.astype(bool)
        walled = float((grid.labels[ys0:ys1, xs0:xs1][ring] == np.uint8(Region.BONE)).mean())
        if walled > p.walled_fraction:
            continue
        ys, xs = np.nonzero(sel)
        gr0, gr1 = y0 + int(ys.min()), y0 + int(ys.max()) + 1
        gc0, gc1 = x0 + int(xs.min()), x0 + int(xs.max()) + 1
        sel = sel[gr0 - y0 : gr1 - y0, gc0 - x0 : gc1 - x0]
        # native-resolution delineation: the CNR map interpolated into the native box
        r0 = max(0, int(np.floor(gr0 / fr)))
        c0 = max(0, int(np.floor(gc0 / fc)))
        r1 = min(rows, int(np.ceil(gr1 / fr)))
        c1 = min(cols, int(np.ceil(gc1 / fc)))
        native = _native_particles(cnr[gr0:gr1, gc0:gc1], sel, (r1 - r0, c1 - c0), p.grow_cnr)
        if native.max(initial=0) == 0:
            continue
        ys, xs = np.nonzero(native)
        nr0, nc0 = r0 + int(ys.min()), c0 + int(xs.min())
        nr1, nc1 = r0 + int(ys.max()) + 1, c0 + int(xs.max()) + 1
        native = native[nr0 - r0 : nr1 - r0, nc0 - c0 : nc1 - c0]
        features = {f"conf_{k}": round(v, 5) for k, v in conf_feats.items()}
        features |= {
            "cnr_max": round(cnr_max, 3),
            "cnr_mean": round(float(np.mean([f["cnr"] for f in feats])), 3),
            "area_mm2": round(area_mm2, 3),
            "n_particles_grid": float(len(feats)),
            "hug_fraction": round(hug, 3),
            "in_joint_fraction": round(in_joint, 3),
            "contrast_max": round(max(f["contrast"] for f in feats), 5),
            "density_rel_bone": round(max(f["contrast"] for f in feats) / bone_contrast, 3),
            "elongation_max": round(max(f["elongation"] for f in feats), 3),
            "min_distance_to_bone_mm": round(
                float(
                    np.min(
                        np.where(
                            np.isfinite(dist[gr0:gr1, gc0:gc1][sel]),
                            dist[gr0:gr1, gc0:gc1][sel],
                            1e6,
                        )
                    )
                ),
                3,
            ),
        }
        found.append(((nr0, nc0, nr1, nc1), native, confidence, features))

    found.sort(key=lambda t: (t[0][0], t[0][1]))
    items = tuple(
        Detection(id=k + 1, bbox=bb, particles=parts, confidence=round(conf, 4), features=feat)
        for k, (bb, parts, conf, feat) in enumerate(found)
    )
    return Detections(items=items, n_candidates=n_candidates)


def _native_particles(
    cnr_box: np.ndarray, sel_box: np.ndarray, native_shape: tuple[int, int], grow_cnr: float
) -> np.ndarray:
    """Label the particles of one finding at native resolution.

    The grid CNR is interpolated into the native box and thresholded at ``grow_cnr``
    inside the grid selection (grown by one grid pixel); components are numbered 1..n in
    raster order.
    """
    h, w = native_shape
    if h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0)), dtype=np.int32)
    sel = cv2.dilate(sel_box.astype(np.uint8), np.ones((3, 3), np.uint8))
    if cnr_box.shape == (h, w):
        up_cnr, up_sel = cnr_box, sel_box.astype(bool)
    else:
        up_cnr = cv2.resize(cnr_box, (w, h), interpolation=cv2.INTER_LINEAR)
        up_sel = cv2.resize(sel, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    mask = (up_cnr >= grow_cnr) & up_sel
    if not mask.any():
        mask = cv2.resize(sel_box.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(
            bool
        )
    _, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return lab.astype(np.int32)
