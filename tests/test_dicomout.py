"""DICOM results: the TID 1500 SR and the binary SEG pass dciodvfy and read back."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from _webfakes import fake_stages, make_cr
from calcimg.dicomout import (
    CALCIMG_SCHEME,
    DicomResultsError,
    sr_dataset,
    write_dicom_results,
    write_dicom_results_for_file,
)
from calcimg.pipeline import analyze
from calcimg.result import (
    Category,
    CategoryScore,
    Finding,
    ImageInfo,
    Pattern,
    Result,
    Status,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "dicom"
if not SHARED.is_dir():  # a worktree under /work/wt: the corpus sits at /work/shared
    SHARED = Path("/work/shared/dicom")


def dciodvfy_errors(path: Path) -> list[str]:
    """The error lines dciodvfy prints for a file (warnings allowed)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dicom3tools (dciodvfy) is not installed: apt-get install dicom3tools")
    p = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (p.stdout + p.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture
def flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Result, pydicom.Dataset]:
    fake_stages(monkeypatch)
    path = make_cr(tmp_path / "knee.dcm")
    result = analyze(path)
    assert result.status is Status.OK and len(result.findings) == 2
    return result, pydicom.dcmread(path)


def test_sr_and_seg_pass_dciodvfy_and_read_back(
    flagged: tuple[Result, pydicom.Dataset], tmp_path: Path
) -> None:
    result, source = flagged
    paths = write_dicom_results(result, source, tmp_path / "out")
    uid = source.SOPInstanceUID
    assert [p.name for p in paths] == [f"{uid}.SR.dcm", f"{uid}.SEG.dcm"]
    for p in paths:
        assert dciodvfy_errors(p) == [], p.name

    sr = hd.sr.srread(paths[0])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.PatientID == source.PatientID
    schemes = [item.CodingSchemeDesignator for item in sr.CodingSchemeIdentificationSequence]
    assert CALCIMG_SCHEME in schemes
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 2
    for g, f in zip(groups, result.findings, strict=True):
        (area,) = [m for m in g.get_measurements() if m.name.meaning == "Area"]
        assert area.value == pytest.approx(f.area_mm2)
        assert area.unit.value == "mm2"
        evaluations = {e.name.value: e.value.meaning for e in g.get_qualitative_evaluations()}
        assert evaluations["PATTERN"].lower().startswith(f.pattern.value.split("_")[0])
        assert evaluations["CATEGORY"] == "Dystrophic calcification"
        region = g.roi
        assert region is not None and region.GraphicType == "POLYLINE"
        pts = region.value
        r0, c0, r1, c1 = f.bbox
        # the closed hull around the finding's pixels touches its bounding box edges
        assert pts[0].tolist() == pts[-1].tolist()
        assert (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()) == (
            c0,
            r0,
            c1,
            r1,
        )
    image_groups = sr.content.get_image_measurement_groups()
    assert len(image_groups) == 1
    (flag,) = image_groups[0].get_qualitative_evaluations()[:1]
    assert flag.value.meaning == "Yes"

    seg = hd.seg.segread(paths[1])
    assert seg.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [
        "amorphous (1)",
        "globular_periarticular (2)",
    ]
    masks = seg.get_pixels_by_source_instance(
        [source.SOPInstanceUID], segment_numbers=[1, 2], combine_segments=False
    )[0]
    assert masks.shape == (512, 512, 2)
    for k, fid in enumerate((1, 2)):
        assert np.array_equal(masks[:, :, k] > 0, result.label_mask == fid)


def test_no_findings_writes_an_sr_only(tmp_path: Path) -> None:
    path = make_cr(tmp_path / "knee.dcm")
    result = analyze(path)  # the real stages: whatever they find on the drawn film
    source = pydicom.dcmread(path)
    result = dataclasses.replace(result, findings=(), categories=())
    paths = write_dicom_results(result, source, tmp_path / "out")
    assert [p.name.split(".")[-2] for p in paths] == ["SR"]
    assert dciodvfy_errors(paths[0]) == []
    sr = hd.sr.srread(paths[0])
    assert sr.content.get_planar_roi_measurement_groups() == []
    (image_group,) = sr.content.get_image_measurement_groups()
    assert image_group.get_qualitative_evaluations()[0].value.meaning == "No"


def test_real_cr_without_imager_spacing(tmp_path: Path) -> None:
    """RG3: MONOCHROME1 CR with no spacing tags and no Patient Orientation."""
    path = SHARED / "radiographs" / "RG3_UNC.dcm"
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {SHARED}")
    source = pydicom.dcmread(path)
    rows, cols = int(source.Rows), int(source.Columns)
    mask = np.zeros((rows, cols), dtype=np.int32)
    mask[400:420, 500:530] = 1
    finding = Finding(
        id=1,
        pattern=Pattern.VASCULAR,
        pattern_scores={p.value: (1.0 if p is Pattern.VASCULAR else 0.0) for p in Pattern},
        confidence=0.7,
        bbox=(400, 500, 420, 530),
        centroid_rc=(409.5, 514.5),
        area_mm2=23.8,
        n_particles=1,
        categories=(CategoryScore(name=Category.VASCULAR_ARTERIAL, score=0.5),),
    )
    result = Result(
        source=str(path),
        status=Status.OK,
        sop_instance_uid=source.SOPInstanceUID,
        image=ImageInfo(
            rows=rows,
            columns=cols,
            pixel_spacing_mm=(0.2, 0.2),
            spacing_source="assumed",
            calibrated=False,
        ),
        findings=(finding,),
        label_mask=mask,
    )
    paths = write_dicom_results(result, source, tmp_path)
    assert len(paths) == 2
    for p in paths:
        assert dciodvfy_errors(p) == [], p.name
    seg = hd.seg.segread(paths[1])
    got = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])[0]
    assert int((got[:, :, 0] > 0).sum()) == 600


def test_sr_caps_measurement_groups(
    flagged: tuple[Result, pydicom.Dataset], tmp_path: Path
) -> None:
    result, source = flagged
    sr_dataset(result, source, max_findings=1).save_as(tmp_path / "sr.dcm")
    sr = hd.sr.srread(tmp_path / "sr.dcm")
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 1  # the more confident finding (tie: the first)
    (count,) = sr.content.get_image_measurement_groups()[0].get_measurements()
    assert count.value == 2


def test_refuses_results_that_do_not_belong(
    flagged: tuple[Result, pydicom.Dataset], tmp_path: Path
) -> None:
    result, source = flagged
    other = make_cr(tmp_path / "other.dcm")
    with pytest.raises(DicomResultsError, match=r"source .* SOP Instance UID is"):
        write_dicom_results(result, pydicom.dcmread(other), tmp_path / "out")
    small = make_cr(tmp_path / "small.dcm", rows=256, cols=256)
    with pytest.raises(DicomResultsError, match="source dataset is 256x256"):
        write_dicom_results(result, pydicom.dcmread(small), tmp_path / "out")
    failed = dataclasses.replace(result, status=Status.ERROR, image=None)
    with pytest.raises(DicomResultsError, match="result status is error"):
        write_dicom_results(failed, source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_batch_helper_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``calcimg analyze --dicom-out`` calls: DICOM sources only, ok results only."""
    import cv2

    from calcimg.pipeline import analyze_file

    fake_stages(monkeypatch)
    path = make_cr(tmp_path / "knee.dcm")
    (result,) = analyze_file(path)
    written = write_dicom_results_for_file(result, path, tmp_path / "out")
    assert sorted(p.name.split(".")[-2] for p in written) == ["SEG", "SR"]
    png = tmp_path / "export.png"
    cv2.imwrite(str(png), (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8))
    (png_result,) = analyze_file(png)
    assert write_dicom_results_for_file(png_result, png, tmp_path / "out2") == []
    failed = dataclasses.replace(result, status=Status.ERROR)
    assert write_dicom_results_for_file(failed, path, tmp_path / "out3") == []
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()
