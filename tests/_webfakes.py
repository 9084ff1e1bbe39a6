"""Test helpers for the web tool, the DICOM node and the DICOM writers.

The detection, description and rule stages are built elsewhere; these tests must not
depend on them. :func:`fake_stages` replaces them (as the pipeline imported them) with
small deterministic stand-ins that find every bright blob of a drawn test film, so a
flagged image with known findings goes through the real pipeline composition, label mask
and writers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from calcimg.anatomy import AnatomyMap
from calcimg.describe import Description, Descriptions
from calcimg.detect import Detection, Detections
from calcimg.radiograph import Radiograph
from calcimg.result import Category, CategoryScore, Location, Pattern
from calcimg.rules import Assessment, FindingAssessment

CRImageStorage = "1.2.840.10008.5.1.4.1.1.1"
BLOBS_RC = ((150, 140, 9), (330, 360, 6))
"""(row, col, radius px) of the bright discs drawn on the test film."""


def film_pixels(rows: int = 512, cols: int = 512, *, blobs: bool = True) -> np.ndarray:
    """A 12-bit soft-tissue-like film with two bright discs (MONOCHROME2)."""
    rng = np.random.default_rng(7)
    rr, cc = np.mgrid[0:rows, 0:cols]
    img = 1200.0 + 400.0 * np.sin(rr / rows * np.pi) + rng.normal(0, 20, (rows, cols))
    img[:, : cols // 8] = 150.0  # air beside the limb
    for r, c, rad in BLOBS_RC if blobs else ():
        r, c = r * rows // 512, c * cols // 512
        img[(rr - r) ** 2 + (cc - c) ** 2 <= rad**2] = 3600.0
    return np.clip(img, 0, 4095).astype(np.uint16)


def cr_dataset(pixels: np.ndarray) -> Dataset:
    """A minimal 12-bit MONOCHROME2 CR dataset of ``pixels`` (uint16, explicit VR little
    endian, new UIDs); the caller adds identifiers and spacing, then saves it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def make_cr(
    path: Path,
    *,
    rows: int = 512,
    cols: int = 512,
    patient: str = "TEST^FLAGGED",
    blobs: bool = True,
) -> Path:
    """Write a small CR with two calcification-like blobs (or none); returns the path."""
    pixels = film_pixels(rows, cols, blobs=blobs)
    ds = cr_dataset(pixels)
    ds.PatientName = patient
    ds.PatientID = "P0001"
    ds.AccessionNumber = "ACC42"
    ds.StudyDate = "20261121"
    ds.StudyTime = "101500"
    ds.BodyPartExamined = "KNEE"
    ds.ViewPosition = "AP"
    ds.Manufacturer = "calcimg tests"
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _detect(rg: Radiograph, anatomy: AnatomyMap, *, params: Any) -> Detections:
    norm = rg.normalized()
    labels, n = ndimage.label(norm > 0.8)
    items = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        bbox = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
        particles = (labels[sl] == i).astype(np.int32)
        items.append(Detection(id=len(items) + 1, bbox=bbox, particles=particles, confidence=0.9))
    return Detections(items=tuple(items), n_candidates=n)


def _describe(
    rg: Radiograph, anatomy: AnatomyMap, detections: Detections, *, params: Any
) -> Descriptions:
    out = []
    for det in detections.items:
        rr, cc = np.nonzero(det.mask)
        pattern = Pattern.AMORPHOUS if det.id == 1 else Pattern.GLOBULAR_PERIARTICULAR
        scores = {p: (0.8 if p is pattern else 0.05) for p in Pattern}
        out.append(
            Description(
                detection_id=det.id,
                pattern=pattern,
                pattern_scores=scores,
                descriptors={"n_particles": 1, "extent_mm": 3.6, "distribution": "focal"},
                location=Location(nearest_joint="knee", distance_to_joint_mm=12.0),
                area_mm2=float(det.mask.sum()) * rg.pixel_area_mm2,
                centroid_rc=(float(rr.mean() + det.bbox[0]), float(cc.mean() + det.bbox[1])),
            )
        )
    return Descriptions(items=tuple(out))


def _rank(descriptions: Descriptions, *, context: Any, params: Any) -> Assessment:
    findings = tuple(
        FindingAssessment(
            finding_id=d.detection_id,
            categories=(
                CategoryScore(
                    name=Category.DYSTROPHIC,
                    score=0.6,
                    evidence=("amorphous pattern", "no labs given"),
                ),
            ),
        )
        for d in descriptions.items
    )
    cats = (
        (
            CategoryScore(
                name=Category.DYSTROPHIC,
                score=0.6,
                evidence=("amorphous pattern",),
                finding_ids=tuple(d.detection_id for d in descriptions.items),
            ),
        )
        if descriptions.items
        else ()
    )
    return Assessment(
        findings=findings,
        categories=cats,
        differential=("dystrophic calcification", "calcific tendinitis"),
        workup=("serum calcium", "inorganic phosphate"),
    )


def fake_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace detect, describe and rank as the pipeline calls them."""
    monkeypatch.setattr("calcimg.pipeline.detect", _detect)
    monkeypatch.setattr("calcimg.pipeline.describe", _describe)
    monkeypatch.setattr("calcimg.pipeline.rank", _rank)


def read(path: Path) -> Dataset:
    return pydicom.dcmread(path)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports: every socket stays bound until all are
    chosen, so two calls in a row cannot hand out the same port (a server started on
    one would then make the other's fail to bind)."""
    import socket
    from contextlib import ExitStack

    with ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


class LiveServer:
    """The web app served by uvicorn in a thread on a free loopback port."""

    def __init__(self, data_dir: Path, **kwargs: Any) -> None:
        import threading
        import time

        import uvicorn

        from calcimg.web import create_app

        self.app = create_app(data_dir, **kwargs)
        self.service = self.app.state.service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.service.stop()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (no client-side ``..`` normalisation)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
