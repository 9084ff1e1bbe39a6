"""``calcimg.explain.render`` and the ``calcimg explain`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from calcimg.cli import main
from calcimg.context import ClinicalContext
from calcimg.describe import Description, Descriptions
from calcimg.explain import render
from calcimg.result import (
    Confounder,
    ErrorInfo,
    Finding,
    ImageInfo,
    Location,
    Pattern,
    Result,
    Status,
    validate_result_dict,
)
from calcimg.rules import RulesParams, rank

SRC = Path(__file__).resolve().parents[1] / "src"
CTX = ClinicalContext(serum_calcium_mg_dl=10.9, serum_phosphate_mg_dl=7.4, albumin_g_dl=3.1)


def _result(source: str = "knee.dcm", context: ClinicalContext | None = CTX) -> Result:
    """A result composed the way pipeline does, from hand-built descriptions."""
    descs = (
        Description(
            detection_id=1,
            pattern=Pattern.CHONDRAL_LINE,
            pattern_scores={
                Pattern.CHONDRAL_LINE: 0.85,
                Pattern.VASCULAR: 0.1,
                Pattern.AMORPHOUS: 0.05,
            },
            descriptors={
                "linearity": 0.91,
                "line_thickness_mm": 0.8,
                "extent_mm": 24.0,
                "drivers": ["thin line 0.8 mm thick", "parallel to the tibial plateau"],
            },
            location=Location(
                nearest_joint="knee",
                distance_to_joint_mm=0.0,
                intra_articular=True,
                distance_to_bone_mm=1.1,
            ),
            area_mm2=18.5,
            centroid_rc=(400.0, 620.0),
        ),
        Description(
            detection_id=2,
            pattern=Pattern.AMORPHOUS,
            pattern_scores={Pattern.AMORPHOUS: 0.9, Pattern.FINELY_SPECKLED: 0.1},
            descriptors={"extent_mm": 15.0, "n_particles": 2},
            location=Location(distance_to_bone_mm=9.0),
            area_mm2=60.0,
            centroid_rc=(900.0, 300.0),
        ),
    )
    a = rank(
        Descriptions(items=descs, image_descriptors={"n_sites": 2, "distribution": "regional"}),
        context=context,
        params=RulesParams(),
    )
    cats = {fa.finding_id: fa.categories for fa in a.findings}
    findings = tuple(
        Finding(
            id=d.detection_id,
            pattern=d.pattern,
            pattern_scores={str(k): v for k, v in d.pattern_scores.items()},
            confidence=0.9,
            bbox=(
                int(d.centroid_rc[0]) - 5,
                int(d.centroid_rc[1]) - 20,
                int(d.centroid_rc[0]) + 5,
                int(d.centroid_rc[1]) + 20,
            ),
            centroid_rc=d.centroid_rc,
            area_mm2=d.area_mm2,
            n_particles=int(d.descriptors.get("n_particles", 1)),
            descriptors=dict(d.descriptors),
            location=d.location,
            categories=cats[d.detection_id],
        )
        for d in descs
    )
    return Result(
        source=source,
        status=Status.OK,
        calcimg_version="0.1.0",
        modality="CR",
        body_part="KNEE",
        image=ImageInfo(
            rows=2000,
            columns=1600,
            pixel_spacing_mm=(0.15, 0.15),
            spacing_source="pixel_spacing",
            calibrated=True,
            transforms=("modality_lut",),
        ),
        findings=findings,
        categories=a.categories,
        differential=a.differential,
        workup=a.workup,
        confounders=(Confounder(kind="marker", bbox=(0, 0, 10, 10), area_mm2=4.0),),
    )


def test_render_tells_the_whole_story() -> None:
    r = _result()
    validate_result_dict(r.to_dict())
    text = render(r, context=CTX, show_context=True)
    for fragment in (
        "Image: knee.dcm",
        "0.150 x 0.150 mm (row x column) from pixel_spacing; calibrated",
        "excluded look-alikes: marker x1",
        "ca_x_p_mg2_dl2 = 80.7 mg2/dL2",
        "Payne",
        "Finding 1: chondral_line (pattern score 0.85",
        "why chondral_line:",
        "- thin line 0.8 mm thick",
        "nearest joint knee at 0.0 mm; inside the joint space; 1.1 mm from bone",
        "1. chondrocalcinosis_cppd",
        "thin line inside the knee joint space (x5)",
        "Finding 2: amorphous",
        "Ca x P = 80.7 mg2/dL2 > 70 (metastatic threshold) (x30)",
        "Image-level ranking",
        "Differential:",
        "chondrocalcinosis: pseudogout",
        "Suggested work-up:",
        "- alkaline phosphatase",
    ):
        assert fragment in text, fragment
    # the labs given are not suggested again
    assert "- serum calcium" not in text


def test_render_one_finding_and_unknown_finding() -> None:
    text = render(_result(), finding=2)
    assert "Finding 2: amorphous" in text and "Finding 1:" not in text
    with pytest.raises(KeyError, match=r"no finding 7; finding ids: 1, 2"):
        render(_result(), finding=7)


def test_render_error_result_and_uncalibrated() -> None:
    err = Result(
        source="broken.dcm",
        status=Status.ERROR,
        error=ErrorInfo(type="DicomReadError", message="broken.dcm: truncated"),
    )
    assert "status error: DicomReadError: broken.dcm: truncated" in render(err)
    r = _result()
    assert r.image is not None
    import dataclasses

    unc = dataclasses.replace(
        r, image=dataclasses.replace(r.image, calibrated=False, spacing_source="assumed")
    )
    text = render(unc)
    assert "UNCALIBRATED" in text and "mm2 (approx.)" in text


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m calcimg explain ...`` as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "calcimg", "explain", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The same command in-process (fast): exit code, stdout, stderr."""
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_explains_a_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text(
        _result("a/knee.dcm").to_json() + "\n" + _result("b/hip.dcm", None).to_json() + "\n"
    )
    p = _run(str(jsonl), "--source", "hip.dcm", "--finding", "1")
    assert p.returncode == 0, p.stderr
    assert "Image: b/hip.dcm" in p.stdout and "a/knee.dcm" not in p.stdout
    assert "Finding 1: chondral_line" in p.stdout and "Finding 2" not in p.stdout
    assert "- serum calcium" in p.stdout  # no context: labs suggested
    code, out, _ = _main(capsys, str(jsonl), "--index", "0")
    assert code == 0 and "Image: a/knee.dcm" in out
    code, out, _ = _main(capsys, str(jsonl))
    assert out.count("Image: ") == 2
    code, _, err = _main(capsys, str(jsonl), "--index", "5")
    assert code == 2 and "--index 5 is out of range; expected 0-1" in err
    code, _, err = _main(capsys, str(jsonl), "--source", "ankle.dcm")
    assert code == 2 and "no result with source 'ankle.dcm'" in err
    code, _, err = _main(capsys, str(jsonl), "--index", "0", "--finding", "9")
    assert code == 2 and "no finding 9; finding ids: 1, 2" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"schema": "other/1"}\n')
    code, _, err = _main(capsys, str(bad))
    assert code == 2 and "bad.jsonl line 1: expected a calcimg.result/1 object" in err


def test_cli_explains_an_image_with_context(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "leg.dcm"
    image.write_bytes(Path(get_testdata_file("RG3_UNCR.dcm")).read_bytes())
    (tmp_path / "leg.context.json").write_text('{"serum_calcium_mmol_l": 2.7, "age_years": 70}')
    code, out, _ = _main(capsys, str(image))
    assert code == 0
    assert f"Image: {image}" in out
    assert "modality CR" in out and "UNCALIBRATED" in out
    assert "Clinical context: serum_calcium_mg_dl 10.82; age_years 70.00" in out
    code, out, _ = _main(capsys, str(image), "--no-sidecars", "--context-csv", str(_csv(tmp_path)))
    assert "Clinical context: trauma yes" in out
    code, _, err = _main(capsys, str(tmp_path / "missing.dcm"))
    assert code == 2 and "missing.dcm: no such file" in err


def _csv(tmp_path: Path) -> Path:
    p = tmp_path / "batch.csv"
    p.write_text("file,trauma\nleg.dcm,true\n")
    return p
