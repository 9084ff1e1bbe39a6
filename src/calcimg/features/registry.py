"""The feature dictionary: every output column's name, unit, definition and standard.

One registry, :data:`FEATURES`, rendered for ``calcimg features --list``
(:func:`render_text`) and to ``docs/features.md`` (:func:`render_markdown`). Tests check
that every column the extractor writes is in it.

Standards: "pyradiomics shape2D X" and "pyradiomics firstorder X" name the pyradiomics
3.1 feature whose definition is followed exactly (values agree to 1e-12 on the same
mask and spacing); "IBSI: X" names the Image Biomarker Standardisation Initiative
feature where pyradiomics documents the correspondence.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FEATURES", "Feature", "feature_names", "render_markdown", "render_text"]

INTENSITY = "canonical intensity (stored value after the Modality LUT, higher = denser)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Feature:
    """One column of the feature tables.

    Attributes
    ----------
    name : str
        Column name (units in the name where there is one).
    level : str
        "finding" (one row per region), "image" (one row per image) or "both"
        (provenance and identity columns).
    group : str
        provenance, identity, shape, intensity, context, detector, image.
    unit : str
        "mm", "mm2", "1" (dimensionless), "count", an intensity unit or "text".
    definition : str
    standard : str
        The standard feature it matches, or "" for calcimg's own.
    """

    name: str
    level: str
    group: str
    unit: str
    definition: str
    standard: str = ""


def _f(
    name: str, level: str, group: str, unit: str, definition: str, standard: str = ""
) -> Feature:
    return Feature(
        name=name, level=level, group=group, unit=unit, definition=definition, standard=standard
    )


_PROVENANCE = [
    _f("source", "both", "provenance", "text", "Input path as given (pseudonymised: HMAC)."),
    _f("frame", "both", "provenance", "count", "Frame index in a multi-frame object (0-based)."),
    _f("status", "both", "provenance", "text", "ok, error or skipped (then see error)."),
    _f("error", "both", "provenance", "text", "Why the input was not analysed, else empty."),
    _f("sop_instance_uid", "both", "identity", "text", "(0008,0018) SOP Instance UID."),
    _f("study_instance_uid", "both", "identity", "text", "(0020,000D) Study Instance UID."),
    _f("series_instance_uid", "both", "identity", "text", "(0020,000E) Series Instance UID."),
    _f("patient_id", "both", "identity", "text", "(0010,0020) Patient ID."),
    _f("patient_name", "both", "identity", "text", "(0010,0010) Patient's Name."),
    _f("accession_number", "both", "identity", "text", "(0008,0050) Accession Number."),
    _f(
        "input_hash",
        "both",
        "provenance",
        "text",
        "SHA-256 of the input file's bytes; the key for resuming (pseudonymised: HMAC).",
    ),
    _f("mask", "both", "provenance", "text", "User mask path, empty for detector findings."),
    _f("mask_hash", "both", "provenance", "text", "SHA-256 of the user mask file's bytes."),
    _f("pixel_spacing_row_mm", "both", "provenance", "mm", "Row spacing used for every mm."),
    _f("pixel_spacing_col_mm", "both", "provenance", "mm", "Column spacing used for every mm."),
    _f(
        "spacing_source",
        "both",
        "provenance",
        "text",
        "Where the spacing came from: pixel_spacing, imager_pixel_spacing, "
        "imager_pixel_spacing_ermf, nominal_scanned_pixel_spacing, user, assumed.",
    ),
    _f("calibrated", "both", "provenance", "1", "False when mm figures are approximate."),
    _f("calcimg_version", "both", "provenance", "text", "calcimg version that computed the row."),
    _f(
        "params_hash",
        "both",
        "provenance",
        "text",
        "SHA-256 (16 hex) of the pipeline's effective parameters plus the feature parameters.",
    ),
]

_FINDING_ID = [
    _f(
        "finding_id",
        "finding",
        "identity",
        "count",
        "The region's label: the finding id (detector) or the mask's label value. Empty on "
        "a row that stands for an image without regions or an input that failed.",
    ),
]

_SHAPE = [
    _f("n_pixels", "finding", "shape", "count", "Number of pixels N_p in the region."),
    _f(
        "area_mm2",
        "finding",
        "shape",
        "mm2",
        "Pixel area: N_p x row spacing x column spacing.",
        "pyradiomics shape2D PixelSurface",
    ),
    _f(
        "mesh_area_mm2",
        "finding",
        "shape",
        "mm2",
        "Area enclosed by the marching-squares mesh through the midpoints of the edges "
        "between region and background pixels (saddles cut as separate corners).",
        "pyradiomics shape2D MeshSurface",
    ),
    _f(
        "perimeter_mm",
        "finding",
        "shape",
        "mm",
        "Total length of the mesh's lines (every contour, holes included).",
        "pyradiomics shape2D Perimeter",
    ),
    _f(
        "perimeter_to_area_per_mm",
        "finding",
        "shape",
        "1/mm",
        "perimeter_mm / mesh_area_mm2.",
        "pyradiomics shape2D PerimeterSurfaceRatio",
    ),
    _f(
        "sphericity",
        "finding",
        "shape",
        "1",
        "2 sqrt(pi A) / P with A the mesh area and P the perimeter; 1 for a circle.",
        "pyradiomics shape2D Sphericity",
    ),
    _f(
        "max_diameter_mm",
        "finding",
        "shape",
        "mm",
        "Largest distance between two mesh vertices (edge midpoints).",
        "pyradiomics shape2D MaximumDiameter",
    ),
    _f(
        "major_axis_mm",
        "finding",
        "shape",
        "mm",
        "4 sqrt(lambda_major), lambda the eigenvalues of the population covariance of "
        "the pixel centres' mm coordinates.",
        "pyradiomics shape2D MajorAxisLength",
    ),
    _f(
        "minor_axis_mm",
        "finding",
        "shape",
        "mm",
        "4 sqrt(lambda_minor).",
        "pyradiomics shape2D MinorAxisLength",
    ),
    _f(
        "elongation",
        "finding",
        "shape",
        "1",
        "sqrt(lambda_minor / lambda_major); 1 for a circle, 0 for a line.",
        "pyradiomics shape2D Elongation",
    ),
    _f(
        "eccentricity",
        "finding",
        "shape",
        "1",
        "sqrt(1 - lambda_minor / lambda_major) of the same covariance (in mm, so "
        "anisotropic pixels are accounted for); 0 for a circle, near 1 for a line.",
        "as scikit-image regionprops eccentricity, but in mm",
    ),
    _f(
        "solidity",
        "finding",
        "shape",
        "1",
        "Mesh area / area of the convex hull of the mesh vertices; 1 for convex regions.",
    ),
    _f(
        "extent",
        "finding",
        "shape",
        "1",
        "area_mm2 / area of the region's bounding box (whole pixels).",
        "as scikit-image regionprops extent",
    ),
    _f(
        "equivalent_diameter_mm",
        "finding",
        "shape",
        "mm",
        "Diameter of the circle of the same pixel area: 2 sqrt(area_mm2 / pi).",
        "as scikit-image regionprops equivalent_diameter, in mm",
    ),
    _f(
        "n_particles",
        "finding",
        "shape",
        "count",
        "Connected components of the region (8-connectivity).",
    ),
    _f("centroid_row_px", "finding", "shape", "px", "Mean row of the region's pixels."),
    _f("centroid_col_px", "finding", "shape", "px", "Mean column of the region's pixels."),
]

_FO = "pyradiomics firstorder "
_INTENSITY = [
    _f("intensity_mean", "finding", "intensity", INTENSITY, "Mean of X.", _FO + "Mean"),
    _f("intensity_median", "finding", "intensity", INTENSITY, "Median of X.", _FO + "Median"),
    _f("intensity_minimum", "finding", "intensity", INTENSITY, "min X.", _FO + "Minimum"),
    _f("intensity_maximum", "finding", "intensity", INTENSITY, "max X.", _FO + "Maximum"),
    _f(
        "intensity_p10",
        "finding",
        "intensity",
        INTENSITY,
        "10th percentile (linear interpolation).",
        _FO + "10Percentile",
    ),
    _f(
        "intensity_p90",
        "finding",
        "intensity",
        INTENSITY,
        "90th percentile (linear interpolation).",
        _FO + "90Percentile",
    ),
    _f("intensity_range", "finding", "intensity", INTENSITY, "max X - min X.", _FO + "Range"),
    _f(
        "intensity_iqr",
        "finding",
        "intensity",
        INTENSITY,
        "75th - 25th percentile.",
        _FO + "InterquartileRange",
    ),
    _f(
        "intensity_mad",
        "finding",
        "intensity",
        INTENSITY,
        "Mean absolute deviation from the mean.",
        _FO + "MeanAbsoluteDeviation",
    ),
    _f(
        "intensity_robust_mad",
        "finding",
        "intensity",
        INTENSITY,
        "Mean absolute deviation from their mean of the values within [p10, p90].",
        _FO + "RobustMeanAbsoluteDeviation",
    ),
    _f(
        "intensity_rms",
        "finding",
        "intensity",
        INTENSITY,
        "sqrt(mean((X + c)^2)), c = features.voxel_array_shift (default 0).",
        _FO + "RootMeanSquared",
    ),
    _f(
        "intensity_energy",
        "finding",
        "intensity",
        INTENSITY + " squared",
        "sum((X + c)^2).",
        _FO + "Energy",
    ),
    _f(
        "intensity_total_energy",
        "finding",
        "intensity",
        INTENSITY + " squared x mm2",
        "Energy x pixel area (mm2).",
        _FO + "TotalEnergy",
    ),
    _f(
        "intensity_entropy_bits",
        "finding",
        "intensity",
        "bits",
        "-sum p(i) log2(p(i) + eps) over the bins of width features.bin_width (default "
        "25) starting at the largest multiple of the bin width not above min X.",
        _FO + "Entropy (IBSI: intensity histogram entropy)",
    ),
    _f(
        "intensity_uniformity",
        "finding",
        "intensity",
        "1",
        "sum p(i)^2 over the same bins.",
        _FO + "Uniformity (IBSI: intensity histogram uniformity)",
    ),
    _f(
        "intensity_skewness",
        "finding",
        "intensity",
        "1",
        "m3 / m2^1.5 (central moments); 0 for a flat region.",
        _FO + "Skewness",
    ),
    _f(
        "intensity_kurtosis",
        "finding",
        "intensity",
        "1",
        "m4 / m2^2 (not excess kurtosis: 3 for a normal distribution); 0 for a flat region.",
        _FO + "Kurtosis",
    ),
    _f(
        "intensity_variance",
        "finding",
        "intensity",
        INTENSITY + " squared",
        "m2, population variance.",
        _FO + "Variance",
    ),
    _f(
        "ring_mean",
        "finding",
        "context",
        INTENSITY,
        "Mean of the local background ring: pixels within ring_gap_mm + ring_width_mm "
        "(default 0.5 + 2 mm) of the region but farther than ring_gap_mm, in no region, "
        "and (features.ring_soft_tissue_only, default true) in soft tissue or joint space "
        "of the anatomy map.",
    ),
    _f("ring_std", "finding", "context", INTENSITY, "Standard deviation of the ring."),
    _f("contrast", "finding", "context", INTENSITY, "intensity_mean - ring_mean."),
    _f(
        "contrast_norm",
        "finding",
        "context",
        "1",
        "contrast / width of the image's possible value range (comparable across bit depths).",
    ),
    _f(
        "cnr",
        "finding",
        "context",
        "1",
        "contrast / ring_std (empty when the ring is noiseless or has fewer than "
        "features.min_ring_pixels pixels).",
    ),
]

_DETECTOR = [
    _f("pattern", "finding", "detector", "text", "Pattern assigned by describe (detector only)."),
    _f(
        "pattern_score_<pattern>",
        "finding",
        "detector",
        "1",
        "describe's score of each of the five patterns; they sum to 1.",
    ),
    _f("confidence", "finding", "detector", "1", "Detection confidence in [0, 1]."),
    _f(
        "descriptor_<name>",
        "finding",
        "detector",
        "as named",
        "describe's descriptors (COMMON.md vocabulary: n_particles, extent_mm, "
        "density_rel_cortex, linearity, ...), units in their names.",
    ),
    _f("nearest_joint", "finding", "detector", "text", "Nearest joint's name."),
    _f("distance_to_joint_mm", "finding", "detector", "mm", "Distance to that joint."),
    _f("intra_articular", "finding", "detector", "1", "Inside a joint space."),
    _f("distance_to_bone_mm", "finding", "detector", "mm", "Distance to the nearest bone."),
    _f("top_category", "both", "detector", "text", "Highest-scoring category (rules)."),
    _f(
        "category_score_<category>",
        "both",
        "detector",
        "1",
        "The rule layer's score of each category (0 when not ranked).",
    ),
]

_IMAGE = [
    _f("rows", "image", "image", "px", "Image rows."),
    _f("columns", "image", "image", "px", "Image columns."),
    _f("n_findings", "image", "image", "count", "Findings (detector) or labelled regions (mask)."),
    _f(
        "n_findings_<pattern>",
        "image",
        "image",
        "count",
        "Findings of each of the five patterns (detector only).",
    ),
    _f("total_area_mm2", "image", "image", "mm2", "Sum of area_mm2 over the findings."),
    _f("n_particles_total", "image", "image", "count", "Sum of n_particles over the findings."),
    _f(
        "n_sites",
        "image",
        "image",
        "count",
        "Distinct sites: findings grouped by single linkage of their centroids, findings "
        "more than features.site_distance_mm (50 mm, DOMAIN.md) apart are separate sites.",
    ),
    _f(
        "soft_tissue_area_mm2",
        "image",
        "image",
        "mm2",
        "Soft tissue (anatomy Region 1) plus joint space area of the film.",
    ),
    _f(
        "burden_mm2_per_100cm2",
        "image",
        "image",
        "mm2 / 100 cm2",
        "total_area_mm2 per 100 cm2 (10,000 mm2) of soft tissue; empty without soft tissue.",
    ),
    _f("max_finding_area_mm2", "image", "image", "mm2", "Largest finding's area_mm2."),
    _f("flag", "image", "image", "1", "At least one finding."),
]

FEATURES: tuple[Feature, ...] = (
    *_PROVENANCE,
    *_FINDING_ID,
    *_SHAPE,
    *_INTENSITY,
    *_DETECTOR,
    *_IMAGE,
)
"""Every column of the finding and image tables, in table order."""


def feature_names(level: str) -> list[str]:
    """Names of a level's columns ("finding" or "image"), templates included."""
    return [f.name for f in FEATURES if f.level in (level, "both")]


def render_text() -> str:
    """The dictionary as plain text for ``calcimg features --list``."""
    lines = []
    for group, members in _grouped():
        lines.append(f"\n[{group}]")
        for f in members:
            std = f"  [{f.standard}]" if f.standard else ""
            lines.append(f"{f.name} ({f.unit}; {f.level}): {f.definition}{std}")
    return "\n".join(lines).lstrip("\n") + "\n"


def render_markdown() -> str:
    """The dictionary as the tables of ``docs/features.md``."""
    out = []
    for group, members in _grouped():
        out.append(f"\n### {group}\n")
        out.append("| name | level | unit | definition | standard |")
        out.append("|---|---|---|---|---|")
        for f in members:
            cells = [f"`{f.name}`", f.level, f.unit, f.definition, f.standard]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out).lstrip("\n") + "\n"


def _grouped() -> list[tuple[str, list[Feature]]]:
    """Features by group, groups in order of first appearance."""
    groups: dict[str, list[Feature]] = {}
    for f in FEATURES:
        groups.setdefault(f.group, []).append(f)
    return list(groups.items())
