"""Reading user-supplied label masks (expert annotations) for feature extraction.

A label mask is an integer image of the radiograph's size: 0 background, k > 0 region
k. Accepted files:

* PNG / TIFF (8 or 16 bit, one channel; a grey RGB image is taken as one channel),
  read with OpenCV.
* NRRD / NIfTI (``.nrrd``, ``.nhdr``, ``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``), read
  with SimpleITK when it is installed (optional: ``pip install SimpleITK``).
* DICOM Segmentation (SEG), read with highdicom: the segments that reference the
  radiograph's (0008,0018) SOP Instance UID, each segment's number as its label.

This is an input adapter like :mod:`calcimg.ingest`: it reads, it does not measure.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from calcimg.errors import InputError

__all__ = ["SITK_SUFFIXES", "read_label_mask"]

log = logging.getLogger(__name__)

SITK_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
_CV_SUFFIXES = (".png", ".tif", ".tiff")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def read_label_mask(
    path: str | os.PathLike[str],
    *,
    shape: tuple[int, int],
    sop_instance_uid: str | None = None,
    frame: int = 0,
) -> np.ndarray:
    """Read a label mask for one image.

    Parameters
    ----------
    path : path-like
        PNG, TIFF, NRRD, NIfTI or DICOM SEG file.
    shape : tuple of int
        (rows, columns) of the image the mask annotates; the mask must match it.
    sop_instance_uid : str, optional
        The image's SOP Instance UID; required for a DICOM SEG.
    frame : int
        For a 3-D NRRD/NIfTI mask over a multi-frame image, the slice to use.

    Returns
    -------
    numpy.ndarray
        int32 (rows, columns), 0 background.

    Raises
    ------
    InputError
        Missing file, unknown kind, colour or float mask, wrong size, a SEG that does
        not reference the image, or SimpleITK missing for NRRD/NIfTI.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: mask file not found")
    kind = _suffix(p)
    if kind in _CV_SUFFIXES:
        arr = _read_cv(p)
    elif kind in SITK_SUFFIXES:
        arr = _read_sitk(p, frame)
    elif kind in (".dcm", ".dicom", "") or _is_dicom(p):
        arr = _read_seg(p, sop_instance_uid)
    else:
        raise InputError(
            f"{p}: unknown mask format {kind!r}; expected one of "
            f"{', '.join(_CV_SUFFIXES + SITK_SUFFIXES)} or a DICOM SEG"
        )
    if arr.dtype.kind == "f":
        if not np.all(arr == np.round(arr)):
            raise InputError(
                f"{p}: mask holds fractional values; expected integer labels "
                "(0 background, 1..n regions)"
            )
    elif arr.dtype.kind not in "iub":
        raise InputError(f"{p}: mask dtype {arr.dtype} is not an integer label image")
    if arr.ndim != 2:
        raise InputError(f"{p}: mask has shape {arr.shape}; expected a 2-D label image")
    if tuple(arr.shape) != tuple(shape):
        raise InputError(
            f"{p}: mask is {arr.shape[0]}x{arr.shape[1]} (rows x columns); expected "
            f"{shape[0]}x{shape[1]} to match the image"
        )
    if arr.size and arr.min() < 0:
        raise InputError(f"{p}: mask has negative labels (min {arr.min()}); expected >= 0")
    return arr.astype(np.int32)


def _is_dicom(p: Path) -> bool:
    with p.open("rb") as fh:
        head = fh.read(132)
    return head[128:132] == b"DICM"


def _read_cv(p: Path) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError(f"{p}: OpenCV cannot read this image")
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[:, :, :3]
        grey = np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(
            arr[:, :, 0], arr[:, :, 2]
        )
        if not grey:
            raise InputError(f"{p}: mask is a colour image; expected one channel of integer labels")
        arr = arr[:, :, 0]
    return np.asarray(arr)


def _read_sitk(p: Path, frame: int) -> np.ndarray:
    try:
        import SimpleITK as sitk  # noqa: N813 (the package's own spelling)
    except ImportError:
        raise InputError(
            f"{p}: reading NRRD/NIfTI masks needs SimpleITK; install it with "
            "`pip install SimpleITK`, or save the mask as PNG/TIFF or DICOM SEG"
        ) from None
    try:
        arr: Any = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
    except RuntimeError as exc:
        raise InputError(f"{p}: SimpleITK cannot read this mask: {exc}") from exc
    # SimpleITK arrays are (z, y, x): a 2-D radiograph is one slice
    if arr.ndim == 3:
        if arr.shape[0] == 1:
            arr = arr[0]
        elif 0 <= frame < arr.shape[0]:
            arr = arr[frame]
        else:
            raise InputError(
                f"{p}: 3-D mask with {arr.shape[0]} slices; frame {frame} does not exist"
            )
    return np.asarray(arr)


def _read_seg(p: Path, sop_instance_uid: str | None) -> np.ndarray:
    if sop_instance_uid is None:
        raise InputError(
            f"{p}: a DICOM SEG mask needs the image's (0008,0018) SOP Instance UID to "
            "find its frames; the image has none (PNG/TIFF input?)"
        )
    import highdicom as hd

    try:
        seg = hd.seg.segread(p)
    except Exception as exc:  # highdicom raises plain ValueError/AttributeError
        # highdicom 0.28 writes SEGs of projection images (no Slice Thickness in the
        # Pixel Measures Sequence) that its own reader refuses; read those frames directly
        log.debug("highdicom cannot read %s (%s); reading its frames with pydicom", p, exc)
        return _read_seg_frames(p, sop_instance_uid)
    try:
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[sop_instance_uid], combine_segments=True
        )
    except (ValueError, KeyError, AttributeError) as exc:
        raise InputError(
            f"{p}: the SEG has no frames for SOP Instance UID {sop_instance_uid} "
            f"(or its segments overlap): {exc}"
        ) from exc
    return np.asarray(pixels[0])


def _read_seg_frames(p: Path, sop_instance_uid: str) -> np.ndarray:
    """Label image from a SEG's frames: each frame's segment number where it is set.

    Frames are matched to the image through (0008,9124) Derivation Image Sequence >
    (0008,2112) Source Image Sequence > Referenced SOP Instance UID (PS3.3 C.8.20.3).
    """
    import pydicom

    try:
        ds = pydicom.dcmread(p)
        sop_class = str(ds.SOPClassUID)
        frames = np.asarray(ds.pixel_array)
    except Exception as exc:
        raise InputError(f"{p}: cannot read the DICOM SEG: {exc}") from exc
    if sop_class != "1.2.840.10008.5.1.4.1.1.66.4":
        raise InputError(
            f"{p}: (0008,0016) SOP Class UID is {sop_class}; expected Segmentation "
            "Storage (1.2.840.10008.5.1.4.1.1.66.4)"
        )
    if frames.ndim == 2:
        frames = frames[None]
    label = np.zeros(frames.shape[1:], np.int32)
    found = False
    for i, item in enumerate(ds.get("PerFrameFunctionalGroupsSequence", [])):
        refs = {
            str(src.ReferencedSOPInstanceUID)
            for der in item.get("DerivationImageSequence", [])
            for src in der.get("SourceImageSequence", [])
        }
        if sop_instance_uid not in refs:
            continue
        seg_number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        on = frames[i] > 0
        if np.any(on & (label > 0) & (label != seg_number)):
            raise InputError(
                f"{p}: segments overlap at some pixels; a label mask needs one label per pixel"
            )
        label[on] = seg_number
        found = True
    if not found:
        raise InputError(f"{p}: the SEG has no frames for SOP Instance UID {sop_instance_uid}")
    return label
