"""Small synthetic radiograph folders for the batch, report and CLI tests.

Written with pydicom: uint16 CR/DX films with a bright "bone" band and a soft-tissue
background, deterministic UIDs (so runs are reproducible), nested folders, exact
duplicates, and the shared corpus' broken and non-image files mixed in.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

_REPO = Path(__file__).resolve().parents[1]
# The corpus sits beside the repository (CI, /work/main); git worktrees live one level
# deeper (/work/wt/<name>), so look one folder further up too.
SHARED_DICOM = next(
    (
        p
        for p in (_REPO.parent / "shared" / "dicom", _REPO.parents[1] / "shared" / "dicom")
        if p.is_dir()
    ),
    _REPO.parent / "shared" / "dicom",
)

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"


def write_radiograph(
    path: Path,
    seed: int,
    *,
    modality: str = "CR",
    body_part: str = "KNEE",
    series_description: str = "KNEE AP",
    size: int = 256,
) -> Path:
    """One small synthetic film (MONOCHROME2, 12 bit, Imager Pixel Spacing 0.2 mm)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(800, 30, (size, size))
    c0 = size // 3 + int(rng.integers(-10, 10))
    img[:, c0 : c0 + size // 4] += 1500  # a bone shaft
    img = np.clip(img, 0, 4095).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    sop_class = {"CR": CR_STORAGE, "DX": DX_STORAGE}.get(modality, CTImageStorage)
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    uid = generate_uid(entropy_srcs=[f"calcimg-test-{seed}"])
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"study-{seed}"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"series-{seed}"])
    ds.Modality = modality
    ds.BodyPartExamined = body_part
    ds.SeriesDescription = series_description
    ds.PatientID = f"P{seed:04d}"
    ds.Rows, ds.Columns = img.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.WindowCenter = 1500
    ds.WindowWidth = 3000
    ds.PixelData = img.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@dataclass
class Folder:
    """What :func:`make_folder` wrote and what each file should become."""

    root: Path
    good: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)
    broken: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)

    @property
    def n_inputs(self) -> int:
        return len(self.good) + len(self.duplicates) + len(self.broken) + len(self.skipped)


PARTS = (("KNEE", "KNEE AP"), ("HAND", "HAND PA"), ("SHOULDER", "SHOULDER AP"))


def make_folder(root: Path, *, n: int = 24, size: int = 256) -> Folder:
    """A nested folder of ``n`` films plus duplicates, broken and non-image files."""
    f = Folder(root=root)
    for i in range(n):
        part, desc = PARTS[i % len(PARTS)]
        modality = "DX" if i % 4 == 3 else "CR"
        sub = root / f"study{i // 6:02d}" / f"series{i % 2}"
        f.good.append(
            write_radiograph(
                sub / f"img{i:03d}.dcm",
                1000 + i,
                modality=modality,
                body_part=part,
                series_description=desc,
                size=size,
            )
        )
    for i in (0, 5, 7):  # exact copies elsewhere: analysed once, one line per path
        dst = root / "copies" / f"copy_of_{i:03d}.dcm"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.good[i], dst)
        f.duplicates.append(dst)
    for src in sorted((SHARED_DICOM / "broken").glob("*.dcm")):
        dst = root / "broken" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        f.broken.append(dst)
    for src in sorted((SHARED_DICOM / "non-image").glob("*.dcm")):
        dst = root / "other" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        f.skipped.append(dst)
    notes = root / "other" / "notes.txt"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text("not an image\n", encoding="utf-8")
    f.skipped.append(notes)
    # An image of a modality calcimg does not analyse: skipped with the reason.
    f.skipped.append(write_radiograph(root / "other" / "ct.dcm", 99, modality="CT", size=64))
    return f


def lines_without_timing(out: Path) -> set[str]:
    """Every results.jsonl line of ``out``, minus its timings, as canonical JSON."""
    from calcimg.report import RESULTS_FILE

    lines = set()
    for line in (out / RESULTS_FILE).read_text().splitlines():
        d = json.loads(line)
        d.pop("timing_ms")
        lines.add(json.dumps(d, sort_keys=True))
    return lines


def csv_without_timing(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV table without its ``timing_*`` columns."""
    with path.open() as fh:
        return [
            {k: v for k, v in row.items() if not k.startswith("timing_")}
            for row in csv.DictReader(fh)
        ]
