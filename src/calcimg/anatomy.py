"""Anatomy map: where on the film are background, soft tissue, bone, joints and metal.

Stage 2 of the pipeline. ``map_anatomy`` takes a :class:`~calcimg.radiograph.Radiograph`
and returns an :class:`AnatomyMap` whose masks later stages use to restrict detection to
soft tissue (and joint spaces for chondral lines) and to measure distances in mm.

Method (sizes in mm, intensity thresholds relative to the film's own levels), all on a
coarse isotropic grid (``grid_mm``), upsampled to the film at the end:

1. Collimation: an edge strip that is flat and brighter than air is unexposed film;
   it is flood-filled inwards within a tolerance of its own level (background).
2. Body: above the lowest of three Otsu classes (air | soft tissue | bone) of the film
   without its collimation, large components, holes filled except air that a collimator
   blade's penumbra closes in (``field_edge_air_mm``). When that lowest class is a dark
   equalisation halo beside the body, not the air, the split moves up to the skin: the
   next split's contours are much sharper (``body_edge_ratio``).
3. Bone: the smooth soft-tissue level is a grey opening (erosion then dilation) with a
   disc wider than any bone (``soft_level_mm``) computed on a still coarser grid; bone is
   where the image exceeds it by more than a two-class (Otsu) threshold on that residual
   inside the body, in components of at least ``bone_min_area_mm2``, holes filled
   (calcifications are small, ``DOMAIN.md``). Parts joined to a bone only across a dark
   valley (``bone_valley_mm``) count as components of their own. Cortex: the outer
   ``cortex_mm`` of bone.
4. Joint spaces: gaps closed by a ``joint_gap_mm`` closing between two different bones,
   and slits of soft-tissue density enclosed by one component (two bones that overlap
   above and below their joint in projection, as at a pubic symphysis).
5. Foreign (:func:`calcimg.foreign.find_foreign`): markers, burned-in text and metal,
   by contrast against their surroundings in units of the film's bone - soft-tissue
   contrast, size and shape; listed as :class:`~calcimg.result.Confounder` (one entry
   per object) and never reported as calcification (``DOMAIN.md``, "Confounders that
   look like calcification").
6. Second opinion on bone (``bone_model_soft``, at the end): bone where the learned bone
   probability (:mod:`calcimg.bonemodel`) is low is soft tissue, unless enclosed by bone
   (thick soft tissue over the threshold: a palm, a pelvis's buttocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from calcimg.foreign import find_foreign
from calcimg.imageops import disc as _disc
from calcimg.imageops import keep_large as _keep_large
from calcimg.imageops import resize as _resize
from calcimg.params import check_choice, check_range, model_file_param
from calcimg.radiograph import Radiograph
from calcimg.result import Confounder

__all__ = ["AnatomyMap", "AnatomyParams", "Joint", "Region", "map_anatomy"]


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
    """Parameters of :func:`map_anatomy` (section ``[anatomy]``); sizes in mm."""

    grid_mm: float = 0.5
    """Spacing of the coarse analysis grid (films coarser than this keep theirs)."""
    air_gap: float = 0.1
    """Air is darker than the body by at least this fraction of the film's range (else
    the film has no air)."""
    body_edge_ratio: float = 1.5
    """The air | tissue split moves up to the next three-class split when the contours
    there have this many times the mean gradient of those at the first (0 = never): a
    dark equalisation halo beside the body, not the air, had been the lowest class."""
    body_halo_max_share: float = 0.4
    """... and only when the class below the first split holds less than this share of
    the exposed film (a halo is a band beside the body; air that large is the air)."""
    body_edge_sigma_mm: float = 1.0
    """Gaussian smoothing before the gradients of ``body_edge_ratio`` are measured."""
    body_min_area_mm2: float = 400.0
    """Smallest body part kept (smaller bright islands are markers or text)."""
    field_edge_air_mm: float = 3.0
    """A hole of the body within this distance of the collimation and at air level is air
    that the body and a collimator blade's penumbra closed in, not body."""
    collimation_depth: float = 0.15
    """Collimator edges are searched within this fraction of the film from each side."""
    collimation_step: float = 0.05
    """Smallest intensity drop (fraction of the film's range) at a collimator edge."""
    saturated_ramp_mm: float = 30.0
    """Longest penumbra taken with a band clipped at the film's maximum along a side."""
    soft_level_mm: float = 100.0
    """Disc diameter of the grey opening that estimates the soft-tissue level (wider than
    the widest bone)."""
    soft_poly_degree: int = 0
    """Degree of the trimmed polynomial soft-tissue fit combined with the opening (0 =
    off)."""
    skin_mm: float = 0.0
    """Rim of the body left out of the soft-tissue level (the skin thins to air)."""
    soft_level_grid_mm: float = 2.0
    """Grid spacing for that opening (the level is smooth)."""
    bone_min_contrast: float = 0.08
    """Bone exceeds the soft-tissue level by at least this fraction of the body's
    intensity spread (guards films without bone)."""
    bone_threshold_scale: float = 1.0
    """Multiplier on the Otsu threshold of the residual (lower = more bone)."""
    bone_min_area_mm2: float = 150.0
    bone_valley_mm: float = 3.0
    bone_valley_frac: float = 0.3
    bone_valley_min_mm2: float = 10.0
    """Threshold bone is cut along its valleys: where a closing with a disc of
    ``bone_valley_mm`` exceeds the film by more than ``bone_valley_frac`` of the bone
    threshold (a dark gap that the blur and the threshold bridged). A part the cut
    separates that is smaller than ``bone_min_area_mm2`` is no bone, as a small
    component of the threshold is not, and neither is the cut around it: a dense block
    in a knee's joint space, joined to a condyle across a 1 mm gap, was bone (val
    synth_2021). Parts below ``bone_valley_min_mm2`` stay bone: a trabecular pattern's
    islands (0 = off). Chosen on the development sets, session 30 (``docs/detection.md``)."""
    bone_model: str = model_file_param("bone_trees.json")
    bone_model_soft: float = 0.3
    bone_model_step_mm: float = 1.5
    """Second opinion on the threshold's bone: where the learned bone probability of
    ``bone_model`` (:mod:`calcimg.bonemodel`, the detector's ``bone_prob``), read on a
    lattice ``bone_model_step_mm`` apart, is below ``bone_model_soft``, the map's bone is
    soft tissue, and so are the parts of bone that leaves under ``bone_min_area_mm2``
    (thick soft tissue over the threshold in a hand, a shoulder, a forearm or a pelvis; a
    deposit inside it then stands alone: 9 of the 44 lesions the map put in bone on the
    development folders). A part
    taken back that touches neither soft tissue nor air is enclosed by bone and stays
    bone. On the development films (dev, dev5) 0.2 % of the
    truth bone the map finds is below 0.3, and 55 % of the soft tissue it maps as bone
    (session 31, ``docs/detection.md``; 0 = off)."""
    bone_min_share: float = 0.05
    """An Otsu split whose upper class holds less of the body than this is metal, lead
    or burned-in text against everything else, not bone against soft tissue: the split
    is redone below it. Bone is 15-45 % of the body on the generated and the real films
    (the least: 14.8 %, a shoulder); a saturated marker and bar covering 1.3 % of a hand
    had taken the split and left the film without bone (0 = off)."""
    refine_passes: int = 1
    """Passes re-estimating the soft-tissue level from the soft tissue alone."""
    refine_sigma_mm: float = 15.0
    bone_hole_max_mm2: float = 1e9
    """Holes in bone up to this area are filled (bone); larger ones stay soft tissue."""
    bone_method: str = "threshold"
    """``threshold``: bone is the residual over the soft-tissue level above its Otsu
    threshold (shipped). ``edges``: that bone grown, by a marker-controlled watershed on
    the gradient, to the sharp steps that bound bones (cortices seen edge-on), one
    region per seed group, each kept when it shows a bone's signs (experimental; see
    ``docs/detection.md``)."""
    bone_edge_grid_mm: float = 0.5
    """Grid of the edge-based bone map (a multiple of ``grid_mm``; coarser is faster)."""
    bone_edge_sigma_mm: float = 0.75
    """Gaussian scale of the edge gradient (a cortical step is 1-2 mm wide)."""
    bone_ramp_sigma_mm: float = 3.0
    """Coarser scale against which edge sharpness is measured."""
    bone_edge_snr: float = 6.0
    """An edge's gradient exceeds this many times the soft tissue's noise gradient (its
    25th percentile rescaled to a Rayleigh median)."""
    bone_edge_sharpness: float = 2.0
    """... and this many times the gradient at ``bone_ramp_sigma_mm`` (an ideal step: the
    ratio of the scales, 4; a soft-tissue ramp over centimetres: 1)."""
    bone_plateau_mm: float = 2.0
    bone_step_frac: float = 0.5
    """A step persists: the film ``bone_plateau_mm`` on the bright side exceeds that on
    the dark side by this fraction of the step the gradient implies (a thin line, a
    cortex's inner edge or a vessel wall does not)."""
    bone_seed_mm: float = 1.5
    """Bone and soft-tissue seeds are placed this far on either side of a step."""
    bone_outline_edge: float = 0.5
    """A margin region of the threshold bone keeps this fraction of its outline (inside
    the body, away from threshold bone) on edges."""
    bone_shell_mm: float = 3.0
    """Additions touching threshold bone and within this distance of it are its margin."""
    bone_iso_area_mm2: float = 200.0
    bone_min_halfwidth_mm: float = 2.5
    bone_min_rim: float = 0.0
    """Other regions are bone when at least ``bone_iso_area_mm2`` and twice
    ``bone_min_halfwidth_mm`` wide, with a rim (``bone_rim_mm`` inside the outline)
    brighter than their inside by more than ``bone_min_rim`` times the film's pixel
    noise: a cortex seen edge-on. Amorphous sheets and clumps (dense inside, ill-defined
    margins) and vessel walls (thin) are not (``DOMAIN.md``). Tune: every region mostly
    lesion has a rim below -1.5 noise units; 96 % of the added bone pixels are in
    regions with a rim above 0 (``scripts/bone_regions.py``)."""
    bone_merge_edge: float = 0.5
    """Adjacent watershed regions merge when at most this fraction of the line between
    them is on edges (one bone's seed groups); a deposit beside a bone is separated from
    it by a step."""
    bone_merge_mm: float = 5.0
    """... and when that line is at least this long (a deposit touching a bone shares a
    short one)."""
    bone_rim_mm: float = 1.5
    """Depth of the rim compared with the region's inside (a cortex is 1-5 mm)."""
    bone_texture_mm: float = 1.0
    """Gaussian scale below which detail counts as texture (trabeculae)."""
    cortex_mm: float = 1.5
    bone_step_mm: float = 4.0
    """Smoothing (Gaussian sigma) of the cortex and soft-tissue levels whose difference
    at the bones' margins is :attr:`AnatomyMap.bone_step`."""
    joint_gap_mm: float = 8.0
    """Largest gap between two bones that is a joint space."""
    joint_slit_elongation: float = 2.0
    """A hole in the bone mask at least this elongated (length / width), narrow enough
    for the ``joint_gap_mm`` closing and of soft-tissue density is a joint space: two
    bones that overlap above and below their joint in projection enclose it (a pubic
    symphysis). Such holes that are no joint stay bone (0 = off: every hole is bone)."""
    joint_slit_density: float = 0.5
    """Soft-tissue density of such a slit: its mean residual over the soft-tissue level
    within +- this fraction of the bone threshold (a medullary pocket is denser, air
    between the hilar vessels on a chest film lighter)."""
    joint_slit_whole: bool = True
    """A slit the ``joint_gap_mm`` closing reaches only in part (a symphysis slit wider
    than the gap in its middle) is a joint space as a whole when its full width (4
    sigma of its minor axis) is at most 1.25 ``joint_gap_mm``; otherwise half of it was
    a gap that is not enclosed by bone, and no joint (False = that older behaviour)."""
    joint_slit_reach: float = 1.0
    """A gap beside the single bone component that encloses a slit joint is that joint's
    continuation when it lies on the slit's axis within this many slit lengths of the
    slit's end (the notch where the overlapping bones diverge; 0 = off)."""
    foreign_unit_floor: float = 0.1
    """Foreign contrasts are in units of the film's median bone minus median soft
    tissue, at least this fraction of the exposed range (1st percentile to maximum)."""
    foreign_local_mm: float = 8.0
    """Box of the body's local mean against which dense seeds stand out."""
    foreign_local_contrast: float = 1.0
    """A seed inside the body exceeds that local mean by this many contrast units (and
    is denser than the median bone)."""
    foreign_merge_mm: float = 2.0
    """Seeds within this distance are one object (fragments of a letter or a clip)."""
    foreign_ring_mm: float = 2.0
    """Width of the ring around an object whose median is its surroundings' level."""
    foreign_min_contrast: float = 1.4
    """An object's plateau (90th percentile) exceeds its ring by this many units."""
    foreign_min_area_mm2: float = 2.0
    """Smaller objects are not listed (single hot pixels, specks); they stay foreign."""
    foreign_max_area_mm2: float = 3000.0
    foreign_dilate_mm: float = 1.0
    """The foreign mask is grown by this margin (the blurred edge of metal)."""
    edge_line_mm: float = 4.0
    edge_line_aspect: float = 5.0
    """Objects no thicker than ``edge_line_mm`` and this many times as long, touching the
    film's border, the collimation or (inside the body) the background are edge lines
    (processing overshoot, the exposed field's rim), not objects."""
    marker_min_mm: float = 4.0
    marker_max_mm: float = 25.0
    """Lead markers (letters, arrows) have an extent in this range, mm."""
    marker_min_contrast: float = 2.5
    """A compact object over the body is a marker (not metal) from this contrast on
    (lead stops nearly the whole beam)."""
    marker_min_aspect: float = 0.4
    """Markers are at least this wide for their length (minimum-area rectangle); a
    subcutaneous microchip or a needle is not."""
    marker_min_saturated: float = 0.5
    """... or have this fraction of their pixels at the film's densest level."""
    marker_max_solidity: float = 0.9
    """Over the body, a marker is letter-shaped: its area is at most this fraction of its
    convex hull's (a metal disc or a filling is solid)."""
    metal_min_density: float = 1.0
    """Metal is denser than bone (``DOMAIN.md``): an object inside the body whose plateau
    (90th percentile) lies below this fraction of the way from the soft tissue to the
    film's cortex (95th percentile of its large bones) is no foreign body (0 = off).
    A dense calcification is below the cortex; edge enhancement lifts it far above its
    own surroundings (contrast), not above the cortex, which it lifts as well."""
    metal_density_headroom: float = 0.25
    """``metal_min_density`` applies only when the film's densest level lies at least
    this many (cortex - soft tissue) contrasts above the cortex: room for metal to be
    denser. Films whose processing compresses the top of the range have none."""
    metal_flat_below: float = 2.0
    metal_min_plateau: float = 0.7
    """Metal below ``metal_flat_below`` contrast units must be flat-topped: this fraction
    of it within a quarter of its contrast of its plateau (dental fillings are; the
    tip of a bone is graded)."""
    text_glyph_min_mm2: float = 1.0
    text_glyph_max_mm: float = 8.0
    """Burned-in glyphs: components of at least ``text_glyph_min_mm2`` and at most this
    extent."""
    text_min_glyphs: int = 3
    """A group of glyphs within ``text_merge_mm`` is text from this many glyphs on."""
    text_merge_mm: float = 6.0
    """Glyphs (and words, lines) this close are one text entry."""
    text_min_saturated: float = 0.3
    """Glyphs over the body must have this fraction at the film's densest level (text is
    burned in at full white)."""

    def __post_init__(self) -> None:
        check_range("anatomy.grid_mm", self.grid_mm, 0.05, 5.0)
        check_range("anatomy.air_gap", self.air_gap, 0.0, 1.0)
        check_range("anatomy.body_min_area_mm2", self.body_min_area_mm2, 0.0, 1e9)
        check_range("anatomy.body_edge_ratio", self.body_edge_ratio, 0.0, 100.0)
        check_range("anatomy.body_halo_max_share", self.body_halo_max_share, 0.0, 1.0)
        check_range("anatomy.body_edge_sigma_mm", self.body_edge_sigma_mm, 0.1, 20.0)
        check_range("anatomy.field_edge_air_mm", self.field_edge_air_mm, 0.0, 100.0)
        check_range("anatomy.collimation_depth", self.collimation_depth, 0.0, 0.5)
        check_range("anatomy.collimation_step", self.collimation_step, 0.0, 1.0)
        check_range("anatomy.saturated_ramp_mm", self.saturated_ramp_mm, 0.0, 1000.0)
        check_range("anatomy.soft_level_mm", self.soft_level_mm, 1.0, 500.0)
        check_range("anatomy.soft_poly_degree", self.soft_poly_degree, 0, 4)
        check_range("anatomy.skin_mm", self.skin_mm, 0.0, 100.0)
        check_range("anatomy.soft_level_grid_mm", self.soft_level_grid_mm, 0.1, 20.0)
        check_range("anatomy.bone_min_contrast", self.bone_min_contrast, 0.0, 1.0)
        check_range("anatomy.bone_threshold_scale", self.bone_threshold_scale, 0.1, 10.0)
        check_range("anatomy.refine_passes", self.refine_passes, 0, 5)
        check_range("anatomy.refine_sigma_mm", self.refine_sigma_mm, 1.0, 200.0)
        check_range("anatomy.bone_min_area_mm2", self.bone_min_area_mm2, 0.0, 1e9)
        check_range("anatomy.bone_valley_mm", self.bone_valley_mm, 0.0, 20.0)
        check_range("anatomy.bone_valley_frac", self.bone_valley_frac, 0.0, 5.0)
        check_range("anatomy.bone_valley_min_mm2", self.bone_valley_min_mm2, 0.0, 1e6)
        check_range("anatomy.bone_model_soft", self.bone_model_soft, 0.0, 1.0)
        check_range("anatomy.bone_model_step_mm", self.bone_model_step_mm, 0.0, 20.0)
        check_range("anatomy.bone_min_share", self.bone_min_share, 0.0, 0.5)
        check_range("anatomy.bone_hole_max_mm2", self.bone_hole_max_mm2, 0.0, 1e12)
        check_choice("anatomy.bone_method", self.bone_method, ("threshold", "edges"))
        check_range("anatomy.bone_edge_grid_mm", self.bone_edge_grid_mm, 0.05, 5.0)
        check_range("anatomy.bone_edge_sigma_mm", self.bone_edge_sigma_mm, 0.1, 10.0)
        check_range("anatomy.bone_ramp_sigma_mm", self.bone_ramp_sigma_mm, 0.2, 50.0)
        check_range("anatomy.bone_edge_snr", self.bone_edge_snr, 0.0, 100.0)
        check_range("anatomy.bone_edge_sharpness", self.bone_edge_sharpness, 0.0, 20.0)
        check_range("anatomy.bone_plateau_mm", self.bone_plateau_mm, 0.1, 20.0)
        check_range("anatomy.bone_step_frac", self.bone_step_frac, 0.0, 2.0)
        check_range("anatomy.bone_seed_mm", self.bone_seed_mm, 0.1, 20.0)
        check_range("anatomy.bone_outline_edge", self.bone_outline_edge, 0.0, 1.0)
        check_range("anatomy.bone_shell_mm", self.bone_shell_mm, 0.0, 50.0)
        check_range("anatomy.bone_iso_area_mm2", self.bone_iso_area_mm2, 0.0, 1e9)
        check_range("anatomy.bone_min_halfwidth_mm", self.bone_min_halfwidth_mm, 0.0, 100.0)
        check_range("anatomy.bone_min_rim", self.bone_min_rim, -100.0, 100.0)
        check_range("anatomy.bone_merge_edge", self.bone_merge_edge, 0.0, 1.0)
        check_range("anatomy.bone_merge_mm", self.bone_merge_mm, 0.0, 1000.0)
        check_range("anatomy.bone_rim_mm", self.bone_rim_mm, 0.1, 20.0)
        check_range("anatomy.bone_texture_mm", self.bone_texture_mm, 0.1, 20.0)
        check_range("anatomy.cortex_mm", self.cortex_mm, 0.0, 20.0)
        check_range("anatomy.bone_step_mm", self.bone_step_mm, 0.5, 50.0)
        check_range("anatomy.joint_gap_mm", self.joint_gap_mm, 0.0, 100.0)
        check_range("anatomy.joint_slit_elongation", self.joint_slit_elongation, 0.0, 100.0)
        check_range("anatomy.joint_slit_density", self.joint_slit_density, 0.0, 10.0)
        check_range("anatomy.joint_slit_reach", self.joint_slit_reach, 0.0, 10.0)
        check_range("anatomy.foreign_unit_floor", self.foreign_unit_floor, 0.0, 1.0)
        check_range("anatomy.foreign_local_mm", self.foreign_local_mm, 0.5, 100.0)
        check_range("anatomy.foreign_local_contrast", self.foreign_local_contrast, 0.0, 100.0)
        check_range("anatomy.foreign_merge_mm", self.foreign_merge_mm, 0.0, 50.0)
        check_range("anatomy.foreign_ring_mm", self.foreign_ring_mm, 0.1, 50.0)
        check_range("anatomy.foreign_min_contrast", self.foreign_min_contrast, 0.0, 100.0)
        check_range("anatomy.foreign_min_area_mm2", self.foreign_min_area_mm2, 0.0, 1e9)
        check_range("anatomy.foreign_max_area_mm2", self.foreign_max_area_mm2, 0.0, 1e9)
        check_range("anatomy.foreign_dilate_mm", self.foreign_dilate_mm, 0.0, 20.0)
        check_range("anatomy.edge_line_mm", self.edge_line_mm, 0.0, 50.0)
        check_range("anatomy.edge_line_aspect", self.edge_line_aspect, 1.0, 1e3)
        check_range("anatomy.marker_min_mm", self.marker_min_mm, 0.0, 1e3)
        check_range("anatomy.marker_max_mm", self.marker_max_mm, self.marker_min_mm, 1e3)
        check_range("anatomy.marker_min_contrast", self.marker_min_contrast, 0.0, 100.0)
        check_range("anatomy.marker_min_aspect", self.marker_min_aspect, 0.0, 1.0)
        check_range("anatomy.marker_min_saturated", self.marker_min_saturated, 0.0, 1.0)
        check_range("anatomy.marker_max_solidity", self.marker_max_solidity, 0.0, 1.0)
        check_range("anatomy.metal_min_density", self.metal_min_density, 0.0, 100.0)
        check_range("anatomy.metal_density_headroom", self.metal_density_headroom, 0.0, 100.0)
        check_range("anatomy.metal_flat_below", self.metal_flat_below, 0.0, 100.0)
        check_range("anatomy.metal_min_plateau", self.metal_min_plateau, 0.0, 1.0)
        check_range("anatomy.text_glyph_min_mm2", self.text_glyph_min_mm2, 0.0, 1e3)
        check_range("anatomy.text_glyph_max_mm", self.text_glyph_max_mm, 0.0, 1e3)
        check_range("anatomy.text_min_glyphs", self.text_min_glyphs, 1, 1000)
        check_range("anatomy.text_merge_mm", self.text_merge_mm, 0.0, 100.0)
        check_range("anatomy.text_min_saturated", self.text_min_saturated, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Joint:
    """One joint space component."""

    label: int
    name: str | None
    centroid_rc: tuple[float, float]
    bbox: tuple[int, int, int, int]
    bones: tuple[int, ...] = ()
    """Labels of the bone components that bound it: two, or one for a slit that a single
    component (two bones overlapping around their joint) encloses and for the notch that
    continues such a slit beyond the bones' overlap."""


Window = tuple[slice, slice]
"""(rows, columns) slices of the film, as from :func:`scipy.ndimage.find_objects`."""


def _nearest_index(n_dst: int, n_src: int) -> np.ndarray:
    """Source index of each destination index, as ``cv2.resize`` with INTER_NEAREST maps
    them (``floor(i * src / dst)`` in double precision), so that a window of the
    upsampled map is exactly the same window of ``cv2.resize``'s output."""
    ifx = 1.0 / (n_dst / n_src)
    return np.minimum(np.floor(np.arange(n_dst) * ifx).astype(np.intp), n_src - 1)


def _linear_weights(start: int, stop: int, n_dst: int, n_src: int) -> tuple[np.ndarray, ...]:
    """Indices and weights of ``cv2.resize``'s INTER_LINEAR (pixel centres aligned,
    edges replicated) for destination indices ``start:stop``."""
    x = (np.arange(start, stop, dtype=np.float64) + 0.5) * (n_src / n_dst) - 0.5
    x0 = np.floor(x)
    t = (x - x0).astype(np.float32)
    i0 = np.clip(x0.astype(np.intp), 0, n_src - 1)
    i1 = np.clip(x0.astype(np.intp) + 1, 0, n_src - 1)
    return i0, i1, t


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AnatomyMap:
    """Anatomy of one radiograph, stored on a coarse grid and served at the film's
    resolution.

    :func:`map_anatomy` works on an isotropic grid of about ``AnatomyParams.grid_mm``
    (0.5 mm) and keeps its maps there (``grid_*``): at a 0.15 mm film that is 1/11 of the
    film's pixels. The film-resolution maps (:attr:`labels`, :attr:`cortex`,
    :attr:`joint_labels`, :attr:`distance_to_bone_mm`) are computed on each access,
    exactly as ``cv2.resize`` upsamples them (nearest for the codes, linear for the
    distance); use the ``*_at`` methods for a window of the film and the ``*_on``
    methods for another grid, which never build the whole film-sized array. A map made
    at the film's resolution (:meth:`from_arrays`) serves its arrays as they are.

    Attributes
    ----------
    shape : tuple of int
        (rows, columns) of the film.
    grid_labels : numpy.ndarray
        uint8 (grid rows, grid columns) of :class:`Region` codes.
    grid_cortex : numpy.ndarray
        bool, grid-sized: the cortical shell of bone (a subset of BONE).
    grid_joint_labels : numpy.ndarray
        int32, grid-sized: 0 outside joint spaces, else the :attr:`Joint.label`.
    grid_distance_to_bone_mm : numpy.ndarray
        float32, grid-sized: distance of each grid pixel to the nearest bone pixel, mm
        (inf everywhere when the film has no bone).
    joints : tuple of Joint
        Centroids and boxes in film pixels.
    confounders : tuple of Confounder
        Dense foreign objects, listed in the result and never reported as findings.
    body_part : str or None
        The anatomy the map suggests (Body Part Examined is only a hint).
    soft_tissue_level, bone_level : float or None
        Median normalised intensity of soft tissue and of bone (None when absent).
    bone_step : float or None
        The step from soft tissue up to cortex at the bones' margins, measured locally
        (median over cortex pixels of the cortex level minus the level of the soft tissue
        just outside, both smoothed over ``bone_step_mm``), in normalised units; None
        when the film has no bone margin against soft tissue. Unlike ``bone_level -
        soft_tissue_level`` it does not depend on which bones the map found nor on the
        body's thickness gradient.

    Examples
    --------
    >>> import numpy as np
    >>> am = AnatomyMap(shape=(6, 6), grid_labels=np.array([[1, 2], [1, 1]], np.uint8),
    ...                 grid_cortex=np.zeros((2, 2), bool),
    ...                 grid_joint_labels=np.zeros((2, 2), np.int32),
    ...                 grid_distance_to_bone_mm=np.zeros((2, 2), np.float32),
    ...                 joints=(), confounders=())
    >>> am.labels.shape, int(am.labels[0, 5]), int(am.labels_at((slice(2, 4), slice(2, 4)))[0, 1])
    ((6, 6), 2, 2)
    """

    shape: tuple[int, int]
    grid_labels: np.ndarray
    grid_cortex: np.ndarray
    grid_joint_labels: np.ndarray
    grid_distance_to_bone_mm: np.ndarray
    joints: tuple[Joint, ...]
    confounders: tuple[Confounder, ...]
    body_part: str | None = None
    soft_tissue_level: float | None = None
    bone_level: float | None = None
    bone_step: float | None = None

    def __post_init__(self) -> None:
        g = self.grid_labels.shape
        for name in ("grid_cortex", "grid_joint_labels", "grid_distance_to_bone_mm"):
            if getattr(self, name).shape != g:
                raise ValueError(
                    f"AnatomyMap.{name} has shape {getattr(self, name).shape}; expected the "
                    f"grid_labels shape {g}"
                )
        if len(g) != 2 or g[0] > self.shape[0] or g[1] > self.shape[1]:
            raise ValueError(
                f"AnatomyMap grid {g} must be 2-D and no finer than the film {self.shape}"
            )

    @classmethod
    def from_arrays(
        cls,
        *,
        labels: np.ndarray,
        cortex: np.ndarray,
        joint_labels: np.ndarray,
        distance_to_bone_mm: np.ndarray,
        joints: tuple[Joint, ...],
        confounders: tuple[Confounder, ...],
        body_part: str | None = None,
        soft_tissue_level: float | None = None,
        bone_level: float | None = None,
        bone_step: float | None = None,
    ) -> AnatomyMap:
        """A map at the film's resolution (its grid is the film), from (rows, columns)
        arrays: uint8 codes, bool cortex, int32 joint labels, float32 distance in mm."""
        shape = (int(labels.shape[0]), int(labels.shape[1]))
        return cls(
            shape=shape,
            grid_labels=labels,
            grid_cortex=cortex,
            grid_joint_labels=joint_labels,
            grid_distance_to_bone_mm=distance_to_bone_mm,
            joints=joints,
            confounders=confounders,
            body_part=body_part,
            soft_tissue_level=soft_tissue_level,
            bone_level=bone_level,
            bone_step=bone_step,
        )

    # ------------------------------------------------------------------ film resolution

    @property
    def labels(self) -> np.ndarray:
        """uint8 (rows, columns) of :class:`Region` codes (built on each access)."""
        return self.labels_on(self.shape)

    @property
    def cortex(self) -> np.ndarray:
        """bool (rows, columns): the cortical shell of bone (built on each access)."""
        return self.cortex_on(self.shape)

    @property
    def joint_labels(self) -> np.ndarray:
        """int32 (rows, columns): 0 outside joint spaces, else the :attr:`Joint.label`
        (built on each access)."""
        return self.joint_labels_on(self.shape)

    @property
    def distance_to_bone_mm(self) -> np.ndarray:
        """float32 (rows, columns): distance to the nearest bone pixel, mm (inf when the
        film has no bone; built on each access)."""
        return self.distance_to_bone_mm_on(self.shape)

    def mask(self, region: int) -> np.ndarray:
        """bool (rows, columns) mask of one region."""
        return self.labels == np.uint8(region)

    # ------------------------------------------------------------------ other grids

    def labels_on(self, shape: tuple[int, int]) -> np.ndarray:
        """:attr:`labels` resampled (nearest) to a grid of ``shape`` spanning the film."""
        return _resize(self.grid_labels, shape, cv2.INTER_NEAREST)

    def cortex_on(self, shape: tuple[int, int]) -> np.ndarray:
        """:attr:`cortex` resampled (nearest) to a grid of ``shape`` spanning the film."""
        if self.grid_cortex.shape == tuple(shape):
            return self.grid_cortex
        return _resize(self.grid_cortex.view(np.uint8), shape, cv2.INTER_NEAREST).view(bool)

    def joint_labels_on(self, shape: tuple[int, int]) -> np.ndarray:
        """:attr:`joint_labels` resampled (nearest) to a grid of ``shape``."""
        return _resize(self.grid_joint_labels, shape, cv2.INTER_NEAREST)

    def distance_to_bone_mm_on(self, shape: tuple[int, int]) -> np.ndarray:
        """:attr:`distance_to_bone_mm` resampled (linear) to a grid of ``shape``."""
        d = self.grid_distance_to_bone_mm
        if d.shape != tuple(shape) and not np.isfinite(d).any():
            return np.full(shape, np.inf, dtype=np.float32)
        return _resize(d, shape, cv2.INTER_LINEAR)

    def contrast_unit(self, img: np.ndarray) -> float:
        """The unit contrasts are measured in (normalised intensity, at least 1e-3).

        :attr:`bone_step` (the cortex step at the bones' margins); without a margin,
        ``bone_level - soft_tissue_level``; without bone, the spread of ``img`` itself
        (its 99th minus its 50th percentile). The detector's densities and the bone
        model's pixel features share it, so that they agree on a film without bone.

        Parameters
        ----------
        img : ndarray
            The normalised film (any grid): only read when the map has no bone level.
        """
        if self.bone_step is not None:
            return max(self.bone_step, 1e-3)
        if self.bone_level is not None and self.soft_tissue_level is not None:
            return max(self.bone_level - self.soft_tissue_level, 1e-3)
        return max(float(np.percentile(img, 99) - np.percentile(img, 50)), 1e-3)

    # ------------------------------------------------------------------ film windows

    def _nearest_window(self, grid: np.ndarray, window: Window) -> np.ndarray:
        (h, w), (gh, gw) = self.shape, grid.shape
        rs, cs = window[0].indices(h), window[1].indices(w)
        if (gh, gw) == (h, w):
            return grid[rs[0] : rs[1], cs[0] : cs[1]]
        ri = _nearest_index(h, gh)[rs[0] : rs[1]]
        ci = _nearest_index(w, gw)[cs[0] : cs[1]]
        return grid[ri][:, ci]

    def labels_at(self, window: Window) -> np.ndarray:
        """``labels[window]`` without building the film-sized map."""
        return self._nearest_window(self.grid_labels, window)

    def cortex_at(self, window: Window) -> np.ndarray:
        """``cortex[window]`` without building the film-sized map."""
        return self._nearest_window(self.grid_cortex, window)

    def joint_labels_at(self, window: Window) -> np.ndarray:
        """``joint_labels[window]`` without building the film-sized map."""
        return self._nearest_window(self.grid_joint_labels, window)

    def distance_to_bone_mm_at(self, window: Window) -> np.ndarray:
        """``distance_to_bone_mm[window]`` without building the film-sized map (the same
        linear interpolation as ``cv2.resize``, to float32 rounding)."""
        d = self.grid_distance_to_bone_mm
        (h, w), (gh, gw) = self.shape, d.shape
        rs, cs = window[0].indices(h), window[1].indices(w)
        if (gh, gw) == (h, w):
            return d[rs[0] : rs[1], cs[0] : cs[1]]
        out_shape = (max(0, rs[1] - rs[0]), max(0, cs[1] - cs[0]))
        if not np.isfinite(d).any():
            return np.full(out_shape, np.inf, dtype=np.float32)
        r0, r1, tr = _linear_weights(rs[0], rs[1], h, gh)
        c0, c1, tc = _linear_weights(cs[0], cs[1], w, gw)
        tc = tc[None, :]
        top = d[r0][:, c0] * (1 - tc) + d[r0][:, c1] * tc
        bot = d[r1][:, c0] * (1 - tc) + d[r1][:, c1] * tc
        trc = tr[:, None]
        return np.asarray(top * (1 - trc) + bot * trc, dtype=np.float32)

    def film_window(self, grid_window: Window) -> Window:
        """The film window whose pixels the grid window's pixels cover (nearest)."""
        (h, w), (gh, gw) = self.shape, self.grid_labels.shape
        out = []
        for sl, n, gn in ((grid_window[0], h, gh), (grid_window[1], w, gw)):
            g0, g1, _ = sl.indices(gn)
            if n == gn:
                out.append(slice(g0, g1))
                continue
            idx = _nearest_index(n, gn)
            out.append(slice(int(np.searchsorted(idx, g0)), int(np.searchsorted(idx, g1))))
        return (out[0], out[1])


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


def _bone_step(
    img: np.ndarray, cortex: np.ndarray, outside: np.ndarray, sigma_px: float
) -> float | None:
    """Median, over the cells of a grid a quarter of ``sigma_px`` wide that hold cortex,
    of the local cortex level minus the local level of the soft tissue just outside the
    bone (``outside``), both by normalised Gaussian convolution; None when no cortex has
    soft tissue within reach."""
    if not cortex.any() or not outside.any():
        return None
    ci, oi = cortex.astype(np.float32), outside.astype(np.float32)
    # on a grid a quarter of the smoothing wide: area averages, then the Gaussian
    f = max(1, int(sigma_px / 4))
    h, w = img.shape
    sh = (max(1, h // f), max(1, w // f))
    s = sigma_px * sh[1] / w
    planes = [_resize(a, sh, cv2.INTER_AREA) for a in (ci, oi, img * ci, img * oi)]
    wc, wo, vc, vo = (cv2.GaussianBlur(a, (0, 0), s) for a in planes)
    ok = (planes[0] > 0) & (wo > 0.05) & (wc > 0.05)
    if not ok.any():
        return None
    return float(np.median(vc[ok] / wc[ok] - vo[ok] / wo[ok]))


def _otsu(values: np.ndarray) -> float:
    """Two-class Otsu threshold of float values (the midpoint when they are constant)."""
    lo, hi = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if values.size < 2 or hi - lo < 1e-6:
        return lo
    hist, edges = np.histogram(values, bins=256, range=(lo, hi))
    p = hist.astype(np.float64)
    centers = (edges[:-1] + edges[1:]) / 2.0
    w0 = np.cumsum(p)
    w1 = w0[-1] - w0
    m0 = np.cumsum(p * centers)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu0 = m0 / w0
        mu1 = (m0[-1] - m0) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    between = np.nan_to_num(between)
    return float(centers[int(np.argmax(between))])


def _bone_threshold(values: np.ndarray, spread: float, p: AnatomyParams) -> float:
    """Bone threshold on the residual over the soft-tissue level: its Otsu split, redone
    below any split whose upper class holds less than ``bone_min_share`` of the values
    (a few very dense pixels, metal or lead, otherwise take the split from bone; at most
    three times), times ``bone_threshold_scale``, and at least ``bone_min_contrast`` of
    the body's intensity ``spread``."""
    t = _otsu(values)
    for _ in range(3):
        if float(np.count_nonzero(values > t)) >= p.bone_min_share * values.size:
            break
        below = values[values <= t]
        if below.size < 2:
            break
        t = _otsu(below)
    return max(t * p.bone_threshold_scale, p.bone_min_contrast * spread)


def _body_threshold(values: np.ndarray, lo_v: float, hi_v: float, air_gap: float) -> float:
    """Air | tissue threshold: the lower split of a three-class Otsu, or ``lo_v - 1`` (all
    tissue) when the class below it is not darker than the rest by ``air_gap`` of the
    film's range ``hi_v - lo_v`` (no air on the film, only the tissue's noise)."""
    t = _otsu3_low(values)
    air, rest = values[values <= t], values[values > t]
    if (
        air.size
        and rest.size
        and (float(np.median(rest)) - float(np.median(air)) < air_gap * (hi_v - lo_v))
    ):
        return lo_v - 1.0
    return t


def _skin_threshold(
    img: np.ndarray, collim: np.ndarray, t: float, sp: float, p: AnatomyParams
) -> float:
    """Move the air | tissue split ``t`` up past a class that is not the air.

    The skin is a sharp step; workstation equalisation darkens the air beside the body in
    a smooth halo, which a three-class split can take as its lowest class, leaving the air
    with the tissue (the whole hand then maps as bone). A split's strength is the largest
    mean gradient of a contour between the medians of the classes either side of it
    (levels 1 % of the range apart, pixels at least 5 mm from the collimation ``collim``
    and the film's border, whose penumbras are steps of their own). The split of the
    exposed values above ``t`` replaces ``t`` while it is more than ``body_edge_ratio``
    times as strong, the class below ``t`` holds less than ``body_halo_max_share`` of the
    exposed values and lies closer below the middle class than the class above does (a
    halo is shallower than the skin's step); at most twice. The gradients are measured
    only when a split passes the other two tests.
    """
    values = img[~collim]
    lo, hi = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if hi - lo < 1e-6:
        return t
    n_bins = 100

    def bin_of(v: np.ndarray | float) -> np.ndarray:
        return np.clip(
            ((np.asarray(v) - lo) * (n_bins / (hi - lo))).astype(np.int64), 0, n_bins - 1
        )

    mean_grad: np.ndarray | None = None

    def contour_gradients() -> np.ndarray | None:
        """Mean gradient per level bin (0 where fewer than 10 pixels), None when no pixel
        is far enough from the collimation and the border."""
        m = max(1, int(round(5.0 / sp)))
        ok = cv2.dilate(collim.view(np.uint8), np.ones((2 * m + 1,) * 2, np.uint8)) == 0
        ok[:m, :] = ok[-m:, :] = False
        ok[:, :m] = ok[:, -m:] = False
        if not ok.any():
            return None
        sm = cv2.GaussianBlur(img, (0, 0), p.body_edge_sigma_mm / sp)
        grad = cv2.magnitude(cv2.Sobel(sm, cv2.CV_32F, 1, 0), cv2.Sobel(sm, cv2.CV_32F, 0, 1))
        idx = bin_of(sm[ok])
        count = np.bincount(idx, minlength=n_bins)
        out = np.bincount(idx, grad[ok], minlength=n_bins) / np.maximum(count, 1)
        out[count < 10] = 0.0
        return out

    def strength(grads: np.ndarray, a: float, b: float) -> float:
        i0, i1 = sorted((int(bin_of(a)), int(bin_of(b))))
        return float(grads[i0 : i1 + 1].max())

    below = values[values <= t]
    above = values[values > t]
    for _ in range(2):
        if below.size < 3 or above.size < 3 or below.size >= p.body_halo_max_share * values.size:
            break
        t_next = _otsu3_low(above)
        mid = above[above <= t_next]
        top = above[above > t_next]
        if mid.size < 3 or top.size < 3:
            break
        m_below, m_mid, m_top = (float(np.median(v)) for v in (below, mid, top))
        if m_mid - m_below >= m_top - m_mid:
            # an undershoot is shallower than the step it comes with: a class this far
            # below the next is the air (a lead block had made soft tissue the middle)
            break
        if mean_grad is None:
            mean_grad = contour_gradients()
            if mean_grad is None:
                break
        if strength(mean_grad, m_mid, m_top) <= p.body_edge_ratio * strength(
            mean_grad, m_below, m_mid
        ):
            break
        t, below, above = t_next, mid, top
    return t


def _otsu3_low(values: np.ndarray) -> float:
    """The lower threshold of a three-class Otsu (air | soft tissue | bone)."""
    lo, hi = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if values.size < 3 or hi - lo < 1e-6:
        return lo
    hist, edges = np.histogram(values, bins=64, range=(lo, hi))
    p = hist.astype(np.float64) / hist.sum()
    c = (edges[:-1] + edges[1:]) / 2.0
    w = np.concatenate(([0.0], np.cumsum(p)))
    m = np.concatenate(([0.0], np.cumsum(p * c)))
    n = len(c)

    def between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        wk = w[b] - w[a]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(wk > 0, (m[b] - m[a]) ** 2 / wk, 0.0)

    # every split 0 < i < j < n at once, scanned in the order of the double loop it
    # replaces (argmax keeps the first maximum)
    i, j = np.triu_indices(n, k=1)
    keep = (i >= 1) & (i <= n - 2)
    i, j = i[keep], j[keep]
    s = 0.0 + between(np.zeros_like(i), i) + between(i, j) + between(j, np.full_like(j, n))
    return float(edges[int(i[int(np.argmax(s))])])


def _holes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Holes of ``mask``: background components (4-connected, as
    ``scipy.ndimage.binary_fill_holes``) that do not reach the border; returns (bool
    holes, the label image of the background components)."""
    h, w = mask.shape
    n, lab, st, _ = cv2.connectedComponentsWithStats((~mask).view(np.uint8), connectivity=4)
    x, y, bw, bh = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
    hole = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    hole[0] = False  # label 0 is the mask itself
    return hole[lab], lab


def _fill_tissue_holes(
    mask: np.ndarray, img: np.ndarray, t: float, collim: np.ndarray, reach_px: int
) -> np.ndarray:
    """Fill the body mask's holes (lungs, lucent regions, the threshold's noise), except
    air at the exposed field's edge: a hole within ``reach_px`` of the collimation whose
    median is at or below the air threshold ``t`` is air that the body and a blade's
    penumbra closed in."""
    if not mask.any():
        return mask.copy()
    holes, lab = _holes(mask)
    if not holes.any() or not collim.any():
        return mask | holes
    from scipy import ndimage

    near = cv2.dilate(collim.view(np.uint8), _disc(2 * reach_px + 1)) > 0
    edge_ids = np.unique(lab[holes & near])
    air = np.zeros(int(lab.max()) + 1, dtype=bool)
    if edge_ids.size:
        air[edge_ids] = np.asarray(ndimage.median(img, lab, edge_ids)) <= t
    return mask | (holes & ~air[lab])


def _fill_small_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """Fill holes of at most ``max_px`` pixels (medullary pockets), not larger gaps
    (joint spaces enclosed by overlapping bones)."""
    if not mask.any():
        return mask
    holes = _holes(mask)[0]
    if not holes.any():
        return mask
    if np.count_nonzero(holes) <= max_px:  # no hole can be larger: fill them all
        return mask | holes
    return mask | _keep_large(holes, 0.0) & ~_keep_large(holes, max_px + 1)


def _collimation(img: np.ndarray, body_t: float, p: AnatomyParams) -> np.ndarray:
    """Unexposed film beyond the collimator blades (slightly rotated straight edges).

    For each film side, segments along it are scanned inwards for the strongest drop
    from a flat band brighter than air; a straight line through the segments' edges
    bounds the collimated band.
    """
    h, w = img.shape
    out = np.zeros((h, w), dtype=bool)
    if h < 16 or w < 16:
        return out
    for k in range(4):
        view = np.rot90(img, k)
        omask = np.rot90(out, k)
        vh, vw = view.shape
        depth = max(4, int(p.collimation_depth * vh))
        nseg = 6
        pts: list[tuple[float, int]] = []
        for sgi in range(nseg):
            c0, c1 = sgi * vw // nseg, (sgi + 1) * vw // nseg
            prof = np.median(view[: depth + 3, c0:c1], axis=1)
            best, edge = _strongest_drop(prof, depth)
            if edge < 2 or best < p.collimation_step:
                continue
            band = view[:edge, c0:c1]
            if float(band.mean()) <= body_t or float(band.std()) > 0.5 * best:
                continue
            pts.append(((c0 + c1) / 2.0, edge))
        if len(pts) < max(2, nseg // 2):
            continue
        xs = np.array([q[0] for q in pts])
        ys = np.array([q[1] for q in pts], dtype=np.float64)
        med = float(np.median(ys))
        ok = np.abs(ys - med) <= max(3.0, 0.1 * vw * 0.05)
        if ok.sum() >= 2 and np.ptp(xs[ok]) > 0:
            slope, icpt = np.polyfit(xs[ok], ys[ok], 1)
        else:
            slope, icpt = 0.0, med
        cols = np.arange(vw)
        lim = np.clip(np.round(icpt + slope * cols), 0, vh).astype(int)
        rows = np.arange(vh)[:, None]
        omask |= rows < lim[None, :]
    return out


def _saturated_bands(img: np.ndarray, max_ramp_px: int) -> np.ndarray:
    """Unexposed film clipped at the film's brightest value along its sides.

    A band at exactly the maximum value, running along at least 80 % of one side, carries
    no image (tissue always shows quantum noise): film beyond the collimator blades whose
    edge lies too deep for :func:`_collimation`'s search, as on pydicom-data's RG3. The
    band takes its penumbra (the blurred edge, falling inwards, at most ``max_ramp_px``).
    """
    h, w = img.shape
    top = float(img.max(initial=0.0))
    if h < 16 or w < 16 or top <= float(img.min(initial=0.0)):
        return np.zeros((h, w), dtype=bool)
    flat = (img >= top - 1e-6).astype(np.uint8)
    sides = (flat[0], flat[-1], flat[:, 0], flat[:, -1])
    if not any(float(sd.mean()) >= 0.8 for sd in sides):  # no band along any side
        return np.zeros((h, w), dtype=bool)
    # keep what is band-shaped along its side: a saturated lead marker touching the band
    # is shorter than a fifth of the film along that side and is opened away
    band = np.zeros((h, w), dtype=bool)
    for kernel, first, last in (
        (np.ones((max(3, h // 5), 1), np.uint8), (slice(None), 0), (slice(None), -1)),
        (np.ones((1, max(3, w // 5)), np.uint8), (0, slice(None)), (-1, slice(None))),
    ):  # left/right bands run along the columns, top/bottom along the rows
        n, lab = cv2.connectedComponents(cv2.morphologyEx(flat, cv2.MORPH_OPEN, kernel))
        keep = np.zeros(n, dtype=bool)
        for side in (lab[first], lab[last]):
            ids, counts = np.unique(side[side > 0], return_counts=True)
            keep[ids[counts >= 0.8 * side.size]] = True
        band |= keep[lab]
    if not band.any():
        return band
    # the blades' penumbra: from the band's edge inwards the film keeps falling (blurred
    # edge) until the first rise; smoothed along the edge so noise does not stop it
    smooth = cv2.GaussianBlur(img, (0, 0), 1.0)
    for k in range(4):
        view, bv, sat = np.rot90(smooth, k), np.rot90(band, k), np.rot90(flat, k)
        depth = np.argmin(bv, axis=0)  # band rows from this side, per column
        depth[bv.all(axis=0)] = 0
        vh = view.shape[0]
        for c in np.nonzero(depth > 0)[0]:
            d = int(depth[c])
            stop = min(vh, d + max_ramp_px)
            rises = np.nonzero(np.diff(view[d - 1 : stop, c]) > 0)[0]
            end = d + (int(rises[0]) if rises.size else stop - d)
            # saturated pixels past the band are an object on it (a lead marker)
            bv[d:end, c] |= sat[d:end, c] == 0
    return band


def _strongest_drop(prof: np.ndarray, depth: int) -> tuple[float, int]:
    """The largest drop from the mean of the 3 values above ``r`` to the mean of the 3
    from ``r`` on, over 2 <= r < depth, and its ``r`` (0.0, 0 when none is positive).

    The means are summed in ``prof``'s dtype in the order ``ndarray.mean`` sums three
    values, so the edge is the one the per-row loop found (ties included)."""
    p = np.asarray(prof)
    if depth <= 2:
        return 0.0, 0
    r = np.arange(2, depth)
    below = (p[r] + p[r + 1] + p[r + 2]) / p.dtype.type(3)
    above = np.empty(r.size, dtype=p.dtype)
    above[0] = (p[0] + p[1]) / p.dtype.type(2)
    if r.size > 1:
        above[1:] = (p[r[1:] - 3] + p[r[1:] - 2] + p[r[1:] - 1]) / p.dtype.type(3)
    drop = (above - below).astype(np.float64)
    k = int(np.argmax(drop))
    if not drop[k] > 0.0:
        return 0.0, 0
    return float(drop[k]), int(r[k])


def _soft_level(img: np.ndarray, body: np.ndarray, sp: float, p: AnatomyParams) -> np.ndarray:
    """Smooth soft-tissue level: a grey opening wider than any bone, air ignored."""
    h, w = img.shape
    f = max(1.0, p.soft_level_grid_mm / sp)
    sh = (max(1, round(h / f)), max(1, round(w / f)))
    small = _resize(img, sh, cv2.INTER_AREA)
    b = _resize(body.astype(np.uint8), sh, cv2.INTER_NEAREST) > 0
    if not b.any():
        return np.zeros_like(img)
    se = _disc(p.soft_level_mm / (sp * f))
    hi = np.float32(small[b].max())
    # the skin rim thins to air level; leave it out of the minimum so the level is that
    # of the soft tissue proper
    inner = b
    if p.skin_mm > 0:
        inner = cv2.erode(b.astype(np.uint8), _disc(2 * p.skin_mm / (sp * f) + 1)) > 0
        if not inner.any():
            inner = b
    ero = cv2.erode(np.where(inner, small, hi).astype(np.float32), se)
    ero[~b] = 0.0
    lev = cv2.dilate(ero, se)
    if p.soft_poly_degree > 0:
        lev = np.maximum(lev, _poly_soft(small, b, p.soft_poly_degree))
    return _resize(lev, (h, w), cv2.INTER_LINEAR)


def _soft_interpolation(
    img: np.ndarray, weight: np.ndarray, sigma_px: float, max_factor: float
) -> np.ndarray:
    """Normalised convolution ``blur(img * weight) / blur(weight)`` with a Gaussian of
    ``sigma_px``, computed on a grid up to ``max_factor`` (and sigma/4) times coarser and
    upsampled: the result is as smooth as the Gaussian, and the blur of a 15 mm sigma on
    the 0.5 mm grid cost more than the rest of the anatomy map."""
    h, w = img.shape
    f = max(1.0, min(max_factor, sigma_px / 15.0))
    sh = (max(1, round(h / f)), max(1, round(w / f)))
    fr, fc = h / sh[0], w / sh[1]
    num = _resize(img * weight, sh, cv2.INTER_AREA)
    den = _resize(weight, sh, cv2.INTER_AREA)
    sig = sigma_px / np.sqrt(fr * fc)
    num = _resize(cv2.GaussianBlur(num, (0, 0), sig), (h, w), cv2.INTER_LINEAR)
    den = _resize(cv2.GaussianBlur(den, (0, 0), sig), (h, w), cv2.INTER_LINEAR)
    return np.asarray(num / np.maximum(den, np.float32(1e-3)), dtype=np.float32)


def _poly_soft(small: np.ndarray, b: np.ndarray, degree: int) -> np.ndarray:
    """Trimmed polynomial fit of the soft tissue: refit on the pixels below the fit, so
    bone (bright outliers) stops pulling it up; follows broad thickness gradients
    (pelvis, trunk) that an opening follows only down to its minimum."""
    h, w = small.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    yy = yy / max(h - 1, 1) - 0.5
    xx = xx / max(w - 1, 1) - 0.5
    terms = [yy**i * xx**j for i in range(degree + 1) for j in range(degree + 1 - i)]
    a = np.stack([t[b] for t in terms], axis=1)
    v = small[b].astype(np.float64)
    keep = np.ones(v.size, dtype=bool)
    coef = np.zeros(len(terms))
    for _ in range(6):
        if keep.sum() < len(terms) * 4:
            break
        coef = np.linalg.lstsq(a[keep], v[keep], rcond=None)[0]
        r = v - a @ coef
        keep = r <= np.median(r[keep])
    fit = sum(c * t for c, t in zip(coef, terms, strict=True))
    return np.asarray(fit, dtype=np.float32)


def _edge_gradient(
    img: np.ndarray, soft: np.ndarray, sp: float, p: AnatomyParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Smoothed film, its gradient (rows, columns, magnitude; intensity per grid pixel)
    at ``bone_edge_sigma_mm`` and the noise level of that magnitude in ``soft``.

    The noise level is the 25th percentile of the magnitude over soft tissue divided by
    0.758 (a Rayleigh distribution's 25th percentile over its scale): the lower quarter
    is flat tissue, unlike the median, which ramps and texture pull up.
    """
    sig = p.bone_edge_sigma_mm / sp
    sm = cv2.GaussianBlur(img, (0, 0), sig)
    gr = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3) / np.float32(8.0)
    gc = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3) / np.float32(8.0)
    g = np.hypot(gr, gc)
    noise = float(np.quantile(g[soft], 0.25)) / 0.758 if soft.any() else 0.0
    return sm, gr, gc, g, noise


def _step_seeds(
    img: np.ndarray,
    body: np.ndarray,
    grad: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float],
    sp: float,
    p: AnatomyParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeds on the bright (bone) and dark (soft tissue) side of sharp, persistent steps.

    A step pixel has a gradient above ``bone_edge_snr`` times the noise and above
    ``bone_edge_sharpness`` times the gradient at ``bone_ramp_sigma_mm`` (a ramp is not
    a step); its plateaus ``bone_plateau_mm`` either side along the gradient differ by
    at least ``bone_step_frac`` of the step it implies (``g * sigma * sqrt(2 pi)``), and
    both lie in the body (the skin line is not a bone edge). Returns bool (bone seeds,
    soft seeds, step pixels), grid-sized.
    """
    sm, gr, gc, g, noise = grad
    h, w = img.shape
    s2 = cv2.GaussianBlur(img, (0, 0), p.bone_ramp_sigma_mm / sp)
    g2 = np.hypot(
        cv2.Sobel(s2, cv2.CV_32F, 0, 1, ksize=3), cv2.Sobel(s2, cv2.CV_32F, 1, 0, ksize=3)
    )
    g2 /= np.float32(8.0)
    step = body & (g > p.bone_edge_snr * noise) & (g > p.bone_edge_sharpness * g2)
    r, c = np.nonzero(step)
    ur, uc = gr[r, c] / g[r, c], gc[r, c] / g[r, c]

    def along(k: float) -> tuple[np.ndarray, np.ndarray]:
        rr = np.clip(np.round(r + k * ur).astype(np.intp), 0, h - 1)
        cc = np.clip(np.round(c + k * uc).astype(np.intp), 0, w - 1)
        return rr, cc

    pr, pc = along(p.bone_plateau_mm / sp)
    nr, nc = along(-p.bone_plateau_mm / sp)
    implied = g[r, c] * np.float32(p.bone_edge_sigma_mm / sp * np.sqrt(2.0 * np.pi))
    ok = (sm[pr, pc] - sm[nr, nc] > p.bone_step_frac * implied) & body[nr, nc] & body[pr, pc]
    bone_seed = np.zeros((h, w), dtype=bool)
    soft_seed = np.zeros((h, w), dtype=bool)
    br, bc = along(p.bone_seed_mm / sp)
    dr, dc = along(-p.bone_seed_mm / sp)
    bone_seed[br[ok], bc[ok]] = True
    soft_seed[dr[ok], dc[ok]] = True
    return bone_seed, soft_seed, step


def _edge_regions(
    g: np.ndarray, noise: float, body: np.ndarray, bone_seed: np.ndarray, soft_seed: np.ndarray
) -> np.ndarray:
    """Marker-controlled watershed on the gradient magnitude ``g`` with one label per
    connected bone-seed group, so that every seed group (a bone, a deposit beside it)
    floods its own region and is judged on its own.

    Seeds claimed by both sides are dropped; the soft seeds and everything outside the
    body are label 1. Uses ``cv2.watershed`` on ``g`` in 8 bits (``32 log2(1 + g /
    noise)``: the order of the flood, which is all a watershed uses, is kept from the
    noise to 255 times it). Returns int32, grid-sized: 0 on the watershed lines, 1 soft
    tissue, 2.. the region of each bone-seed group.
    """
    both = bone_seed & soft_seed
    _, groups = cv2.connectedComponents((bone_seed & ~both).view(np.uint8), connectivity=8)
    markers = np.where(groups > 0, groups + 1, 0).astype(np.int32)
    markers[(soft_seed & ~both) | ~body] = 1
    q = np.log2(np.float32(1.0) + g / np.float32(max(noise, 1e-12))) * np.float32(32.0)
    q8 = np.clip(q, 0, 255).astype(np.uint8)
    cv2.watershed(cv2.merge([q8, q8, q8]), markers)
    markers[markers < 0] = 0
    return markers


def _merge_regions(
    lab: np.ndarray, edge: np.ndarray, max_edge: float, min_line_px: float
) -> np.ndarray:
    """Merge bone regions (labels >= 2) whose shared watershed line is mostly off
    ``edge``: one bone's seeds form several groups (its two cortices, the fragments of
    a broken outline), and what separates them inside the bone is no step. A deposit
    touching a bone shares only a short line with it: the line must be at least
    ``min_line_px`` pixels long.

    A line pixel separates the smallest and largest region label in its 3 x 3
    neighbourhood; two regions merge when at most ``max_edge`` of the line pixels
    between them lie on ``edge``. Returns the relabelled ``lab`` (same codes 0, 1;
    merged regions share the smallest label of their group).
    """
    n = int(lab.max(initial=0)) + 1
    if n <= 3:
        return lab
    k3 = np.ones((3, 3), np.uint8)
    lf = lab.astype(np.float32)
    hi = cv2.dilate(lf, k3)
    lo = cv2.erode(np.where(lab >= 2, lf, np.float32(n + 1)), k3)
    line = (lab == 0) & (lo >= 2) & (lo <= n) & (hi > lo)
    a = lo[line].astype(np.int64)
    b = hi[line].astype(np.int64)
    if a.size == 0:
        return lab
    key = a * n + b
    on = edge[line]
    keys, inv = np.unique(key, return_inverse=True)
    length = np.bincount(inv)
    frac = np.bincount(inv, on.astype(np.float64)) / length
    sel = keys[(frac <= max_edge) & (length >= min_line_px)]
    if sel.size == 0:
        return lab
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(sel.size), (sel // n, sel % n)), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    # each group's smallest label stands for it; 0 and 1 are never merged
    first = np.full(n, n, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(n))
    remap = first[comp].astype(np.int32)
    remap[:2] = (0, 1)
    out = remap[lab]
    # lines left inside a merged region (its neighbours all carry its label) join it
    of = out.astype(np.float32)
    hi = cv2.dilate(of, k3)
    lo = cv2.erode(np.where(out >= 1, of, np.float32(n + 1)), k3)
    inner = (out == 0) & (hi == lo) & (hi >= 2)
    out[inner] = hi[inner].astype(np.int32)
    return np.asarray(out, dtype=np.int32)


def _axes2(
    li: np.ndarray, r: np.ndarray, c: np.ndarray, cnt: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per label (``li`` of the pixels at rows ``r``, columns ``c``; ``cnt`` pixels per
    label, ``n`` labels): the larger and smaller eigenvalue of the pixels' second moments
    (squared pixels): the variances along its major and minor axes."""
    w = np.maximum(cnt, 1)
    r, c = r.astype(np.float64), c.astype(np.float64)
    mr, mc = np.bincount(li, r, n) / w, np.bincount(li, c, n) / w
    rr = np.bincount(li, r * r, n) / w - mr * mr
    cc = np.bincount(li, c * c, n) / w - mc * mc
    rc = np.bincount(li, r * c, n) / w - mr * mc
    tr, det = rr + cc, rr * cc - rc * rc
    disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0))
    return tr / 2 + disc, tr / 2 - disc


def _region_signs(
    lab: np.ndarray,
    img: np.ndarray,
    body: np.ndarray,
    bone: np.ndarray,
    edge: np.ndarray,
    sp: float,
    p: AnatomyParams,
) -> dict[str, np.ndarray]:
    """Measures of each watershed region's part outside ``bone`` (the addition).

    Returns arrays indexed by region label: ``area_mm2``; ``edge_frac``, the fraction of
    its outline (inside the body, away from ``bone``) on ``edge``; ``touch``, next to
    ``bone``; ``far_mm``, its farthest pixel from ``bone``; ``halfwidth_mm``, its largest
    inscribed radius; ``aspect``, major over minor axis of its second moments;
    ``rim``, the mean film ``bone_rim_mm`` inside its outline minus the mean deeper
    inside (a cortex seen edge-on is brighter than the medulla; a clump is not), in
    units of the film's pixel noise; ``texture``, the spread of the film's fine detail
    (film minus its ``bone_texture_mm`` Gaussian) inside it over that of soft tissue.
    """
    n = int(lab.max(initial=0)) + 1
    added = (lab > 1) & ~bone & body
    la = np.where(added, lab, 0)
    k3 = np.ones((3, 3), np.uint8)
    u8 = added.view(np.uint8)
    ero = cv2.erode(u8, k3) > 0
    near_bone = cv2.dilate(bone.view(np.uint8), k3) > 0
    near_out = cv2.dilate((~body).view(np.uint8), np.ones((7, 7), np.uint8)) > 0
    outline = added & ~ero & ~near_bone & ~near_out
    near_edge = cv2.dilate(edge.view(np.uint8), k3) > 0
    n_out = np.bincount(la[outline], minlength=n)
    edge_frac = np.bincount(la[outline & near_edge], minlength=n) / np.maximum(n_out, 1)
    touch = np.zeros(n, dtype=bool)
    touch[la[near_bone & added]] = True
    # per-region maxima over the added pixels only (a full-grid np.maximum.at costs
    # 50 ms on a 9 MP film)
    idx = np.flatnonzero(added)
    li = la.ravel()[idx]
    dt_in = cv2.distanceTransform(u8, cv2.DIST_L2, 5).ravel()[idx] * np.float32(sp)
    halfw = np.zeros(n, dtype=np.float64)
    np.maximum.at(halfw, li, dt_in)
    far = np.zeros(n, dtype=np.float64)
    if bone.any():
        dt_b = cv2.distanceTransform((~bone).view(np.uint8), cv2.DIST_L2, 5).ravel()[idx]
        np.maximum.at(far, li, dt_b * np.float32(sp))
    cnt = np.bincount(li, minlength=n).astype(np.float64)
    area = cnt * sp * sp
    r, c = np.divmod(idx, lab.shape[1])
    l1, l2 = _axes2(li, r, c, cnt, n)
    aspect = np.sqrt(l1 / np.maximum(l2, 1e-6))
    # rim minus core and fine texture, in units of the film's pixel noise
    fine = img - cv2.GaussianBlur(img, (0, 0), p.bone_texture_mm / sp)
    soft = body & ~bone & (lab == 1)
    sf = fine[soft]
    pix_noise = float(np.median(np.abs(sf - np.median(sf)))) * 1.4826 if sf.size else 0.0
    pix_noise = max(pix_noise, 1e-9)
    v = img.ravel()[idx]
    rim_m = (dt_in >= p.bone_rim_mm / 3) & (dt_in <= p.bone_rim_mm)
    core_m = dt_in >= np.maximum(p.bone_rim_mm + sp, 0.5 * halfw[li])
    n_rim = np.bincount(li[rim_m], minlength=n)
    n_core = np.bincount(li[core_m], minlength=n)
    rim = (
        np.bincount(li[rim_m], v[rim_m], n) / np.maximum(n_rim, 1)
        - np.bincount(li[core_m], v[core_m], n) / np.maximum(n_core, 1)
    ) / pix_noise
    rim[(n_rim == 0) | (n_core == 0)] = np.nan
    fv = fine.ravel()[idx][core_m]
    lc = li[core_m]
    wc = np.maximum(n_core, 1)
    fm = np.bincount(lc, fv, n) / wc
    fs = np.sqrt(np.maximum(np.bincount(lc, fv * fv, n) / wc - fm * fm, 0))
    texture = fs / pix_noise
    texture[n_core == 0] = np.nan
    return {
        "area_mm2": area,
        "edge_frac": edge_frac,
        "touch": touch,
        "far_mm": far,
        "halfwidth_mm": halfw,
        "aspect": aspect,
        "rim": rim,
        "texture": texture,
    }


def _bone_regions(s: dict[str, np.ndarray], p: AnatomyParams) -> np.ndarray:
    """Which regions (:func:`_region_signs`) are bone: bool, indexed by label.

    A region is the margin of the threshold bone (touching it, within
    ``bone_shell_mm``, with ``bone_outline_edge`` of its outline on edges), or shows a
    bone's signs on its own: at least ``bone_iso_area_mm2``, ``bone_min_halfwidth_mm``
    half-width and a cortical rim brighter than its inside (``bone_min_rim``). Labels
    0 (watershed lines) and 1 (soft tissue) are never bone.
    """
    shell = s["touch"] & (s["far_mm"] <= p.bone_shell_mm) & (s["edge_frac"] >= p.bone_outline_edge)
    rim = np.nan_to_num(s["rim"], nan=-np.inf)
    own = (
        (s["area_mm2"] >= p.bone_iso_area_mm2)
        & (s["halfwidth_mm"] >= p.bone_min_halfwidth_mm)
        & (rim > p.bone_min_rim)
    )
    keep = shell | own
    keep[:2] = False
    return np.asarray(keep)


def _edge_parts(
    img: np.ndarray, body: np.ndarray, bone: np.ndarray, sp: float, p: AnatomyParams
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The watershed regions of :func:`_edge_bone` and their measures (for tuning)."""
    grad = _edge_gradient(img, body & ~bone, sp, p)
    bone_seed, soft_seed, _ = _step_seeds(img, body, grad, sp, p)
    lab = _edge_regions(grad[3], grad[4], body, bone_seed, soft_seed & ~bone)
    edge = grad[3] > p.bone_edge_snr * grad[4]
    lab = _merge_regions(lab, edge, p.bone_merge_edge, p.bone_merge_mm / sp)
    return lab, _region_signs(lab, img, body, bone, edge, sp, p)


def _edge_bone(
    img: np.ndarray, body: np.ndarray, bone: np.ndarray, sp: float, p: AnatomyParams
) -> np.ndarray:
    """Threshold bone grown to the sharp steps that bound bones (``bone_method =
    "edges"``).

    Parameters
    ----------
    img : numpy.ndarray
        float32 (rows, columns), the normalised film on the anatomy grid.
    body, bone : numpy.ndarray
        bool, grid-sized: the body and the threshold bone (large components).
    sp : float
        Grid spacing, mm.
    p : AnatomyParams

    Returns
    -------
    numpy.ndarray
        bool, grid-sized: ``bone`` plus the regions of a marker-controlled watershed
        seeded on both sides of sharp steps (:func:`_step_seeds`, one region per bone
        seed group, :func:`_edge_regions`) that show bone's signs
        (:func:`_bone_regions`).
    """
    h, w = img.shape
    k = max(1, int(round(p.bone_edge_grid_mm / sp)))
    if k > 1:  # a coarser grid for the watershed and the region measures
        hc, wc = max(1, h // k), max(1, w // k)
        img_c = _resize(img, (hc, wc), cv2.INTER_AREA)
        body_c = _resize(body.view(np.uint8), (hc, wc), cv2.INTER_NEAREST) > 0
        bone_c = _resize(bone.view(np.uint8), (hc, wc), cv2.INTER_NEAREST) > 0
        lab_c, signs = _edge_parts(img_c, body_c, bone_c, sp * w / wc, p)
        lab = _resize(lab_c.astype(np.float32), (h, w), cv2.INTER_NEAREST).astype(np.int32)
    else:
        lab, signs = _edge_parts(img, body, bone, sp, p)
    keep = _bone_regions(signs, p)
    out = keep[lab] & body
    # watershed lines with bone on every side are bone; a line between bone and a
    # rejected region is not (it would close a ring around a deposit beside the bone,
    # which the hole filling then takes)
    line = (lab == 0) & body & ~bone
    if line.any():
        other = ~(out | bone) & (lab != 0)
        near_other = cv2.dilate(other.view(np.uint8), np.ones((3, 3), np.uint8)) > 0
        out |= line & ~near_other
    return bone | out


def _slits(
    bone: np.ndarray,
    filled: np.ndarray,
    resid: np.ndarray,
    t_bone: float,
    px_area: float,
    p: AnatomyParams,
) -> tuple[np.ndarray, np.ndarray]:
    """The holes that filling ``bone`` closes (``filled``) that look like a joint seen
    through two overlapping bones: at least ``joint_slit_elongation`` long for their
    width (second moments) and of soft-tissue density (mean ``resid`` within
    +-``joint_slit_density`` x ``t_bone``).

    Returns (the slits' labels, 0 off them; each label's full width in pixels, 4 sigma
    of its minor axis)."""
    holes = filled & ~bone
    if p.joint_slit_elongation <= 0 or not holes.any():
        return np.zeros(bone.shape, dtype=np.int32), np.zeros(1)
    n, lab = cv2.connectedComponents(holes.view(np.uint8), connectivity=4)
    ys, xs = np.nonzero(holes)
    ids = lab[ys, xs]
    cnt = np.bincount(ids, minlength=n).astype(np.float64)
    l1, l2 = _axes2(ids, ys, xs, cnt, n)
    elong = np.sqrt(np.maximum(l1, 1e-6) / np.maximum(l2, 0.25))
    density = np.bincount(ids, resid[ys, xs].astype(np.float64), n) / np.maximum(cnt, 1)
    ok = (
        (cnt * px_area >= 2.0)
        & (elong >= p.joint_slit_elongation)
        & (np.abs(density) < p.joint_slit_density * t_bone)
    )
    ok[0] = False
    return np.where(ok[lab], lab, 0), 4.0 * np.sqrt(np.maximum(l2, 0.0))


def _valley_cut(
    bone: np.ndarray,
    img: np.ndarray,
    foreign: np.ndarray,
    t_bone: float,
    px_area: float,
    sp: float,
    p: AnatomyParams,
) -> np.ndarray:
    """``bone`` without the parts its valleys cut off that are smaller than
    ``bone_min_area_mm2``, nor the cut within ``bone_valley_mm`` of them (see
    :attr:`AnatomyParams.bone_valley_mm`). ``img`` is the film on the grid, ``t_bone``
    the bone threshold on its residual over the soft-tissue level. The film is capped
    at the 99th percentile of bone without ``foreign``: beside metal (a filling, a wire
    across a bone) the bone is no valley."""
    se = _disc(p.bone_valley_mm / sp)
    own = bone & ~foreign
    top = float(np.percentile(img[own], 99)) if own.any() else float(img.max(initial=0.0))
    capped = np.minimum(img, np.float32(top))
    valley = cv2.morphologyEx(capped, cv2.MORPH_CLOSE, se) - capped
    cut = bone & (valley > p.bone_valley_frac * t_bone)
    rest = bone & ~cut
    n, lab, st, _ = cv2.connectedComponentsWithStats(rest.view(np.uint8), connectivity=8)
    area = st[:, cv2.CC_STAT_AREA] * px_area
    small = (area < p.bone_min_area_mm2) & (area >= p.bone_valley_min_mm2)
    small[0] = False
    if not small.any():
        return bone
    drop = small[lab]
    large = (area >= p.bone_min_area_mm2)[lab] & (lab > 0)
    near_drop = cv2.dilate(drop.view(np.uint8), se) > 0
    # the cut's pixels next to a part that stays (one grid pixel) stay with it
    near_large = cv2.dilate(large.view(np.uint8), _disc(3)) > 0
    return bone & ~(drop | (cut & near_drop & ~near_large))


def _grown_box(stats: np.ndarray, pad: int, h: int, w: int) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1) of a ``connectedComponentsWithStats`` row's box grown by ``pad``
    pixels, clipped to an h x w grid."""
    x, y, bw, bh = (int(v) for v in stats[:4])
    return max(0, y - pad), min(h, y + bh + pad), max(0, x - pad), min(w, x + bw + pad)


def _slit_continuations(
    lab_g: np.ndarray,
    st_g: np.ndarray,
    cen_g: np.ndarray,
    slit_gaps: list[tuple[int, int]],
    one_bone: list[tuple[int, int]],
    sp: float,
    p: AnatomyParams,
) -> list[tuple[int, int]]:
    """Gaps beside a single bone component that continue a slit joint of that component
    (the notch where two overlapping bones diverge beyond their joint, as the pubic
    bones above and below the symphysis): the gap's centroid lies on the slit's long
    axis, within ``joint_slit_reach`` slit lengths of the slit's end and within half a
    ``joint_gap_mm`` of the axis. Returns [(gap label, bone label)]."""
    if p.joint_slit_reach <= 0 or not slit_gaps or not one_bone:
        return []
    out = []
    for j, b in slit_gaps:
        r0, r1, c0, c1 = _grown_box(st_g[j], 0, *lab_g.shape)  # not the whole grid per slit
        ys, xs = np.nonzero(lab_g[r0:r1, c0:c1] == j)
        ys, xs = ys + r0, xs + c0
        cov = np.cov(np.vstack([ys, xs]).astype(np.float64)) if ys.size > 2 else np.eye(2)
        ev, vec = np.linalg.eigh(cov)  # ascending: minor, major axis
        u = vec[:, 1]  # the major axis (rows, columns)
        # 2 sigma of a uniform bar is 0.58 of its length: ~ half of it
        half_len = 2.0 * float(np.sqrt(max(ev[1], 0.0)))
        half_wid = 2.0 * float(np.sqrt(max(ev[0], 0.0)))
        c = np.array([ys.mean(), xs.mean()])
        for i, bi in one_bone:
            if bi != b:
                continue
            d = np.array([cen_g[i, 1], cen_g[i, 0]]) - c
            along = abs(float(d @ u))
            perp = abs(float(d @ np.array([-u[1], u[0]])))
            if (
                along <= half_len * (1.0 + 2.0 * p.joint_slit_reach)
                and perp <= half_wid + 0.5 * p.joint_gap_mm / sp
            ):
                out.append((i, b))
    return out


def map_anatomy(radiograph: Radiograph, *, params: AnatomyParams) -> AnatomyMap:
    """Map background, soft tissue, bone, joint spaces and foreign bodies.

    Parameters
    ----------
    radiograph : Radiograph
    params : AnatomyParams

    Returns
    -------
    AnatomyMap
        Maps on the anatomy grid (``grid_mm``), served at the film's resolution.
    """
    p = params
    shape = radiograph.shape
    sp, (h, w) = radiograph.grid(p.grid_mm)
    img = radiograph.normalized_on((h, w))
    px_area = sp * sp

    # --- body: above air, not collimation ---
    lo_v, hi_v = float(img.min(initial=0.0)), float(img.max(initial=0.0))
    body_t = _body_threshold(img.ravel(), lo_v, hi_v, p.air_gap)
    collim = _collimation(img, body_t, p) | _saturated_bands(
        img, int(round(p.saturated_ramp_mm / sp))
    )
    if body_t >= lo_v and collim.any() and np.count_nonzero(~collim) >= 3:
        # again without the unexposed film: bright collimation bands are a class of their
        # own, and the three-class split then falls inside the soft tissue (fingertips
        # and thin skin beside a collimator blade went to air)
        body_t = _body_threshold(img[~collim], lo_v, hi_v, p.air_gap)
    if body_t >= lo_v and p.body_edge_ratio > 0:
        body_t = _skin_threshold(img, collim, body_t, sp, p)
    body = (img > body_t) & ~collim
    body = _keep_large(body, min(p.body_min_area_mm2 / px_area, 0.25 * h * w))
    if not body.any() and img.max(initial=0.0) > img.min(initial=0.0):
        # only small bright islands above the threshold: the film is all tissue
        body = ~collim
    reach = int(round(p.field_edge_air_mm / sp))
    body = _fill_tissue_holes(body, img, body_t, collim, reach) & ~collim

    # --- foreign: near saturation or denser than the dense end of bone ---
    resid = img - _soft_level(img, body, sp, p)
    vals = resid[body]
    if vals.size:
        p1, p99 = np.percentile(img[body], [1, 99])
        spread = float(p99 - p1)
    else:
        spread = 0.0
    t_bone = _bone_threshold(vals, spread, p) if vals.size else 0.0
    bone = body & (resid > t_bone) if spread > 0 else np.zeros_like(body)
    level_resid, level_t = resid, t_bone  # the residual and threshold bone comes from
    for _ in range(p.refine_passes if spread > 1e-6 else 0):
        # second pass: the soft-tissue level interpolated from soft tissue only
        # (normalised convolution), which follows thickness gradients the opening misses
        soft_px = (body & ~_keep_large(bone, p.bone_min_area_mm2 / px_area)).astype(np.float32)
        if soft_px.sum() < 10:
            break
        level = _soft_interpolation(img, soft_px, p.refine_sigma_mm / sp, p.soft_level_grid_mm / sp)
        level_resid = img - level
        level_t = _bone_threshold(level_resid[body], spread, p)
        bone = body & (level_resid > level_t)
    if p.bone_method == "edges" and spread > 1e-6:
        bone = _edge_bone(img, body, _keep_large(bone, p.bone_min_area_mm2 / px_area), sp, p)
    big = _keep_large(bone, p.bone_min_area_mm2 / px_area)  # metal discs are small
    fb = find_foreign(
        img, body=body, bone=big, collimation=collim, spacing_mm=sp, film_shape=shape, params=p
    )
    foreign, confounders = fb.mask, fb.confounders
    fr, fc = shape[0] / h, shape[1] / w

    # --- bone ---
    cut = p.bone_valley_mm > 0 and bool(bone.any())
    if cut:
        # after the foreign search, whose bone levels the whole threshold bone sets (a
        # dental panoramic's teeth, which the cut separates, set its cortex level)
        bone = _valley_cut(bone, img, foreign, level_t, px_area, sp, p)
    if foreign.any() or cut:
        bone = _keep_large(bone & ~foreign, p.bone_min_area_mm2 / px_area)
    else:  # the same bone as ``big`` above: reuse its labelling
        bone = big
    filled = _fill_small_holes(bone, p.bone_hole_max_mm2 / px_area) & body
    slit_lab, slit_width = _slits(bone, filled, level_resid, level_t, px_area, p)
    slits = slit_lab > 0
    bone = filled & ~slits

    # --- joint spaces: narrow gaps closed between two different bones ---
    name_hint = _BODY_PART_JOINT.get((radiograph.body_part_examined or "").strip().upper())
    joint_lab = np.zeros((h, w), dtype=np.int32)
    joints: list[Joint] = []
    if bone.any() and p.joint_gap_mm > 0:
        n_b, lab_b = cv2.connectedComponents(bone.astype(np.uint8), connectivity=8)
        closed = (
            cv2.morphologyEx(bone.astype(np.uint8), cv2.MORPH_CLOSE, _disc(p.joint_gap_mm / sp)) > 0
        )
        gap = closed & ~bone & body & ~foreign
        if slits.any() and p.joint_slit_whole:
            # a slit wider than the closing in its middle is still one joint space: the
            # closing reaches its narrow ends only, and half a slit is no enclosed gap
            # (bowel gas over the sacrum is 11-18 mm wide, a symphysis slit 6-9 mm on the
            # generated pelvis films)
            hit = np.zeros(slit_width.size, dtype=bool)
            hit[np.unique(slit_lab[gap & slits])] = True
            hit &= slit_width * sp <= 1.25 * p.joint_gap_mm
            hit[0] = False
            gap |= hit[slit_lab] & body & ~foreign
        n_g, lab_g, st_g, cen_g = cv2.connectedComponentsWithStats(
            gap.astype(np.uint8), connectivity=8
        )
        ring = cv2.dilate(lab_g.astype(np.float32), _disc(3)).astype(np.int32)
        accepted: list[tuple[int, np.ndarray]] = []
        one_bone: list[tuple[int, int]] = []  # (gap, bone) of gaps beside one component
        slit_gaps: list[tuple[int, int]] = []
        for i in range(1, n_g):
            if st_g[i, cv2.CC_STAT_AREA] * px_area < 2.0:
                continue
            # work inside the gap's box (grown by the ring's reach): a whole-grid test per
            # gap made films with thousands of gaps take minutes (9 MP: > 7 min)
            r0, r1, c0, c1 = _grown_box(st_g[i], 4, h, w)
            near = (ring[r0:r1, c0:c1] == i) & bone[r0:r1, c0:c1]
            touching = np.unique(lab_b[r0:r1, c0:c1][near])
            touching = touching[touching > 0]
            slit = False
            if touching.size == 1 and slits[r0:r1, c0:c1].any():
                # a slit enclosed by one component: its two bones meet around it
                gi = lab_g[r0:r1, c0:c1] == i
                rim = (ring[r0:r1, c0:c1] == i) & ~gi
                slit = bool(slits[r0:r1, c0:c1][gi].mean() > 0.5 and bone[r0:r1, c0:c1][rim].all())
            if slit:
                slit_gaps.append((i, int(touching[0])))
            elif touching.size == 1:
                one_bone.append((i, int(touching[0])))
            if touching.size < 2 and not slit:
                continue
            accepted.append((i, touching))
        for i, b in _slit_continuations(lab_g, st_g, cen_g, slit_gaps, one_bone, sp, p):
            accepted.append((i, np.array([b])))
        for i, touching in sorted(accepted, key=lambda t: t[0]):
            x, y, bw, bh = (int(v) for v in st_g[i, :4])
            r0, r1, c0, c1 = _grown_box(st_g[i], 4, h, w)
            lab_id = len(joints) + 1
            joint_lab[r0:r1, c0:c1][lab_g[r0:r1, c0:c1] == i] = lab_id
            joints.append(
                Joint(
                    label=lab_id,
                    name=name_hint,
                    centroid_rc=(float(cen_g[i, 1] * fr), float(cen_g[i, 0] * fc)),
                    bbox=(
                        int(y * fr),
                        int(x * fc),
                        min(shape[0], int(np.ceil((y + bh) * fr))),
                        min(shape[1], int(np.ceil((x + bw) * fc))),
                    ),
                    bones=tuple(int(t) for t in touching),
                )
            )

    if slits.any():  # slits that are no joint space are holes in bone, filled
        bone |= slits & (joint_lab == 0)
    labels = np.zeros((h, w), dtype=np.uint8)
    labels[body] = Region.SOFT_TISSUE
    labels[bone] = Region.BONE
    labels[joint_lab > 0] = Region.JOINT_SPACE
    labels[foreign] = Region.FOREIGN
    part = _Parts(
        shape=shape,
        joints=tuple(joints),
        confounders=confounders,
        body_part=name_hint or (radiograph.body_part_examined or "").strip().lower() or None,
    )
    amap = _assemble(img, labels, bone, joint_lab, sp, p, part)
    if p.bone_model_soft > 0 and bone.any():
        kept = _likely_bone(radiograph, amap, bone, img, px_area, p)
        if not np.array_equal(kept, bone):
            # new labels: the first map, which holds the old ones, is not changed under it
            gone = bone & ~kept & (labels == Region.BONE)
            labels = np.where(gone, np.uint8(Region.SOFT_TISSUE), labels)
            amap = _assemble(img, labels, kept, joint_lab, sp, p, part)
    return amap


@dataclass(frozen=True, slots=True)
class _Parts:
    """What a map keeps when its bone changes."""

    shape: tuple[int, int]
    joints: tuple[Joint, ...]
    confounders: tuple[Confounder, ...]
    body_part: str | None


def _assemble(
    img: np.ndarray,
    labels: np.ndarray,
    bone: np.ndarray,
    joint_lab: np.ndarray,
    sp: float,
    p: AnatomyParams,
    part: _Parts,
) -> AnatomyMap:
    """The map from its grid labels and bone (which holds any foreign body in a bone's
    filled holes): cortex, distance to bone, the levels and the bone step."""
    h, w = labels.shape
    cortex = bone & ~(cv2.erode(bone.astype(np.uint8), _disc(2 * p.cortex_mm / sp + 1)) > 0)
    if bone.any():
        dist = cv2.distanceTransform((~bone).astype(np.uint8), cv2.DIST_L2, 5).astype(np.float32)
        dist *= np.float32(sp)
        bone_level: float | None = float(np.median(img[bone]))
    else:  # no bone on the film
        dist = np.full((h, w), np.inf, dtype=np.float32)
        bone_level = None
    soft = labels == Region.SOFT_TISSUE
    soft_level_v = float(np.median(img[soft])) if soft.any() else None
    step = _bone_step(img, cortex, soft & (dist > 0.5) & (dist <= 3.0), p.bone_step_mm / sp)
    return AnatomyMap(
        shape=part.shape,
        grid_labels=labels,
        grid_cortex=np.ascontiguousarray(cortex, dtype=bool),
        grid_joint_labels=joint_lab,
        grid_distance_to_bone_mm=dist,
        joints=part.joints,
        confounders=part.confounders,
        body_part=part.body_part,
        soft_tissue_level=soft_level_v,
        bone_level=bone_level,
        bone_step=step,
    )


def _likely_bone(
    radiograph: Radiograph,
    amap: AnatomyMap,
    bone: np.ndarray,
    img: np.ndarray,
    px_area: float,
    p: AnatomyParams,
) -> np.ndarray:
    """``bone`` without the map's bone whose learned bone probability is below
    ``bone_model_soft`` and without the parts that leaves under ``bone_min_area_mm2``.

    The probability (:mod:`calcimg.bonemodel`, on the model's grid and from ``amap``'s
    labels) is read at one pixel in ``bone_model_step_mm`` along each axis and holds for
    the lattice cell around it: the trees cost 5-6 us a pixel, and the soft tissue
    they take back is broad. A cell whose lattice pixel is not map bone keeps its bone.
    ``img`` is the film on the map's grid (handed to the model when its grid is the
    same).
    """
    from calcimg import bonemodel  # it reads this module's AnatomyMap

    model = bonemodel.load_bone_model(p.bone_model, qualname="anatomy.bone_model")
    sp_m, (hm, wm) = radiograph.grid(model.grid_mm)
    on_model = amap.labels_on((hm, wm)) == Region.BONE
    k = max(1, int(round(p.bone_model_step_mm / sp_m)))
    pick = np.zeros((hm, wm), dtype=bool)
    pick[k // 2 :: k, k // 2 :: k] = True
    pick &= on_model
    cells = np.ones(((hm + k - 1) // k, (wm + k - 1) // k), dtype=np.float32)
    rr, cc = np.nonzero(pick)
    normalized = img if (hm, wm) == img.shape else None
    cells[rr // k, cc // k] = bonemodel.probability_at(
        radiograph, amap, model, pick, normalized=normalized
    )
    h, w = bone.shape
    prob = cv2.resize(cells, (w, h), interpolation=cv2.INTER_NEAREST)
    unlikely = (amap.grid_labels == Region.BONE) & (prob < p.bone_model_soft)
    kept = _keep_large(bone & ~unlikely, p.bone_min_area_mm2 / px_area)
    # no holes: a part taken back that touches no soft tissue nor air is enclosed by
    # bone and stays bone, as holes in bone are (a tibia's smooth medulla on RG3)
    gone = bone & ~kept
    _n, parts = cv2.connectedComponents(gone.astype(np.uint8), connectivity=8)
    outside = (amap.grid_labels == Region.SOFT_TISSUE) | (amap.grid_labels == Region.BACKGROUND)
    touching = parts[gone & (cv2.dilate(outside.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)]
    return kept | (gone & ~np.isin(parts, np.unique(touching)))
