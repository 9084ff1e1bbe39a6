"""Ingest: read radiographs (DICOM, PNG, TIFF, PGM) into calcimg's canonical space.

Stage 1 of the pipeline and the only stage that reads files. The pixel order follows
the standard (PS3.3 C.11, PS3.4 N.2): stored values -> Modality LUT (rescale or LUT
sequence) -> MONOCHROME1 inversion last, so that higher values always mean more
attenuation. Decoding is pydicom's, with its plugins (pylibjpeg-libjpeg, -openjpeg,
-rle, pyjpegls, GDCM); calcimg writes no codecs.

Every failure becomes a typed error from :mod:`calcimg.errors` whose message names the
file, what was expected and what was found.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ImplicitVRLittleEndian

from calcimg.errors import (
    CalcimgError,
    DicomReadError,
    InputError,
    NotAnImageError,
    PixelDecodeError,
    UnsupportedImageError,
)
from calcimg.params import check_range
from calcimg.radiograph import Radiograph, SpacingSource

__all__ = [
    "IMAGE_SUFFIXES",
    "Header",
    "IngestParams",
    "InputItem",
    "iter_inputs",
    "iter_radiographs",
    "read_header",
    "read_radiograph",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".pgm", ".pnm"})
"""File name endings read as plain image exports rather than DICOM."""

# Modalities calcimg analyses: projection radiography and mammography, plus grayscale
# secondary captures (SC / OT) that sites use for digitised and exported films.
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "RG", "MG", "PX", "IO", "SC", "OT"})

# SOP classes (and families) of objects that carry no image to analyse.
_NON_IMAGE_SOP_PREFIXES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.88.": "a structured report (SR)",
    "1.2.840.10008.5.1.4.1.1.481.": "a radiotherapy object (RT)",
    "1.2.840.10008.5.1.4.1.1.66": "a segmentation or registration object",
    "1.2.840.10008.5.1.4.1.1.11.": "a presentation state (PR)",
    "1.2.840.10008.5.1.4.1.1.104.": "an encapsulated document",
    "1.2.840.10008.5.1.4.1.1.9.": "a waveform",
    "1.2.840.10008.1.3.10": "a DICOMDIR (media storage directory, whose referenced files "
    "are analysed as inputs of their own)",
    "1.2.840.10008.5.1.4.1.1.67": "a real-world value mapping",
}
_KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestParams:
    """Parameters of ingest (section ``[ingest]``).

    Attributes
    ----------
    user_spacing_mm : tuple of float or None
        (row, column) spacing given by the user, used when the file has no usable
        spacing of its own (and for PNG/TIFF/PGM exports).
    default_spacing_mm : float or None
        Spacing assumed when nothing else is usable. None (the default) assumes the
        film spans ``assumed_field_of_view_mm`` along its longest side.
    assumed_field_of_view_mm : float
        The field of view assumed when ``default_spacing_mm`` is None: 350 mm, the
        common 35 x 43 cm cassette and flat-panel size.
    max_spacing_mm : float
        Spacings above this (or <= 0) are rejected as impossible (DOMAIN.md).
    rgb_tolerance : float
        Largest channel difference, as a fraction of the value range, for which an RGB
        image is still taken as grayscale (lossy colour codecs perturb equal channels).
    """

    user_spacing_mm: tuple[float, float] | None = None
    default_spacing_mm: float | None = None
    assumed_field_of_view_mm: float = 350.0
    max_spacing_mm: float = 5.0
    rgb_tolerance: float = 0.02

    def __post_init__(self) -> None:
        if self.user_spacing_mm is not None:
            for v in self.user_spacing_mm:
                check_range("ingest.user_spacing_mm", v, 0.0, 5.0, low_open=True)
        if self.default_spacing_mm is not None:
            check_range("ingest.default_spacing_mm", self.default_spacing_mm, 0, 5, low_open=True)
        check_range("ingest.assumed_field_of_view_mm", self.assumed_field_of_view_mm, 10, 1000)
        check_range("ingest.max_spacing_mm", self.max_spacing_mm, 0.0, 50.0, low_open=True)
        check_range("ingest.rgb_tolerance", self.rgb_tolerance, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class InputItem:
    """One input found by :func:`iter_inputs`: a path, and the DICOMDIR that named it."""

    path: Path
    via_dicomdir: Path | None = None


Source = str | os.PathLike[str] | BinaryIO | Dataset


# --------------------------------------------------------------------------- discovery


def iter_inputs(paths: Iterable[str | os.PathLike[str]]) -> Iterator[InputItem]:
    """Expand files, folders (recursively, sorted) and DICOMDIRs into input files.

    A DICOMDIR yields the files it references, then itself (reading it gives a
    "skipped" result, so that every file of a folder has its line); files inside a
    folder that also holds a DICOMDIR are yielded once, since duplicates are removed by
    resolved path. Hidden files and folders are skipped.

    Parameters
    ----------
    paths : iterable of path-like

    Yields
    ------
    InputItem

    Raises
    ------
    InputError
        When a given path does not exist.
    """
    seen: set[Path] = set()
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        candidates: Iterable[Path]
        candidates = _walk(p) if p.is_dir() else [p]
        for f in candidates:
            if _is_dicomdir(f):
                for ref in _dicomdir_references(f):
                    key = ref.resolve()
                    if key not in seen:
                        seen.add(key)
                        yield InputItem(ref, via_dicomdir=f)
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                yield InputItem(f)


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def _is_dicomdir(path: Path) -> bool:
    if path.name.upper() != "DICOMDIR":
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # an unreadable DICOMDIR is reported when it is read as an input
        return False
    sop = str(getattr(ds.file_meta, "MediaStorageSOPClassUID", ""))
    return sop == "1.2.840.10008.1.3.10"


def _dicomdir_references(path: Path) -> list[Path]:
    """Files named by a DICOMDIR's directory records (PS3.3 F.3.2.2, Referenced File ID).

    The records are read directly rather than through pydicom's FileSet, which stages a
    temporary copy of the file-set that a read-only walk does not need.
    """
    try:
        ds = pydicom.dcmread(path)
        records = ds.DirectoryRecordSequence
    except Exception as exc:
        raise DicomReadError(
            f"{path}: cannot read the DICOMDIR's (0004,1220) Directory Record Sequence: {exc}"
        ) from exc
    refs: list[Path] = []
    for record in records:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        refs.append(path.parent.joinpath(*parts))
    return refs


# ------------------------------------------------------------------------------ reading


def read_radiograph(
    source: Source, *, frame: int = 0, params: IngestParams | None = None
) -> Radiograph:
    """Read one frame of a radiograph.

    Parameters
    ----------
    source : path, binary file-like or pydicom.Dataset
        A DICOM file (any transfer syntax pydicom's plugins decode), or a PNG, TIFF or
        PGM export (spacing from ``params.user_spacing_mm`` or assumed; uncalibrated).
    frame : int
        Frame index for multi-frame objects (0-based).
    params : IngestParams, optional

    Returns
    -------
    Radiograph
        float32 pixels in canonical space (higher = more attenuation).

    Raises
    ------
    InputError
        The file cannot be opened.
    DicomReadError, PixelDecodeError
        Not valid DICOM, truncated, invalid values, corrupt pixel stream.
    NotAnImageError
        SR, RT, SEG, PR, KO, DICOMDIR or a non-radiograph modality (skipped by batches).
    UnsupportedImageError
        True colour or otherwise not a grayscale 2-D image.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> rg = read_radiograph(get_testdata_file("RG1_UNCR.dcm"))
    >>> rg.pixels.dtype, rg.spacing_source.value
    (dtype('float32'), 'assumed')
    """
    params = params or IngestParams()
    opened = _open(source, params)
    if isinstance(opened, Radiograph):
        if frame != 0:
            raise UnsupportedImageError(
                f"{opened.source}: frame {frame} requested; an image export has 1 frame"
            )
        return opened
    return _dicom_frame(opened, frame, params)


def iter_radiographs(source: Source, *, params: IngestParams | None = None) -> Iterator[Radiograph]:
    """Yield every frame of a source as its own :class:`Radiograph`.

    The file is read and validated once; frames are decoded one at a time so that a
    long multi-frame object does not sit in memory whole.

    Raises
    ------
    CalcimgError
        As :func:`read_radiograph`, raised before the first frame is yielded when the
        file itself is bad.
    """
    params = params or IngestParams()
    opened = _open(source, params)
    if isinstance(opened, Radiograph):
        yield opened
        return
    for i in range(opened.n_frames):
        yield _dicom_frame(opened, i, params)


@dataclass(slots=True)
class _OpenDicom:
    ds: Dataset
    name: str
    n_frames: int
    input_hash: str | None
    warnings: list[str]


def _source_name(source: Source) -> str:
    if isinstance(source, Dataset):
        fn = getattr(source, "filename", None)
        return str(fn) if isinstance(fn, str) and fn else "<dataset>"
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return str(getattr(source, "name", "<stream>"))


@contextlib.contextmanager
def _collect_warnings(notes: list[str]) -> Iterator[None]:
    """Turn warnings raised while reading (pydicom's invalid-value warnings) into notes.

    pydicom converts element values lazily, so its warnings can come at any access.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message).split(" Please see")[0]
        if text not in notes:
            notes.append(text)


def _open(source: Source, params: IngestParams) -> _OpenDicom | Radiograph:
    notes: list[str] = []
    with _collect_warnings(notes):
        opened = _open_inner(source, params)
    if isinstance(opened, _OpenDicom):
        opened.warnings[:0] = [n for n in notes if n not in opened.warnings]
    return opened


def _open_inner(source: Source, params: IngestParams) -> _OpenDicom | Radiograph:
    name = _source_name(source)
    if isinstance(source, Dataset):
        return _validate_dataset(source, name, input_hash=None, notes=[])
    if isinstance(source, str | os.PathLike):
        # Files are hashed by streaming and parsed by pydicom from the path, so that the
        # whole file is never held in memory beside its decoded pixels.
        path = Path(source)
        head, digest = _sniff_and_hash(path, name)
        if _looks_like_image_export(name, head):
            return _read_image_export(_read_bytes(path, name), name, digest, params)
        ds, notes = _parse_dicom(path, head, name)
        return _validate_dataset(ds, name, input_hash=digest, notes=notes)
    data = _read_bytes(source, name)
    digest = hashlib.sha256(data).hexdigest()
    if _looks_like_image_export(name, data[:132]):
        return _read_image_export(data, name, digest, params)
    ds, notes = _parse_dicom(io.BytesIO(data), data[:132], name)
    return _validate_dataset(ds, name, input_hash=digest, notes=notes)


def _sniff_and_hash(path: Path, name: str) -> tuple[bytes, str]:
    """The first 132 bytes (preamble + 'DICM') and the SHA-256 of the whole file."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
            h.update(head)
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except IsADirectoryError:
        raise InputError(f"{name}: is a folder; expected a file") from None
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read: {exc.strerror or exc}") from exc
    return head, h.hexdigest()


def _read_bytes(source: str | os.PathLike[str] | BinaryIO, name: str) -> bytes:
    try:
        if isinstance(source, str | os.PathLike):
            return Path(source).read_bytes()
        data = source.read()
    except IsADirectoryError:
        raise InputError(f"{name}: is a folder; expected a file") from None
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read: {exc.strerror or exc}") from exc
    if not isinstance(data, bytes):
        raise InputError(f"{name}: the stream gave {type(data).__name__}; expected bytes")
    return data


def _looks_like_image_export(name: str, data: bytes) -> bool:
    if data[128:132] == b"DICM":
        # A DICOM preamble may itself hold a TIFF header (dual-personality files).
        return False
    if data[:8] == b"\x89PNG\r\n\x1a\n" or data[:4] in (b"II*\x00", b"MM\x00*"):
        return True
    if data[:2] in (b"P2", b"P5") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
        return True
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


# Files that travel with DICOM exports (PACS CDs, research folders) but are documents.
DOCUMENT_SUFFIXES = frozenset(
    {
        ".md",
        ".txt",
        ".rst",
        ".json",
        ".jsonl",
        ".csv",
        ".tsv",
        ".html",
        ".htm",
        ".xml",
        ".pdf",
        ".toml",
        ".yaml",
        ".yml",
        ".ini",
        ".log",
        ".py",
        ".sh",
        ".exe",
        ".inf",
        ".zip",
        ".gz",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
    }
)


def _looks_like_text(head: bytes) -> bool:
    """True for a file that starts as plain text (README, dumps, notes in a folder)."""
    sample = head[:512]
    if not sample or b"\x00" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return printable >= 0.95 * len(text)


def _parse_dicom(
    src: Path | BinaryIO, head: bytes, name: str, *, defer_size: int | None = None
) -> tuple[Dataset, list[str]]:
    """Parse a DICOM file; files without preamble or meta are tried as raw datasets.

    ``defer_size`` leaves values larger than it (Pixel Data) unread, for header-only use.
    """
    notes: list[str] = []
    if len(head) == 0:
        raise DicomReadError(f"{name}: the file is empty; expected a DICOM file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds: Dataset = pydicom.dcmread(src, defer_size=defer_size)
        except InvalidDicomError:
            suffix = Path(name).suffix.lower()
            if suffix in DOCUMENT_SUFFIXES or _looks_like_text(head):
                what = f"a {suffix} file" if suffix else "a text file"
                raise NotAnImageError(
                    f"{name}: {what} without a DICOM header, not an image; skipped"
                ) from None
            # Old ACR-NEMA style files have no preamble and no File Meta: try the raw
            # dataset, and accept it only if it is recognisably a DICOM object.
            ds = _parse_without_meta(src, name, defer_size)
            notes.append("no DICOM preamble or File Meta Information; read as a raw dataset")
        except Exception as exc:
            raise DicomReadError(
                f"{name}: not a readable DICOM file ({type(exc).__name__}: {exc}); expected "
                "a DICOM Part 10 file"
            ) from exc
    for w in caught:
        msg = str(w.message)
        if "End of file reached before delimiter" in msg:
            raise DicomReadError(
                f"{name}: the file is truncated: it ends before the end of the pixel data "
                f"(pydicom: {msg.split(' in file')[0]}); expected a complete DICOM file"
            )
        notes.append(msg)  # e.g. an explicit/implicit VR mismatch pydicom recovered from
    return ds, notes


def _parse_without_meta(src: Path | BinaryIO, name: str, defer_size: int | None) -> Dataset:
    try:
        if not isinstance(src, Path):
            src.seek(0)
        ds = pydicom.dcmread(src, force=True, defer_size=defer_size)
        # an image (old ACR-NEMA style), or any object that says what it is
        looks_valid = ("PixelData" in ds and "Rows" in ds and "Columns" in ds) or bool(
            _tag_value(ds, "SOPClassUID")
        )
    except Exception:
        looks_valid = False
    if not looks_valid:
        raise DicomReadError(
            f"{name}: not a DICOM file: no 128-byte preamble with 'DICM', no File Meta "
            "Information, and the content does not parse as a DICOM dataset with "
            "(7FE0,0010) Pixel Data; expected a DICOM Part 10 file"
        )
    return ds


def _tag_value(ds: Dataset, keyword: str) -> Any:
    """The element's value, or None when absent, empty or not convertible."""
    try:
        value = ds.get(keyword)
    except Exception:
        return None
    if value is None or value == "":
        return None
    return value


def _validate_dataset(
    ds: Dataset, name: str, *, input_hash: str | None, notes: list[str]
) -> _OpenDicom:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        # PS3.10 requires (0002,0010); files without it are old or hand-made. Their
        # dataset was parsed as Implicit VR Little Endian, so decode it as that.
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
        notes.append(
            "(0002,0010) Transfer Syntax UID is missing; read as Implicit VR Little Endian"
        )
    n_frames, _, _ = _check_dataset(ds, name, pixel_bytes=lambda: len(ds.PixelData), need_bits=True)
    return _OpenDicom(ds=ds, name=name, n_frames=n_frames, input_hash=input_hash, warnings=notes)


def _check_dataset(
    ds: Dataset,
    name: str,
    *,
    pixel_bytes: Callable[[], int | None],
    need_bits: bool,
) -> tuple[int, str, str]:
    """The checks every DICOM input passes, in the order that gives the right reason.

    Shared by :func:`read_radiograph` and :func:`read_header` (which measures the Pixel
    Data without reading it). Returns (number of frames, SOP class UID, modality).
    """
    meta = getattr(ds, "file_meta", None)
    sop_class = str(
        _tag_value(ds, "SOPClassUID") or (meta.get("MediaStorageSOPClassUID", "") if meta else "")
    )
    # Invalid values are faults of the file whatever it holds, so they are checked first.
    n_frames = _int_value(ds, "NumberOfFrames", name, "(0028,0008)")
    _refuse_non_images(ds, name, sop_class)
    if "PixelData" not in ds:
        raise NotAnImageError(
            f"{name}: no (7FE0,0010) Pixel Data; {_sop_name(sop_class)} carries no image"
        )
    required = [("Rows", "(0028,0010)"), ("Columns", "(0028,0011)")]
    if need_bits:
        required.append(("BitsAllocated", "(0028,0100)"))
    for kw, tag in required:
        value = _int_value(ds, kw, name, tag)
        if value is None or value <= 0:
            found = "missing" if value is None else str(value)
            raise DicomReadError(
                f"{name}: {tag} {_spaced(kw)} is {found}; expected a positive integer"
            )
    if n_frames is None:
        n_frames = 1
    if n_frames < 1:
        raise DicomReadError(
            f"{name}: (0028,0008) Number of Frames is {n_frames}; expected a positive integer"
        )
    _check_pixel_length(ds, name, n_frames, pixel_bytes)
    modality = str(_tag_value(ds, "Modality") or "").upper()
    if modality and modality not in RADIOGRAPH_MODALITIES:
        raise NotAnImageError(
            f"{name}: (0008,0060) Modality is {modality}; calcimg analyses radiographs "
            f"({', '.join(sorted(RADIOGRAPH_MODALITIES))}), so this image is skipped"
        )
    return n_frames, sop_class, modality


def _spaced(keyword: str) -> str:
    out = "".join(" " + c if c.isupper() else c for c in keyword).strip()
    return out


def _int_value(ds: Dataset, keyword: str, name: str, tag: str) -> int | None:
    if keyword not in ds:
        return None
    raw = ds[keyword].value
    if raw is None or raw == "":
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(raw)
    except (TypeError, ValueError):
        raise DicomReadError(
            f"{name}: {tag} {_spaced(keyword)} is {str(raw)!r}; expected an integer "
            "(the value is not valid for its VR)"
        ) from None


def _sop_name(sop_class: str) -> str:
    if not sop_class:
        return "this object"
    uid = UID(sop_class)
    return f"{uid.name} ({sop_class})" if uid.name != sop_class else sop_class


def _refuse_non_images(ds: Dataset, name: str, sop_class: str) -> None:
    if sop_class == _KEY_OBJECT_SELECTION:
        raise NotAnImageError(
            f"{name}: {_sop_name(sop_class)} is a key object selection, not an image; skipped"
        )
    for prefix, what in _NON_IMAGE_SOP_PREFIXES.items():
        if sop_class.startswith(prefix):
            raise NotAnImageError(
                f"{name}: {_sop_name(sop_class)} is {what}, not an image; skipped"
            )
    if "DirectoryRecordSequence" in ds:
        raise NotAnImageError(
            f"{name}: a DICOMDIR (media storage directory), not an image; calcimg analyze "
            "analyses the files it references when given the DICOMDIR or its folder"
        )


def _check_pixel_length(
    ds: Dataset, name: str, n_frames: int, pixel_bytes: Callable[[], int | None]
) -> None:
    """Native Pixel Data must hold Rows x Columns x Samples x Frames x Bits Allocated."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None or UID(str(ts)).is_encapsulated:
        return
    try:
        found = pixel_bytes()
        bits = int(ds.BitsAllocated)
    except Exception:  # odd values: decoding decides, with its own message
        return
    if found is None:
        return
    rows, cols = int(ds.Rows), int(ds.Columns)
    spp = _int_value(ds, "SamplesPerPixel", name, "(0028,0002)") or 1
    samples = float(spp)
    if spp == 3 and str(_tag_value(ds, "PhotometricInterpretation") or "") == "YBR_FULL_422":
        samples = 2.0  # chroma subsampled horizontally: Y Y Cb Cr per two pixels (PS3.3 C.7.6.3)
    expected = int((rows * cols * samples * n_frames * bits + 7) // 8)
    if found < expected:
        raise DicomReadError(
            f"{name}: (7FE0,0010) Pixel Data has {found} bytes; expected {expected} "
            f"(Rows {rows} x Columns {cols} x Samples {spp} x Frames {n_frames} x "
            f"{bits} bits): the pixel data is truncated or a (0028,xxxx) value is wrong"
        )


# ------------------------------------------------------------------------ pixel decoding


def _dicom_frame(opened: _OpenDicom, frame: int, params: IngestParams) -> Radiograph:
    notes = list(opened.warnings)
    with _collect_warnings(notes):
        return _dicom_frame_inner(opened, frame, params, notes)


def _dicom_frame_inner(
    opened: _OpenDicom, frame: int, params: IngestParams, notes: list[str]
) -> Radiograph:
    ds, name = opened.ds, opened.name
    if not 0 <= frame < opened.n_frames:
        raise UnsupportedImageError(
            f"{name}: frame {frame} requested; the object has {opened.n_frames} frame(s)"
        )
    photometric = str(_tag_value(ds, "PhotometricInterpretation") or "").upper().strip()
    spp = _int_value(ds, "SamplesPerPixel", name, "(0028,0002)") or 1
    if photometric not in {
        "MONOCHROME1",
        "MONOCHROME2",
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_RCT",
        "YBR_ICT",
    }:
        raise UnsupportedImageError(
            f"{name}: (0028,0004) Photometric Interpretation is {photometric or 'missing'!r}; "
            "expected MONOCHROME1 or MONOCHROME2 (or RGB with equal channels)"
        )
    arr = _decode(ds, name, frame, opened.n_frames)
    transforms: list[str] = []
    if spp == 3 or arr.ndim == 3:
        arr = _rgb_to_gray(arr, name, params)
        transforms.append("rgb_to_gray")
        photometric = "MONOCHROME2"
    if arr.ndim != 2:
        raise UnsupportedImageError(
            f"{name}: decoded pixel array has shape {arr.shape}; expected (rows, columns)"
        )

    values, lo, hi, applied = _modality_lut(ds, arr, name)
    del arr  # the stored values are no longer needed: keep peak memory per pixel low
    if applied:
        transforms.append("modality_lut")
    voi = _voi_window(ds, applied_lut=applied, name=name, notes=notes)
    if photometric == "MONOCHROME1":
        # Inverted last, after the Modality LUT (PS3.4 N.2); a Presentation LUT Shape of
        # INVERSE on MONOCHROME1 says the same thing and is not a second inversion.
        np.subtract(np.float32(lo + hi), values, out=values)
        transforms.append("invert_monochrome1")
        if voi is not None:
            voi = (float(lo + hi - voi[0]), voi[1])
    elif str(_tag_value(ds, "PresentationLUTShape") or "").upper() == "INVERSE":
        notes.append(
            "(2050,0020) Presentation LUT Shape is INVERSE on MONOCHROME2; ignored for "
            "analysis (PS3.3 expects IDENTITY for MONOCHROME2)"
        )
    spacing, source, calibrated = _resolve_spacing(ds, name, values.shape, params, notes)
    for note in notes:
        log.info("%s", note)
    return Radiograph(
        pixels=np.ascontiguousarray(values, dtype=np.float32),
        pixel_spacing_mm=spacing,
        spacing_source=source,
        calibrated=calibrated,
        transforms=tuple(transforms),
        voi_window=voi,
        value_range=(float(lo), float(hi)),
        source=name,
        frame=frame,
        number_of_frames=opened.n_frames,
        sop_instance_uid=_str_or_none(ds, "SOPInstanceUID"),
        sop_class_uid=_str_or_none(ds, "SOPClassUID"),
        study_instance_uid=_str_or_none(ds, "StudyInstanceUID"),
        series_instance_uid=_str_or_none(ds, "SeriesInstanceUID"),
        modality=_str_or_none(ds, "Modality"),
        body_part_examined=_str_or_none(ds, "BodyPartExamined"),
        series_description=_str_or_none(ds, "SeriesDescription"),
        view_position=_str_or_none(ds, "ViewPosition"),
        photometric_interpretation=str(_tag_value(ds, "PhotometricInterpretation") or ""),
        bits_stored=_int_value(ds, "BitsStored", name, "(0028,0101)"),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        patient_id=_str_or_none(ds, "PatientID"),
        patient_name=_str_or_none(ds, "PatientName"),
        accession_number=_str_or_none(ds, "AccessionNumber"),
        study_date=_str_or_none(ds, "StudyDate"),
        input_hash=opened.input_hash,
        warnings=tuple(notes),
    )


def _str_or_none(ds: Dataset, keyword: str) -> str | None:
    v = _tag_value(ds, keyword)
    return None if v is None else str(v).strip() or None


def _decode(ds: Dataset, name: str, frame: int, n_frames: int) -> np.ndarray:
    """Decode one frame with pydicom's plugins (not cached on the dataset)."""
    from pydicom.pixels import pixel_array

    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = pixel_array(ds, index=frame if n_frames > 1 else None)
    except CalcimgError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise PixelDecodeError(
            f"{name}: cannot decode the pixel data ({ts.name}, {ts}): {detail}. Expected a "
            "valid codestream; the file is corrupt or truncated, or no installed decoder "
            "supports it"
        ) from exc
    return arr


def _rgb_to_gray(arr: np.ndarray, name: str, params: IngestParams) -> np.ndarray:
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise UnsupportedImageError(
            f"{name}: colour pixel array has shape {arr.shape}; expected (rows, columns, 3)"
        )
    a = arr.astype(np.float64)  # exact for 32-bit samples
    span = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else max(1.0, float(a.max()))
    diff = max(
        float(np.abs(a[..., 0] - a[..., 1]).max()), float(np.abs(a[..., 0] - a[..., 2]).max())
    )
    if diff > params.rgb_tolerance * span:
        raise UnsupportedImageError(
            f"{name}: a true colour image (channels differ by up to {diff:.0f} of {span:.0f}); "
            "expected a grayscale radiograph (or RGB with equal channels)"
        )
    return a.mean(axis=-1)


def _stored_range(ds: Dataset, name: str) -> tuple[int, int]:
    bits_stored = _int_value(ds, "BitsStored", name, "(0028,0101)") or int(ds.BitsAllocated)
    signed = (_int_value(ds, "PixelRepresentation", name, "(0028,0103)") or 0) == 1
    if signed:
        return -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    return 0, 2**bits_stored - 1


def _modality_lut(ds: Dataset, arr: np.ndarray, name: str) -> tuple[np.ndarray, float, float, bool]:
    """Apply the Modality LUT; return values, their possible range and whether applied."""
    from pydicom.pixels import apply_modality_lut

    lo_s, hi_s = _stored_range(ds, name)
    if arr.dtype.kind == "f" and "rgb" in name:  # pragma: no cover - defensive
        lo_s, hi_s = 0, 255
    has_lut = "ModalityLUTSequence" in ds
    slope = _float_value(ds, "RescaleSlope")
    intercept = _float_value(ds, "RescaleIntercept")
    rescales = (slope is not None and slope != 1.0) or (intercept is not None and intercept != 0.0)
    if arr.dtype.kind == "f":  # colour converted to gray: already a display value
        return arr.astype(np.float32), float(lo_s), float(hi_s), False
    if not (has_lut or rescales):
        return arr.astype(np.float32), float(lo_s), float(hi_s), False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = apply_modality_lut(arr, ds).astype(np.float32)
            # The canonical range is the image of the whole stored range (a LUT may be
            # non-monotonic or clip), so MONOCHROME1 inverts about the same centre
            # whatever values this particular image happens to use.
            stored = np.arange(lo_s, hi_s + 1) if has_lut else np.array([lo_s, hi_s])
            ends = apply_modality_lut(stored.astype(arr.dtype), ds)
    except Exception as exc:
        raise DicomReadError(
            f"{name}: cannot apply the Modality LUT ((0028,3000) Modality LUT Sequence or "
            f"(0028,1052)/(0028,1053) Rescale Intercept/Slope): {exc}"
        ) from exc
    lo, hi = float(np.min(ends)), float(np.max(ends))
    return out, lo, hi, True


def _float_value(ds: Dataset, keyword: str) -> float | None:
    v = _tag_value(ds, keyword)
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _first(value: Any) -> Any:
    """First item of a multi-valued element, or the value itself."""
    if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        return value
    return value[0]


def _voi_window(
    ds: Dataset, *, applied_lut: bool, name: str, notes: list[str]
) -> tuple[float, float] | None:
    """(center, width) from (0028,1050)/(0028,1051) or the VOI LUT Sequence's range."""
    center, width = _tag_value(ds, "WindowCenter"), _tag_value(ds, "WindowWidth")
    if center is not None and width is not None:
        try:
            c, w = float(_first(center)), float(_first(width))
        except (TypeError, ValueError, IndexError):
            notes.append(f"(0028,1050)/(0028,1051) window {center!r}/{width!r} is not numeric")
        else:
            if w > 0:
                return (c, w)
            notes.append(f"(0028,1051) Window Width is {w}; expected > 0; ignored")
    seq = _tag_value(ds, "VOILUTSequence")
    if seq:
        try:
            desc = seq[0].LUTDescriptor
            n = int(desc[0]) or 65536
            first = float(desc[1])
            return (first + n / 2.0, float(n))
        except Exception:
            notes.append("(0028,3010) VOI LUT Sequence has no usable LUT Descriptor")
    return None


# ------------------------------------------------------------------------------ spacing


def _spacing_pair(
    ds: Dataset, keyword: str, tag: str, name: str, params: IngestParams, notes: list[str]
) -> tuple[float, float] | None:
    raw = _tag_value(ds, keyword)
    if raw is None:
        return None
    try:
        values = [
            float(v)
            for v in (raw if hasattr(raw, "__len__") and not isinstance(raw, str) else [raw])
        ]
    except (TypeError, ValueError):
        notes.append(
            f"{name}: {tag} {_spaced(keyword)} is {raw!r}; expected two numbers in mm; ignored"
        )
        return None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        notes.append(
            f"{name}: {tag} {_spaced(keyword)} has {len(values)} values; expected 2; ignored"
        )
        return None
    if not all(0 < v <= params.max_spacing_mm for v in values) or not all(np.isfinite(values)):
        notes.append(
            f"{name}: {tag} {_spaced(keyword)} is {values[0]:g}\\{values[1]:g} mm; expected "
            f"values in (0, {params.max_spacing_mm:g}] mm; ignored"
        )
        return None
    return (values[0], values[1])


def _resolve_spacing(
    ds: Dataset,
    name: str,
    shape: tuple[int, ...],
    params: IngestParams,
    notes: list[str],
) -> tuple[tuple[float, float], SpacingSource, bool]:
    """Pick the pixel spacing by the order of DOMAIN.md and the foundation issue."""
    pixel = _spacing_pair(ds, "PixelSpacing", "(0028,0030)", name, params, notes)
    imager = _spacing_pair(ds, "ImagerPixelSpacing", "(0018,1164)", name, params, notes)
    nominal = _spacing_pair(ds, "NominalScannedPixelSpacing", "(0018,2010)", name, params, notes)
    calibration_type = _tag_value(ds, "PixelSpacingCalibrationType")
    ermf = _float_value(ds, "EstimatedRadiographicMagnificationFactor")

    # 1. Pixel Spacing that the modality says it calibrated (0028,0A02) GEOMETRY/FIDUCIAL.
    if pixel is not None and calibration_type is not None:
        return pixel, SpacingSource.PIXEL_SPACING, True
    # 2. Imager Pixel Spacing corrected for magnification (PS3.3 C.8.11.7).
    if imager is not None and ermf is not None:
        if 0.5 <= ermf <= 3.0:
            return (
                (imager[0] / ermf, imager[1] / ermf),
                SpacingSource.IMAGER_PIXEL_SPACING_ERMF,
                True,
            )
        notes.append(
            f"{name}: (0018,1114) Estimated Radiographic Magnification Factor is {ermf:g}; "
            "expected 0.5 to 3; ignored"
        )
    # 3. Imager Pixel Spacing at the detector; some DX vendors store spacing only here.
    if imager is not None:
        return imager, SpacingSource.IMAGER_PIXEL_SPACING, True
    # 4. Pixel Spacing without calibration information.
    if pixel is not None:
        if pixel == (1.0, 1.0) and nominal is None:
            # Converted and secondary-capture images often carry 1\1 as a placeholder
            # (e.g. RADOSS pelvis exports); keep it as the best figure, mark uncalibrated.
            notes.append(
                f"{name}: (0028,0030) Pixel Spacing is exactly 1\\1 mm with no Imager Pixel "
                "Spacing, a common placeholder; mm figures are uncalibrated"
            )
            return pixel, SpacingSource.PIXEL_SPACING, False
        return pixel, SpacingSource.PIXEL_SPACING, True
    # 5. Digitised film.
    if nominal is not None:
        return nominal, SpacingSource.NOMINAL_SCANNED_PIXEL_SPACING, True
    return _fallback_spacing(name, shape, params, notes)


def _fallback_spacing(
    name: str, shape: tuple[int, ...], params: IngestParams, notes: list[str]
) -> tuple[tuple[float, float], SpacingSource, bool]:
    if params.user_spacing_mm is not None:
        return params.user_spacing_mm, SpacingSource.USER, False
    if params.default_spacing_mm is not None:
        s = params.default_spacing_mm
        how = f"the configured default {s:g} mm"
    else:
        longest = max(int(shape[0]), int(shape[1]))
        s = float(np.clip(params.assumed_field_of_view_mm / longest, 0.05, 2.0))
        how = (
            f"{s:.3g} mm, assuming the film's longest side ({longest} px) spans "
            f"{params.assumed_field_of_view_mm:g} mm"
        )
    msg = (
        f"{name}: no usable pixel spacing ((0028,0030), (0018,1164), (0018,2010) absent or "
        f"invalid); assumed {how}; mm figures are uncalibrated (give --spacing to fix)"
    )
    notes.append(msg)
    log.warning("%s", msg)
    return (s, s), SpacingSource.ASSUMED, False


# ------------------------------------------------------------------------ image exports


def _read_image_export(data: bytes, name: str, digest: str, params: IngestParams) -> Radiograph:
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(
            f"{name}: cannot decode the image; expected a PNG, TIFF or PGM file "
            f"(first bytes {data[:8]!r})"
        )
    transforms: list[str] = []
    if img.ndim == 3:
        if img.shape[-1] == 4:
            img = img[..., :3]
        img = _rgb_to_gray(img, name, params)
        transforms.append("rgb_to_gray")
    if img.ndim != 2:
        raise UnsupportedImageError(f"{name}: image has shape {img.shape}; expected 2-D grayscale")
    if img.dtype.kind == "f":
        lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
    elif img.dtype == np.uint8:
        lo, hi = 0.0, 255.0
    else:
        top = int(img.max())
        bits = max(8, int(np.ceil(np.log2(top + 1)))) if top > 0 else 8
        lo, hi = 0.0, float(2**bits - 1)
    notes: list[str] = []
    spacing, source, _ = _fallback_spacing(name, img.shape, params, notes)
    return Radiograph(
        pixels=np.ascontiguousarray(img, dtype=np.float32),
        pixel_spacing_mm=spacing,
        spacing_source=source,
        calibrated=False,
        transforms=tuple(transforms),
        voi_window=None,
        value_range=(lo, hi),
        source=name,
        modality=None,
        input_hash=digest,
        warnings=tuple(notes),
    )


# ------------------------------------------------------------------------- header only


@dataclass(frozen=True, slots=True)
class Header:
    """Identifying metadata of one input, read without decoding its pixels.

    Attributes
    ----------
    source : str
        The path as given.
    kind : str
        ``"dicom"`` or ``"image_export"`` (PNG/TIFF/PGM; no metadata).
    n_frames : int
        (0028,0008) Number of Frames, 1 when absent.
    """

    source: str
    kind: str
    n_frames: int = 1
    rows: int | None = None
    columns: int | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    modality: str | None = None
    body_part_examined: str | None = None
    series_description: str | None = None
    transfer_syntax_uid: str | None = None


def read_header(path: str | os.PathLike[str]) -> Header:
    """Read an input's identifying metadata without decoding (or loading) its pixels.

    The checks that need only the header are those of :func:`read_radiograph`, with the
    same typed errors: not DICOM, non-image objects (SR, RT, SEG, PR, KO, DICOMDIR),
    no Pixel Data, non-radiograph modality, invalid Rows/Columns/Number of Frames. A
    file can still fail later, when its pixels are decoded (truncated or corrupt
    streams), so a header that reads is not a promise that the image analyses.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Header

    Raises
    ------
    InputError, DicomReadError, NotAnImageError
        As :func:`read_radiograph`.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> read_header(get_testdata_file("RG1_UNCR.dcm")).modality
    'CR'
    """
    with warnings.catch_warnings():
        # pydicom warns about invalid values lazily; the typed errors say what matters.
        warnings.simplefilter("ignore")
        return _read_header(path)


def _read_header(path: str | os.PathLike[str]) -> Header:
    name = os.fspath(path)
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(512)
    except IsADirectoryError:
        raise InputError(f"{name}: is a folder; expected a file") from None
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read: {exc.strerror or exc}") from exc
    if _looks_like_image_export(name, head):
        return Header(source=name, kind="image_export")
    # Large values (Pixel Data) are deferred: present in the dataset, never read.
    ds, _ = _parse_dicom(p, head, name, defer_size=4096)
    meta = getattr(ds, "file_meta", None)
    n_frames, sop_class, modality = _check_dataset(
        ds, name, pixel_bytes=lambda: _deferred_length(ds, p), need_bits=False
    )
    dims = {"Rows": int(ds.Rows), "Columns": int(ds.Columns)}
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return Header(
        source=name,
        kind="dicom",
        n_frames=n_frames or 1,
        rows=dims["Rows"],
        columns=dims["Columns"],
        sop_instance_uid=_str_or_none(ds, "SOPInstanceUID"),
        sop_class_uid=sop_class or None,
        study_instance_uid=_str_or_none(ds, "StudyInstanceUID"),
        series_instance_uid=_str_or_none(ds, "SeriesInstanceUID"),
        modality=modality or None,
        body_part_examined=_str_or_none(ds, "BodyPartExamined"),
        series_description=_str_or_none(ds, "SeriesDescription"),
        transfer_syntax_uid=None if ts is None else str(ts),
    )


def _deferred_length(ds: Dataset, path: Path) -> int | None:
    """Bytes of Pixel Data actually in the file, measured without reading them."""
    raw: Any = ds.get_item("PixelData")
    if hasattr(raw, "length"):  # deferred: read nothing, measure
        length, tell = int(raw.length), int(raw.value_tell)
        return max(0, min(length, path.stat().st_size - tell))
    return len(raw.value)  # small enough to have been read
