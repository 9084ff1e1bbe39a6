"""Write a simulated radiograph as a CR or DX (For Presentation) DICOM object.

Encoding is pydicom's (RLE, JPEG-LS, JPEG 2000 through its plugins) and GDCM's for
JPEG Lossless SV1, which pydicom 3 cannot encode.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

__all__ = [
    "CR_SOP",
    "DX_SOP",
    "TRANSFER_SYNTAXES",
    "DicomOptions",
    "save_gdcm_jpeg_lossless",
    "write_dicom",
]

CR_SOP = UID("1.2.840.10008.5.1.4.1.1.1")
DX_SOP = UID("1.2.840.10008.5.1.4.1.1.1.1")
TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit_le": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg_lossless_sv1": JPEGLosslessSV1,
    "jpeg_ls": JPEGLSLossless,
    "jpeg2000": JPEG2000Lossless,
}
_PREFIX = "1.2.826.0.1.3680043.10.1135."  # synthetic data; UIDs derived from the seed


@dataclass(frozen=True, slots=True)
class DicomOptions:
    sop: str  # "CR" | "DX"
    photometric: str  # "MONOCHROME1" | "MONOCHROME2"
    spacing_mode: str  # "pixel" | "imager" | "imager_ermf" | "pixel_calibrated"
    transfer_syntax: str  # key of TRANSFER_SYNTAXES
    magnification: float = 1.0


def _ds(v: float) -> str:
    return f"{v:.6g}"


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    bits: int,
    spacing_mm: float,
    options: DicomOptions,
    seed: int,
    body_part: str,
    view: str,
    laterality: str | None,
    age_years: float | None,
) -> tuple[float, float]:
    """Write ``pixels`` (uint16, higher = more attenuation) and return the (row, col)
    spacing a reader derives from the tags written (the truth spacing)."""
    top = (1 << bits) - 1
    stored = (
        pixels
        if options.photometric == "MONOCHROME2"
        else (top - pixels.astype(np.int32)).astype(np.uint16)
    )
    ent = [f"calcimg-synth-{seed}"]
    study_uid = generate_uid(_PREFIX, entropy_srcs=[*ent, "study"])
    series_uid = generate_uid(_PREFIX, entropy_srcs=[*ent, "series"])
    sop_uid = generate_uid(_PREFIX, entropy_srcs=[*ent, "sop"])
    sop_class = CR_SOP if options.sop == "CR" else DX_SOP

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(_PREFIX + "1")
    meta.ImplementationVersionName = "CALCIMG_SYNTH"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    date = dt.date(2024, 1, 1) + dt.timedelta(days=seed % 700)
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{8 + seed % 10:02d}{seed % 60:02d}00"
    ds.AccessionNumber = f"SYN{seed:06d}"
    ds.Modality = options.sop
    ds.Manufacturer = "calcimg synthetic"
    ds.InstitutionName = "Synthetic Hospital"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = f"{body_part} {view}"
    ds.SeriesDescription = f"{body_part} {view} (simulated)"
    ds.PatientName = f"SYNTH^{seed}"
    ds.PatientID = f"SYN{seed:06d}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    if age_years is not None:
        ds.PatientAge = f"{int(age_years):03d}Y"
    ds.PatientIdentityRemoved = "YES"
    ds.StudyID = str(seed)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = body_part
    ds.ViewPosition = (
        view if view in ("AP", "PA", "LL", "RL") else ("LL" if view == "LATERAL" else "")
    )
    ds.ImageLaterality = laterality or "U"
    ds.PatientOrientation = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.KVP = "60"
    ds.BurnedInAnnotation = "YES"
    if options.sop == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
        ds.ImageLaterality = laterality or "U"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = options.photometric
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.WindowCenter = _ds(top / 2)
    ds.WindowWidth = _ds(top)
    # MONOCHROME1 with INVERSE confirms the inversion; it does not add a second one
    ds.PresentationLUTShape = "IDENTITY" if options.photometric == "MONOCHROME2" else "INVERSE"
    ds.LossyImageCompression = "00"
    # (0028,1040)/(0028,1041): stored values are log exposure; +1 means lower values are
    # less beam intensity (more attenuation), true of MONOCHROME1 stored values here
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if options.photometric == "MONOCHROME1" else -1

    sp = _ds(spacing_mm)
    truth = (float(sp), float(sp))
    if options.spacing_mode == "pixel":
        ds.PixelSpacing = [sp, sp]
    elif options.spacing_mode == "imager":
        ds.ImagerPixelSpacing = [sp, sp]
    elif options.spacing_mode == "imager_ermf":
        m = options.magnification
        isp = _ds(spacing_mm * m)
        ds.ImagerPixelSpacing = [isp, isp]
        ds.EstimatedRadiographicMagnificationFactor = _ds(m)
        v = float(isp) / float(_ds(m))
        truth = (v, v)
    elif options.spacing_mode == "pixel_calibrated":
        ds.PixelSpacing = [sp, sp]
        ds.PixelSpacingCalibrationType = "GEOMETRY"
        ds.PixelSpacingCalibrationDescription = "simulated geometry"
        ds.ImagerPixelSpacing = [_ds(spacing_mm * options.magnification)] * 2
    else:
        raise ValueError(f"unknown spacing mode {options.spacing_mode!r}")
    if options.sop == "DX" and "ImagerPixelSpacing" not in ds:
        # the DX Detector module requires (0018,1164) Imager Pixel Spacing
        ds.ImagerPixelSpacing = [_ds(spacing_mm * options.magnification)] * 2
        if options.spacing_mode == "pixel":
            ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelData = stored.astype("<u2").tobytes()
    ts = TRANSFER_SYNTAXES[options.transfer_syntax]
    path.parent.mkdir(parents=True, exist_ok=True)
    if ts == ExplicitVRLittleEndian:
        ds.save_as(path, enforce_file_format=True)
    elif ts == JPEGLosslessSV1:
        save_gdcm_jpeg_lossless(ds, path, stored)
    else:
        ds.compress(ts, stored, generate_instance_uid=False)
        ds.save_as(path, enforce_file_format=True)
    return truth


def save_gdcm_jpeg_lossless(ds: Dataset, path: Path, stored: np.ndarray) -> None:
    """Encode JPEG Lossless SV1 (1.2.840.10008.1.2.4.70) with GDCM and write it with our
    own attributes.

    GDCM's ImageWriter rewrites spacing attributes from its image model (for CR it adds
    (0018,1164) Imager Pixel Spacing 1\\1 when only Pixel Spacing was given), so only
    its encapsulated pixel stream is kept; the decoded stream is checked to equal the
    stored values (lossless).
    """
    import gdcm

    tmp = path.with_suffix(".tmp.dcm")
    tmp_out = path.with_suffix(".tmp.jpll.dcm")
    ds.save_as(tmp, enforce_file_format=True)
    try:
        reader = gdcm.ImageReader()
        reader.SetFileName(str(tmp))
        if not reader.Read():
            raise RuntimeError(f"GDCM could not read back {tmp}")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise RuntimeError("GDCM could not encode JPEG Lossless SV1")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(tmp_out))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise RuntimeError(f"GDCM could not write {tmp_out}")
        encoded = pydicom.dcmread(tmp_out)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_out.unlink(missing_ok=True)
    if str(encoded.file_meta.TransferSyntaxUID) != JPEGLosslessSV1:
        raise RuntimeError(
            f"{path}: GDCM wrote {encoded.file_meta.TransferSyntaxUID}, expected JPEG Lossless SV1"
        )
    if not np.array_equal(encoded.pixel_array, stored):
        raise RuntimeError(f"{path}: GDCM's JPEG Lossless stream does not decode to the input")
    ds.PixelData = encoded.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.save_as(path, enforce_file_format=True)
