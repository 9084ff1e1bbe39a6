"""Candidate calcification detection in soft tissue.

Stage 3 of the pipeline. ``detect`` finds small structures denser than their local
background in soft tissue and joint spaces and groups nearby particles into findings.

Method (sizes in mm, thresholds in units of the film's own noise):

1. The normalised film is resampled to a detection grid (``grid_mm``; films coarser
   than that keep their spacing) and lightly smoothed (``presmooth_mm``).
2. Local background: grey openings with square structuring elements at a few scales
   (``scales_mm``; larger ones on a coarser grid and upsampled). The residual (a white
   top-hat) of each scale is divided by the pixel noise (robust sigma of a high-pass
   inside soft tissue) after removing the residual's own median there; the contrast-to-
   noise map (CNR) is the maximum over scales, each scale scaled by its gain.
3. Particles: hysteresis (seeds above ``seed_cnr`` grown down to ``grow_cnr``) inside
   soft tissue and joint spaces, excluding foreign bodies and a thin band along bone
   edges outside joint spaces (the cortex edge gives top-hat responses).
4. Findings: particles within ``group_mm`` of each other are one finding (a tram
   track's two walls, a speckled field).
5. Confidence: gradient-boosted trees (``confidence_model``, fitted by
   ``scripts/train_confidence.py``) over the measured features (:data:`FEATURE_NAMES`)
   and descriptors of the candidate's 32 mm surroundings (:mod:`calcimg.surround`: a
   bone's edge the map missed goes on beyond the candidate, a deposit stands alone);
   with ``confidence_model`` empty, a logistic function of :data:`FEATURE_NAMES`
   (``scripts/tune_detect2.py``). Findings below ``min_confidence`` are dropped. One
   feature, ``bone_prob``, is the mean over the candidate's pixels of a learned bone
   probability (:mod:`calcimg.bonemodel`), for bone the anatomy map missed.
6. Second look (``regroup_bone_max``): a finding below ``min_confidence`` that holds
   particles of high bone probability is regrouped without them; its largest parts
   (``regroup_max_groups``) are scored again and kept from ``regroup_min_confidence``
   (a vessel that had been grouped with the margin of a bone the map missed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from calcimg.anatomy import AnatomyMap, Region
from calcimg.bonemodel import (
    BoneField,
    TreeEnsemble,
    bone_field,
    kept_film,
    load_bone_model,
    load_tree_model,
)
from calcimg.errors import ConfigError
from calcimg.imageops import percentiles
from calcimg.imageops import resize as _resize
from calcimg.imageops import robust_sigma as _robust_sigma
from calcimg.imageops import sample as _sample
from calcimg.params import check_range, model_file_param
from calcimg.radiograph import Radiograph
from calcimg.surround import GRID_MM as SURROUND_GRID_MM
from calcimg.surround import SURROUND_FEATURES, Surround

__all__ = [
    "CANDIDATE_FEATURES",
    "FEATURE_NAMES",
    "DetectParams",
    "Detection",
    "Detections",
    "confidence",
    "confidences",
    "detect",
    "first_pass",
]

FEATURE_NAMES = (
    "log_cnr_max",
    "log_cnr_mean",
    "log_area_mm2",
    "log_n_particles",
    "edge_fraction",
    "rel_contrast",
    "elongation",
    "log_area_sq",
    "background_rel",
    "fill",
    "texture_density",
    "enclosed_fraction",
    "side_spread",
    "bone_prob",
)
"""Features the confidence is a logistic function of (weights: bias first, then these)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectParams:
    """Parameters of :func:`detect` (section ``[detect]``); sizes in mm."""

    grid_mm: float = 0.2
    """Spacing of the detection grid (films coarser than this keep theirs)."""
    presmooth_mm: float = 0.1
    """Gaussian sigma applied before the top-hat (noise suppression)."""
    scales_mm: tuple[float, ...] = (1.5, 4.0)
    """Square opening sizes of the local background."""
    scale_gains: tuple[float, ...] = (1.0, 1.0)
    """Weight of each scale's CNR (larger scales pick up more anatomy)."""
    scale_smooth_mm: tuple[float, ...] = (0.0, 0.0)
    """Gaussian sigma applied to each scale's residual (larger = fainter, larger objects)."""
    coarse_from_mm: float = 4.0
    """Openings at this size or larger run on a grid of size/10 (speed)."""
    noise_mm: float = 1.0
    """Gaussian sigma of the high-pass whose robust spread is the pixel noise."""
    seed_cnr: float = 6.0
    grow_cnr: float = 3.0
    bone_margin_mm: float = 0.6
    """Band outside bone (not in joint spaces) where candidates are not looked for."""
    border_margin_mm: float = 1.5
    """Band along the film's border and along background (collimator edges, skin line)
    where candidates are not looked for."""
    collimation_margin_mm: float = 3.0
    """Band along unexposed film (collimator blades, the film's border) where candidates
    are not looked for; their penumbra is wider than the skin line's."""
    edge_band_mm: float = 1.5
    """A particle pixel this close to bone counts as on the bone edge."""
    group_mm: float = 5.0
    """Particles closer than this are one finding."""
    min_area_mm2: float = 0.1
    min_area_px: int = 16
    """Smallest finding in detection-grid pixels. On coarse films (0.5-1.2 mm pixels,
    where the grid is the film's own) anything smaller cannot be told from noise and
    texture: calcified particles are 0.3-2 mm (``DOMAIN.md``), below what such a film
    resolves."""
    max_area_mm2: float = 5000.0
    ring_close_mm: float = 1.0
    """Gaps a ring may have and still count as closed (``enclosed_fraction`` and the
    ring rule below)."""
    bone_ring_min_mm2: float = 40.0
    """A particle that closes a ring (``bone_ring_enclosed`` of its filled outline not
    covered) around at least this area is a small bone's cortex and no candidate
    (0 = off)."""
    particle_bone_max: float = 1.0
    """A particle (before grouping) whose mean learned bone probability
    (:mod:`calcimg.bonemodel`, over at most :data:`PARTICLE_PIXELS` model pixels) reaches
    this lies on bone the anatomy map missed (a phalanx's cortex, a pelvis's margins) and
    is dropped, so that it neither becomes a candidate nor joins a deposit beside it into
    one group. 1 = off."""
    regroup_bone_max: float = 1.0
    """A second chance for a candidate below ``min_confidence``: its particles whose mean
    bone probability reaches this (lower than ``particle_bone_max``) are dropped, the
    rest regrouped and scored as candidates of their own (a vessel grouped with the
    margin of a bone the map missed: a patella, a fibular head). Only candidates that
    lose a particle are retried. 1 = off."""
    regroup_max_groups: int = 3
    """At most this many of a candidate's regrouped parts, the largest, are measured (a
    field of bone texture falls apart into dozens)."""
    regroup_min_confidence: float = 0.4
    """The confidence a regrouped candidate needs to be kept at all (above
    ``min_confidence``): a second look at a candidate the trees already turned down,
    made of groups they were not fitted on."""
    bone_ring_enclosed: float = 0.5
    """Share of a ring's filled outline its particle must leave uncovered."""
    texture_mm: float = 15.0
    """Window of the neighbourhood-busyness feature."""
    max_rel_contrast: float = 2.5
    """Candidates denser than this many times the bone - soft-tissue contrast are metal
    or lead (foreign), never calcification (``DOMAIN.md``: calcification is between soft
    tissue and cortex)."""
    blob_min_units: float = 0.0
    """A second candidate source, for broad faint deposits whose flat interior leaves the
    openings of ``scales_mm`` only a rim or nothing (session 35): the film on a
    ``blob_grid_mm`` grid, blurred at each of ``blob_scales_mm``; the larger Hessian
    eigenvalue, negated and scale-normalised, in units of its 95th percentile over soft
    tissue, the largest over the scales (:func:`blob_map`). Its components at or above
    this many units, in soft tissue, farther than ``blob_skin_mm`` from the skin and
    ``blob_bone_mm`` from bone, of at least ``blob_min_area_mm2`` and touching no
    particle group of the first pass, become candidates of their own (feature
    ``blob_source`` = 1), scored by the same confidence model. 0 = off."""
    blob_scales_mm: tuple[float, ...] = (2.0, 3.0, 4.5)
    """Gaussian sigmas of the blob measure (a deposit 10-18 mm across peaks near 3-6)."""
    blob_grid_mm: float = 1.0
    """Spacing of the blob measure's grid."""
    blob_skin_mm: float = 4.0
    """Blob candidates lie farther than this from the background (rounded fingertips,
    toe pulps and the limb's own edge are blob-like)."""
    blob_bone_mm: float = 1.5
    """Blob candidates lie farther than this from the mapped bone."""
    blob_min_area_mm2: float = 8.0
    """Smallest blob candidate."""
    max_candidates: int = 300
    """Strongest findings kept for scoring (guards pathological films)."""
    min_confidence: float = 0.5
    confidence_weights: tuple[float, ...] = (-6.0, 3.0, 0.0, 0.5, 0.0, -2.0) + (0.0,) * (
        len(FEATURE_NAMES) - 5
    )
    """Bias then one weight per :data:`FEATURE_NAMES` entry (the default weighs the first
    five features; a new feature starts at 0 without editing it)."""
    feature_min: tuple[float, ...] = ()
    feature_max: tuple[float, ...] = ()
    """Range of each :data:`FEATURE_NAMES` entry over the candidates the weights were
    fitted on (``scripts/tune_detect2.py`` prints it). A candidate's features are clipped
    to it before the logistic, so that a film unlike the fitted ones cannot take the
    linear score beyond anything the fit saw: on a simulated chest, whose soft-tissue and
    bone levels nearly coincide, ``background_rel`` reached 14 against at most 2.8 in the
    fit, and vertebral texture scored 1.0. Empty: no clipping."""
    confidence_model: str = model_file_param("")
    """A tree model of the confidence (``scripts/train_confidence.py``; the format of
    :class:`calcimg.bonemodel.TreeEnsemble`) over :data:`FEATURE_NAMES` and the surround
    descriptors of :mod:`calcimg.surround`: a file name in ``models/`` or a path. Empty:
    the logistic ``confidence_weights``. ``min_confidence`` is the model's own cut."""
    bone_model: str = model_file_param("bone_trees.json")
    """The learned bone probability behind the ``bone_prob`` feature
    (:mod:`calcimg.bonemodel`): a file name in ``models/`` or a path. The results'
    parameter hash covers the file's content (as for ``rules.table``); a retrained model
    needs the confidence weights refitted for it."""

    def __post_init__(self) -> None:
        check_range("detect.grid_mm", self.grid_mm, 0.02, 2.0)
        check_range("detect.presmooth_mm", self.presmooth_mm, 0.0, 5.0)
        if (
            not self.scales_mm
            or len(self.scale_gains) != len(self.scales_mm)
            or len(self.scale_smooth_mm) != len(self.scales_mm)
        ):
            raise ConfigError(
                f"detect.scale_gains, scale_smooth_mm: expected one value per scale "
                f"({len(self.scales_mm)}), found {len(self.scale_gains)}, "
                f"{len(self.scale_smooth_mm)}"
            )
        for s in self.scales_mm:
            check_range("detect.scales_mm", s, 0.2, 100.0)
        check_range("detect.coarse_from_mm", self.coarse_from_mm, 0.0, 1e9)
        check_range("detect.noise_mm", self.noise_mm, 0.1, 20.0)
        check_range("detect.seed_cnr", self.seed_cnr, 0.5, 100.0)
        check_range("detect.grow_cnr", self.grow_cnr, 0.0, self.seed_cnr)
        check_range("detect.bone_margin_mm", self.bone_margin_mm, 0.0, 20.0)
        check_range("detect.border_margin_mm", self.border_margin_mm, 0.0, 50.0)
        check_range("detect.collimation_margin_mm", self.collimation_margin_mm, 0.0, 50.0)
        check_range("detect.edge_band_mm", self.edge_band_mm, 0.0, 20.0)
        check_range("detect.group_mm", self.group_mm, 0.0, 100.0)
        check_range("detect.min_area_mm2", self.min_area_mm2, 0.0, 1e9)
        check_range("detect.min_area_px", self.min_area_px, 0, 1e6)
        check_range("detect.max_area_mm2", self.max_area_mm2, 0.0, 1e9)
        check_range("detect.texture_mm", self.texture_mm, 1.0, 200.0)
        check_range("detect.ring_close_mm", self.ring_close_mm, 0.0, 20.0)
        check_range("detect.bone_ring_min_mm2", self.bone_ring_min_mm2, 0.0, 1e6)
        check_range("detect.bone_ring_enclosed", self.bone_ring_enclosed, 0.0, 1.0)
        check_range("detect.particle_bone_max", self.particle_bone_max, 0.0, 1.0)
        check_range("detect.regroup_bone_max", self.regroup_bone_max, 0.0, 1.0)
        check_range("detect.regroup_max_groups", self.regroup_max_groups, 1, 1000)
        check_range("detect.regroup_min_confidence", self.regroup_min_confidence, 0.0, 1.0)
        check_range("detect.max_rel_contrast", self.max_rel_contrast, 0.0, 1e9)
        check_range("detect.blob_min_units", self.blob_min_units, 0.0, 1e3)
        if not self.blob_scales_mm:
            raise ConfigError("detect.blob_scales_mm: expected at least one sigma, found none")
        for s in self.blob_scales_mm:
            check_range("detect.blob_scales_mm", s, 0.2, 50.0)
        check_range("detect.blob_grid_mm", self.blob_grid_mm, 0.1, 5.0)
        check_range("detect.blob_skin_mm", self.blob_skin_mm, 0.0, 100.0)
        check_range("detect.blob_bone_mm", self.blob_bone_mm, 0.0, 100.0)
        check_range("detect.blob_min_area_mm2", self.blob_min_area_mm2, 0.0, 1e6)
        check_range("detect.max_candidates", self.max_candidates, 1, 1e9)
        check_range("detect.min_confidence", self.min_confidence, 0.0, 1.0)
        if len(self.confidence_weights) != len(FEATURE_NAMES) + 1:
            raise ConfigError(
                f"detect.confidence_weights: expected {len(FEATURE_NAMES) + 1} values "
                f"(bias, {', '.join(FEATURE_NAMES)}), found {len(self.confidence_weights)}"
            )
        n_min, n_max = len(self.feature_min), len(self.feature_max)
        if n_min != n_max or n_min not in (0, len(FEATURE_NAMES)):
            raise ConfigError(
                f"detect.feature_min, feature_max: expected both empty or both "
                f"{len(FEATURE_NAMES)} values ({', '.join(FEATURE_NAMES)}), found "
                f"{n_min} and {n_max}"
            )
        bad = [
            n
            for n, lo, hi in zip(FEATURE_NAMES, self.feature_min, self.feature_max, strict=False)
            if not lo <= hi
        ]
        if bad:
            raise ConfigError(
                f"detect.feature_min, feature_max: expected min <= max, found min > max "
                f"for {', '.join(bad)}"
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
    """Candidates before the confidence cut (at most ``max_candidates``)."""


def _opening(img: np.ndarray, size_px: int) -> np.ndarray:
    k = np.ones((size_px, size_px), np.uint8)
    return cv2.dilate(cv2.erode(img, k), k)


def cnr_map(
    img: np.ndarray, soft: np.ndarray, sp: float, params: DetectParams
) -> tuple[np.ndarray, np.ndarray, float]:
    """Contrast-to-noise map of bright local structures (max over scales).

    Returns (cnr, residual of the best scale, noise sigma), all on ``img``'s grid.
    """
    p = params
    h, w = img.shape
    if p.presmooth_mm > 0:
        img = cv2.GaussianBlur(img, (0, 0), p.presmooth_mm / sp)
    hp = img - cv2.GaussianBlur(img, (0, 0), p.noise_mm / sp)
    sigma = _robust_sigma(hp[soft]) if soft.any() else 0.0
    del hp
    # the high-pass keeps only part of the noise at small scales; ~1 for white noise
    sigma = max(sigma, 1e-6)
    best: np.ndarray | None = None
    best_res: np.ndarray | None = None
    for size_mm, gain, smooth_mm in zip(p.scales_mm, p.scale_gains, p.scale_smooth_mm, strict=True):
        if size_mm >= p.coarse_from_mm:
            f = max(1.0, (size_mm / 10.0) / sp)
            sh = (max(1, round(h / f)), max(1, round(w / f)))
            small = _resize(img, sh, cv2.INTER_AREA)
            bg = _resize(
                _opening(small, max(1, int(round(size_mm / (sp * f))) | 1)),
                (h, w),
                cv2.INTER_LINEAR,
            )
        else:
            bg = _opening(img, max(1, int(round(size_mm / sp)) | 1))
        res = np.subtract(img, bg, out=bg)  # the background's buffer: one array fewer
        del bg
        if smooth_mm > 0:  # matched to larger, fainter objects (amorphous clumps)
            res = cv2.GaussianBlur(res, (0, 0), smooth_mm / sp)
        v = _sample(res[soft] if soft.any() else res.ravel())
        med = float(np.median(v)) if v.size else 0.0
        # the residual's own spread in soft tissue: larger scales keep more anatomy
        s_scale = max(_robust_sigma(v), sigma)
        cnr = res - np.float32(med)
        cnr *= np.float32(gain / s_scale)
        if best is None or best_res is None:  # the first scale is the best so far
            best, best_res = cnr, res
            continue
        better = cnr > best
        np.copyto(best, cnr, where=better)  # in place: no new film-grid arrays
        np.copyto(best_res, res, where=better)
        del cnr, res, better
    assert best is not None and best_res is not None  # DetectParams: at least one scale
    return best, best_res, sigma


BLOB_FEATURES = ("blob_source", "blob_units")
"""1 for a candidate of the blob source (``blob_min_units``), else 0; the largest blob
measure over the candidate's pixels (0 when the source is off)."""

CANDIDATE_FEATURES = FEATURE_NAMES + SURROUND_FEATURES + BLOB_FEATURES
"""Everything measured on a candidate that a confidence tree model may read."""


def blob_map(film: np.ndarray, soft: np.ndarray, sp: float, params: DetectParams) -> np.ndarray:
    """How much each pixel is the centre of a bright round blob (``blob_min_units``).

    Parameters
    ----------
    film : numpy.ndarray
        float32, the normalised film on an isotropic grid.
    soft : numpy.ndarray
        bool, same shape: the soft tissue, over which the unit is taken.
    sp : float
        Grid spacing in mm.
    params : DetectParams
        ``blob_scales_mm`` are the Gaussian sigmas.

    Returns
    -------
    numpy.ndarray
        float32, same shape: at each scale the larger Hessian eigenvalue of the blurred
        film, negated and scale-normalised (times sigma squared), so that it is positive
        only where the film curves down in every direction (a blob, not an edge or a
        line), in units of its 95th percentile over ``soft``; the largest over the
        scales, and never below 0.
    """
    out = np.zeros(film.shape, np.float32)
    for s_mm in params.blob_scales_mm:
        sg = s_mm / sp
        g = cv2.GaussianBlur(film, (0, 0), sg)
        gxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3)
        gyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3)
        gxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3)
        half = (gxx - gyy) * 0.5
        lmax = (gxx + gyy) * 0.5 + np.sqrt(half * half + gxy * gxy)
        b = -lmax * np.float32(sg * sg)
        v = b[soft] if soft.any() else b.ravel()
        unit = float(percentiles(v, 95.0)) if v.size else 0.0
        if unit <= 1e-9:
            continue
        np.maximum(out, b / np.float32(unit), out=out)
    return out


def _tree_model(params: DetectParams) -> TreeEnsemble:
    return load_tree_model(
        params.confidence_model,
        qualname="detect.confidence_model",
        expected="a confidence tree model such as 'confidence_trees.json'",
        known=CANDIDATE_FEATURES,
    )


def confidences(params: DetectParams, feats: Sequence[Mapping[str, float]]) -> np.ndarray:
    """The detection confidence of several candidates (see :func:`confidence`).

    Parameters
    ----------
    params : DetectParams
    feats : sequence of mapping
        Each candidate's features (:data:`CANDIDATE_FEATURES` when
        ``confidence_model`` is set, else at least :data:`FEATURE_NAMES`).

    Returns
    -------
    ndarray of float64, shape (len(feats),)
    """
    if not feats:
        return np.zeros(0)
    if params.confidence_model:
        model = _tree_model(params)
        x = np.array([[f[n] for n in model.features] for f in feats], dtype=np.float64)
        return model.predict_proba(x)
    return np.array([_logistic(params, f) for f in feats])


def confidence(params: DetectParams, feats: Mapping[str, float]) -> float:
    """The detection confidence of a candidate's features.

    With ``confidence_model`` set, the tree model's probability over the features it
    reads; otherwise a logistic function of :data:`FEATURE_NAMES`, each first clipped to
    ``params``' fitted range (``feature_min``, ``feature_max``)."""
    return float(confidences(params, [feats])[0])


def _logistic(params: DetectParams, feats: Mapping[str, float]) -> float:
    w = params.confidence_weights
    x = np.array([feats[n] for n in FEATURE_NAMES], dtype=np.float64)
    if params.feature_min:
        x = np.clip(x, params.feature_min, params.feature_max)
    z = w[0] + float(np.dot(w[1:], x))
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))


PARTICLE_PIXELS = 16
"""Most model-grid pixels averaged for one particle's bone probability
(``particle_bone_max``). RG1 at 3000 x 3000 has 5180 particles on 154 000 detection-grid
pixels, 8012 model pixels at 16 a particle; the trees took 0.30 s over them at 32 pixels
a particle, 0.14 s at 16, and the particles dropped at 0.7 differ in 5 (session 25). The
walk of :func:`calcimg.bonemodel._walk_arrays` takes the whole pass to 0.07-0.08 s
(session 26)."""

_COSTLY = ("enclosed_fraction", "side_spread", "bone_prob")
"""Features measured last: a candidate whose confidence cannot reach the cut even at their
most favourable value (0, when their weights are <= 0) is not measured further."""


def _measure(
    radiograph: Radiograph, anatomy: AnatomyMap, params: DetectParams, *, prune: bool = False
) -> tuple[
    list[tuple[tuple[slice, slice], np.ndarray | None, dict[str, float]]],
    tuple[float, float],
    float,
]:
    """Grouped candidates on the detection grid, strongest (CNR) first: ([(grid slices,
    particle labels in the slices, features)], film/grid scale (rows, columns), grid
    spacing in mm).

    ``prune``: do not finish candidates whose confidence is below ``min_confidence``
    whatever the :data:`_COSTLY` features turn out to be (exact: only when those weights
    are <= 0): they keep their place in the ``max_candidates`` ranking but come without
    particle labels (None) or costly features. :func:`detect` uses it; the tuning
    scripts see every candidate in full."""
    p = params
    shape = radiograph.shape
    sp, (h, w) = radiograph.grid(p.grid_mm)
    # the film and the anatomy maps straight on the detection grid: no film-sized copies
    img = radiograph.normalized_on((h, w))
    labels = anatomy.labels_on((h, w))
    dist = anatomy.distance_to_bone_mm_on((h, w))
    soft = labels == Region.SOFT_TISSUE
    joint = labels == Region.JOINT_SPACE
    allowed = (soft & (dist > p.bone_margin_mm)) | joint
    # the distances are read once more, as this mask: film-grid arrays are released as
    # soon as they are read (a 9 MP film's detector holds about 14 of them)
    near_bone_px = dist < p.edge_band_mm
    del dist, joint
    # collimator edges and the film's border give step responses: keep off them
    mb = int(round(p.border_margin_mm / sp))
    if mb > 0:
        outside = (labels == Region.BACKGROUND).astype(np.uint8)
        allowed &= cv2.dilate(outside, np.ones((2 * mb + 1, 2 * mb + 1), np.uint8)) == 0
        del outside
    mc = int(round(p.collimation_margin_mm / sp))
    if mc > mb and anatomy.soft_tissue_level is not None:
        # unexposed film (background brighter than soft tissue: collimator blades, the
        # film's unexposed border) has a penumbra wider than the skin line's
        unexposed = (labels == Region.BACKGROUND) & (img > anatomy.soft_tissue_level)
        if unexposed.any():
            k_mc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * mc + 1,) * 2)
            allowed &= cv2.dilate(unexposed.astype(np.uint8), k_mc) == 0
        del unexposed
    mf = max(mb, mc)  # the film's own border is unexposed film too
    if mf > 0:
        allowed[:mf, :] = False
        allowed[-mf:, :] = False
        allowed[:, :mf] = False
        allowed[:, -mf:] = False
    if not allowed.any():
        return [], (1.0, 1.0), sp
    cnr, res, _sigma = cnr_map(img, soft if soft.any() else allowed, sp, p)
    del soft
    grow = (cnr >= p.grow_cnr) & allowed
    soft_level = anatomy.soft_tissue_level
    ref_soft = soft_level if soft_level is not None else float(np.median(img[allowed]))
    del allowed
    # how busy the neighbourhood is: bone texture the anatomy map missed, skin folds and
    # noisy regions give many responses around a candidate, a calcification few
    kt = max(3, int(round(p.texture_mm / sp)) | 1)
    half = kt // 2
    # summed per candidate (a box filter over the whole grid cost more than all of them);
    # the border is mirrored as cv2.boxFilter's default (BORDER_REFLECT_101) would
    busy_px = cv2.copyMakeBorder(
        ((cnr >= p.grow_cnr) & (labels > 0)).view(np.uint8),
        half,
        half,
        half,
        half,
        cv2.BORDER_REFLECT_101,
    )
    del labels
    n, lab, stats, _c = cv2.connectedComponentsWithStats(grow.astype(np.uint8), connectivity=8)
    if n <= 1 and p.blob_min_units <= 0:  # the blob source may still find a deposit
        return [], (1.0, 1.0), sp
    seed_max = np.zeros(n, dtype=np.float32)
    np.maximum.at(seed_max, lab[grow], cnr[grow])
    del grow
    keep = seed_max >= p.seed_cnr
    keep[0] = False
    k_close = cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (max(3, int(round(p.ring_close_mm / sp)) | 1),) * 2
    )
    if p.bone_ring_min_mm2 > 0:
        # a closed ring around >= bone_ring_min_mm2 is the cortex of a small bone the map
        # missed (a phalanx, a sesamoid): dropped before grouping, so that it does not
        # swallow a deposit beside it; phleboliths' rings enclose <= 40 mm2
        bone_ring_px = p.bone_ring_min_mm2 / (sp * sp)
        x0, y0, bw, bh = (stats[:, j] for j in range(4))
        for i in np.nonzero(keep & (bw * bh >= bone_ring_px))[0]:
            box = (slice(y0[i], y0[i] + bh[i]), slice(x0[i], x0[i] + bw[i]))
            frac, n_filled = _enclosure(lab[box] == i, k_close)
            if n_filled >= bone_ring_px and frac >= p.bone_ring_enclosed:
                keep[i] = False
    grids: dict[tuple[int, int], np.ndarray] = {}

    def normalized(grid_mm: float) -> np.ndarray:
        """The film on a coarse grid, resampled once (the surround and the bone
        probability read the same 0.5 mm grid)."""
        shape_g = radiograph.grid(grid_mm)[1]
        if shape_g not in grids:
            kept = kept_film(radiograph, shape_g)  # the anatomy map's, when it is this grid
            grids[shape_g] = radiograph.normalized_on(shape_g) if kept is None else kept
        return grids[shape_g]

    def the_bone_field() -> BoneField:
        model = load_bone_model(p.bone_model)
        # the film's last reader of the bone model's planes: not kept beyond it
        return bone_field(
            radiograph, anatomy, model, normalized=normalized(model.grid_mm), release_planes=True
        )

    field_: BoneField | None = None  # the bone probability, once per film when needed
    part_bone: np.ndarray | None = None  # each particle's mean bone probability, by label
    parts = keep[lab]
    if (p.particle_bone_max < 1.0 or p.regroup_bone_max < 1.0) and keep.any():
        # a particle on bone the map missed (a phalanx's cortex, a fibula's margin) is
        # dropped before grouping, so that it does not swallow a deposit beside it
        field_ = the_bone_field()
        ys_p, xs_p = np.nonzero(parts)
        lab_p = lab[ys_p, xs_p]
        part_bone = field_.means_at(ys_p, xs_p, lab_p, (h, w), limit=PARTICLE_PIXELS)
        if p.particle_bone_max < 1.0:
            gone = (part_bone >= p.particle_bone_max)[lab_p]
            parts[ys_p[gone], xs_p[gone]] = False
    if not parts.any() and p.blob_min_units <= 0:
        return [], (1.0, 1.0), sp
    # group particles closer than group_mm
    k = max(1, int(round(p.group_mm / sp)) | 1)
    k_group = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    ng, glab = cv2.connectedComponents(cv2.dilate(parts.view(np.uint8), k_group), connectivity=8)
    glab[~parts] = 0
    del parts
    bone_level = anatomy.bone_level
    span = bone_level - soft_level if bone_level is not None and soft_level is not None else None
    # contrasts against the local soft tissue -> cortex step at the bones' margins, which
    # does not depend on which bones the map found
    bone_contrast = anatomy.contrast_unit(img)
    # levels are placed between the soft-tissue (0) and bone (1) medians
    level_span = span if span is not None and span > 1e-3 else bone_contrast
    found: list[tuple[tuple[slice, slice], np.ndarray | None, dict[str, float]]] = []
    weight_of = dict(zip(FEATURE_NAMES, p.confidence_weights[1:], strict=True))
    # the logistic's best case bounds its confidence; a tree model's has no such bound
    prune_ok = prune and not p.confidence_model and all(weight_of[f] <= 0.0 for f in _COSTLY)
    surround: Surround | None = None
    f5r = f5c = 1.0
    if p.confidence_model or not prune:
        sp5, (h5, w5) = radiograph.grid(SURROUND_GRID_MM)
        surround = Surround(
            normalized(SURROUND_GRID_MM),
            anatomy.labels_on((h5, w5)) == Region.BONE,
            sp5,
            bone_contrast,
        )
        f5r, f5c = h5 / h, w5 / w
    side_px = (max(1, int(round(1.5 / sp))), max(2, int(round(4.0 / sp))))
    # candidates measured in full, and (in the same order) their pixels on the detection
    # grid and their box centres and pixels on the surround's grid: their bone_prob and
    # surround descriptors come in one batch each after the loop
    scored: list[dict[str, float]] = []
    bone_px: list[tuple[np.ndarray, np.ndarray]] = []
    around: list[tuple[tuple[float, float], tuple[np.ndarray, np.ndarray]]] = []
    fr, fc = shape[0] / h, shape[1] / w

    def measure(
        glab: np.ndarray, slices: list[tuple[slice, slice] | None], from_blob: bool = False
    ) -> None:
        """Measure the groups of ``glab`` into ``found`` (and ``scored``, ``bone_px`` and
        ``around`` for those measured in full)."""
        for g, sl in enumerate(slices, start=1):
            if sl is None:
                continue
            m = glab[sl] == g
            npx = int(m.sum())
            area = npx * sp * sp
            if area < p.min_area_mm2 or area > p.max_area_mm2 or npx < p.min_area_px:
                continue
            c = cnr[sl][m]
            sub_lab = lab[sl]
            pids = np.unique(sub_lab[m])
            pids = pids[pids > 0]
            near_bone = near_bone_px[sl][m]
            ys, xs = np.nonzero(m)
            if ys.size > 2:
                cov = np.cov(np.vstack([ys, xs]).astype(np.float64))
                ev = np.linalg.eigvalsh(cov)
                elong = float(np.sqrt(max(ev[1], 1e-6) / max(ev[0], 0.25)))
            else:
                elong = 1.0
            feats = {
                "cnr_max": float(c.max()),
                "cnr_mean": float(c.mean()),
                "area_mm2": float(area),
                "n_particles": float(pids.size),
                "log_cnr_max": float(np.log(max(c.max(), 1e-3))),
                "log_cnr_mean": float(np.log(max(c.mean(), 1e-3))),
                "log_area_mm2": float(np.log(max(area, 1e-3))),
                "log_n_particles": float(np.log(max(pids.size, 1))),
                "edge_fraction": float(near_bone.mean()),
                "rel_contrast": float(res[sl][m].max() / bone_contrast),
                "elongation": float(min(elong, 20.0)),
                "log_area_sq": float((np.log(max(area, 1e-3)) - 2.5) ** 2),
                # local background relative to soft tissue (0) and bone (1): candidates on a
                # bone-level background are bone texture the anatomy map missed
                "background_rel": float(
                    (np.median(img[sl][m] - res[sl][m]) - ref_soft) / level_span
                ),
                "fill": float(npx / max(m.size, 1)),
                "texture_density": float(
                    max(
                        _window_sum(
                            busy_px, int(ys.mean()) + sl[0].start, int(xs.mean()) + sl[1].start, kt
                        )
                        - npx,
                        0.0,
                    )
                    / (kt * kt)
                ),
            }
            if feats["rel_contrast"] > p.max_rel_contrast:
                continue
            feats["blob_source"] = float(from_blob)
            if blob is not None:
                rb = ((ys + sl[0].start + 0.5) * (blob.shape[0] / h)).astype(np.intp)
                cb = ((xs + sl[1].start + 0.5) * (blob.shape[1] / w)).astype(np.intp)
                feats["blob_units"] = float(blob[rb, cb].max())
            else:
                feats["blob_units"] = 0.0
            best_case = {**feats, **dict.fromkeys(_COSTLY, 0.0)}
            if prune_ok and _logistic(p, best_case) < p.min_confidence:
                found.append((sl, None, feats))  # ranked below, never a finding
                continue
            feats["enclosed_fraction"] = _enclosure(m, k_close)[0]
            feats["side_spread"] = _side_spread(img, m, sl, side_px, bone_contrast)
            # bone_prob: all candidates in one pass of the trees, after this loop
            feats["bone_prob"] = 0.0
            scored.append(feats)
            bone_px.append((ys + sl[0].start, xs + sl[1].start))
            if surround is not None:  # all candidates in one batch after this loop
                centre = (
                    (sl[0].start + sl[0].stop) / 2 * f5r,
                    (sl[1].start + sl[1].stop) / 2 * f5c,
                )
                rows5 = ((ys + sl[0].start + 0.5) * f5r).astype(np.intp)
                cols5 = ((xs + sl[1].start + 0.5) * f5c).astype(np.intp)
                around.append((centre, (rows5, cols5)))
                feats.update(dict.fromkeys(SURROUND_FEATURES, 0.0))
            plab = np.zeros(m.shape, dtype=np.int32)
            # particles numbered 1..n in the order of their labels (one pass, not one per id)
            plab[m] = 1 if from_blob else np.searchsorted(pids, sub_lab[m]) + 1
            found.append((sl, plab, feats))

    def finish(start: int) -> None:
        """The surround descriptors and bone_prob of ``scored[start:]``, one batch each."""
        nonlocal field_
        new, new_px, new_around = scored[start:], bone_px[start:], around[start:]
        if surround is not None and new_around:
            rows = surround.many([c for c, _px in new_around], [px for _c, px in new_around])
            for feats_, row in zip(new, rows.tolist(), strict=True):
                feats_.update(zip(SURROUND_FEATURES, row, strict=True))
        if new_px:  # the bone field once per film, and only for a film with candidates to score
            if field_ is None:
                field_ = the_bone_field()
            rows_b = np.concatenate([r for r, _ in new_px])
            cols_b = np.concatenate([c for _, c in new_px])
            group_b = np.repeat(np.arange(len(new_px)), [r.size for r, _ in new_px])
            # each candidate's mean is the one mean_at gives it alone (BoneField.means_at)
            probs = field_.means_at(rows_b, cols_b, group_b, (h, w))
            for feats_, prob in zip(new, probs.tolist(), strict=True):
                feats_["bone_prob"] = prob

    blob: np.ndarray | None = None  # the blob measure, on its own grid
    blob_glab: np.ndarray | None = None  # the blob candidates, on the detection grid
    blob_slices: list[tuple[slice, slice] | None] = []
    if p.blob_min_units > 0:
        blob, blob_glab, n_blob = _blob_groups(
            radiograph, anatomy, normalized(SURROUND_GRID_MM), glab > 0, p
        )
        blob_slices = _find_objects(blob_glab, n_blob + 1) if n_blob else []
    measure(glab, _find_objects(glab, ng))
    del glab  # before the batch below, which is where a film's detector peaks
    finish(0)
    if p.regroup_bone_max < 1.0 and part_bone is not None and scored:
        # a second chance for the candidates below the cut that hold a particle on bone
        # each retried candidate's parts are grouped on their own: parts of different
        # candidates lie farther apart than group_mm, so no part joins another's
        glab2: np.ndarray | None = None
        slices2: list[tuple[slice, slice] | None] = []
        for c, (rows_g, cols_g) in zip(confidences(p, scored), bone_px, strict=True):
            if c >= p.min_confidence:
                continue
            off = part_bone[lab[rows_g, cols_g]] >= p.regroup_bone_max
            if not off.any() or off.all():
                continue
            rows_k, cols_k = rows_g[~off], cols_g[~off]
            rank = _largest_groups(rows_k, cols_k, k_group, p.regroup_max_groups)
            if glab2 is None:
                glab2 = np.zeros((h, w), dtype=np.int32)
            for j in range(1, int(rank.max()) + 1):
                rr, cc = rows_k[rank == j], cols_k[rank == j]
                slices2.append((slice(rr.min(), rr.max() + 1), slice(cc.min(), cc.max() + 1)))
                glab2[rr, cc] = len(slices2)
        if glab2 is not None:
            n_first = len(scored)
            measure(glab2, slices2)
            finish(n_first)
            weak = {
                id(f)
                for f, c in zip(scored[n_first:], confidences(p, scored[n_first:]), strict=True)
                if c < max(p.regroup_min_confidence, p.min_confidence)
            }
            found = [t for t in found if id(t[2]) not in weak]
    if blob_slices:
        assert blob_glab is not None
        n_before = len(scored)
        measure(blob_glab, blob_slices, from_blob=True)
        finish(n_before)
    found.sort(key=lambda t: -t[2]["cnr_max"])
    return found[: p.max_candidates], (fr, fc), sp


def _blob_groups(
    radiograph: Radiograph,
    anatomy: AnatomyMap,
    film5: np.ndarray,
    first: np.ndarray,
    p: DetectParams,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The blob source's candidates (``blob_min_units``).

    Parameters
    ----------
    radiograph, anatomy
        The film and its map.
    film5 : numpy.ndarray
        The normalised film on the surround's grid (0.5 mm), resampled from.
    first : numpy.ndarray
        bool, on the detection grid: the first pass's particle groups.
    p : DetectParams

    Returns
    -------
    tuple
        (the blob measure on the ``blob_grid_mm`` grid, candidate labels 0..n on the
        detection grid, n).
    """
    sp, shape = radiograph.grid(p.blob_grid_mm)
    film = _resize(film5, shape, cv2.INTER_AREA)
    labels = anatomy.labels_on(shape)
    soft = labels == Region.SOFT_TISSUE
    blob = blob_map(film, soft, sp, p)
    body = (labels != Region.BACKGROUND).astype(np.uint8)
    ok = soft & (blob >= p.blob_min_units)
    # rounded fingertips, toe pulps and the limb's own edge are blob-like
    ok &= cv2.distanceTransform(body, cv2.DIST_L2, 5) * sp > p.blob_skin_mm
    ok &= anatomy.distance_to_bone_mm_on(shape) > p.blob_bone_mm
    # the first pass's groups, grown by a pixel of this grid: a blob touching one is
    # left to it (merged or duplicated, it cost the trees more lesions than it gave)
    first_b = cv2.dilate(
        (_resize(first.view(np.uint8), shape, cv2.INTER_AREA) > 0).astype(np.uint8),
        np.ones((3, 3), np.uint8),
    ).astype(bool)
    h, w = first.shape
    n, lab, stats, _c = cv2.connectedComponentsWithStats(ok.astype(np.uint8), connectivity=8)
    if n <= 1:
        return blob, np.zeros((h, w), np.int32), 0
    touch = np.bincount(lab[first_b], minlength=n) > 0
    big = stats[:, cv2.CC_STAT_AREA] * sp * sp >= p.blob_min_area_mm2
    keep = big & ~touch
    keep[0] = False
    n_keep = int(keep.sum())
    if not n_keep:
        return blob, np.zeros((h, w), np.int32), 0
    lut = np.zeros(n, np.int32)
    lut[keep] = np.arange(1, n_keep + 1, dtype=np.int32)
    return blob, _resize(lut[lab], (h, w), cv2.INTER_NEAREST), n_keep


def _at_film(
    shape: tuple[int, int], scale: tuple[float, float], sl: tuple[slice, slice], plab: np.ndarray
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """A candidate's bbox and particle labels on the film (the grid is never finer)."""
    fr, fc = scale
    r0 = int(sl[0].start * fr)
    c0 = int(sl[1].start * fc)
    r1 = min(shape[0], int(np.ceil(sl[0].stop * fr)))
    c1 = min(shape[1], int(np.ceil(sl[1].stop * fc)))
    return (r0, c0, r1, c1), _resize(plab, (r1 - r0, c1 - c0), cv2.INTER_NEAREST)


def first_pass(params: DetectParams) -> DetectParams:
    """``params`` without the second look (``regroup_bone_max`` = 1): the candidates a
    confidence model is fitted on. Which candidates get a second look depends on the
    model's own confidences, so a fit that collected them would depend on the model it
    replaces."""
    return replace(params, regroup_bone_max=1.0)


def candidates(
    radiograph: Radiograph, anatomy: AnatomyMap, params: DetectParams
) -> tuple[list[tuple[tuple[int, int, int, int], np.ndarray, dict[str, float]]], float]:
    """All grouped candidates with their features, before the confidence cut.

    Returns ([(bbox, particles, features)], detection-grid spacing in mm); bbox and
    particles are at the film's resolution, strongest (CNR) first.
    """
    measured, scale, sp = _measure(radiograph, anatomy, params)
    out = []
    for sl, plab, feats in measured:
        assert plab is not None  # only pruning leaves labels out
        out.append((*_at_film(radiograph.shape, scale, sl, plab), feats))
    return out, sp


def _window_sum(padded: np.ndarray, r: int, c: int, k: int) -> float:
    """Sum of the k x k window centred on (r, c) of the unpadded grid (``padded`` carries
    a k // 2 border)."""
    return float(np.count_nonzero(padded[r : r + k, c : c + k]))


def _side_spread(
    img: np.ndarray, m: np.ndarray, sl: tuple[slice, slice], ring: tuple[int, int], unit: float
) -> float:
    """Spread (80th - 20th percentile) of the film 1.5-4 mm around a candidate, in units of
    the cortex step: large along a bone's edge (bone on one side, soft tissue on the
    other), small for a deposit or a vessel in soft tissue."""
    h, w = img.shape
    r0, c0 = max(0, sl[0].start - ring[1]), max(0, sl[1].start - ring[1])
    r1, c1 = min(h, sl[0].stop + ring[1]), min(w, sl[1].stop + ring[1])
    mk = np.zeros((r1 - r0, c1 - c0), np.uint8)
    mk[sl[0].start - r0 : sl[0].stop - r0, sl[1].start - c0 : sl[1].stop - c0] = m
    d = cv2.distanceTransform(1 - mk, cv2.DIST_L2, 5)  # one pass, not two large dilations
    v = img[r0:r1, c0:c1][(d > ring[0]) & (d <= ring[1])]
    if v.size < 4:
        return 0.0
    lo, hi = percentiles(v, (20, 80))
    return float((hi - lo) / unit)


def _enclosure(m: np.ndarray, kernel: np.ndarray) -> tuple[float, int]:
    """Share of a candidate's filled outline that its particles do not cover: ~0 for a
    deposit or a clump's open rim fragments, large for a closed cortical ring (a small
    bone or sesamoid the anatomy map missed: only its cortex gives a top-hat response)."""
    pad = kernel.shape[0]
    # np.pad took 70 us on a 30 x 40 mask, copyMakeBorder 9 us (session 33)
    mk = cv2.copyMakeBorder(m.astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    closed = cv2.morphologyEx(mk, cv2.MORPH_CLOSE, kernel)
    n_closed = int(np.count_nonzero(closed))
    # holes: background the flood from the (padded, empty) corner does not reach
    cv2.floodFill(closed, None, (0, 0), 1)
    n_filled = n_closed + int(closed.size - np.count_nonzero(closed))
    return float(n_filled - np.count_nonzero(mk)) / max(n_filled, 1), n_filled


def _largest_groups(rows: np.ndarray, cols: np.ndarray, kernel: np.ndarray, n: int) -> np.ndarray:
    """The groups the pixels ``rows``, ``cols`` form (joined by a dilation with
    ``kernel``), ranked by size: each pixel's group rank 1..n among the ``n`` largest,
    0 for the pixels of smaller groups (ties go to the group met first in raster
    order)."""
    pad = kernel.shape[0]
    r0, c0 = int(rows.min()) - pad, int(cols.min()) - pad
    m = np.zeros((int(rows.max()) - r0 + pad + 1, int(cols.max()) - c0 + pad + 1), np.uint8)
    m[rows - r0, cols - c0] = 1
    n_lab, glab = cv2.connectedComponents(cv2.dilate(m, kernel), connectivity=8)
    at = glab[rows - r0, cols - c0]
    sizes = np.bincount(at, minlength=n_lab)
    sizes[0] = 0
    order = np.argsort(-sizes, kind="stable")[: min(n, np.count_nonzero(sizes))]
    rank = np.zeros(n_lab, dtype=np.int32)
    rank[order] = np.arange(1, order.size + 1)
    return rank[at]


def _find_objects(lab: np.ndarray, n: int) -> list[tuple[slice, slice] | None]:
    from scipy import ndimage

    return list(ndimage.find_objects(lab, max_label=n - 1)) if n > 1 else []


def detect(radiograph: Radiograph, anatomy: AnatomyMap, *, params: DetectParams) -> Detections:
    """Find calcification candidates in soft tissue and joint spaces.

    Parameters
    ----------
    radiograph : Radiograph
    anatomy : AnatomyMap
        From :func:`calcimg.anatomy.map_anatomy` on the same radiograph.
    params : DetectParams

    Returns
    -------
    Detections
        Findings with confidence >= ``min_confidence``, strongest first.
    """
    measured, scale, _sp = _measure(radiograph, anatomy, params, prune=True)
    kept = [(sl, pl, f) for sl, pl, f in measured if pl is not None]
    confs = confidences(params, [f for _sl, _pl, f in kept])
    scored = [(sl, pl, f, float(c)) for (sl, pl, f), c in zip(kept, confs, strict=True)]
    scored = [t for t in scored if t[3] >= params.min_confidence]
    scored.sort(key=lambda t: -t[3])
    items = []
    for i, (sl, pl, f, conf) in enumerate(scored, start=1):
        assert pl is not None
        # only findings are brought to the film's resolution
        bbox, particles = _at_film(radiograph.shape, scale, sl, pl)
        items.append(
            Detection(id=i, bbox=bbox, particles=particles, confidence=round(conf, 4), features=f)
        )
    return Detections(items=tuple(items), n_candidates=len(measured))
