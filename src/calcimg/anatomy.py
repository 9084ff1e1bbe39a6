"""Anatomy map: where on the film are background, soft tissue, bone, joints and metal.

Stage 2 of the pipeline. ``map_anatomy`` takes a :class:`~calcimg.radiograph.Radiograph`
and returns an :class:`AnatomyMap` whose masks later stages use to restrict detection to
soft tissue (and joint spaces for chondral lines) and to measure distances in mm.

Method (all sizes in mm, all intensity thresholds relative to the image's own levels and
noise, so that it works across anatomies, vendors and bit depths):

1. The normalised image (:meth:`Radiograph.normalized`) is resampled to an isotropic
   analysis grid (``analysis_spacing_mm``, 0.2 mm by default; coarser films are kept at
   their own spacing). The same film at 0.1 or 0.2 mm therefore gives the same analysis.
2. Noise: a robust local estimate of the pixel noise from the high-pass residual.
3. Collimation: flat, border-connected, near-maximum-attenuation rectangles (no
   exposure). Air: very dark, border-connected regions. The body is the rest; small
   islands outside the body that are dense are markers or burned-in text.
4. Bone: brighter than the local soft tissue by more than a threshold found from the
   image's own histogram (Otsu on a masked morphological top-hat with a SE wider than
   any bone), cleaned at mm scales. Cortex: the outer ``cortex_mm`` of bone.
5. Joint spaces: narrow gaps between two different bone components (a closing of the
   bone mask at ``joint_gap_max_mm`` minus bone).
6. Foreign: metal (denser than the dense end of bone by a margin, relative to the
   bone-soft-tissue contrast) and markers/text outside the body. They are listed as
   :class:`~calcimg.result.Confounder` and never reported as calcification
   (``DOMAIN.md``, "Confounders that look like calcification").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from calcimg.params import check_range
from calcimg.radiograph import Radiograph
from calcimg.result import Confounder

__all__ = [
    "AnalysisGrid",
    "AnatomyMap",
    "AnatomyParams",
    "Joint",
    "Region",
    "analysis_grid",
    "map_anatomy",
]


class Region(IntEnum):
    """Codes of :attr:`AnatomyMap.labels`."""

    BACKGROUND = 0
    """Air, or outside the collimated field."""
    SOFT_TISSUE = 1
    BONE = 2
    JOINT_SPACE = 3
    FOREIGN = 4
    """Metal, lead markers, burned-in text: never reported as calcification."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnatomyParams:
    """Parameters of :func:`map_anatomy` (section ``[anatomy]``).

    Sizes are in mm; ``*_k`` thresholds are in units of the image's noise; ``*_frac``
    thresholds are fractions of the image's own intensity levels.
    """

    analysis_spacing_mm: float = 0.2
    """Isotropic spacing of the analysis grid (films coarser than this keep theirs)."""
    region_spacing_mm: float = 0.5
    """Spacing of the grid for collimation, air and body outline."""
    coarse_spacing_mm: float = 1.0
    """Spacing of the coarse grid used for large-scale background estimates."""
    smooth_mm: float = 1.0
    """Gaussian sigma for the region maps (air, collimation, bone)."""
    air_frac: float = 0.12
    """Air: darker than p0.5 + air_frac * (p99 - p0.5) of the exposed field..."""
    air_k: float = 4.0
    """...and at least air_k noise sigmas above the darkest level."""
    collimation_frac: float = 0.04
    """Collimation: within collimation_frac of the dynamic range from the film maximum."""
    blade_edge_frac: float = 0.15
    """Collimator blade edges: gradient above this fraction of the film's p99.5 gradient."""
    blade_max_deg: float = 12.0
    """Largest tilt of a collimator blade from the film's edge."""
    blade_band: float = 0.35
    """Blades are searched in this outer fraction of the film on each side."""
    blade_support: float = 0.5
    """A blade's edge runs along at least this fraction of the side."""
    collimation_min_mm: float = 3.0
    """Collimation bands are at least this wide."""
    collimation_extent: float = 0.5
    """A collimation band covers at least this fraction of one side of the film."""
    penumbra_mm: float = 40.0
    """Non-air strips lying wholly within this of collimation are its penumbra."""
    collimation_rim_mm: float = 2.0
    """The field edge's blurred rim, grown into the body, is background."""
    min_body_mm2: float = 400.0
    """Non-air islands smaller than this, outside the main body, are not anatomy."""
    bone_background_mm: float = 30.0
    """Disc of the bone top-hat: wider than most bone shafts, narrower than limbs."""
    bone_texture: float = 4.0
    """Bone seeds are textured: band-pass energy above this multiple of soft tissue's..."""
    texture_fine_mm: float = 0.3
    texture_coarse_mm: float = 1.0
    """Difference-of-Gaussians band of the trabecular texture."""
    texture_window_mm: float = 3.0
    bone_k: float = 6.0
    """...and their top-hat is at least bone_k noise sigmas."""
    rim_test_max_mm2: float = 4000.0
    """Dense bodies up to this area must show a cortex to count as bone."""
    rim_ratio: float = 0.9
    bone_fill: float = 0.6
    medulla_mm: float = 30.0
    """Gaps up to this wide between bone that are ..."""
    medulla_frac: float = 0.4
    """... above this fraction of the bone's median top-hat are medulla (bone)."""
    """Bodies narrower than the top-hat disc must be above soft tissue over this fraction."""
    compact_elongation: float = 2.5
    """Only bodies less elongated than this (major/minor axis) take the cortex test."""
    """Cortex test: median top-hat of the outer cortex_mm >= rim_ratio x the core's."""
    bone_hole_mm2: float = 200.0
    """Holes up to this size in textured bone are filled (lucent medulla, lesions)."""
    bone_neck_mm: float = 6.0
    skin_margin_mm: float = 3.0
    """Texture within this of the skin line is the skin edge, not bone."""
    """Necks narrower than this between dense bodies are cut before testing them."""
    bone_close_mm: float = 3.0
    """Closing that knits textured bone pixels into solid bone."""
    bone_open_mm: float = 2.0
    """Opening of the bone mask: removes dense lines thinner than this (chondral, vascular)."""
    min_bone_mm2: float = 150.0
    """Bone components smaller than this are not bone (sesamoids are kept by cortex rule)."""
    cortex_mm: float = 1.5
    """Thickness of the cortical shell."""
    joint_gap_max_mm: float = 8.0
    """Widest joint space that is closed between two bone ends."""
    min_joint_mm2: float = 10.0
    """Smallest joint space kept."""
    metal_frac: float = 0.6
    """Metal: above bone p99 + metal_frac * (bone p99 - soft tissue median)."""
    min_metal_mm2: float = 1.0
    """Smallest metal object kept (smaller ones are noise or dense calcification)."""
    foreign_margin_mm: float = 2.5
    """Foreign objects are grown by this before masking (their blurred rims)."""
    saturation_frac: float = 0.01
    """Pixels within this fraction of the top of the value range are saturated..."""
    max_annotation_mm2: float = 400.0
    """...and small saturated bodies (up to this area) are burned-in annotations."""
    text_max_mm: float = 5.0
    """Dense islands outside the body smaller than this are text; larger are markers."""

    def __post_init__(self) -> None:
        q = "anatomy."
        check_range(q + "analysis_spacing_mm", self.analysis_spacing_mm, 0.05, 1.0)
        check_range(q + "region_spacing_mm", self.region_spacing_mm, 0.1, 4.0)
        check_range(q + "coarse_spacing_mm", self.coarse_spacing_mm, 0.2, 4.0)
        check_range(q + "smooth_mm", self.smooth_mm, 0.1, 5.0)
        check_range(q + "air_frac", self.air_frac, 0.0, 0.5)
        check_range(q + "air_k", self.air_k, 0.0, 50.0)
        check_range(q + "collimation_frac", self.collimation_frac, 0.0, 0.5)
        check_range(q + "blade_edge_frac", self.blade_edge_frac, 0.0, 1.0)
        check_range(q + "blade_max_deg", self.blade_max_deg, 0.0, 45.0)
        check_range(q + "blade_band", self.blade_band, 0.05, 0.5)
        check_range(q + "blade_support", self.blade_support, 0.05, 1.0)
        check_range(q + "collimation_min_mm", self.collimation_min_mm, 0.5, 100.0)
        check_range(q + "collimation_extent", self.collimation_extent, 0.0, 1.0)
        check_range(q + "penumbra_mm", self.penumbra_mm, 0.0, 200.0)
        check_range(q + "collimation_rim_mm", self.collimation_rim_mm, 0.0, 20.0)
        check_range(q + "min_body_mm2", self.min_body_mm2, 0.0, 1e5)
        check_range(q + "bone_background_mm", self.bone_background_mm, 5.0, 300.0)
        check_range(q + "bone_texture", self.bone_texture, 1.0, 100.0)
        check_range(q + "texture_fine_mm", self.texture_fine_mm, 0.05, 5.0)
        check_range(q + "texture_coarse_mm", self.texture_coarse_mm, 0.1, 10.0)
        check_range(q + "texture_window_mm", self.texture_window_mm, 0.5, 20.0)
        check_range(q + "bone_k", self.bone_k, 0.0, 100.0)
        check_range(q + "rim_test_max_mm2", self.rim_test_max_mm2, 0.0, 1e6)
        check_range(q + "rim_ratio", self.rim_ratio, 0.0, 10.0)
        check_range(q + "bone_fill", self.bone_fill, 0.0, 1.0)
        check_range(q + "medulla_mm", self.medulla_mm, 0.0, 100.0)
        check_range(q + "medulla_frac", self.medulla_frac, 0.0, 10.0)
        check_range(q + "compact_elongation", self.compact_elongation, 1.0, 100.0)
        check_range(q + "bone_hole_mm2", self.bone_hole_mm2, 0.0, 1e5)
        check_range(q + "bone_neck_mm", self.bone_neck_mm, 0.0, 30.0)
        check_range(q + "skin_margin_mm", self.skin_margin_mm, 0.0, 30.0)
        check_range(q + "bone_close_mm", self.bone_close_mm, 0.0, 30.0)
        check_range(q + "bone_open_mm", self.bone_open_mm, 0.0, 20.0)
        check_range(q + "min_bone_mm2", self.min_bone_mm2, 0.0, 1e5)
        check_range(q + "cortex_mm", self.cortex_mm, 0.1, 10.0)
        check_range(q + "joint_gap_max_mm", self.joint_gap_max_mm, 0.0, 50.0)
        check_range(q + "min_joint_mm2", self.min_joint_mm2, 0.0, 1e4)
        check_range(q + "metal_frac", self.metal_frac, 0.0, 10.0)
        check_range(q + "min_metal_mm2", self.min_metal_mm2, 0.0, 1e4)
        check_range(q + "foreign_margin_mm", self.foreign_margin_mm, 0.0, 20.0)
        check_range(q + "saturation_frac", self.saturation_frac, 0.0, 0.5)
        check_range(q + "max_annotation_mm2", self.max_annotation_mm2, 0.0, 1e5)
        check_range(q + "text_max_mm", self.text_max_mm, 0.0, 100.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Joint:
    """A joint space found on the film.

    ``name`` is the joint's kind when it can be told ("knee", "hip", ...), else None.
    ``label`` is its value in :attr:`AnatomyMap.joint_labels`.
    """

    label: int
    name: str | None
    centroid_rc: tuple[float, float]
    bbox: tuple[int, int, int, int]
    bones: tuple[int, ...] = ()
    """Labels (in the analysis grid's bone labelling) of the bones that bound it."""


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AnalysisGrid:
    """The isotropic analysis grid the anatomy map was computed on.

    Later stages (detection) reuse it instead of resampling again.

    Attributes
    ----------
    image : numpy.ndarray
        float32 (h, w): the normalised radiograph resampled to ``spacing_mm``.
    spacing_mm : float
        Isotropic spacing of the grid.
    scale_rc : tuple of float
        Grid pixels per native pixel along rows and columns (<= 1).
    labels : numpy.ndarray
        uint8 (h, w) :class:`Region` codes on the grid.
    cortex : numpy.ndarray
        bool (h, w).
    distance_to_bone_mm : numpy.ndarray
        float32 (h, w).
    noise : numpy.ndarray
        float32 (h, w): local noise sigma of ``image`` (normalised units).
    soft_tissue_level, bone_level : float
        Median normalised intensity of soft tissue and p90 of bone (for relative density).
    """

    image: np.ndarray
    spacing_mm: float
    scale_rc: tuple[float, float]
    labels: np.ndarray
    cortex: np.ndarray
    distance_to_bone_mm: np.ndarray
    noise: np.ndarray
    soft_tissue_level: float
    bone_level: float


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AnatomyMap:
    """Per-pixel anatomy of one radiograph.

    Attributes
    ----------
    labels : numpy.ndarray
        uint8 (rows, columns) of :class:`Region` codes.
    cortex : numpy.ndarray
        bool (rows, columns): the cortical shell of bone (a subset of BONE).
    joint_labels : numpy.ndarray
        int32 (rows, columns): 0 outside joint spaces, else the :attr:`Joint.label`.
    joints : tuple of Joint
    confounders : tuple of Confounder
        Dense foreign objects, listed in the result and never reported as findings.
    distance_to_bone_mm : numpy.ndarray
        float32 (rows, columns): distance of each pixel to the nearest bone pixel, mm.
    body_part : str or None
        The anatomy the map suggests (Body Part Examined is only a hint).
    grid : AnalysisGrid or None
        The analysis-grid versions of the maps, for detection.
    """

    labels: np.ndarray
    cortex: np.ndarray
    joint_labels: np.ndarray
    joints: tuple[Joint, ...]
    confounders: tuple[Confounder, ...]
    distance_to_bone_mm: np.ndarray
    body_part: str | None = None
    grid: AnalysisGrid | None = None

    def mask(self, region: Region) -> np.ndarray:
        """bool (rows, columns) mask of one region."""
        return self.labels == np.uint8(region)


# Body Part Examined (0018,0015) values (DICOM PS3.16 CID 4031 and common vendor
# spellings) mapped to the joint the film is centred on; only a hint.
_BODY_PART_JOINT = {
    "KNEE": "knee",
    "HIP": "hip",
    "PELVIS": "hip",
    "SHOULDER": "shoulder",
    "ELBOW": "elbow",
    "ANKLE": "ankle",
    "FOOT": "foot",
    "WRIST": "wrist",
    "HAND": "hand",
    "FINGER": "hand",
}


def _resize(img: np.ndarray, shape: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    h, w = shape
    if img.shape == (h, w):
        return img
    if nearest:
        interp = cv2.INTER_NEAREST
    elif h < img.shape[0]:
        interp = cv2.INTER_AREA
    else:
        interp = cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def _disc(radius_px: float) -> np.ndarray:
    r = max(1, round(radius_px))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _gauss(img: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.3:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)


def local_noise(img: np.ndarray, valid: np.ndarray, window_px: float) -> tuple[np.ndarray, float]:
    """Robust local noise sigma of an image (same units), and its median over ``valid``.

    The residual of a 1-pixel Gaussian is clipped at 3 global MADs (so edges and spots
    do not inflate it), averaged over ``window_px`` boxes within ``valid`` and converted
    from mean absolute deviation to sigma (x 1.2533, Gaussian noise).

    Parameters
    ----------
    img : numpy.ndarray
        float32 (h, w).
    valid : numpy.ndarray
        bool (h, w): pixels that take part (e.g. the body).
    window_px : float
        Side of the averaging box, pixels.

    Returns
    -------
    noise : numpy.ndarray
        float32 (h, w), > 0.
    median : float
    """
    hp = np.abs(img - _gauss(img, 1.0))
    sample = hp[::2, ::2][valid[::2, ::2]]
    if sample.size < 16:
        sample = hp.ravel()
    mad = float(np.median(sample)) if sample.size else 0.0
    floor = max(mad * 1.2533 * 0.25, 1e-6)
    clipped = np.minimum(hp, np.float32(3.0 * mad / 0.6745 if mad > 0 else np.inf))
    vf = valid.astype(np.float32)
    k = max(3, round(window_px) | 1)
    num = cv2.boxFilter(clipped * vf, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)
    den = cv2.boxFilter(vf, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)
    noise = np.where(den > 0.05, num / np.maximum(den, 1e-6), mad) * np.float32(1.2533)
    noise = np.maximum(noise, np.float32(floor)).astype(np.float32)
    med = float(np.median(noise[::4, ::4][valid[::4, ::4]])) if valid.any() else float(mad * 1.2533)
    return noise, max(med, floor)


def analysis_grid(
    radiograph: Radiograph, spacing_mm: float
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """The normalised radiograph on an isotropic grid.

    Returns
    -------
    image : numpy.ndarray
        float32 (h, w).
    spacing_mm : float
        The grid's spacing (``spacing_mm``, or the native spacing if coarser).
    scale_rc : tuple of float
        Grid pixels per native pixel along rows and columns.
    """
    x = radiograph.normalized()
    sr, sc = radiograph.pixel_spacing_mm
    target = max(spacing_mm, min(sr, sc))
    shape = (
        max(8, round(x.shape[0] * sr / target)),
        max(8, round(x.shape[1] * sc / target)),
    )
    if abs(shape[0] - x.shape[0]) <= 1 and abs(shape[1] - x.shape[1]) <= 1:
        shape = x.shape
    img = _resize(x, shape)
    return img, float(target), (shape[0] / x.shape[0], shape[1] / x.shape[1])


def _border_components(mask: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` connected to the image border."""
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, dtype=bool)
    edge = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    keep = np.zeros(n, dtype=bool)
    keep[np.unique(edge)] = True
    keep[0] = False
    return keep[lab]


def _otsu(values: np.ndarray) -> float:
    """Otsu threshold of a 1-D float sample."""
    if values.size < 2:
        return float(values.max(initial=0.0))
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return hi
    hist, edges = np.histogram(values, bins=256, range=(lo, hi))
    p = hist.astype(np.float64) / hist.sum()
    centers = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centers)
    mt = m0[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = 0
    return float(centers[int(np.argmax(between))])


def _bbox_native(
    bbox: tuple[int, int, int, int], scale_rc: tuple[float, float], shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    r0, c0, r1, c1 = bbox
    fr, fc = scale_rc
    return (
        max(0, int(np.floor(r0 / fr))),
        max(0, int(np.floor(c0 / fc))),
        min(shape[0], int(np.ceil(r1 / fr))),
        min(shape[1], int(np.ceil(c1 / fc))),
    )


def map_anatomy(radiograph: Radiograph, *, params: AnatomyParams) -> AnatomyMap:
    """Map background, soft tissue, bone, joints and foreign objects of a radiograph.

    Parameters
    ----------
    radiograph : Radiograph
    params : AnatomyParams

    Returns
    -------
    AnatomyMap
        Full-resolution maps plus their analysis-grid versions in ``grid``.

    Examples
    --------
    >>> import numpy as np
    >>> from calcimg.radiograph import Radiograph, SpacingSource
    >>> px = np.full((200, 200), 1000.0, dtype=np.float32)
    >>> px[:, 80:120] = 2500.0  # a bone shaft
    >>> rg = Radiograph(pixels=px, pixel_spacing_mm=(0.2, 0.2),
    ...                 spacing_source=SpacingSource.PIXEL_SPACING, calibrated=True)
    >>> amap = map_anatomy(rg, params=AnatomyParams())
    >>> int(amap.labels[100, 100]), int(amap.labels[100, 20])
    (2, 1)
    """
    p = params
    img, sp, scale_rc = analysis_grid(radiograph, p.analysis_spacing_mm)
    h, w = img.shape
    area_px = sp * sp

    def px(mm: float) -> float:
        return mm / sp

    # --- field and body on the coarser region grid (1 mm detail is plenty there) ---
    rshape = (
        max(8, round(h * sp / max(p.region_spacing_mm, sp))),
        max(8, round(w * sp / max(p.region_spacing_mm, sp))),
    )
    rsp = h * sp / rshape[0]
    rimg = _resize(img, rshape)
    collimation_r, _air_r, body_r, islands_r, levels, confounders = _field_and_body(
        rimg,
        rsp,
        p,
        radiograph.shape,
        (rshape[0] / radiograph.shape[0], rshape[1] / radiograph.shape[1]),
    )
    _air_thr, _noise_r = levels
    collimation = _resize(collimation_r.astype(np.uint8), (h, w), nearest=True).astype(bool)
    body = _resize(body_r.astype(np.uint8), (h, w), nearest=True).astype(bool)
    exposed = ~collimation

    # --- noise inside the body ---
    noise, noise_med = local_noise(img, body, px(10.0))

    # --- bone: above a threshold surface interpolated from the bone's own edges ---
    bone_sm = _gauss(img, px(0.4))
    bone = _bone_mask(bone_sm, body, sp=sp, p=p, noise=noise_med)

    # --- foreign: metal denser than bone by a margin; dense islands outside the body ---
    soft = body & ~bone
    soft_level = (
        float(np.median(img[::3, ::3][soft[::3, ::3]])) if soft.any() else float(np.median(img))
    )
    bone_vals = img[::2, ::2][bone[::2, ::2]]
    bone_hi = (
        float(np.percentile(bone_vals, 99.0))
        if bone_vals.size > 16
        else float(np.percentile(img, 99.0))
    )
    bone_level = float(np.percentile(bone_vals, 90.0)) if bone_vals.size > 16 else bone_hi
    metal_thr = bone_hi + p.metal_frac * max(bone_hi - soft_level, 10.0 * noise_med)
    foreign = np.zeros_like(body)
    metal_c = (bone_sm > metal_thr) & exposed
    bb = _mask_bbox(metal_c)
    if bb is not None:
        y0b, x0b, y1b, x1b = bb
        n_m, lab_m, st_m, _ = cv2.connectedComponentsWithStats(
            metal_c[y0b:y1b, x0b:x1b].astype(np.uint8), connectivity=8
        )
        for i in range(1, n_m):
            area = int(st_m[i, cv2.CC_STAT_AREA])
            if area * area_px < p.min_metal_mm2:
                continue
            x0, y0, bw, bh = (int(v) for v in st_m[i, :4])
            comp = lab_m[y0 : y0 + bh, x0 : x0 + bw] == i
            y0 += y0b
            x0 += x0b
            foreign[y0 : y0 + bh, x0 : x0 + bw] |= comp
            inside_body = bool(body[y0 : y0 + bh, x0 : x0 + bw][comp].mean() > 0.5)
            confounders.append(
                Confounder(
                    kind="metal" if inside_body else "marker",
                    bbox=_bbox_native((y0, x0, y0 + bh, x0 + bw), scale_rc, radiograph.shape),
                    area_mm2=round(area * area_px, 2),
                )
            )
    # burned-in annotations drawn at the top of the value range (R/L letters, text
    # inside the field): small saturated bodies with a sharp outline
    sat = (img >= np.float32(1.0 - p.saturation_frac)) & exposed & ~foreign
    bb = _mask_bbox(sat)
    if bb is not None:
        y0b, x0b, y1b, x1b = bb
        n_s, lab_s, st_s, _ = cv2.connectedComponentsWithStats(
            sat[y0b:y1b, x0b:x1b].astype(np.uint8), connectivity=8
        )
        for i in range(1, n_s):
            x0, y0, bw, bh, area = (int(v) for v in st_s[i])
            if area * area_px > p.max_annotation_mm2 or area < 4:
                continue
            comp = lab_s[y0 : y0 + bh, x0 : x0 + bw] == i
            y0 += y0b
            x0 += x0b
            foreign[y0 : y0 + bh, x0 : x0 + bw] |= comp
            confounders.append(
                Confounder(
                    kind="text" if max(bw, bh) * sp <= 3.0 * p.text_max_mm else "marker",
                    bbox=_bbox_native((y0, x0, y0 + bh, x0 + bw), scale_rc, radiograph.shape),
                    area_mm2=round(area * area_px, 2),
                )
            )
    if islands_r.any():
        foreign |= _resize(islands_r.astype(np.uint8), (h, w), nearest=True).astype(bool)
    if foreign.any() and p.foreign_margin_mm > 0:
        foreign = cv2.dilate(foreign.astype(np.uint8), _disc(px(p.foreign_margin_mm))).astype(bool)
    bone &= ~foreign

    # small bone components are not bone (calcified globules, phleboliths)
    _n_b, lab_b, st_b, _ = cv2.connectedComponentsWithStats(bone.astype(np.uint8), connectivity=8)
    keep = st_b[:, cv2.CC_STAT_AREA] >= p.min_bone_mm2 / area_px
    keep[0] = False
    bone = keep[lab_b]
    lab_b = np.where(bone, lab_b, 0)

    # --- cortex and distance to bone ---
    inner = cv2.erode(
        bone.astype(np.uint8), _disc(px(p.cortex_mm)), borderType=cv2.BORDER_CONSTANT, borderValue=1
    )
    cortex = bone & ~inner.astype(bool)
    if bone.any():
        dist = cv2.distanceTransform((~bone).astype(np.uint8), cv2.DIST_L2, 5).astype(
            np.float32
        ) * np.float32(sp)
    else:  # no bone on the film: cv2 returns huge sentinels that overflow when scaled
        dist = np.full(bone.shape, np.inf, dtype=np.float32)

    # --- joint spaces: gaps closed between two different bones ---
    name_hint = _BODY_PART_JOINT.get((radiograph.body_part_examined or "").strip().upper())
    joint_lab, joints = _joint_spaces(
        bone, lab_b, body & ~foreign, sp, p, name_hint, scale_rc, radiograph.shape
    )

    labels = np.zeros((h, w), dtype=np.uint8)
    labels[body] = Region.SOFT_TISSUE
    labels[bone] = Region.BONE
    labels[joint_lab > 0] = Region.JOINT_SPACE
    labels[foreign] = Region.FOREIGN

    grid = AnalysisGrid(
        image=img,
        spacing_mm=sp,
        scale_rc=scale_rc,
        labels=labels,
        cortex=cortex,
        distance_to_bone_mm=dist,
        noise=noise,
        soft_tissue_level=soft_level,
        bone_level=bone_level,
    )
    shape = radiograph.shape
    full_dist = _resize(dist, shape) if bone.any() else np.full(shape, np.inf, dtype=np.float32)
    return AnatomyMap(
        labels=_resize(labels, shape, nearest=True),
        cortex=_resize(cortex.astype(np.uint8), shape, nearest=True).astype(bool),
        joint_labels=_resize(joint_lab, shape, nearest=True),
        joints=joints,
        confounders=tuple(confounders),
        distance_to_bone_mm=full_dist,
        body_part=name_hint or (radiograph.body_part_examined or "").strip().lower() or None,
        grid=grid,
    )


def _morph(mask: np.ndarray, op: int, radius_px: float, max_radius_px: int = 6) -> np.ndarray:
    """Binary opening/closing with a disc, on a coarser grid when the disc is large.

    A disc of radius r costs O(r) per pixel; beyond ``max_radius_px`` the mask is
    shrunk by an integer factor (area-averaged, thresholded at one half), processed
    with the correspondingly smaller disc, and grown back. The outline is then exact
    to about that factor in pixels, ample for millimetre-scale knitting and bridging.
    """
    f = max(1, int(np.ceil(radius_px / max_radius_px)))
    if f == 1:
        return cv2.morphologyEx(mask.astype(np.uint8), op, _disc(radius_px)).astype(bool)
    h, w = mask.shape
    small = cv2.resize(
        mask.astype(np.float32), (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA
    )
    out = cv2.morphologyEx((small > 0.5).astype(np.uint8), op, _disc(radius_px / f))
    big = cv2.resize(out, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    # keep the fine outline where the coarse result agrees with the input's side
    if op == cv2.MORPH_CLOSE:
        return big | mask
    return big & mask


def _near(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels within ``radius_px`` of ``mask``."""
    if not mask.any():
        return np.zeros_like(mask)
    return cv2.dilate(mask.astype(np.uint8), _disc(radius_px)).astype(bool)


def _bone_mask(
    img: np.ndarray,
    body: np.ndarray,
    *,
    sp: float,
    p: AnatomyParams,
    noise: float,
) -> np.ndarray:
    """Bone: textured and brighter than the soft tissue around it, with a cortex.

    1. Candidates: pixels above the soft tissue (a white top-hat with a
       ``bone_background_mm`` disc on the coarse grid, air kept from pulling the opening
       down, above ``bone_k`` noise sigmas) that carry trabecular texture (band-pass
       energy ``texture_fine_mm``-``texture_coarse_mm`` over ``texture_window_mm``
       above ``bone_texture`` times that of plain soft tissue). A thick limb's smoothly
       doming soft tissue is above its surroundings but untextured.
    2. Closing (``bone_close_mm``), filling of small holes (``bone_hole_mm2``) and
       opening (``bone_open_mm``) knit them into solid bones.
    3. Components smaller than ``min_bone_mm2`` are not bone; components up to
       ``rim_test_max_mm2`` must show a cortex (rim denser than core), since
       ossification has cortex and trabeculae and calcification has not (DOMAIN.md):
       calcified clumps and globules stay soft tissue, sesamoids are bone.
    """
    h, w = img.shape
    cs = max(p.coarse_spacing_mm, sp)
    cshape = (max(8, round(h * sp / cs)), max(8, round(w * sp / cs)))
    csp = h * sp / cshape[0]
    cimg = _resize(img, cshape)
    cbody = _resize(body.astype(np.uint8), cshape, nearest=True).astype(bool)
    se = _disc(p.bone_background_mm / csp / 2.0)
    hi_val = np.float32(cimg.max() + 1.0)
    lo_val = np.float32(cimg.min() - 1.0)
    eroded = cv2.erode(np.where(cbody, cimg, hi_val).astype(np.float32), se)
    opened = cv2.dilate(np.where(cbody, eroded, lo_val).astype(np.float32), se)
    opened = np.where(cbody, opened, cimg).astype(np.float32)
    tophat = img - _resize(opened, (h, w))
    vals = tophat[::3, ::3][body[::3, ::3]]
    if vals.size < 16:
        return np.zeros_like(body)
    floor = p.bone_k * noise
    # trabecular texture: band-pass energy relative to that of plain soft tissue (a low
    # percentile over the body, as bone may fill most of a knee or pelvis film)
    dog = _gauss(img, p.texture_fine_mm / sp) - _gauss(img, p.texture_coarse_mm / sp)
    k = max(3, round(p.texture_window_mm / sp) | 1)
    energy = cv2.boxFilter(np.abs(dog), -1, (k, k))
    ref = float(np.percentile(energy[::3, ::3][body[::3, ::3]], 20.0))
    textured = energy > np.float32(p.bone_texture * max(ref, 1e-9))
    # the skin line is an edge, not texture
    inner = body & ~_near(~body, p.skin_margin_mm / sp)
    seed = textured & inner & ((tophat > floor) | (energy > np.float32(2.0 * p.bone_texture * ref)))
    # trabecular speckle and cortical edges knit into solid bone
    seed = _morph(seed, cv2.MORPH_CLOSE, p.bone_close_mm / sp / 2.0)
    holes = ~_border_components(~seed) & ~seed & body
    if holes.any():
        _, lab_h, st_h, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=8)
        small_h = st_h[:, cv2.CC_STAT_AREA] <= p.bone_hole_mm2 / (sp * sp)
        small_h[0] = False
        seed |= small_h[lab_h]
    seed = _morph(seed, cv2.MORPH_OPEN, p.bone_open_mm / sp / 2.0)
    # cut narrow necks (a calcified clump knitted to a bone by the closing) before the
    # per-component tests; the cut-off rims come back with the bone they belong to
    full = seed & body
    bone = _morph(full, cv2.MORPH_OPEN, p.bone_neck_mm / sp / 2.0)
    _, lab, st, _ = cv2.connectedComponentsWithStats(bone.astype(np.uint8), connectivity=8)
    keep = st[:, cv2.CC_STAT_AREA] >= p.min_bone_mm2 / (sp * sp)
    keep[0] = False
    # a small dense body is bone only if it has a cortex: its rim denser than its
    # middle (ossification shows cortex and trabeculae, calcification does not;
    # DOMAIN.md). Calcified clumps and globules fail this and stay soft tissue.
    rim_px = p.cortex_mm / sp
    half_disc = p.bone_background_mm / 2.0 / sp
    for i in np.flatnonzero(keep):
        x0, y0, bw, bh, area = (int(v) for v in st[i])
        # a body narrower than the top-hat's disc is bright all through if it is bone;
        # two calcified vessel walls knitted together by the texture are not
        if min(bw, bh) < 2.0 * half_disc:
            sub = lab[y0 : y0 + bh, x0 : x0 + bw] == i
            if float((tophat[y0 : y0 + bh, x0 : x0 + bw][sub] > floor).mean()) < p.bone_fill:
                keep[i] = False
                continue
        if area * sp * sp > p.rim_test_max_mm2:
            continue
        pad = 2
        ys = slice(max(0, y0 - pad), min(h, y0 + bh + pad))
        xs = slice(max(0, x0 - pad), min(w, x0 + bw + pad))
        comp = (lab[ys, xs] == i).astype(np.uint8)
        # only compact bodies are in doubt: a long bone, or one running off the film,
        # is bone
        if x0 == 0 or y0 == 0 or x0 + bw == w or y0 + bh == h:
            continue
        mo = cv2.moments(comp, binaryImage=True)
        cov = np.array([[mo["mu20"], mo["mu11"]], [mo["mu11"], mo["mu02"]]]) / max(mo["m00"], 1.0)
        ev = np.linalg.eigvalsh(cov)
        if np.sqrt(max(ev[1], 1e-9) / max(ev[0], 1e-9)) > p.compact_elongation:
            continue
        d = cv2.distanceTransform(comp, cv2.DIST_L2, 3)
        t = tophat[ys, xs]
        # the cortex band, skipping the blurred outline, against the middle
        rim = (d > 0.5 / sp) & (d <= 0.5 / sp + rim_px)
        core = d > 0.5 / sp + 2.0 * rim_px
        if core.sum() < 4 or rim.sum() < 4:
            continue  # slender (a phalanx): no core to compare the cortex with
        if float(np.median(t[rim])) < p.rim_ratio * float(np.median(t[core])):
            keep[i] = False
    kept = keep[lab]
    # give back the outline the opening rounded off, but not bodies lying beside it
    bone = full & cv2.dilate(kept.astype(np.uint8), _disc(p.bone_neck_mm / sp / 4.0)).astype(bool)
    if bone.any() and p.medulla_mm > 0:
        # a smooth medullary canal between two cortices is bone too: bridged by a
        # closing and clearly brighter than soft tissue (a joint space is not)
        closed = _morph(bone, cv2.MORPH_CLOSE, p.medulla_mm / sp / 2.0)
        level = p.medulla_frac * float(np.median(tophat[bone]))
        bone |= closed & body & (tophat > max(level, floor))
    return bone


def _mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


def _field_and_body(
    img: np.ndarray,
    sp: float,
    p: AnatomyParams,
    native_shape: tuple[int, int],
    scale_rc: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[float, float], list[Confounder]]:
    """Collimation, air, body and dense islands outside the body, on the region grid.

    Returns collimation, air, body, islands (bool maps), (air threshold, noise) and the
    confounders found (collimation, marker, text).
    """
    h, w = img.shape
    area_px = sp * sp

    def px(mm: float) -> float:
        return mm / sp

    smooth = _gauss(img, px(p.smooth_mm))
    noise, _ = local_noise(img, np.ones(img.shape, dtype=bool), px(10.0))
    lo_all, hi_all = np.percentile(img, [0.5, 99.9])
    dyn = max(float(hi_all - lo_all), 1e-6)
    confounders: list[Confounder] = []

    # collimation: flat, border-connected bands near the film maximum (no exposure)
    coll_cand = smooth >= hi_all - p.collimation_frac * dyn
    flat = np.abs(img - smooth) < 3.0 * noise + 1e-6
    coll_cand &= cv2.erode(flat.astype(np.uint8), _disc(1)).astype(bool)
    coll_cand = _border_components(coll_cand)
    collimation = np.zeros_like(coll_cand)
    if coll_cand.any():
        n, lab, stats, _ = cv2.connectedComponentsWithStats(
            coll_cand.astype(np.uint8), connectivity=8
        )
        for i in range(1, n):
            x0, y0, bw, bh, area = (int(v) for v in stats[i])
            if min(bw, bh) < px(p.collimation_min_mm):
                continue
            comp = lab == i
            # a band along a border, not a bone running off the film: it covers most of
            # one side of the film (a rotated collimator gives a wedge, not a rectangle)
            side = max(comp[0].mean(), comp[-1].mean(), comp[:, 0].mean(), comp[:, -1].mean())
            if side < p.collimation_extent:
                continue
            collimation |= lab == i
            confounders.append(
                Confounder(
                    kind="collimation",
                    bbox=_bbox_native((y0, x0, y0 + bh, x0 + bw), scale_rc, native_shape),
                    area_mm2=round(area * area_px, 2),
                )
            )
    # collimator blades seen as long straight steps near a film edge, brighter outside
    blades, blade_boxes = _collimator_blades(smooth, sp, p)
    if blades.any():
        collimation |= blades
        for y0, x0, y1, x1 in blade_boxes:
            confounders.append(
                Confounder(
                    kind="collimation",
                    bbox=_bbox_native((y0, x0, y1, x1), scale_rc, native_shape),
                    area_mm2=round(float(blades[y0:y1, x0:x1].sum()) * area_px, 2),
                )
            )
    exposed = ~collimation

    if collimation.any():
        # whatever the collimation encloses (burned-in text on it) is collimation too
        outside = ~collimation
        collimation |= outside & ~_border_components(outside) & _near(collimation, px(20.0))
        exposed = ~collimation

    # air: the darkest large mode of the histogram, border-connected
    sample = smooth[exposed]
    med_noise = float(np.median(noise[exposed]))
    air_thr = _air_threshold(sample, p, med_noise)
    # the collimation counts as film edge: air may reach the border through it
    air = _border_components(((smooth < air_thr) & exposed) | collimation) & exposed
    not_air = exposed & ~air
    if collimation.any():
        # the collimator's penumbra: non-air strips lying wholly along the collimation
        near = cv2.distanceTransform((~collimation).astype(np.uint8), cv2.DIST_L2, 5) < px(
            p.penumbra_mm
        )
        n, lab, stats, _ = cv2.connectedComponentsWithStats(
            not_air.astype(np.uint8), connectivity=8
        )
        for i in range(1, n):
            x0, y0, bw, bh = (int(v) for v in stats[i, :4])
            comp = lab[y0 : y0 + bh, x0 : x0 + bw] == i
            if near[y0 : y0 + bh, x0 : x0 + bw][comp].mean() > 0.9:
                collimation[y0 : y0 + bh, x0 : x0 + bw] |= comp
        # and the blurred rim of the field edge, whatever touches it
        rim = cv2.dilate(collimation.astype(np.uint8), _disc(px(p.collimation_rim_mm))).astype(bool)
        collimation |= rim & ~air
        exposed = ~collimation
        not_air = exposed & ~air

    # the body: large non-air components; small ones are islands (markers, text, dirt)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(not_air.astype(np.uint8), connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] >= p.min_body_mm2 / area_px
    big[0] = False
    body = big[lab]
    if not body.any():
        body = not_air.copy()
        big[1:] = True
    small = ~big
    small[0] = False
    # holes in the body (gas, lucent lesions) are body
    background = ~body
    body |= background & ~_border_components(background) & ~collimation & ~small[lab]

    islands = np.zeros_like(body)
    text_mask = np.zeros_like(body)
    for i in (int(j) for j in np.flatnonzero(small)):
        x0, y0, bw, bh, area = (int(v) for v in stats[i])
        comp = lab[y0 : y0 + bh, x0 : x0 + bw] == i
        # dense: clearly brighter than the air around it
        if float(np.max(img[y0 : y0 + bh, x0 : x0 + bw][comp])) < air_thr + 3.0 * med_noise:
            continue
        on_edge = x0 == 0 or y0 == 0 or x0 + bw == w or y0 + bh == h
        if max(bw, bh) * sp <= p.text_max_mm and not on_edge:
            text_mask[y0 : y0 + bh, x0 : x0 + bw] |= comp
            continue
        islands[y0 : y0 + bh, x0 : x0 + bw] |= comp
        confounders.append(
            Confounder(
                kind="collimation" if on_edge else "marker",
                bbox=_bbox_native((y0, x0, y0 + bh, x0 + bw), scale_rc, native_shape),
                area_mm2=round(area * area_px, 2),
            )
        )
    if text_mask.any():
        islands |= text_mask
        # the characters of one line of text are one confounder
        grouped = cv2.dilate(text_mask.astype(np.uint8), _disc(px(p.text_max_mm) / 2.0))
        n_t, _, st_t, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
        for i in range(1, n_t):
            x0, y0, bw, bh = (int(v) for v in st_t[i, :4])
            area = int(text_mask[y0 : y0 + bh, x0 : x0 + bw].sum())
            confounders.append(
                Confounder(
                    kind="text",
                    bbox=_bbox_native((y0, x0, y0 + bh, x0 + bw), scale_rc, native_shape),
                    area_mm2=round(area * area_px, 2),
                )
            )
    return collimation, air, body, islands, (air_thr, med_noise), confounders


def _collimator_blades(
    smooth: np.ndarray, sp: float, p: AnatomyParams
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Regions outside straight collimator-blade edges.

    For each side of the film, edge pixels in its outer ``blade_band`` whose outward
    neighbour is brighter (unexposed film is more "attenuating" in canonical space) vote
    for lines within ``blade_max_deg`` of the side's direction (a Hough transform over
    intercept and slope); a line supported along ``blade_support`` of the side is a
    blade, and everything beyond it is collimation.
    """
    h, w = smooth.shape
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    mag = np.hypot(gx, gy)
    strong = float(np.percentile(mag, 99.5))
    if strong <= 0:
        return np.zeros((h, w), dtype=bool), []
    thr = p.blade_edge_frac * strong
    out = np.zeros((h, w), dtype=bool)
    boxes: list[tuple[int, int, int, int]] = []
    slopes = np.tan(np.deg2rad(np.arange(-p.blade_max_deg, p.blade_max_deg + 0.01, 0.5)))
    # each side as "top": (outward derivative, transform to and from the side's frame)
    sides = (
        ("top", -gy),
        ("bottom", gy),
        ("left", -gx),
        ("right", gx),
    )
    for side, outward in sides:
        e = outward > thr  # intensity rises towards the film edge
        if side == "bottom":
            e = e[::-1]
        elif side == "left":
            e = e.T
        elif side == "right":
            e = e.T[::-1]
        sh, sw = e.shape
        band = int(p.blade_band * sh)
        rr, cc = np.nonzero(e[:band])
        if rr.size < 0.3 * sw:
            continue
        best = (0, 0.0, 0)
        for sl in slopes:
            a = np.round(rr - sl * cc).astype(np.int64)
            ok = (a >= -band) & (a < 2 * band)
            counts = np.bincount(a[ok] + band, minlength=3 * band)
            # a blurred edge spreads over a few intercepts: count distinct columns
            i = int(np.argmax(counts))
            if counts[i] > best[0]:
                best = (int(counts[i]), float(sl), i - band)
        count, sl, a0 = best
        if count < p.blade_support * sw:
            continue
        cols = np.arange(sw)
        edge_row = a0 + sl * cols
        region = np.arange(sh)[:, None] < (edge_row[None, :] + p.collimation_rim_mm / sp)
        if side == "bottom":
            region = region[::-1]
        elif side == "left":
            region = region.T
        elif side == "right":
            region = region[::-1].T
        if region.mean() > 0.45:
            continue
        out |= region
        bb = _mask_bbox(region)
        if bb is not None:
            boxes.append(bb)
    return out, boxes


def _air_threshold(sample: np.ndarray, p: AnatomyParams, noise: float) -> float:
    """Upper limit of air: the valley after the darkest large histogram mode.

    Air is the lowest-attenuation large mode of the film (often not its darkest pixels:
    the black box behind burned-in text, scatter gradients). The histogram of the
    exposed field's smoothed values is split by Otsu; the air mode is the peak of the
    lower class and the threshold the valley between it and the Otsu split, but at
    most ``air_frac`` of the dynamic range above the air mode.
    """
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if hi <= lo:
        return lo
    otsu = _otsu(np.clip(sample, lo, hi))
    hist, edges = np.histogram(sample, bins=128, range=(lo, hi))
    hist = np.convolve(hist.astype(np.float64), np.ones(3) / 3.0, mode="same")
    centers = 0.5 * (edges[:-1] + edges[1:])
    below = centers < otsu
    if not below.any():
        return lo + p.air_k * noise
    mode_i = int(np.argmax(np.where(below, hist, -1.0)))
    split_i = max(mode_i + 1, int(np.searchsorted(centers, otsu)))
    valley_i = mode_i + int(np.argmin(hist[mode_i : split_i + 1]))
    mode = float(centers[mode_i])
    thr = min(float(centers[valley_i]), mode + p.air_frac * (hi - mode))
    return max(thr, mode + p.air_k * noise)


def _joint_spaces(
    bone: np.ndarray,
    lab_b: np.ndarray,
    allowed: np.ndarray,
    sp: float,
    p: AnatomyParams,
    name_hint: str | None,
    scale_rc: tuple[float, float],
    native_shape: tuple[int, int],
) -> tuple[np.ndarray, tuple[Joint, ...]]:
    """Joint spaces: gaps that a closing at ``joint_gap_max_mm`` bridges between two bones."""
    h, w = bone.shape
    joint_lab = np.zeros((h, w), dtype=np.int32)
    joints: list[Joint] = []
    bb = _mask_bbox(bone)
    if bb is None or p.joint_gap_max_mm <= 0:
        return joint_lab, ()
    pad = int(p.joint_gap_max_mm / sp) + 2
    y0b, x0b = max(0, bb[0] - pad), max(0, bb[1] - pad)
    y1b, x1b = min(h, bb[2] + pad), min(w, bb[3] + pad)
    bone_c = bone[y0b:y1b, x0b:x1b]
    closed = _morph(bone_c, cv2.MORPH_CLOSE, p.joint_gap_max_mm / sp / 2.0)
    gap = closed & ~bone_c & allowed[y0b:y1b, x0b:x1b]
    n_g, lab_g, st_g, cen_g = cv2.connectedComponentsWithStats(gap.astype(np.uint8), connectivity=8)
    ring_se = _disc(1.0 / sp)
    next_label = 1
    gh, gw = gap.shape
    for i in range(1, n_g):
        area = int(st_g[i, cv2.CC_STAT_AREA])
        if area * sp * sp < p.min_joint_mm2:
            continue
        x0, y0, bw, bh = (int(v) for v in st_g[i, :4])
        m = int(2.0 / sp) + 1
        ys = slice(max(0, y0 - m), min(gh, y0 + bh + m))
        xs = slice(max(0, x0 - m), min(gw, x0 + bw + m))
        comp = lab_g[ys, xs] == i
        ring = cv2.dilate(comp.astype(np.uint8), ring_se).astype(bool) & ~comp
        bones_here = np.unique(lab_b[y0b:y1b, x0b:x1b][ys, xs][ring])
        bones_here = bones_here[bones_here > 0]
        if bones_here.size < 2:
            continue
        joint_lab[y0b:y1b, x0b:x1b][ys, xs][comp] = next_label
        cy, cx = cen_g[i]
        joints.append(
            Joint(
                label=next_label,
                name=name_hint,
                centroid_rc=(
                    round(float((cy + y0b) / scale_rc[0]), 2),
                    round(float((cx + x0b) / scale_rc[1]), 2),
                ),
                bbox=_bbox_native(
                    (y0 + y0b, x0 + x0b, y0 + y0b + bh, x0 + x0b + bw), scale_rc, native_shape
                ),
                bones=tuple(int(b) for b in bones_here),
            )
        )
        next_label += 1
    return joint_lab, tuple(joints)
