"""Results as DICOM: a Comprehensive SR (TID 1500) and a binary SEG per analysed image.

Written with highdicom, so that an object is valid once constructed.

The SR is a TID 1500 Measurement Report with an image-level TID 1501 group (flag yes/no
and the most likely category) and one TID 1410 planar ROI measurement group per
finding: the finding type (SCT 18115005 "pathologic calcification"), the region as an
image region (SCOORD POLYLINE, the convex hull of the finding's pixels, closed; the
bounding box when no mask is at hand), the area as a measurement in mm2 (UCUM ``mm2``),
the detection confidence (UCUM ``1``), and the pattern and top category as coded
qualitative evaluations. DICOM has no standard codes for the five calcimg patterns or for
most of its categories, so these use the private coding scheme ``99CALCIMG``, declared in
(0008,0110) Coding Scheme Identification Sequence as PS3.3 C.12.1.1.2 asks of private
schemes. SCOORD pixel coordinates are (column, row) with (0, 0) at the top left corner
of the top left pixel (PS3.3 C.18.6.1.2).

The SEG is a single-frame BINARY segmentation of the source image with one segment per
pattern present (the union of that pattern's findings), from ``Result.label_mask``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from calcimg import __version__
from calcimg.errors import CalcimgError
from calcimg.result import Category, Finding, Pattern, Result, Status

__all__ = [
    "CALCIMG_SCHEME",
    "CATEGORY_CODES",
    "MAX_SR_FINDINGS",
    "PATTERN_CODES",
    "DicomResultsError",
    "seg_dataset",
    "sr_dataset",
    "write_dicom_results",
    "write_dicom_results_for_file",
]

log = logging.getLogger(__name__)

CALCIMG_SCHEME = "99CALCIMG"
"""Private coding scheme designator for calcimg's own concepts (PS3.3 8.1: private
designators begin with "99")."""

# (code value (SH, <= 16 chars), code meaning)
PATTERN_CODES: dict[Pattern, tuple[str, str]] = {
    Pattern.AMORPHOUS: ("PAT-AMORPHOUS", "Amorphous calcification"),
    Pattern.FINELY_SPECKLED: ("PAT-SPECKLED", "Finely speckled calcification"),
    Pattern.GLOBULAR_PERIARTICULAR: ("PAT-GLOBULAR", "Globular periarticular calcification"),
    Pattern.VASCULAR: ("PAT-VASCULAR", "Vascular calcification"),
    Pattern.CHONDRAL_LINE: ("PAT-CHONDRAL", "Chondral line calcification"),
}
CATEGORY_CODES: dict[Category, tuple[str, str]] = {
    Category.DYSTROPHIC: ("CAT-DYSTROPHIC", "Dystrophic calcification"),
    Category.METASTATIC: ("CAT-METASTATIC", "Metastatic calcification"),
    Category.CALCINOSIS_CIRCUMSCRIPTA: ("CAT-CIRCUMSCR", "Calcinosis circumscripta"),
    Category.CALCINOSIS_UNIVERSALIS: ("CAT-UNIVERSALIS", "Calcinosis universalis"),
    Category.TUMORAL_CALCINOSIS: ("CAT-TUMORAL", "Tumoral calcinosis"),
    Category.CHONDROCALCINOSIS_CPPD: ("CAT-CPPD", "Chondrocalcinosis (CPPD)"),
    Category.SYNOVIAL_CHONDROMATOSIS: ("CAT-SYNOVIAL", "Synovial chondromatosis"),
    Category.VASCULAR_ARTERIAL: ("CAT-ARTERIAL", "Arterial calcification"),
    Category.PHLEBOLITH: ("CAT-PHLEBOLITH", "Phlebolith"),
    Category.CALCIPHYLAXIS: ("CAT-CALCIPHYLAX", "Calciphylaxis"),
    Category.IATROGENIC: ("CAT-IATROGENIC", "Iatrogenic calcification"),
}
_PATTERN_NAME = ("PATTERN", "Calcification pattern")
_CATEGORY_NAME = ("CATEGORY", "Most likely calcification category")
_FLAG_NAME = ("FLAG", "Soft-tissue calcification present")
_COUNT_NAME = ("NFINDINGS", "Number of calcification findings")
_CONFIDENCE_NAME = ("CONFIDENCE", "Detection confidence")


class DicomResultsError(CalcimgError):
    """A result cannot be written as DICOM (no image, or a source that does not match)."""


def _code(value: tuple[str, str]) -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(value=value[0], scheme_designator=CALCIMG_SCHEME, meaning=value[1])


def _coding_schemes() -> list[Dataset]:
    import highdicom as hd

    return [
        hd.coding_schemes.CodingSchemeIdentificationItem(
            designator=CALCIMG_SCHEME,
            name="calcimg soft-tissue calcification concepts",
            responsible_organization="calcimg project",
            version=__version__,
        )
    ]


def _region_points(f: Finding, label_mask: np.ndarray | None) -> np.ndarray:
    """Closed polyline (column, row) around a finding: convex hull of its pixel corners."""
    r0, c0, r1, c1 = f.bbox
    if label_mask is not None:
        rr, cc = np.nonzero(label_mask[r0:r1, c0:c1] == f.id)
        if rr.size:
            import cv2

            corners = np.concatenate(
                [np.stack([cc + dx, rr + dy], axis=1) for dx in (0, 1) for dy in (0, 1)]
            ).astype(np.float32)
            hull = cv2.convexHull(corners).reshape(-1, 2).astype(np.float64)
            hull += np.array([c0, r0], dtype=np.float64)
            if len(hull) >= 3:
                return np.vstack([hull, hull[:1]])
    box = np.array([[c0, r0], [c1, r0], [c1, r1], [c0, r1], [c0, r0]], dtype=np.float64)
    return box


def _image_library_ok(source: Dataset) -> bool:
    """Whether highdicom can describe the source in the image library (TID 1603).

    It reads (0020,0020) Patient Orientation and (0018,1164) Imager Pixel Spacing of
    projection images and fails when either is missing, as on many CRs (RG3 has
    neither); the library is optional (TID 1500 row 5), so it is left out then.
    """
    orientation = source.get("PatientOrientation", None)
    spacing = source.get("ImagerPixelSpacing", None)
    return (
        source.get("Modality", None) in ("CR", "DX", "MG")
        and orientation is not None
        and len(orientation) == 2
        and all(str(v) for v in orientation)
        and spacing is not None
        and len(spacing) == 2
    )


# Type 2 attributes highdicom copies from the evidence into the SR and SEG (Patient,
# General Study modules); some exports omit them, and highdicom then fails.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def _evidence(source: Dataset) -> Dataset:
    """The source's attributes (pixel data left out), Type 2 gaps filled with empty values."""
    ds = Dataset()
    for elem in source:
        if elem.keyword != "PixelData":
            ds.add(elem)
    if hasattr(source, "file_meta"):
        ds.file_meta = source.file_meta
    for keyword in _TYPE2_COPIED:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def _check(result: Result, source: Dataset) -> None:
    if result.status is not Status.OK or result.image is None:
        raise DicomResultsError(
            f"{result.source}: result status is {result.status.value}; DICOM results are "
            "written for analysed images only"
        )
    rows, cols = int(source.Rows), int(source.Columns)
    if (rows, cols) != (result.image.rows, result.image.columns):
        raise DicomResultsError(
            f"{result.source}: source dataset is {rows}x{cols}; the result is for a "
            f"{result.image.rows}x{result.image.columns} image"
        )
    uid = getattr(source, "SOPInstanceUID", None)
    if result.sop_instance_uid is not None and uid != result.sop_instance_uid:
        raise DicomResultsError(
            f"{result.source}: source (0008,0018) SOP Instance UID is {uid}; the result is "
            f"for {result.sop_instance_uid}"
        )


MAX_SR_FINDINGS = 100
"""At most this many findings (the most confident) get a measurement group in the SR: a
diffuse speckled film can have hundreds, and highdicom needs about 50 ms per group. The
SEG still holds them all, and the image-level group says how many there were."""


def sr_dataset(
    result: Result,
    source: Dataset,
    *,
    series_number: int = 901,
    max_findings: int = MAX_SR_FINDINGS,
) -> Dataset:
    """The TID 1500 Comprehensive SR of one result (see module docstring).

    Parameters
    ----------
    result : Result
        An ``ok`` result; ``label_mask`` (when present) gives the regions' outlines.
    source : pydicom.Dataset
        The analysed image (pixel data not needed).
    series_number : int
    max_findings : int
        Findings beyond this many (by confidence) get no measurement group of their own.

    Returns
    -------
    highdicom.sr.ComprehensiveSR
    """
    import highdicom as hd

    _check(result, source)
    source = _evidence(source)
    algorithm = hd.sr.AlgorithmIdentification(name="calcimg", version=__version__)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="calcimg", manufacturer_name="calcimg", model_name="calcimg"
        ),
    )
    # First an image-level group (TID 1501): whether the image is flagged and its most
    # likely category, so that a report of no findings still says what was looked for.
    image_evals = [
        hd.sr.QualitativeEvaluation(
            _code(_FLAG_NAME), codes.SCT.Yes if result.flag else codes.SCT.No
        )
    ]
    if result.categories:
        image_evals.append(
            hd.sr.QualitativeEvaluation(
                _code(_CATEGORY_NAME), _code(CATEGORY_CODES[result.categories[0].name])
            )
        )
    count = hd.sr.Measurement(
        name=_code(_COUNT_NAME),
        value=float(len(result.findings)),
        unit=codes.UCUM.NoUnits,
        algorithm_id=algorithm,
    )
    groups: list[Any] = [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="image"),
            algorithm_id=algorithm,
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
            measurements=[count],
            qualitative_evaluations=image_evals,
        )
    ]
    source_ref = hd.sr.SourceImageForRegion.from_source_image(source)
    kept = sorted(result.findings, key=lambda f: -f.confidence)[: max(max_findings, 0)]
    for f in sorted(kept, key=lambda f: f.id):
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=_region_points(f, result.label_mask),
            source_image=source_ref,
        )
        evaluations = [
            hd.sr.QualitativeEvaluation(_code(_PATTERN_NAME), _code(PATTERN_CODES[f.pattern]))
        ]
        if f.categories:
            top = f.categories[0].name
            evaluations.append(
                hd.sr.QualitativeEvaluation(_code(_CATEGORY_NAME), _code(CATEGORY_CODES[top]))
            )
        measurements = [
            hd.sr.Measurement(
                name=codes.SCT.Area,
                value=float(f.area_mm2),
                unit=codes.UCUM.SquareMillimeter,
                algorithm_id=algorithm,
            ),
            hd.sr.Measurement(
                name=_code(_CONFIDENCE_NAME),
                value=float(f.confidence),
                unit=codes.UCUM.NoUnits,
                algorithm_id=algorithm,
            ),
        ]
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=hd.UID(), identifier=f"calcification {f.id}"
                ),
                referenced_region=region,
                finding_type=codes.SCT.PathologicCalcification,
                algorithm_id=algorithm,
                finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.SoftTissue)],
                measurements=measurements,
                qualitative_evaluations=evaluations,
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
        referenced_images=[source] if _image_library_ok(source) else None,
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="calcimg",
        is_complete=True,
        coding_schemes=_coding_schemes(),
    )
    sr.SeriesDescription = "calcimg soft-tissue calcification report"
    return sr


def seg_dataset(result: Result, source: Dataset, *, series_number: int = 902) -> Dataset:
    """The binary SEG of one result: one segment per pattern present.

    Raises
    ------
    DicomResultsError
        When the result has no findings (a SEG needs at least one segment) or no
        ``label_mask`` (results read back from JSON carry none).
    """
    import highdicom as hd

    _check(result, source)
    source = _evidence(source)
    if not result.findings:
        raise DicomResultsError(f"{result.source}: no findings; a SEG needs a segment")
    if result.label_mask is None:
        raise DicomResultsError(
            f"{result.source}: the result has no label mask (read back from JSON?); "
            "the SEG is written from a freshly analysed result"
        )
    mask = np.asarray(result.label_mask)
    patterns = [p for p in Pattern if any(f.pattern is p for f in result.findings)]
    planes = np.zeros((1, *mask.shape, len(patterns)), dtype=np.uint8)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="calcimg", version=__version__, family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = []
    for k, p in enumerate(patterns):
        ids = [f.id for f in result.findings if f.pattern is p]
        planes[0, :, :, k] = np.isin(mask, ids)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=k + 1,
                segment_label=f"{p.value} ({', '.join(str(i) for i in ids)})"[:64],
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.PathologicCalcification,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=hd.UID(),
                tracking_id=f"calcimg pattern {p.value}",
            )
        )
    seg = hd.seg.Segmentation(
        source_images=[source],
        pixel_array=planes,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="calcimg",
        manufacturer_model_name="calcimg",
        software_versions=__version__,
        device_serial_number="0",
        content_label="CALCIMG",
        content_description="soft-tissue calcifications by pattern",
        omit_empty_frames=False,
    )
    # General Image (0020,0020) Patient Orientation is Type 2C for a SEG of a projection
    # image without a frame of reference; highdicom leaves it out (dciodvfy: error)
    if "PatientOrientation" not in seg:
        seg.PatientOrientation = source.get("PatientOrientation", None) or ""
    return seg


def write_dicom_results(result: Result, source_dataset: Dataset, out_dir: str | Path) -> list[Path]:
    """Write the SR (always) and the SEG (when there are findings) of one result.

    The SEG needs the in-memory ``label_mask`` (a freshly analysed result) and a
    single-frame source; otherwise only the SR is written.

    Files are named after the source's SOP Instance UID (and frame, when not 0) so that
    one folder can hold the results of a whole batch:
    ``UID.SR.dcm`` and ``UID.SEG.dcm``.

    Parameters
    ----------
    result : Result
        An ``ok`` result, as :func:`calcimg.analyze` returns it (with ``label_mask``).
    source_dataset : pydicom.Dataset
        The analysed DICOM image (read with or without pixel data).
    out_dir : path-like
        Created if missing.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    DicomResultsError
        When the result is not ``ok`` or does not belong to ``source_dataset``.
    """
    out = Path(out_dir)
    stem = str(source_dataset.SOPInstanceUID)
    if result.frame:
        stem += f".f{result.frame}"
    written: list[Path] = []
    sr = sr_dataset(result, source_dataset)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.SR.dcm"
    sr.save_as(path, enforce_file_format=True)
    written.append(path)
    # highdicom segments every frame of a multi-frame source; calcimg has one frame's mask
    single_frame = int(source_dataset.get("NumberOfFrames", 1) or 1) == 1
    if not single_frame:
        log.info("%s: multi-frame source; SEG not written (SR only)", result.source)
    if result.findings and result.label_mask is not None and single_frame:
        seg = seg_dataset(result, source_dataset)
        path = out / f"{stem}.SEG.dcm"
        seg.save_as(path, enforce_file_format=True)
        written.append(path)
    return written


def write_dicom_results_for_file(
    result: Result, source_path: str | Path, out_dir: str | Path
) -> list[Path]:
    """:func:`write_dicom_results` for a result of ``calcimg analyze``, by source path.

    For batch use (``calcimg analyze ... --dicom-out DIR``): reads the source's header
    (no pixel data) and writes its SR and SEG. Results that are not ``ok`` and sources
    that are not DICOM (PNG/TIFF exports) give no files and no error.

    Returns
    -------
    list of Path
        The files written (possibly none).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if result.status is not Status.OK or result.image is None:
        return []
    try:
        source = pydicom.dcmread(source_path, stop_before_pixels=True)
    except (InvalidDicomError, OSError):
        return []
    if "SOPInstanceUID" not in source or "Rows" not in source:
        return []
    return write_dicom_results(result, source, out_dir)
