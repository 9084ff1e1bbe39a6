"""Per-region features: shape (pyradiomics shape2D, in mm) and first-order intensity.

:func:`region_features` is a pure function of a radiograph's pixels, an integer label
mask of the same shape and the pixel spacing. It does not know where the regions came
from: the detector's findings (``Result.label_mask``) and a researcher's own annotation
give the same features for the same pixels.

Definitions follow pyradiomics 3.1 (``shape2D`` and ``firstorder``) where they overlap,
computed in closed form rather than with its C loops:

* The mesh is pyradiomics' marching-squares contour through the midpoints of the edges
  between region and background pixels, with the saddle squares (two diagonal corners
  inside) cut as two separate corners. Its area and perimeter are sums over the 16
  square configurations, so they are counted with one ``bincount``.
* The maximum diameter is the largest distance between two mesh vertices (edge
  midpoints), taken over their convex hull.
* Axis lengths come from the eigenvalues of the covariance of the pixel centres' physical
  coordinates (population covariance), ``4 * sqrt(lambda)``.

Every definition, with its unit and standard name, is in
:data:`calcimg.features.registry.FEATURES`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from calcimg.errors import InputError
from calcimg.params import check_range
from calcimg.radiograph import Radiograph

__all__ = [
    "FeatureParams",
    "intensity_features",
    "measure_regions",
    "region_features",
    "shape_features",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureParams:
    """Parameters of the feature extractor (``--set features.NAME=VALUE``).

    Attributes
    ----------
    bin_width : float
        Width of the intensity bins for entropy and uniformity, in canonical intensity
        units (stored values after the Modality LUT). pyradiomics ``binWidth``; its
        default 25 is kept so that values compare directly.
    voxel_array_shift : float
        Added to intensities before energy, total energy and RMS (pyradiomics
        ``voxelArrayShift``, default 0).
    ring_width_mm : float
        Width of the local background ring around each region for contrast and CNR.
    ring_gap_mm : float
        Gap left between the region and its ring, so that the blurred edge of a
        calcification does not count as background.
    min_ring_pixels : int
        Rings with fewer pixels (the region fills the film) give no contrast (None).
    site_distance_mm : float
        Findings whose centroids are more than this apart are separate sites
        (``DOMAIN.md``: 50 mm); image level ``n_sites``.
    ring_soft_tissue_only : bool
        Restrict the ring to soft tissue and joint space of the anatomy map, so that
        bone next to a periarticular deposit does not count as its background (the
        extractor maps the anatomy for this; :func:`region_features` takes the mask).
    """

    bin_width: float = 25.0
    voxel_array_shift: float = 0.0
    ring_width_mm: float = 2.0
    ring_gap_mm: float = 0.5
    min_ring_pixels: int = 10
    site_distance_mm: float = 50.0
    ring_soft_tissue_only: bool = True

    def __post_init__(self) -> None:
        check_range("features.bin_width", self.bin_width, 0.0, 1e9, low_open=True)
        check_range("features.voxel_array_shift", self.voxel_array_shift, -1e9, 1e9)
        check_range("features.ring_width_mm", self.ring_width_mm, 0.0, 100.0, low_open=True)
        check_range("features.ring_gap_mm", self.ring_gap_mm, 0.0, 100.0)
        check_range("features.min_ring_pixels", self.min_ring_pixels, 1, 1e9)
        check_range("features.site_distance_mm", self.site_distance_mm, 0.0, 1e6, low_open=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every parameter (for the parameter hash)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# --------------------------------------------------------------------- marching squares
# Square index = p0 + 2*p1 + 4*p2 + 8*p3 with p0 top-left, p1 top-right, p2 bottom-right,
# p3 bottom-left (pyradiomics cshape.c gridAngles2D). For each index: how much of the
# square (between four pixel centres) lies inside the mesh, and which kind of lines it
# holds. Line kinds: "d" a diagonal cutting one corner, "h" a horizontal line across the
# square (length = column spacing), "v" a vertical one (length = row spacing).
_AREA_FRACTION = np.array(
    [
        *(0, 1 / 8, 1 / 8, 1 / 2, 1 / 8, 1 / 4, 1 / 2, 7 / 8),  # indices 0-7
        *(1 / 8, 1 / 2, 1 / 4, 7 / 8, 1 / 2, 7 / 8, 7 / 8, 1),  # indices 8-15
    ],
    dtype=np.float64,
)
_N_DIAGONAL = np.array([0, 1, 1, 0, 1, 2, 0, 1, 1, 0, 2, 1, 0, 1, 1, 0], dtype=np.float64)
_N_HORIZONTAL = np.zeros(16)
_N_HORIZONTAL[[3, 12]] = 1
_N_VERTICAL = np.zeros(16)
_N_VERTICAL[[6, 9]] = 1


def _square_histogram(padded: np.ndarray) -> np.ndarray:
    """Counts of the 16 marching-squares configurations of a zero-padded bool mask."""
    m = padded.astype(np.uint8)
    idx = m[:-1, :-1] + 2 * m[:-1, 1:] + 4 * m[1:, 1:] + 8 * m[1:, :-1]
    return np.bincount(idx.ravel(), minlength=16).astype(np.float64)


def _mesh_vertices2(padded: np.ndarray) -> np.ndarray:
    """Mesh vertices (edge midpoints) as int32 (n, 2) (row, col) in half-pixel units.

    A vertex sits halfway between every pair of 4-adjacent pixels where one is in the
    region and the other is not; doubling the coordinates makes them integers, so the
    convex hull is exact.
    """
    vr, vc = np.nonzero(padded[1:, :] != padded[:-1, :])  # between (r, c) and (r + 1, c)
    hr, hc = np.nonzero(padded[:, 1:] != padded[:, :-1])  # between (r, c) and (r, c + 1)
    rows = np.concatenate([2 * vr + 1, 2 * hr])
    cols = np.concatenate([2 * vc, 2 * hc + 1])
    return np.stack([rows, cols], axis=1).astype(np.int32)


def _hull(points2: np.ndarray) -> np.ndarray:
    """Convex hull vertices of integer (row, col) points, int64 (k, 2)."""
    if len(points2) <= 2:
        return points2.astype(np.int64)
    # cv2 takes (x, y) points; the hull is the same set whichever order the axes have
    hull = cv2.convexHull(np.ascontiguousarray(points2[:, ::-1]))
    return np.asarray(hull, dtype=np.int64).reshape(-1, 2)[:, ::-1]


def _max_distance_mm(hull2: np.ndarray, spacing: tuple[float, float]) -> float:
    """Largest distance between hull points given in half-pixel units, in mm."""
    pts = hull2.astype(np.float64) * (np.array(spacing) / 2.0)
    if len(pts) < 2:
        return 0.0
    d = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((d**2).sum(axis=2).max()))


def _polygon_area(hull2: np.ndarray, spacing: tuple[float, float]) -> float:
    """Area (mm2) of a convex polygon given in half-pixel units (shoelace formula)."""
    if len(hull2) < 3:
        return 0.0
    r = hull2[:, 0].astype(np.float64)
    c = hull2[:, 1].astype(np.float64)
    twice = abs(float(np.dot(r, np.roll(c, -1)) - np.dot(c, np.roll(r, -1))))
    return twice / 2.0 / 4.0 * spacing[0] * spacing[1]


def shape_features(
    mask: np.ndarray,
    spacing_mm: tuple[float, float],
    *,
    origin_rc: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """Shape features of one region, in mm.

    Parameters
    ----------
    mask : numpy.ndarray
        bool (rows, columns): the region (need not be connected; the particles of a
        finding are measured as one region, like a pyradiomics label).
    spacing_mm : tuple of float
        (row, column) pixel spacing.
    origin_rc : tuple of int
        Position of ``mask[0, 0]`` in the image, so that centroids are in image pixels.

    Returns
    -------
    dict
        The ``shape`` features of :data:`~calcimg.features.registry.FEATURES`.

    Raises
    ------
    ValueError
        When ``mask`` is empty.
    """
    sr, sc = float(spacing_mm[0]), float(spacing_mm[1])
    rr, cc = np.nonzero(mask)
    n = len(rr)
    if n == 0:
        raise ValueError("shape_features: the region has no pixels")
    padded = np.pad(mask.astype(bool), 1)
    hist = _square_histogram(padded)
    area_mesh = float(hist @ _AREA_FRACTION) * sr * sc
    diagonal = math.hypot(sr / 2.0, sc / 2.0)
    perimeter = float(hist @ _N_DIAGONAL * diagonal + hist @ _N_HORIZONTAL * sc)
    perimeter += float(hist @ _N_VERTICAL * sr)
    hull2 = _hull(_mesh_vertices2(padded))
    max_diameter = _max_distance_mm(hull2, (sr, sc))
    hull_area = _polygon_area(hull2, (sr, sc))

    # pyradiomics: covariance of pixel centres in mm, divided by N (population)
    pr = rr.astype(np.float64) * sr
    pc = cc.astype(np.float64) * sc
    pr -= pr.mean()
    pc -= pc.mean()
    cov = np.array([[pr @ pr, pr @ pc], [pr @ pc, pc @ pc]]) / n
    lam_minor, lam_major = (max(float(v), 0.0) for v in np.linalg.eigvalsh(cov))
    major = 4.0 * math.sqrt(lam_major)
    minor = 4.0 * math.sqrt(lam_minor)

    area_px = n * sr * sc
    rows_span = (int(rr.max()) - int(rr.min()) + 1) * sr
    cols_span = (int(cc.max()) - int(cc.min()) + 1) * sc
    n_particles = int(cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1)
    return {
        "n_pixels": n,
        "area_mm2": area_px,
        "mesh_area_mm2": area_mesh,
        "perimeter_mm": perimeter,
        "perimeter_to_area_per_mm": perimeter / area_mesh,
        "sphericity": 2.0 * math.sqrt(math.pi * area_mesh) / perimeter,
        "max_diameter_mm": max_diameter,
        "major_axis_mm": major,
        "minor_axis_mm": minor,
        "elongation": math.sqrt(lam_minor / lam_major) if lam_major > 0 else 1.0,
        "eccentricity": math.sqrt(1.0 - lam_minor / lam_major) if lam_major > 0 else 0.0,
        "solidity": area_mesh / hull_area if hull_area > 0 else 1.0,
        "extent": area_px / (rows_span * cols_span),
        "equivalent_diameter_mm": 2.0 * math.sqrt(area_px / math.pi),
        "n_particles": n_particles,
        "centroid_row_px": float(rr.mean()) + origin_rc[0],
        "centroid_col_px": float(cc.mean()) + origin_rc[1],
    }


def _bin_counts(values: np.ndarray, bin_width: float) -> np.ndarray:
    """Non-empty bin counts of pyradiomics' fixed-bin-width discretisation.

    Bins start at the largest multiple of ``bin_width`` not above the minimum
    (``imageoperations.getBinEdges``) and are half open.
    """
    lo = float(values.min())
    hi = float(values.max())
    low_bound = lo - (lo % bin_width)
    edges = np.arange(low_bound, hi + 2 * bin_width, bin_width)
    if len(edges) == 1:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    _, counts = np.unique(np.digitize(values, edges), return_counts=True)
    return counts


def intensity_features(
    values: np.ndarray,
    pixel_area_mm2: float,
    *,
    params: FeatureParams,
    ring: np.ndarray | None = None,
    value_span: float | None = None,
) -> dict[str, Any]:
    """First-order features of a region's pixel values (pyradiomics ``firstorder``).

    Parameters
    ----------
    values : numpy.ndarray
        1-D, the canonical intensities of the region's pixels.
    pixel_area_mm2 : float
        For total energy (pyradiomics multiplies by the voxel volume; in 2-D the area).
    params : FeatureParams
    ring : numpy.ndarray, optional
        1-D, intensities of the local background ring, for contrast and CNR.
    value_span : float, optional
        Width of the image's possible value range, to normalise contrast.

    Returns
    -------
    dict
        The ``intensity_*`` features of the registry.
    """
    x = values.astype(np.float64)
    n = x.size
    mean = float(x.mean())
    p10, p25, p75, p90 = (float(v) for v in np.percentile(x, [10, 25, 75, 90]))
    dev = x - mean
    m2 = float(np.mean(dev**2))
    m3 = float(np.mean(dev**3))
    m4 = float(np.mean(dev**4))
    inner = x[(x >= p10) & (x <= p90)]
    shifted = x + params.voxel_array_shift
    energy = float(shifted @ shifted)
    p = _bin_counts(x, params.bin_width) / n
    out: dict[str, Any] = {
        "intensity_mean": mean,
        "intensity_median": float(np.median(x)),
        "intensity_minimum": float(x.min()),
        "intensity_maximum": float(x.max()),
        "intensity_p10": p10,
        "intensity_p90": p90,
        "intensity_range": float(x.max() - x.min()),
        "intensity_iqr": p75 - p25,
        "intensity_mad": float(np.mean(np.abs(dev))),
        "intensity_robust_mad": float(np.mean(np.abs(inner - inner.mean()))),
        "intensity_rms": math.sqrt(energy / n),
        "intensity_energy": energy,
        "intensity_total_energy": energy * pixel_area_mm2,
        "intensity_entropy_bits": float(-np.sum(p * np.log2(p + np.spacing(1)))),
        "intensity_uniformity": float(np.sum(p**2)),
        # pyradiomics returns 0 for a flat region (no spread, no shape)
        "intensity_skewness": m3 / m2**1.5 if m2 > 0 else 0.0,
        "intensity_kurtosis": m4 / m2**2 if m2 > 0 else 0.0,
        "intensity_variance": m2,
        "ring_mean": None,
        "ring_std": None,
        "contrast": None,
        "contrast_norm": None,
        "cnr": None,
    }
    if ring is not None and ring.size >= params.min_ring_pixels:
        b = ring.astype(np.float64)
        b_mean = float(b.mean())
        b_std = float(b.std())
        contrast = mean - b_mean
        out["ring_mean"] = b_mean
        out["ring_std"] = b_std
        out["contrast"] = contrast
        if value_span is not None and value_span > 0:
            out["contrast_norm"] = contrast / value_span
        # a noiseless ring (synthetic or saturated) has no noise to compare with
        out["cnr"] = contrast / b_std if b_std > 0 else None
    return out


def _bounding_boxes(lm: np.ndarray) -> list[tuple[int, tuple[slice, slice]]]:
    """(label, (row slice, column slice)) of every label > 0, ascending.

    Works on the labelled pixels only (a few percent of a film at most), several times
    faster than ``scipy.ndimage.find_objects`` over the whole image.
    """
    flat = lm.ravel()
    idx = np.flatnonzero(flat)
    if idx.size == 0:
        return []
    values = flat[idx]
    if int(values.min()) < 0:
        raise InputError(f"label mask has negative values (min {int(values.min())}); expected >= 0")
    order = np.argsort(values, kind="stable")
    values = values[order]
    rows, cols = np.divmod(idx[order], lm.shape[1])
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    r_min = np.minimum.reduceat(rows, starts)
    r_max = np.maximum.reduceat(rows, starts)
    c_min = np.minimum.reduceat(cols, starts)
    c_max = np.maximum.reduceat(cols, starts)
    return [
        (
            int(values[s]),
            (slice(int(r0), int(r1) + 1), slice(int(c0), int(c1) + 1)),
        )
        for s, r0, r1, c0, c1 in zip(starts, r_min, r_max, c_min, c_max, strict=True)
    ]


def _ellipse(radius_mm: float, spacing_mm: tuple[float, float]) -> np.ndarray:
    """uint8 elliptical structuring element of a radius in mm (anisotropic pixels)."""
    ry = max(round(radius_mm / spacing_mm[0]), 0)
    rx = max(round(radius_mm / spacing_mm[1]), 0)
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    inside = (yy / max(ry, 0.5)) ** 2 + (xx / max(rx, 0.5)) ** 2 <= 1.0 + 1e-9
    return inside.astype(np.uint8)


def measure_regions(
    pixels: np.ndarray,
    label_mask: np.ndarray,
    spacing_mm: tuple[float, float],
    *,
    params: FeatureParams | None = None,
    value_range: tuple[float, float] | None = None,
    labels: list[int] | None = None,
    ring_mask: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Shape and first-order features of every labelled region of an image.

    Parameters
    ----------
    pixels : numpy.ndarray
        (rows, columns) canonical intensities (``Radiograph.pixels``).
    label_mask : numpy.ndarray
        Integer (rows, columns), same shape: 0 background, k > 0 region k (a finding id
        from ``Result.label_mask`` or a label of a user's mask). Negative values are
        errors.
    spacing_mm : tuple of float
        (row, column) pixel spacing in mm.
    params : FeatureParams, optional
    value_range : tuple of float, optional
        ``Radiograph.value_range``, to normalise contrast (``contrast_norm``).
    labels : list of int, optional
        Only these labels (default: every label present, ascending).
    ring_mask : numpy.ndarray, optional
        bool (rows, columns): where the background ring may lie (soft tissue); default
        anywhere outside every region.

    Returns
    -------
    list of dict
        One dict per region, ``{"label": k, <feature>: value, ...}``, ascending label.
        Values are Python floats/ints, or None where not measurable (a ring too small
        for contrast).

    Raises
    ------
    InputError
        When the shapes differ or the mask is not integer.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((50, 50), np.int32); m[10:20, 10:30] = 1
    >>> f = measure_regions(np.zeros((50, 50), np.float32), m, (0.5, 0.5))[0]
    >>> f["area_mm2"], f["max_diameter_mm"] < 11
    (50.0, True)
    """
    params = params or FeatureParams()
    if pixels.shape != label_mask.shape:
        raise InputError(
            f"label mask is {label_mask.shape[0]}x{label_mask.shape[1]} (rows x columns); "
            f"expected {pixels.shape[0]}x{pixels.shape[1]} to match the image"
        )
    if label_mask.dtype.kind not in "iub":
        raise InputError(f"label mask must hold integers; found dtype {label_mask.dtype}")
    lm = label_mask.astype(np.int32, copy=False)
    if ring_mask is not None and ring_mask.shape != lm.shape:
        raise InputError(f"ring mask is {ring_mask.shape}; expected {lm.shape} to match the image")
    boxes = _bounding_boxes(lm)
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]))
    pixel_area = spacing[0] * spacing[1]
    span = None if value_range is None else float(value_range[1] - value_range[0])
    outer = _ellipse(params.ring_gap_mm + params.ring_width_mm, spacing)
    inner = _ellipse(params.ring_gap_mm, spacing)
    pad_r, pad_c = outer.shape[0] // 2 + 1, outer.shape[1] // 2 + 1
    wanted = set(labels) if labels is not None else None
    rows_out: list[dict[str, Any]] = []
    for label, sl in boxes:
        if wanted is not None and label not in wanted:
            continue
        r0 = max(sl[0].start - pad_r, 0)
        r1 = min(sl[0].stop + pad_r, lm.shape[0])
        c0 = max(sl[1].start - pad_c, 0)
        c1 = min(sl[1].stop + pad_c, lm.shape[1])
        window = lm[r0:r1, c0:c1]
        region = window == label
        # shape on the tight box (cheaper), intensities and ring on the padded window
        tr0, tr1 = sl[0].start - r0, sl[0].stop - r0
        tc0, tc1 = sl[1].start - c0, sl[1].stop - c0
        row: dict[str, Any] = {"label": label}
        row.update(
            shape_features(region[tr0:tr1, tc0:tc1], spacing, origin_rc=(sl[0].start, sl[1].start))
        )
        region_u8 = region.astype(np.uint8)
        grown = cv2.dilate(region_u8, outer) > 0
        near = cv2.dilate(region_u8, inner) > 0 if params.ring_gap_mm > 0 else region
        # the ring is local background: never another region's pixels
        ring = grown & ~near & (window == 0)
        if ring_mask is not None:
            ring &= ring_mask[r0:r1, c0:c1]
        win_px = pixels[r0:r1, c0:c1]
        row.update(
            intensity_features(
                win_px[region],
                pixel_area,
                params=params,
                ring=win_px[ring],
                value_span=span,
            )
        )
        rows_out.append(row)
    return rows_out


def region_features(
    radiograph: Radiograph,
    label_mask: np.ndarray,
    *,
    params: FeatureParams | None = None,
    labels: list[int] | None = None,
    ring_mask: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Features of every labelled region of a radiograph (see :func:`measure_regions`).

    Parameters
    ----------
    radiograph : Radiograph
        Its canonical pixels, pixel spacing and value range are used.
    label_mask : numpy.ndarray
        Integer (rows, columns): 0 background, k > 0 region k.
    params : FeatureParams, optional
    labels : list of int, optional
        Only these labels.
    ring_mask : numpy.ndarray, optional
        bool (rows, columns): where the background ring may lie, e.g. soft tissue.

    Returns
    -------
    list of dict
        One dict per region, ascending label.
    """
    return measure_regions(
        radiograph.pixels,
        label_mask,
        radiograph.pixel_spacing_mm,
        params=params,
        value_range=radiograph.value_range,
        labels=labels,
        ring_mask=ring_mask,
    )
