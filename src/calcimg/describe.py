"""Description: each finding's measured descriptors and its pattern.

Stage 4 of the pipeline. ``describe`` measures every detection in mm and classifies it
into one of the five patterns of ``DOMAIN.md`` (amorphous, finely speckled, globular
periarticular, vascular, chondral line) with scores that sum to 1.

The measurement is geometric and photometric: particle sizes from the detection's
particle labels, the shape of each particle from its pixel coordinates in mm (principal
axes, skeleton length, holes), parallel line pairs from the skeletons, a lucent centre
from the intensity profile inside round bodies, density against the local soft tissue and
the nearest cortical bone, and the location from the anatomy map. ``docs/patterns.md``
defines every descriptor with its unit and threshold.

The classifier is a multinomial logistic model over a short list of named features
derived from the descriptors (``FEATURES``): ``score_p = softmax_p(sum_k w[p, k] f_k)``.
Its weights are parameters (``[describe] w_<pattern>`` in ``models/params.toml``, fitted
by ``scripts/train_describe.py``); the drivers of a choice are the features that add most
to the chosen pattern's evidence over the runner-up, rendered as sentences with the
measured values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

from calcimg.anatomy import AnatomyMap, Region
from calcimg.detect import Detection, Detections
from calcimg.errors import ConfigError
from calcimg.params import check_positive, check_range
from calcimg.radiograph import Radiograph
from calcimg.result import Location, Pattern

__all__ = [
    "FEATURES",
    "PATTERNS",
    "DescribeParams",
    "Description",
    "Descriptions",
    "describe",
    "pattern_features",
]

PATTERNS: tuple[Pattern, ...] = tuple(Pattern)
"""The patterns in the order of the weight vectors."""

FEATURES: tuple[str, ...] = (
    "bias",
    "log_n_particles",
    "log_diameter_mean",
    "log_diameter_max",
    "log_extent",
    "size_cv",
    "linearity",
    "line_fraction",
    "parallel_pair",
    "lucent_center",
    "lucent_depth",
    "phlebolith_size",
    "ring_and_arc",
    "solidity",
    "log_margin_width",
    "septa",
    "joint_space_overlap",
    "joint_proximity",
    "bone_proximity",
    "density_rel_cortex",
)
"""Named features of the pattern model, computed from the descriptors by ``pattern_features``.

``log_*`` are natural logs of mm values (particle count for ``log_n_particles``);
``lucent_depth`` the median centre depth of the round bodies (clipped to [0, 1]);
``phlebolith_size`` exp(-(ln(d_max / clip(d_max, 2, 5 mm)) / 0.25)^2) x (1 - linearity)
for findings of one or two particles, else 0; ``ring_and_arc`` the share of bodies that
are rings, arcs or lucent when the ``ring_and_arc`` descriptor is true, else 0;
``log_margin_width`` ln of ``margin_width_mm`` (clipped to 0.1-20 mm, 1.5 when not
measurable); ``joint_proximity`` is exp(-distance to the nearest joint space / 10 mm) (0 without a
joint), ``bone_proximity`` exp(-median particle distance to bone / 3 mm) (0 without
bone); ``joint_space_overlap`` the share of the finding inside a joint space; booleans are
0/1; ``density_rel_cortex`` is clipped to [0, 2] (0.5 when not measurable).
"""

# Hand-set starting weights (one per FEATURES entry), used when models/params.toml does
# not override them; the shipped values are fitted by scripts/train_describe.py. They
# encode DOMAIN.md's pattern table: speckled = many sub-2 mm particles; globular = big
# rounded bodies beside a joint; vascular = parallel lines or a lucent-centred round body;
# chondral = a thin line inside the joint space close to bone; amorphous = the rest.
_PRIOR: dict[Pattern, dict[str, float]] = {
    Pattern.AMORPHOUS: {
        "bias": 1.0, "log_diameter_max": 0.5, "line_fraction": -1.0, "solidity": 1.0,
        "log_margin_width": 1.5,
    },
    Pattern.FINELY_SPECKLED: {
        "bias": -1.0, "log_n_particles": 1.5, "log_diameter_mean": -2.0,
        "log_diameter_max": -1.0, "log_extent": 0.5, "line_fraction": -1.0, "solidity": -2.0,
    },
    Pattern.GLOBULAR_PERIARTICULAR: {
        "bias": -2.0, "log_n_particles": 0.3, "log_diameter_mean": 0.5, "log_diameter_max": 1.0,
        "size_cv": -1.0, "linearity": -1.0, "line_fraction": -1.0, "ring_and_arc": 3.0,
        "septa": 2.0, "joint_space_overlap": -1.0, "joint_proximity": 2.0,
        "density_rel_cortex": 0.5,
    },
    Pattern.VASCULAR: {
        "bias": -1.5, "log_extent": 0.3, "linearity": 1.0, "line_fraction": 1.5,
        "parallel_pair": 4.0, "lucent_center": 2.5, "lucent_depth": 4.0,
        "phlebolith_size": 1.5, "ring_and_arc": -1.0, "joint_space_overlap": -2.0,
        "log_margin_width": -1.0,
    },
    Pattern.CHONDRAL_LINE: {
        "bias": -2.5, "linearity": 1.5, "line_fraction": 1.5, "parallel_pair": -2.0,
        "joint_space_overlap": 3.0, "joint_proximity": 1.0, "bone_proximity": 1.0,
    },
}  # fmt: skip
_W_DEFAULT: dict[Pattern, tuple[float, ...]] = {
    p: tuple(_PRIOR[p].get(f, 0.0) for f in FEATURES) for p in _PRIOR
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DescribeParams:
    """Parameters of :func:`describe` (section ``[describe]``); sizes in mm.

    Attributes
    ----------
    similar_cv_max : float
        Particles are ``similar_sized`` when the coefficient of variation of their
        equivalent diameters is at most this (and there are at least 2).
    site_separation_mm : float
        Findings further apart than this (centroid to centroid) are separate sites.
    background_gap_mm, background_ring_mm : float
        The local soft-tissue reference is the median of a ring ``ring`` mm wide starting
        ``gap`` mm outside the finding (other findings, bone and foreign objects excluded).
    cortex_search_mm : float
        Cortical bone within this distance of the finding's centroid is its reference;
        beyond it the whole film's cortex, then all bone.
    line_min_length_mm, line_min_aspect, line_min_linearity, line_max_width_mm : float
        A particle is a line when its length is at least ``line_min_length_mm``, its mean
        width at most ``line_max_width_mm`` (DOMAIN.md: vascular lines 0.3-1 mm, chondral
        lines 0.5-1.5 mm), length / width at least ``line_min_aspect`` and its
        principal-axis linearity at least ``line_min_linearity``.
    pair_min_spacing_mm, pair_max_spacing_mm : float
        Centre-to-centre spacing of a parallel (tram-track) line pair (DOMAIN.md: 2-6 mm),
        and the width of a pipe-stem band (the tube test). At a 1.5 mm floor the two halves
        of a 22 mm wide sheet 1.6 mm apart passed as a pair (dev synth_4015).
    pair_min_coverage : float
        Fraction of the line skeleton that must have a parallel partner.
    ring_min_bodies : int
        ``ring_and_arc`` needs at least this many ring, arc or lucent bodies, making at
        least 40% of the bodies. Two, not the three that DOMAIN.md's *many* bodies would
        suggest: the detector often splits a joint's loose bodies into findings of one or
        two bodies, and one lucent body alone is a phlebolith's shape.
    ring_min_solidity : float
        A round particle with a hole is a ring when its filled outline has at least this
        solidity (area / convex hull area).
    lucent_min_diameter_mm, lucent_max_diameter_mm : float
        Round bodies in this size range are tested for a lucent centre.
    lucent_min_depth : float
        The centre must be darker than the rim by this fraction of the rim's contrast.
    tube_min_valley_fraction : float
        A band ``pair_min_spacing_mm``-``pair_max_spacing_mm`` (2-8 mm) wide is a hollow
        tube (pipe-stem, a tram-track whose mask fills the lumen) when at least this share
        of its centre line is darker than both walls.
    arc_min_angle_deg : float
        A curved particle fitting a circle over at least this angle is an arc.
    septa_gap_mm : float
        Globules (>= ``globule_min_diameter_mm``) closer than this are separated by septa.
    globule_min_diameter_mm : float
        Minimum equivalent diameter of a globule.
    focal_max_extent_mm, diffuse_min_extent_mm : float
        Distribution of one finding: focal up to the first, diffuse from the second,
        regional between.
    intra_articular_min_overlap : float
        Fraction of the finding's area inside a joint space that makes it intra-articular.
    capsule_bone_mm, capsule_joint_mm, capsule_min_bodies
        A finding outside the joint space is still intra-articular (loose bodies in the
        joint's recesses) when it has at least ``capsule_min_bodies`` particles and the
        median over its particles of their distance to bone is at most
        ``capsule_bone_mm`` and to the joint space at most ``capsule_joint_mm``.
    features : tuple of str
        Names of the model features, in the order of the weight vectors (``FEATURES``).
    w_amorphous, w_finely_speckled, w_globular_periarticular, w_vascular, w_chondral_line
        Weights of each pattern's evidence, one per feature.
    """

    similar_cv_max: float = 0.3
    site_separation_mm: float = 50.0
    background_gap_mm: float = 0.6
    background_ring_mm: float = 2.0
    cortex_search_mm: float = 40.0
    line_min_length_mm: float = 3.0
    line_min_aspect: float = 4.0
    line_min_linearity: float = 0.5
    line_max_width_mm: float = 1.6
    pair_min_spacing_mm: float = 2.0
    pair_max_spacing_mm: float = 8.0
    pair_min_coverage: float = 0.4
    ring_min_solidity: float = 0.85
    ring_min_bodies: int = 2
    lucent_min_diameter_mm: float = 1.5
    lucent_max_diameter_mm: float = 10.0
    lucent_min_depth: float = 0.08
    tube_min_valley_fraction: float = 0.5
    arc_min_angle_deg: float = 90.0
    septa_gap_mm: float = 1.5
    globule_min_diameter_mm: float = 3.0
    focal_max_extent_mm: float = 30.0
    diffuse_min_extent_mm: float = 120.0
    intra_articular_min_overlap: float = 0.3
    capsule_bone_mm: float = 3.0
    capsule_min_bodies: int = 3
    capsule_joint_mm: float = 25.0
    features: tuple[str, ...] = FEATURES
    w_amorphous: tuple[float, ...] = _W_DEFAULT[Pattern.AMORPHOUS]
    w_finely_speckled: tuple[float, ...] = _W_DEFAULT[Pattern.FINELY_SPECKLED]
    w_globular_periarticular: tuple[float, ...] = _W_DEFAULT[Pattern.GLOBULAR_PERIARTICULAR]
    w_vascular: tuple[float, ...] = _W_DEFAULT[Pattern.VASCULAR]
    w_chondral_line: tuple[float, ...] = _W_DEFAULT[Pattern.CHONDRAL_LINE]

    def __post_init__(self) -> None:
        q = "describe."
        check_range(q + "similar_cv_max", self.similar_cv_max, 0.0, 2.0)
        for name in (
            "site_separation_mm",
            "background_gap_mm",
            "background_ring_mm",
            "cortex_search_mm",
            "line_min_length_mm",
            "line_min_aspect",
            "line_max_width_mm",
            "pair_min_spacing_mm",
            "pair_max_spacing_mm",
            "lucent_min_diameter_mm",
            "lucent_max_diameter_mm",
            "septa_gap_mm",
            "globule_min_diameter_mm",
            "focal_max_extent_mm",
            "diffuse_min_extent_mm",
            "capsule_bone_mm",
            "capsule_joint_mm",
        ):
            check_positive(q + name, getattr(self, name))
        check_range(q + "line_min_linearity", self.line_min_linearity, 0.0, 1.0)
        check_range(q + "ring_min_solidity", self.ring_min_solidity, 0.0, 1.0)
        check_range(q + "ring_min_bodies", self.ring_min_bodies, 1, 1000)
        check_range(q + "capsule_min_bodies", self.capsule_min_bodies, 1, 1000)
        check_range(q + "pair_min_coverage", self.pair_min_coverage, 0.0, 1.0, low_open=True)
        check_range(q + "lucent_min_depth", self.lucent_min_depth, 0.0, 1.0, low_open=True)
        check_range(
            q + "tube_min_valley_fraction", self.tube_min_valley_fraction, 0.0, 1.0, low_open=True
        )
        check_range(q + "arc_min_angle_deg", self.arc_min_angle_deg, 0.0, 360.0, low_open=True)
        check_range(q + "intra_articular_min_overlap", self.intra_articular_min_overlap, 0.0, 1.0)
        if self.pair_min_spacing_mm >= self.pair_max_spacing_mm:
            raise ConfigError(
                f"parameter describe.pair_min_spacing_mm = {self.pair_min_spacing_mm!r} must "
                f"be below describe.pair_max_spacing_mm = {self.pair_max_spacing_mm!r}"
            )
        if self.lucent_min_diameter_mm >= self.lucent_max_diameter_mm:
            raise ConfigError(
                f"parameter describe.lucent_min_diameter_mm = {self.lucent_min_diameter_mm!r}"
                f" must be below describe.lucent_max_diameter_mm = "
                f"{self.lucent_max_diameter_mm!r}"
            )
        if self.focal_max_extent_mm >= self.diffuse_min_extent_mm:
            raise ConfigError(
                f"parameter describe.focal_max_extent_mm = {self.focal_max_extent_mm!r} must "
                f"be below describe.diffuse_min_extent_mm = {self.diffuse_min_extent_mm!r}"
            )
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ConfigError(
                f"parameter describe.features has unknown feature(s) {', '.join(unknown)}; "
                f"valid features: {', '.join(FEATURES)}"
            )
        for p in PATTERNS:
            w = self.weights(p)
            if len(w) != len(self.features):
                raise ConfigError(
                    f"parameter describe.w_{p} has {len(w)} weights; expected "
                    f"{len(self.features)} (one per describe.features entry)"
                )
            if not all(math.isfinite(x) for x in w):
                raise ConfigError(f"parameter describe.w_{p} = {w!r}; expected finite numbers")

    def weights(self, pattern: Pattern) -> tuple[float, ...]:
        """The weight vector of one pattern (aligned with :attr:`features`)."""
        w: tuple[float, ...] = getattr(self, f"w_{pattern}")
        return w


@dataclass(frozen=True, slots=True, kw_only=True)
class Description:
    """The description of one detection.

    Attributes
    ----------
    detection_id : int
    pattern : Pattern
    pattern_scores : Mapping[Pattern, float]
        Sum to 1.
    descriptors : Mapping[str, Any]
        Measured values, units in their names (``particle_diameter_mean_mm``).
    drivers : tuple of str
        Human-readable reasons for the pattern choice.
    location : Location
    area_mm2 : float
    centroid_rc : tuple of float
    """

    detection_id: int
    pattern: Pattern
    pattern_scores: Mapping[Pattern, float]
    descriptors: Mapping[str, Any]
    location: Location
    area_mm2: float
    centroid_rc: tuple[float, float]
    drivers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptions:
    """All descriptions of one image plus image-level descriptors."""

    items: tuple[Description, ...] = ()
    image_descriptors: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- particles


@dataclass(frozen=True, slots=True)
class _Particle:
    """Measurements of one particle (a connected component of a detection)."""

    area_mm2: float
    diameter_mm: float
    length_mm: float
    width_mm: float
    linearity: float
    is_line: bool
    is_ring: bool
    has_hole: bool
    is_lucent: bool
    centre_depth: float
    """(rim - middle) / rim contrast of the filled particle (see ``_centre_dip``)."""
    is_tube: bool
    tube_spacing_mm: float | None
    tube_wall_mm: float | None
    is_arc: bool
    centroid_mm: np.ndarray
    skeleton_mm: np.ndarray
    """(n, 2) skeleton points in mm (absolute image coordinates x spacing)."""
    tangents: np.ndarray
    """(n, 2) unit tangent of the skeleton at each point."""
    curvature_per_mm: float | None


def _pca(points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (columns) of the points' covariance."""
    if len(points_mm) < 3:
        return np.zeros(2), np.eye(2)
    cov = np.cov(points_mm, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    return np.maximum(vals[order], 0.0), vecs[:, order]


def _solidity_px(mask: np.ndarray) -> float:
    """Area / convex hull area of a pixel set (hull through pixel centres + half its
    perimeter + 1, so that a solid digital disk or square is ~1)."""
    rr, cc = np.nonzero(mask)
    if len(rr) < 3:
        return 1.0
    hull = cv2.convexHull(np.column_stack([cc, rr]).astype(np.float32))
    hull_area = cv2.contourArea(hull) + cv2.arcLength(hull, True) / 2 + 1
    return min(1.0, len(rr) / hull_area)


def _skeleton_length_mm(skel: np.ndarray, spacing: tuple[float, float]) -> float:
    """Length of a one-pixel skeleton: sum of the steps between 8-neighbours, in mm."""
    dr, dc = spacing
    s = skel.astype(bool)
    if not s.any():
        return 0.0
    horiz = np.count_nonzero(s[:, 1:] & s[:, :-1]) * dc
    vert = np.count_nonzero(s[1:, :] & s[:-1, :]) * dr
    diag_step = math.hypot(dr, dc)
    d1 = s[1:, 1:] & s[:-1, :-1]
    d2 = s[1:, :-1] & s[:-1, 1:]
    # a diagonal step that is also covered by an L of two orthogonal steps is not counted
    # twice: skeletonize leaves such corners only at junctions, a small error
    diag = (np.count_nonzero(d1) + np.count_nonzero(d2)) * diag_step
    return float(horiz + vert + diag)


def _skeleton_path(skel: np.ndarray, spacing: tuple[float, float]) -> tuple[float, np.ndarray]:
    """The longest shortest path through a skeleton (its geodesic diameter).

    The skeleton of a ragged or textured mask grows a side branch at every bump of its
    outline; summed, the branches make a 4 mm wide band look like a thin line as long as
    all its branches together (a 45 mm band measured 92 mm). The centre line of a line or
    a band is the skeleton's longest path: two Dijkstra sweeps over the 8-connected
    skeleton pixels (exact on a tree, the usual approximation with loops).

    Returns
    -------
    length_mm : float
        Length of the path (mm, steps weighted by the anisotropic spacing).
    path_rc : numpy.ndarray
        (n, 2) int pixel coordinates (row, col) of the path, in order.
    """
    rr, cc = np.nonzero(skel)
    n = len(rr)
    if n < 2:
        return 0.0, np.column_stack([rr, cc])
    dr, dc = spacing
    index = np.full(skel.shape, -1, np.int64)
    index[rr, cc] = np.arange(n)
    h, w = skel.shape
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    wt: list[np.ndarray] = []
    for sr, sc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        r2, c2 = rr + sr, cc + sc
        ok = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        j = np.full(n, -1, np.int64)
        j[ok] = index[r2[ok], c2[ok]]
        ok = j >= 0
        src.append(np.flatnonzero(ok))
        dst.append(j[ok])
        wt.append(np.full(int(ok.sum()), math.hypot(sr * dr, sc * dc)))
    graph = csr_matrix(
        (np.concatenate(wt), (np.concatenate(src), np.concatenate(dst))), shape=(n, n)
    )
    # a skeleton of a connected particle is connected; start from a pixel of the largest
    # piece all the same (unreachable pixels are inf)
    d0 = dijkstra(graph, directed=False, indices=0)
    a = int(np.argmax(np.where(np.isfinite(d0), d0, -1.0)))
    d1, pred = dijkstra(graph, directed=False, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(d1), d1, -1.0)))
    path = [b]
    while path[-1] != a and pred[path[-1]] >= 0:
        path.append(int(pred[path[-1]]))
    order = np.array(path[::-1])
    return float(d1[b]), np.column_stack([rr[order], cc[order]])


def _tangents(points: np.ndarray, radius_mm: float) -> np.ndarray:
    """Unit tangent at each skeleton point: principal axis of its neighbours."""
    out = np.zeros_like(points)
    if len(points) == 0:
        return out
    tree = cKDTree(points)
    nbrs = tree.query_ball_point(points, r=radius_mm)
    # the covariance of every point's neighbourhood at once (as _pca, which was called
    # per point and took most of describe's time), then one stacked 2x2 eigh
    counts = np.fromiter((len(n) for n in nbrs), dtype=np.intp, count=len(nbrs))
    flat = np.fromiter((j for n in nbrs for j in n), dtype=np.intp, count=int(counts.sum()))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pts = points[flat]
    mean = np.add.reduceat(pts, starts, axis=0) / counts[:, None]
    d = pts - np.repeat(mean, counts, axis=0)
    ddof = np.maximum(counts - 1, 1)[:, None]
    sxx, syy, sxy = (
        np.add.reduceat(v, starts) for v in (d[:, 0] ** 2, d[:, 1] ** 2, d[:, 0] * d[:, 1])
    )
    cov = np.empty((len(points), 2, 2))
    cov[:, 0, 0] = sxx / ddof[:, 0]
    cov[:, 1, 1] = syy / ddof[:, 0]
    cov[:, 0, 1] = cov[:, 1, 0] = sxy / ddof[:, 0]
    _, vecs = np.linalg.eigh(cov)
    out[:] = vecs[:, :, 1]  # eigh sorts ascending: the last column is the principal axis
    out[counts < 3] = (1.0, 0.0)  # _pca's identity for fewer than 3 points
    return out


def _fit_circle(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Algebraic (Kasa) circle fit: centre, radius, rms residual."""
    x, y = points[:, 0], points[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x**2 + y**2
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r = math.sqrt(max(sol[2] + cx**2 + cy**2, 0.0))
    resid = float(np.sqrt(np.mean((np.hypot(x - cx, y - cy) - r) ** 2)))
    return np.array([cx, cy]), r, resid


def _measure_particle(
    mask: np.ndarray,
    origin: tuple[int, int],
    pixels: np.ndarray,
    spacing: tuple[float, float],
    background: float,
    noise: float,
    params: DescribeParams,
) -> _Particle:
    """Measure one particle given as a tight bool mask whose top-left pixel is ``origin``."""
    dr, dc = spacing
    sp = np.array([dr, dc])
    rr, cc = np.nonzero(mask)
    pts = (np.column_stack([rr + origin[0], cc + origin[1]]) * sp).astype(float)
    area = float(len(rr) * dr * dc)
    diameter = 2.0 * math.sqrt(area / math.pi)
    vals, vecs = _pca(pts)
    linearity = 0.0 if vals[0] <= 0 else float(1.0 - math.sqrt(vals[1] / vals[0]))
    proj = pts @ vecs[:, 0]
    proj_len = float(proj.max() - proj.min()) + float(np.abs(vecs[:, 0]) @ sp)
    filled = ndi.binary_fill_holes(mask)
    hole_px = int(np.count_nonzero(filled & ~mask))
    # a hole makes a ring only in a round body: an elongated particle with a hole is the
    # closed outline of a calcified tube (the two walls of a tram-track joined at its ends)
    has_hole = hole_px >= max(2, 0.04 * np.count_nonzero(filled))
    depth = _centre_dip(filled, origin, pixels, background, noise)
    # a ring: round outline (a ragged fragment with a hole is not one) whose hole is
    # darker than its rim in the image (a detector that only kept a solid body's edge
    # leaves a hole that is not lucent)
    is_ring = (
        has_hole
        and linearity < params.line_min_linearity
        and _solidity_px(filled) >= params.ring_min_solidity
        and depth >= params.lucent_min_depth
    )
    skel = skeletonize(mask) if mask.sum() >= 3 else mask.copy()
    skel_len = _skeleton_length_mm(skel, spacing)
    length = max(skel_len, proj_len)
    width = area / length if length > 0 else diameter
    is_line = (
        length >= params.line_min_length_mm
        and width <= params.line_max_width_mm
        and length / max(width, 1e-6) >= params.line_min_aspect
        and linearity >= params.line_min_linearity
    )
    sr, sc = np.nonzero(skel)
    skel_pts = (np.column_stack([sr + origin[0], sc + origin[1]]) * sp).astype(float)
    tangents = _tangents(skel_pts, radius_mm=max(1.0, 3 * width))
    # curvature from a quadratic fit along the principal axis (v = a u^2 + b u + c): 2|a|
    curvature: float | None = None
    is_arc = False
    if len(skel_pts) >= 5 and length >= params.line_min_length_mm / 2:
        u = (skel_pts - skel_pts.mean(0)) @ vecs[:, 0]
        v = (skel_pts - skel_pts.mean(0)) @ vecs[:, 1]
        if len(np.unique(np.round(u, 6))) >= 3:
            coef = np.polyfit(u, v, 2)
            curvature = float(abs(2 * coef[0]))
        _, radius, resid = _fit_circle(skel_pts)
        if 0.5 <= radius <= params.lucent_max_diameter_mm and resid <= max(0.15 * radius, 0.2):
            angle = math.degrees(skel_len / radius)
            # a closed loop is an arc only when it is a ring (lucent inside, tested below)
            is_arc = not has_hole and angle >= params.arc_min_angle_deg and width <= 0.6 * radius
    round_body = (
        params.lucent_min_diameter_mm <= diameter <= params.lucent_max_diameter_mm
        and linearity < params.line_min_linearity
    )
    is_lucent = is_ring or (round_body and depth >= params.lucent_min_depth)
    # a calcified tube seen side-on whose mask fills the lumen (pipe-stem): an elongated
    # band pair_min_spacing_mm-pair_max_spacing_mm wide whose centre line runs darker than
    # its two walls
    mean_sp = math.sqrt(dr * dc)
    is_tube = False
    tube_spacing: float | None = None
    tube_wall: float | None = None
    if linearity >= params.line_min_linearity and len(skel_pts) >= 5:
        # the band's centre line: the longest path of the *filled* particle's skeleton (a
        # mask with holes along the lumen has a skeleton that runs along each wall, and
        # the branches of a ragged outline are not the centre line)
        # (without holes the filled particle is the mask, whose skeleton is made above)
        band_len, centre = _skeleton_path(skel if hole_px == 0 else skeletonize(filled), spacing)
        dist = cv2.distanceTransform(np.pad(filled, 1).astype(np.uint8), cv2.DIST_L2, 5)
        half_px = float(np.median(dist[1:-1, 1:-1][centre[:, 0], centre[:, 1]]))
        band_mm = (2 * half_px - 1) * mean_sp
        if (
            len(centre) >= 5
            and params.pair_min_spacing_mm <= band_mm <= params.pair_max_spacing_mm + 2 * mean_sp
            and max(band_len, proj_len) >= max(params.line_min_length_mm, 2.5 * band_mm)
        ):
            centre_mm = ((centre + np.array(origin)) * sp).astype(float)
            frac, tube_spacing, tube_wall = _tube_profile(
                centre_mm,
                _tangents(centre_mm, radius_mm=max(1.0, band_mm)),
                half_px * mean_sp,
                pixels,
                spacing,
                background,
                noise,
                params,
            )
            is_tube = frac >= params.tube_min_valley_fraction
    if not is_tube:
        tube_spacing = tube_wall = None
    return _Particle(
        area_mm2=area,
        diameter_mm=diameter,
        length_mm=length,
        width_mm=width,
        linearity=linearity,
        is_line=is_line,
        is_ring=is_ring,
        has_hole=has_hole,
        is_lucent=is_lucent,
        centre_depth=depth,
        is_tube=is_tube,
        tube_spacing_mm=tube_spacing,
        tube_wall_mm=tube_wall,
        is_arc=is_arc or is_ring,
        centroid_mm=pts.mean(0),
        skeleton_mm=skel_pts,
        tangents=tangents,
        curvature_per_mm=curvature,
    )


def _tube_profile(
    skel_pts: np.ndarray,
    tangents: np.ndarray,
    half_mm: float,
    pixels: np.ndarray,
    spacing: tuple[float, float],
    background: float,
    noise: float,
    params: DescribeParams,
) -> tuple[float, float | None, float | None]:
    """Cross-section profiles of a band along its centre line: is it a hollow tube?

    At every centre-line (skeleton) point the intensity is sampled along the normal out to
    1 mm beyond the band, the profiles are averaged over the points within 2 mm, and the
    straight line through the samples outside the band (the local soft tissue) is
    subtracted. The point is a lumen when the centre (|offset| <= 20% of the half-width)
    is darker than the bright maximum on *both* sides by ``lucent_min_depth`` of the rim
    contrast and by 3 standard errors of the noise.

    Returns
    -------
    valley_fraction : float
        Share of centre-line points that are a lumen.
    spacing_mm : float or None
        Median distance between the two walls' maxima at lumen points.
    wall_mm : float or None
        Band width minus wall spacing: the walls' thickness.
    """
    sp = np.array(spacing)
    step = 0.5 * float(sp.min())
    reach = half_mm + 1.0
    offsets = np.arange(-reach, reach + step / 2, step)
    normals = np.column_stack([-tangents[:, 1], tangents[:, 0]])
    coords = skel_pts[:, None, :] + offsets[None, :, None] * normals[:, None, :]
    prof = ndi.map_coordinates(
        pixels, [coords[..., 0] / sp[0], coords[..., 1] / sp[1]], order=1, mode="nearest"
    )
    # average each profile with its neighbours' (1 mm along the line), aligning normals
    tree = cKDTree(skel_pts)
    smooth = np.empty_like(prof)
    counts = np.empty(len(skel_pts))
    for i, nbrs in enumerate(tree.query_ball_point(skel_pts, r=2.0)):
        flip = (normals[nbrs] @ normals[i]) < 0
        rows = np.where(flip[:, None], prof[nbrs][:, ::-1], prof[nbrs])
        smooth[i] = rows.mean(0)
        counts[i] = len(nbrs)
    # the soft tissue under a vessel is rarely flat: remove the straight line through the
    # samples just outside the band on both sides
    outside = np.abs(offsets) >= half_mm + 0.2
    centre = np.abs(offsets) <= 0.2 * half_mm
    left = (offsets < -0.2 * half_mm) & (offsets >= -half_mm - 0.1)
    right = (offsets > 0.2 * half_mm) & (offsets <= half_mm + 0.1)
    if not (centre.any() and left.any() and right.any() and outside.sum() >= 4):
        return 0.0, None, None
    design = np.column_stack([np.ones(outside.sum()), offsets[outside]])
    coef, *_ = np.linalg.lstsq(design, smooth[:, outside].T, rcond=None)
    smooth = smooth - (coef[0][:, None] + coef[1][:, None] * offsets[None, :])
    c = smooth[:, centre].mean(1)
    lmax = smooth[:, left].max(1)
    rmax = smooth[:, right].max(1)
    rim = np.minimum(lmax, rmax)
    contrast = np.maximum(np.maximum(lmax, rmax), 1e-6)
    se = noise / np.sqrt(counts * centre.sum())
    valley = (rim - c >= params.lucent_min_depth * contrast) & (rim - c >= 3 * se)
    frac = float(valley.mean())
    if not valley.any():
        return frac, None, None
    lpos = offsets[left][np.argmax(smooth[:, left], axis=1)]
    rpos = offsets[right][np.argmax(smooth[:, right], axis=1)]
    spacing_mm = float(np.median((rpos - lpos)[valley]))
    wall_mm = max(2 * half_mm - spacing_mm, float(sp.mean()))
    return frac, spacing_mm, wall_mm


def _centre_dip(
    filled: np.ndarray,
    origin: tuple[int, int],
    pixels: np.ndarray,
    background: float,
    noise: float,
) -> float:
    """How much darker a particle's middle is than its rim.

    The filled particle is split into ten zones by the distance to its edge (as a fraction
    of the largest distance, ``rmax``): the rim is the brightest of the zones at 10-70% of
    ``rmax``, the middle the zones at >= 80%. For a round body the middle is its centre,
    for a band its centre line (the lumen of a calcified tube).

    Returns
    -------
    float
        (rim - middle) / (rim - background); 0 when not measurable or not significant
        (the difference must exceed 3 standard errors of the noise).
    """
    h, w = filled.shape
    img = pixels[origin[0] : origin[0] + h, origin[1] : origin[1] + w]
    dist = cv2.distanceTransform(np.pad(filled, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    rmax = float(dist.max())
    if rmax < 2.5:
        return 0.0
    frac = dist / rmax
    zones = np.minimum((frac * 10).astype(int), 9)
    inside = dist > 0
    means = np.full(10, np.nan)
    for z in range(1, 10):
        sel = inside & (zones == z)
        if sel.any():
            means[z] = float(img[sel].mean())
    middle_sel = inside & (frac >= 0.8)
    rim_zones = means[1:7]
    if middle_sel.sum() < 2 or not np.isfinite(rim_zones).any():
        return 0.0
    k = int(np.nanargmax(rim_zones)) + 1
    rim = float(means[k])
    middle = float(img[middle_sel].mean())
    contrast = rim - background
    se = noise / math.sqrt(float(middle_sel.sum()))
    if contrast <= 0 or rim - middle < 3 * se:
        return 0.0
    return (rim - middle) / contrast


# --------------------------------------------------------------------------- references


def _crop(
    bbox: tuple[int, int, int, int], margin: int, shape: tuple[int, int]
) -> tuple[slice, slice]:
    r0, c0, r1, c1 = bbox
    return (
        slice(max(r0 - margin, 0), min(r1 + margin, shape[0])),
        slice(max(c0 - margin, 0), min(c1 + margin, shape[1])),
    )


def _noise_sigma(values: np.ndarray, valid: np.ndarray) -> float:
    """Robust noise sigma from horizontal first differences of valid pixel pairs."""
    if values.ndim != 2 or values.shape[1] < 2:
        return 0.0
    d = np.diff(values, axis=1)[valid[:, 1:] & valid[:, :-1]]
    if d.size == 0:
        return 0.0
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / math.sqrt(2.0)


def _cortex_reference(
    anatomy: AnatomyMap,
    pixels: np.ndarray,
    centroid_rc: tuple[float, float],
    spacing: tuple[float, float],
    params: DescribeParams,
    image_refs: dict[str, tuple[float | None, str]] | None = None,
) -> tuple[float | None, str]:
    """Median intensity of the cortical bone nearest the finding, and where it came from.

    ``image_refs`` caches the whole-image fallback between the findings of one image
    (it needs the film-sized cortex map)."""
    dr, dc = spacing
    rad_r = int(params.cortex_search_mm / dr)
    rad_c = int(params.cortex_search_mm / dc)
    r, c = int(centroid_rc[0]), int(centroid_rc[1])
    sl = (
        slice(max(r - rad_r, 0), r + rad_r + 1),
        slice(max(c - rad_c, 0), c + rad_c + 1),
    )
    local = anatomy.cortex_at(sl)
    if np.count_nonzero(local) >= 20:
        return float(np.median(pixels[sl][local])), "cortex_local"
    if image_refs is not None and "image" in image_refs:
        return image_refs["image"]
    ref = _image_cortex_reference(anatomy, pixels)
    if image_refs is not None:
        image_refs["image"] = ref
    return ref


def _image_cortex_reference(anatomy: AnatomyMap, pixels: np.ndarray) -> tuple[float | None, str]:
    """The whole image's cortex (or bone) reference: the fallback of
    :func:`_cortex_reference`."""
    cortex = anatomy.cortex
    if np.count_nonzero(cortex) >= 20:
        return float(np.median(pixels[cortex])), "cortex_image"
    bone = anatomy.labels == np.uint8(Region.BONE)
    if np.count_nonzero(bone) >= 20:
        # cortex is the densest part of bone: its upper decile stands in for it
        return float(np.percentile(pixels[bone], 90)), "bone"
    return None, "none"


# --------------------------------------------------------------------------- location


@dataclass(frozen=True, slots=True)
class _JointIndex:
    label: int
    name: str | None
    tree: cKDTree


def _joint_index(anatomy: AnatomyMap, spacing: tuple[float, float]) -> list[_JointIndex]:
    """KD-trees of each joint space's edge pixels (mm), built once per image.

    Each joint is measured at the film's resolution inside its own box (grown by one
    pixel, so that the 3x3 erosion sees the same neighbours as on the whole film)."""
    out: list[_JointIndex] = []
    sp = np.array(spacing)
    names = {j.label: j.name for j in anatomy.joints}
    grid = anatomy.grid_joint_labels
    boxes = ndi.find_objects(grid) if grid.size and grid.max(initial=0) > 0 else []
    h, w = anatomy.shape
    for lab, box in enumerate(boxes, start=1):
        if box is None:
            continue
        rows, cols = anatomy.film_window(box)
        r0, c0 = max(rows.start - 1, 0), max(cols.start - 1, 0)
        win = (slice(r0, min(rows.stop + 1, h)), slice(c0, min(cols.stop + 1, w)))
        m = anatomy.joint_labels_at(win) == lab
        if not m.any():
            continue
        edge = m & ~cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        rr, cc = np.nonzero(edge if edge.any() else m)
        pts = np.column_stack([rr + r0, cc + c0]) * sp
        out.append(_JointIndex(lab, names.get(lab), cKDTree(pts)))
    return out


def _location(
    det: Detection,
    anatomy: AnatomyMap,
    joints: list[_JointIndex],
    spacing: tuple[float, float],
    params: DescribeParams,
) -> tuple[Location, dict[str, Any]]:
    """The finding's Location and the measurements behind it (``joint_space_overlap``,
    ``particle_joint_distance_mm`` and ``particle_bone_distance_mm``: medians over the
    particles of each particle's nearest distance)."""
    r0, c0, r1, c1 = det.bbox
    mask = det.mask
    n_px = int(np.count_nonzero(mask))
    extra: dict[str, Any] = {
        "joint_space_overlap": 0.0,
        "particle_joint_distance_mm": None,
        "particle_bone_distance_mm": None,
    }
    if n_px == 0:
        return Location(), extra
    sp = np.array(spacing)
    box = (slice(r0, r1), slice(c0, c1))
    bone_crop = anatomy.distance_to_bone_mm_at(box)
    dist_bone = bone_crop[mask]
    d_bone = float(dist_bone.min()) if np.isfinite(dist_bone).any() else None
    jl_box = anatomy.joint_labels_at(box)
    jl = jl_box[mask]
    overlap = float(np.count_nonzero(jl) / len(jl))
    extra["joint_space_overlap"] = round(overlap, 3)
    # per particle: nearest distance to bone and to the nearest joint's space
    part_bone: list[float] = []
    part_joint: list[float] = []
    best: tuple[float, _JointIndex] | None = None
    for i, s in enumerate(ndi.find_objects(det.particles), start=1):
        if s is None:
            continue
        pm = det.particles[s] == i
        pr, pc = np.nonzero(pm)
        db = bone_crop[s][pm]
        if np.isfinite(db).any():
            part_bone.append(float(db.min()))
        step = max(1, len(pr) // 500)
        pts = np.column_stack([pr[::step] + r0 + s[0].start, pc[::step] + c0 + s[1].start]) * sp
        inside = jl_box[s][pm]
        pj = math.inf
        for j in joints:
            dmin = 0.0 if np.any(inside == j.label) else float(j.tree.query(pts, k=1)[0].min())
            pj = min(pj, dmin)
            if best is None or dmin < best[0]:
                best = (dmin, j)
        if math.isfinite(pj):
            part_joint.append(pj)
    med_bone = float(np.median(part_bone)) if part_bone else None
    med_joint = float(np.median(part_joint)) if part_joint else None
    extra["particle_bone_distance_mm"] = _rnd(med_bone)
    extra["particle_joint_distance_mm"] = _rnd(med_joint)
    # the capsule is not visible on a radiograph: a finding is intra-articular when it lies
    # in the joint space, or when its particles sit against the bone (the synovium lines
    # it) close to the joint line, as loose bodies in the recesses do; periarticular
    # masses (tumoral calcinosis) lie away from the bone (DOMAIN.md)
    n_parts = len(part_bone)
    intra = overlap >= params.intra_articular_min_overlap or (
        n_parts >= params.capsule_min_bodies
        and med_bone is not None
        and med_joint is not None
        and med_bone <= params.capsule_bone_mm
        and med_joint <= params.capsule_joint_mm
    )
    if best is None:
        return Location(intra_articular=bool(intra), distance_to_bone_mm=_rnd(d_bone)), extra
    return Location(
        nearest_joint=best[1].name,
        distance_to_joint_mm=round(best[0], 2),
        intra_articular=bool(intra),
        distance_to_bone_mm=_rnd(d_bone),
    ), extra


# --------------------------------------------------------------------------- descriptors


def _max_feret_mm(mask: np.ndarray, origin: tuple[int, int], spacing: tuple[float, float]) -> float:
    """Maximum Feret diameter (mm) of a pixel set: hull vertex spread plus one pixel."""
    rr, cc = np.nonzero(mask)
    if len(rr) == 0:
        return 0.0
    sp = np.array(spacing)
    pts = np.column_stack([rr, cc]).astype(np.float32)
    hull = cv2.convexHull(pts[:, ::-1].copy()).reshape(-1, 2)[:, ::-1]
    h = hull.astype(float) * sp
    if len(h) == 1:
        return float(np.mean(sp))
    d = np.sqrt(((h[:, None, :] - h[None, :, :]) ** 2).sum(-1))
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    direction = (h[j] - h[i]) / max(d[i, j], 1e-9)
    return float(d[i, j] + np.abs(direction) @ sp)


def _parallel_lines(
    lines: list[_Particle], params: DescribeParams
) -> tuple[bool, float | None, int]:
    """Tram-track test over the skeletons of the line particles.

    Every skeleton point looks for the nearest point of another line particle lying
    across (not along) its tangent, ``pair_min``-``pair_max`` mm away. The finding has a
    parallel pair when at least ``pair_min_coverage`` of the points have such a partner
    and the partner distances are consistent (interquartile range <= 60% of the median).
    Returns (parallel, median spacing mm, number of lines taking part).
    """
    if not lines:
        return False, None, 0
    pts = np.concatenate([p.skeleton_mm for p in lines])
    tan = np.concatenate([p.tangents for p in lines])
    ids = np.concatenate([np.full(len(p.skeleton_mm), i) for i, p in enumerate(lines)])
    if len(pts) < 4:
        return False, None, 0
    n_pts = len(pts)
    partner = np.full(n_pts, np.nan)
    partner_id = np.full(n_pts, -1)
    k = min(n_pts, 32)
    for i in range(len(lines)):
        own = np.flatnonzero(ids == i)
        # partners on other lines, and on the same particle when it is the closed outline
        # of a tube (the far wall); a straight line's own points lie along its tangent
        other = np.flatnonzero(ids != i)
        cand = [other] if len(other) else []
        if lines[i].has_hole:
            cand.append(own)
        best = np.full(len(own), np.inf)
        best_id = np.full(len(own), -1)
        for pool in cand:
            kk = min(len(pool), k)
            dists, idx = cKDTree(pts[pool]).query(
                pts[own], k=kk, distance_upper_bound=params.pair_max_spacing_mm
            )
            dists = dists.reshape(len(own), kk)
            idx = idx.reshape(len(own), kk)
            valid = np.isfinite(dists) & (idx < len(pool))
            valid &= dists >= params.pair_min_spacing_mm
            j = pool[np.where(valid, idx, 0)]
            with np.errstate(invalid="ignore", divide="ignore"):
                v = (pts[j] - pts[own][:, None, :]) / np.where(valid, dists, 1.0)[..., None]
            # across the line: the offset is at least 60 degrees off the tangent
            valid &= np.abs((v * tan[own][:, None, :]).sum(-1)) <= 0.5
            first = np.argmax(valid, axis=1)
            rows = np.arange(len(own))
            has = valid[rows, first]
            d_first = np.where(has, dists[rows, first], np.inf)
            better = d_first < best
            best[better] = d_first[better]
            best_id[better] = ids[j[rows, first]][better]
        found = np.isfinite(best)
        partner[own[found]] = best[found]
        partner_id[own[found]] = best_id[found]
    have = np.isfinite(partner)
    coverage = float(have.mean())
    if coverage < params.pair_min_coverage:
        return False, None, 0
    q1, med, q3 = np.percentile(partner[have], [25, 50, 75])
    if q3 - q1 > 0.6 * med:
        return False, None, 0
    taking = len(set(ids[have].tolist()) | set(partner_id[have].tolist()))
    return True, float(med), taking


def _septa(particles: list[_Particle], params: DescribeParams) -> bool:
    """Lucent septa: two or more globules whose edges are closer than ``septa_gap_mm``."""
    globs = [p for p in particles if p.diameter_mm >= params.globule_min_diameter_mm]
    if len(globs) < 2:
        return False
    for i in range(len(globs)):
        for j in range(i + 1, len(globs)):
            a, b = globs[i], globs[j]
            centre_gap = float(np.linalg.norm(a.centroid_mm - b.centroid_mm))
            edge_gap = centre_gap - (a.diameter_mm + b.diameter_mm) / 2
            if edge_gap <= params.septa_gap_mm:
                return True
    return False


def _margin_width_mm(
    patch: np.ndarray, mask: np.ndarray, background: float, spacing_mm: float
) -> float | None:
    """Width of the finding's margin: contrast / median edge gradient, mm.

    The contrast is the 90th percentile of the finding's pixels over the soft-tissue
    reference; the gradient is the steepest magnitude of the Gaussian-smoothed (sigma 1
    pixel) image within 2 pixels of each boundary pixel, median over the boundary. A
    linear ramp from soft tissue to the finding over w mm gives w. Sharp, well-defined
    margins (a phlebolith, DOMAIN.md: smooth) measure under ~1.2 mm on the tuning set;
    ill-defined, cloud-like ones (amorphous) more.
    """
    edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not edge.any():
        return None
    smooth = cv2.GaussianBlur(patch.astype(np.float32), (0, 0), 1.0)
    gy, gx = np.gradient(smooth)
    # the steepest gradient within 2 pixels of each boundary pixel: the measure should not
    # depend on where exactly a detector's threshold put the boundary
    steepest = cv2.dilate(np.hypot(gy, gx).astype(np.float32), np.ones((5, 5), np.uint8))
    grad = float(np.median(steepest[edge])) / spacing_mm
    contrast = float(np.percentile(patch[mask], 90)) - background
    if grad <= 0 or contrast <= 0:
        return None
    return contrast / grad


def _rnd(x: float | None, nd: int = 2) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def _measure(
    det: Detection,
    rg: Radiograph,
    anatomy: AnatomyMap,
    all_mask: np.ndarray,
    params: DescribeParams,
    image_refs: dict[str, tuple[float | None, str]] | None = None,
) -> tuple[dict[str, Any], float, tuple[float, float]]:
    """Descriptors, area (mm2) and centroid (row, col) of one detection."""
    spacing = rg.pixel_spacing_mm
    dr, dc = spacing
    pixels = rg.pixels
    r0, c0, r1, c1 = det.bbox
    labels = det.particles
    mask = labels > 0
    area = float(np.count_nonzero(mask) * dr * dc)
    rr, cc = np.nonzero(mask)
    centroid = (float(rr.mean() + r0), float(cc.mean() + c0))

    # local soft-tissue reference: a ring outside the finding, excluding other findings,
    # bone, joint spaces' neighbours are kept (they are soft tissue density)
    gap_px = max(1, round(params.background_gap_mm / min(dr, dc)))
    ring_px = max(2, round(params.background_ring_mm / min(dr, dc)))
    margin = gap_px + ring_px + 1
    sl = _crop(det.bbox, margin, rg.shape)
    sub = np.zeros((sl[0].stop - sl[0].start, sl[1].stop - sl[1].start), np.uint8)
    sub[r0 - sl[0].start : r1 - sl[0].start, c0 - sl[1].start : c1 - sl[1].start] = mask
    k_in = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap_px + 1, 2 * gap_px + 1))
    k_out = cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * (gap_px + ring_px) + 1, 2 * (gap_px + ring_px) + 1)
    )
    ring = cv2.dilate(sub, k_out).astype(bool) & ~cv2.dilate(sub, k_in).astype(bool)
    lab = anatomy.labels_at(sl)
    soft = (lab == np.uint8(Region.SOFT_TISSUE)) | (lab == np.uint8(Region.JOINT_SPACE))
    ring_soft = ring & soft & ~all_mask[sl]
    patch = pixels[sl]
    ref_pixels = patch[ring_soft] if ring_soft.sum() >= 10 else patch[ring & ~all_mask[sl]]
    if ref_pixels.size == 0:
        ref_pixels = patch[~sub.astype(bool)] if (~sub.astype(bool)).any() else patch.ravel()
    background = float(np.median(ref_pixels))
    noise = _noise_sigma(patch, ~all_mask[sl] & soft)
    if noise <= 0:
        noise = float(np.std(ref_pixels)) or 1e-6
    finding_mean = float(pixels[r0:r1, c0:c1][mask].mean())
    margin_mm = _margin_width_mm(patch, sub.astype(bool), background, math.sqrt(dr * dc))
    contrast = finding_mean - background
    cortex, cortex_source = _cortex_reference(
        anatomy, pixels, centroid, spacing, params, image_refs
    )
    density = None
    if cortex is not None and cortex - background > noise:
        density = contrast / (cortex - background)

    # particles
    parts: list[_Particle] = []
    for i, s in enumerate(ndi.find_objects(labels), start=1):
        if s is None:
            continue
        pm = labels[s] == i
        parts.append(
            _measure_particle(
                pm,
                (r0 + s[0].start, c0 + s[1].start),
                pixels,
                spacing,
                background,
                noise,
                params,
            )
        )
    diam = np.array([p.diameter_mm for p in parts])
    n = len(parts)
    cv = float(diam.std() / diam.mean()) if n >= 2 and diam.mean() > 0 else 0.0
    extent = _max_feret_mm(mask, (r0, c0), spacing)

    # shape of the whole finding
    pts = np.column_stack([rr, cc]) * np.array(spacing)
    vals, _ = _pca(pts)
    linearity_union = 0.0 if vals[0] <= 0 else 1.0 - math.sqrt(vals[1] / vals[0])
    eccentricity = 0.0 if vals[0] <= 0 else math.sqrt(max(0.0, 1.0 - vals[1] / vals[0]))
    # area-weighted mean of particle linearity: robust to curved and dashed vessels
    lin_parts = float(sum(p.linearity * p.area_mm2 for p in parts) / max(area, 1e-9))
    linearity = max(linearity_union, lin_parts)
    hull_pts = np.column_stack([cc, rr]).astype(np.float32)
    hull_area_px = cv2.contourArea(cv2.convexHull(hull_pts)) if len(rr) >= 3 else 0.0
    # pixel-centre hull underestimates the covered area by about half a perimeter
    hull_area_px += cv2.arcLength(cv2.convexHull(hull_pts), True) / 2 + 1 if len(rr) >= 3 else 0
    solidity = min(1.0, float(np.count_nonzero(mask)) / hull_area_px) if hull_area_px else 1.0

    tubes = [p for p in parts if p.is_tube]
    lines = [p for p in parts if p.is_line and not p.is_tube]
    line_area = sum(p.area_mm2 for p in lines)
    tube_area = sum(p.area_mm2 for p in tubes)
    parallel, spacing_mm, _ = _parallel_lines(lines, params)
    thickness = None
    if lines:
        thickness = float(np.median([p.width_mm for p in lines]))
    if tubes and tube_area >= line_area:
        # the walls of a filled tube: spacing between the bright rims, their thickness
        parallel = True
        spacing_mm = float(np.median([p.tube_spacing_mm for p in tubes]))
        thickness = float(np.median([p.tube_wall_mm for p in tubes]))
    curv_src = (
        max(lines + tubes, key=lambda p: p.length_mm)
        if lines or tubes
        else max(parts, key=lambda p: p.area_mm2)
    )
    curvature = curv_src.curvature_per_mm if (lines or tubes or curv_src.linearity > 0.5) else None

    bodies = [
        p
        for p in parts
        if params.lucent_min_diameter_mm <= p.diameter_mm <= params.lucent_max_diameter_mm
        and not p.is_line
        and not p.is_tube
    ]
    lucent = bool(bodies) and sum(p.is_lucent for p in bodies) / len(bodies) >= 0.5
    ring_like = [
        p
        for p in parts
        if p.diameter_mm >= params.lucent_min_diameter_mm / 2 and not p.is_line and not p.is_tube
    ]
    n_ring = sum(p.is_ring or p.is_lucent or p.is_arc for p in ring_like)
    # DOMAIN.md: *many* ring-and-arc bodies (synovial chondromatosis)
    ring_and_arc = n_ring >= params.ring_min_bodies and n_ring / max(len(ring_like), 1) >= 0.4
    septa = _septa(parts, params)

    if extent <= params.focal_max_extent_mm:
        distribution = "focal"
    elif extent < params.diffuse_min_extent_mm:
        distribution = "regional"
    else:
        distribution = "diffuse"

    descriptors: dict[str, Any] = {
        "n_particles": n,
        "particle_diameter_mean_mm": _rnd(float(diam.mean()) if n else None, 3),
        "particle_diameter_max_mm": _rnd(float(diam.max()) if n else None, 3),
        "particle_size_cv": _rnd(cv, 3),
        "similar_sized": bool(n >= 2 and cv <= params.similar_cv_max),
        "area_mm2": _rnd(area, 3),
        "extent_mm": _rnd(extent),
        "density_rel_cortex": _rnd(density, 3),
        "density_reference": cortex_source,
        "cnr": _rnd(contrast / noise if noise > 0 else None),
        "linearity": _rnd(linearity, 3),
        "curvature_per_mm": _rnd(curvature, 4),
        "parallel_pair": bool(parallel),
        "line_spacing_mm": _rnd(spacing_mm),
        "line_thickness_mm": _rnd(thickness),
        "n_lines": len(lines),
        "n_tubes": len(tubes),
        "line_fraction": _rnd((line_area + tube_area) / area if area > 0 else 0.0, 3),
        "lucent_center": bool(lucent),
        "lucent_depth": _rnd(
            float(np.median([p.centre_depth for p in bodies])) if bodies else None, 3
        ),
        "ring_and_arc": bool(ring_and_arc),
        "n_ring_or_arc": int(n_ring),
        "ring_or_arc_fraction": _rnd(n_ring / len(ring_like) if ring_like else 0.0, 3),
        "septa": bool(septa),
        "margin_width_mm": _rnd(margin_mm),
        "solidity": _rnd(solidity, 3),
        "eccentricity": _rnd(eccentricity, 3),
        "distribution": distribution,
    }
    return descriptors, area, centroid


# --------------------------------------------------------------------------- classifier


def pattern_features(desc: Mapping[str, Any], loc: Location) -> dict[str, float]:
    """The model's named features (see ``FEATURES``) from descriptors and location."""

    def num(key: str, default: float) -> float:
        v = desc.get(key)
        return default if v is None else float(v)

    n = max(int(desc.get("n_particles") or 1), 1)
    d_joint = loc.distance_to_joint_mm
    d_bone = desc.get("particle_bone_distance_mm", loc.distance_to_bone_mm)
    # one or two round bodies of the phlebolith's size (DOMAIN.md: 2-5 mm): 1 inside that
    # range, log-normal tails outside, times roundness
    d_max = max(num("particle_diameter_max_mm", 1.0), 0.1)
    phleb = 0.0
    if n <= 2:
        edge = min(max(d_max, 2.0), 5.0)
        phleb = math.exp(-((math.log(d_max / edge) / 0.25) ** 2)) * (1 - num("linearity", 0.0))
    return {
        "bias": 1.0,
        "log_n_particles": math.log(n),
        "log_diameter_mean": math.log(max(num("particle_diameter_mean_mm", 1.0), 0.1)),
        "log_diameter_max": math.log(max(num("particle_diameter_max_mm", 1.0), 0.1)),
        "log_extent": math.log(max(num("extent_mm", 1.0), 0.1)),
        "size_cv": min(num("particle_size_cv", 0.0), 2.0),
        "linearity": num("linearity", 0.0),
        "line_fraction": num("line_fraction", 0.0),
        "parallel_pair": float(bool(desc.get("parallel_pair"))),
        "lucent_center": float(bool(desc.get("lucent_center"))),
        "lucent_depth": min(max(num("lucent_depth", 0.0), 0.0), 1.0),
        "phlebolith_size": phleb,
        "ring_and_arc": num("ring_or_arc_fraction", 0.0) if desc.get("ring_and_arc") else 0.0,
        "solidity": num("solidity", 1.0),
        "log_margin_width": math.log(min(max(num("margin_width_mm", 1.5), 0.1), 20.0)),
        "septa": float(bool(desc.get("septa"))),
        "joint_space_overlap": num("joint_space_overlap", 0.0),
        "joint_proximity": 0.0 if d_joint is None else math.exp(-d_joint / 10.0),
        "bone_proximity": 0.0 if d_bone is None else math.exp(-d_bone / 3.0),
        "density_rel_cortex": min(max(num("density_rel_cortex", 0.5), 0.0), 2.0),
    }


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _driver_sentence(name: str, desc: Mapping[str, Any], loc: Location) -> str | None:
    """A sentence naming the descriptor behind a feature and its measured value."""
    joint = loc.nearest_joint or "nearest"
    n = desc.get("n_particles")
    match name:
        case "parallel_pair":
            if desc.get("parallel_pair"):
                n_lines, n_tubes = desc.get("n_lines") or 0, desc.get("n_tubes") or 0
                if n_tubes and n_tubes * 2 >= n_lines:
                    what = f"{n_tubes} tube segment{'s' if n_tubes > 1 else ''} with lucent lumen,"
                    return f"{what} walls {desc.get('line_spacing_mm')} mm apart (tram-track)"
                what = "parallel linear particles" if n_lines > 1 else "linear particle, walls"
                return f"{n_lines} {what} {desc.get('line_spacing_mm')} mm apart (tram-track)"
            return "no parallel line pair"
        case "lucent_center":
            if desc.get("lucent_center"):
                return "round body with a lucent centre"
            return "no lucent centre"
        case "lucent_depth":
            dep = desc.get("lucent_depth")
            if dep:
                return f"centre {min(100 * dep, 100):.0f}% darker than the rim"
            return None
        case "phlebolith_size":
            return (
                f"{n} round bod{'ies' if n != 1 else 'y'} of "
                f"{desc.get('particle_diameter_max_mm'):.1f} mm (phlebolith size 2-5 mm)"
            )
        case "ring_and_arc":
            if desc.get("ring_and_arc"):
                sim = ", similar-sized" if desc.get("similar_sized") else ""
                return f"{desc.get('n_ring_or_arc')} ring-and-arc bodies{sim}"
            return None
        case "log_n_particles":
            return f"{n} particle{'s' if n != 1 else ''}"
        case "log_diameter_mean":
            return f"particles {desc.get('particle_diameter_mean_mm'):.1f} mm mean diameter"
        case "log_diameter_max":
            return f"largest particle {desc.get('particle_diameter_max_mm'):.1f} mm"
        case "log_extent":
            return f"extent {desc.get('extent_mm'):.0f} mm"
        case "size_cv":
            sim = " (similar-sized)" if desc.get("similar_sized") else ""
            return f"particle size CV {desc.get('particle_size_cv'):.2f}{sim}"
        case "linearity":
            return f"linearity {desc.get('linearity'):.2f}"
        case "line_fraction":
            t = desc.get("line_thickness_mm")
            thick = f", {t:.1f} mm thick" if t is not None else ""
            return f"{100 * float(desc.get('line_fraction') or 0):.0f}% of the area in lines{thick}"
        case "solidity":
            return f"solidity {desc.get('solidity'):.2f}"
        case "log_margin_width":
            w = desc.get("margin_width_mm")
            if w is None:
                return None
            # wording only; on the tuning set phleboliths measure <= 0.95 mm, clumps >= 1.2
            kind = "ill-defined" if w > 1.1 else "sharp"
            return f"{kind} margin ({w:.1f} mm wide)"
        case "septa":
            return "lucent septa between globules" if desc.get("septa") else None
        case "joint_space_overlap":
            ov = float(desc.get("joint_space_overlap") or 0.0)
            if ov > 0:
                return f"{100 * ov:.0f}% inside the {joint} joint space"
            if loc.intra_articular:
                return f"in the {joint} joint's recesses, against the bone"
            return "outside the joint space"
        case "joint_proximity":
            if loc.distance_to_joint_mm is None:
                return "no joint on the film"
            return f"{loc.distance_to_joint_mm:.1f} mm from the {joint} joint space"
        case "bone_proximity":
            d_bone = desc.get("particle_bone_distance_mm", loc.distance_to_bone_mm)
            if d_bone is None:
                return "no bone on the film"
            return f"{d_bone:.1f} mm from the bone surface"
        case "density_rel_cortex":
            d = desc.get("density_rel_cortex")
            return None if d is None else f"density {d:.2f} x cortical bone"
    return None


def _classify(
    desc: Mapping[str, Any], loc: Location, params: DescribeParams
) -> tuple[Pattern, dict[Pattern, float], tuple[str, ...]]:
    feats = pattern_features(desc, loc)
    f = np.array([feats[name] for name in params.features])
    w = np.array([params.weights(p) for p in PATTERNS])
    z = w @ f
    probs = _softmax(z)
    order = np.argsort(probs)[::-1]
    best, second = int(order[0]), int(order[1])
    scores = {p: round(float(probs[i]), 4) for i, p in enumerate(PATTERNS)}
    # rounding must not break the sum: give the residue to the winner
    scores[PATTERNS[best]] = round(scores[PATTERNS[best]] + 1.0 - sum(scores.values()), 4)
    contrib = (w[best] - w[second]) * f
    drivers: list[str] = []
    for k in np.argsort(contrib)[::-1]:
        name = params.features[int(k)]
        if name == "bias" or contrib[k] <= 0.1:
            continue
        s = _driver_sentence(name, desc, loc)
        if s is not None and s not in drivers:
            drivers.append(s)
        if len(drivers) == 3:
            break
    return PATTERNS[best], scores, tuple(drivers)


# --------------------------------------------------------------------------- stage


def _image_descriptors(
    items: list[Description], anatomy: AnatomyMap, params: DescribeParams
) -> dict[str, Any]:
    n = len(items)
    total = float(sum(d.area_mm2 for d in items))
    # single-linkage grouping of findings closer than site_separation_mm
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    cents = [np.array(d.centroid_rc) for d in items]
    for i in range(n):
        for j in range(i + 1, n):
            dist = float(np.linalg.norm(cents[i] - cents[j]))
            if dist <= params.site_separation_mm:
                parent[find(i)] = find(j)
    n_sites = len({find(i) for i in range(n)})
    if n == 0:
        distribution = None
    elif n_sites >= 3 or any(d.descriptors.get("distribution") == "diffuse" for d in items):
        distribution = "diffuse"
    elif n_sites == 2 or any(d.descriptors.get("distribution") == "regional" for d in items):
        distribution = "regional"
    else:
        distribution = "focal"
    return {
        "n_findings": n,
        "n_sites": n_sites,
        "total_area_mm2": round(total, 3),
        "distribution": distribution,
        "body_part": anatomy.body_part,
    }


def describe(
    radiograph: Radiograph,
    anatomy: AnatomyMap,
    detections: Detections,
    *,
    params: DescribeParams,
) -> Descriptions:
    """Measure and classify every detection.

    Parameters
    ----------
    radiograph : Radiograph
        Canonical pixels (higher = denser) and the pixel spacing every mm figure uses.
    anatomy : AnatomyMap
        Bone, cortex and joint spaces for the density reference and the location.
    detections : Detections
        The findings with their particle labels.
    params : DescribeParams

    Returns
    -------
    Descriptions
        One :class:`Description` per detection (same order), plus image-level
        ``n_findings``, ``n_sites``, ``total_area_mm2``, ``distribution``, ``body_part``.

    Examples
    --------
    >>> import numpy as np
    >>> from calcimg.anatomy import AnatomyMap
    >>> from calcimg.detect import Detections
    >>> from calcimg.radiograph import Radiograph, SpacingSource
    >>> rg = Radiograph(pixels=np.zeros((8, 8), np.float32), pixel_spacing_mm=(0.2, 0.2),
    ...                 spacing_source=SpacingSource.PIXEL_SPACING, calibrated=True)
    >>> am = AnatomyMap.from_arrays(labels=np.ones((8, 8), np.uint8), cortex=np.zeros((8, 8), bool),
    ...                 joint_labels=np.zeros((8, 8), np.int32), joints=(), confounders=(),
    ...                 distance_to_bone_mm=np.full((8, 8), np.inf, np.float32))
    >>> describe(rg, am, Detections(), params=DescribeParams()).items
    ()
    """
    spacing = radiograph.pixel_spacing_mm
    # spacing in mm for every position: centroids are converted for the site grouping
    all_mask = np.zeros(radiograph.shape, dtype=bool)
    for det in detections.items:
        r0, c0, r1, c1 = det.bbox
        all_mask[r0:r1, c0:c1] |= det.mask
    joints = _joint_index(anatomy, spacing) if detections.items else []
    items: list[Description] = []
    image_refs: dict[str, tuple[float | None, str]] = {}
    for det in detections.items:
        if not det.mask.any():
            continue
        desc, area, centroid = _measure(det, radiograph, anatomy, all_mask, params, image_refs)
        loc, loc_desc = _location(det, anatomy, joints, spacing, params)
        desc.update(loc_desc)
        pattern, scores, drivers = _classify(desc, loc, params)
        items.append(
            Description(
                detection_id=det.id,
                pattern=pattern,
                pattern_scores=scores,
                descriptors=desc,
                location=loc,
                area_mm2=round(area, 3),
                centroid_rc=(round(centroid[0], 2), round(centroid[1], 2)),
                drivers=drivers,
            )
        )
    image = _image_descriptors(
        [
            Description(
                detection_id=d.detection_id,
                pattern=d.pattern,
                pattern_scores=d.pattern_scores,
                descriptors=d.descriptors,
                location=d.location,
                area_mm2=d.area_mm2,
                centroid_rc=(d.centroid_rc[0] * spacing[0], d.centroid_rc[1] * spacing[1]),
            )
            for d in items
        ],
        anatomy,
        params,
    )
    return Descriptions(items=tuple(items), image_descriptors=image)
