"""The pipeline and `calcimg analyze` over the real corpus: every file gives a line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import calcimg
from calcimg.config import load_config
from calcimg.errors import ConfigError
from calcimg.params import models_dir
from calcimg.result import Result, Status, validate_result_dict
from realdata import REPO, pydicom_testfile


def _run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run(
        [sys.executable, "-m", "calcimg", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def test_analyze_returns_a_valid_contract_result_for_a_real_cr() -> None:
    r = calcimg.analyze(pydicom_testfile("RG1_UNCR.dcm"))
    assert r.status is Status.OK
    d = r.to_dict()
    validate_result_dict(d)
    assert d["schema"] == "calcimg.result/1"
    assert d["image"]["rows"] == 1955 and d["image"]["columns"] == 1841
    assert d["calcimg_version"] == calcimg.__version__
    assert set(d["timing_ms"]) >= {"decode", "anatomy", "detect", "describe", "rules"}
    assert Result.from_dict(json.loads(r.to_json())) == r


def test_analyze_never_raises_for_bad_input(shared_dicom: Path) -> None:
    r = calcimg.analyze(shared_dicom / "broken" / "no_meta.dcm")
    assert r.status is Status.ERROR and r.error is not None
    assert r.error.type == "DicomReadError"
    validate_result_dict(r.to_dict())
    s = calcimg.analyze(shared_dicom / "non-image" / "test-SR.dcm")
    assert s.status is Status.SKIPPED and "structured report" in s.error.message  # type: ignore[union-attr]


def test_cli_over_the_whole_corpus_gives_one_valid_line_per_file(
    shared_dicom: Path, tmp_path: Path
) -> None:
    proc = _run_cli("analyze", str(shared_dicom), "--out", str(tmp_path))
    assert proc.returncode == 1, proc.stderr  # broken/ holds errors
    assert "Traceback" not in proc.stderr
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    for row in rows:
        validate_result_dict(row)
    by_name = {Path(r["source"]).name: r for r in rows}
    for name in os.listdir(shared_dicom / "radiographs"):
        assert by_name[name]["status"] == "ok", by_name[name]["error"]
    for name in os.listdir(shared_dicom / "broken"):
        assert by_name[name]["status"] == "error"
        assert name in by_name[name]["error"]["message"]
    for name in os.listdir(shared_dicom / "non-image"):
        assert by_name[name]["status"] == "skipped"
    n_files = sum(len(files) for _, _, files in os.walk(shared_dicom))
    assert len(rows) == n_files
    summary = {
        line.split()[0]: line.split()[-1]
        for line in proc.stdout.splitlines()
        if line.startswith("  ") and len(line.split()) == 2
    }
    assert summary["inputs"] == str(n_files)
    assert summary["errors"] == str(len(os.listdir(shared_dicom / "broken")))


def test_cli_exit_code_is_zero_when_nothing_errors(shared_dicom: Path) -> None:
    proc = _run_cli(
        "analyze",
        str(shared_dicom / "radiographs" / "dx_image.dcm"),
        str(shared_dicom / "non-image"),
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    # workers finish in any order; each input has exactly one line
    assert sorted(r["status"] for r in rows) == ["ok", "skipped", "skipped", "skipped"]


def test_cli_reports_config_errors_clearly(shared_dicom: Path) -> None:
    proc = _run_cli(
        "analyze",
        str(shared_dicom / "radiographs" / "dx_image.dcm"),
        "--set",
        "ingest.no_such_thing=1",
    )
    assert proc.returncode == 2
    assert "unknown parameter(s) ingest.no_such_thing; valid parameters of [ingest]" in (
        proc.stderr
    )


def test_config_precedence_and_validation(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text("[ingest]\ndefault_spacing_mm = 0.2\nassumed_field_of_view_mm = 400\n")
    cfg = load_config(site, ["ingest.default_spacing_mm=0.25"])
    assert cfg.ingest.default_spacing_mm == 0.25  # --set beats the file
    assert cfg.ingest.assumed_field_of_view_mm == 400.0  # the file beats the default
    assert cfg.hash() != load_config().hash()
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \[detection\]; valid sections"):
        load_config(overrides=["detection.x=1"])
    with pytest.raises(ConfigError, match=r"ingest.max_spacing_mm = -1.0 is out of range"):
        load_config(overrides=["ingest.max_spacing_mm=-1"])
    with pytest.raises(ConfigError, match=r"expected stage.name=value"):
        load_config(overrides=["nonsense"])
    with pytest.raises(ConfigError, match=r"expected a number"):
        load_config(overrides=["ingest.max_spacing_mm=true"])


def test_cli_dicom_out_writes_an_sr_per_image_and_a_seg_per_flagged_image(
    shared_dicom: Path, tmp_path: Path
) -> None:
    import pydicom

    sample = REPO / "sample_dicoms" / "synth_0004.dcm"
    proc = _run_cli(
        "analyze",
        str(sample),
        str(shared_dicom / "radiographs" / "dx_image.dcm"),
        "--out",
        str(tmp_path / "out"),
        "--dicom-out",
        str(tmp_path / "dcm"),
        "--workers",
        "0",
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    written = {p.name: pydicom.dcmread(p) for p in (tmp_path / "dcm").iterdir()}
    for row in rows:
        uid = row["sop_instance_uid"]
        sr = written[f"{uid}.SR.dcm"]
        assert sr.Modality == "SR"
        assert (
            sr.CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID
            == (row["study_instance_uid"])
        )
        if row["flag"]:
            assert written[f"{uid}.SEG.dcm"].Modality == "SEG"


def test_params_hash_covers_the_content_of_named_model_files(tmp_path: Path) -> None:
    table = tmp_path / "rules.toml"
    shutil.copy(models_dir() / "rules.toml", table)
    model = tmp_path / "bone.json"
    shutil.copy(models_dir() / "bone_trees.json", model)
    sets = [f"rules.table={str(table)!r}", f"detect.bone_model={str(model)!r}"]
    first = load_config(overrides=sets).hash()
    original = table.read_bytes()
    table.write_bytes(original + b"\n# a site's edit\n")
    edited = load_config(overrides=sets).hash()
    table.write_bytes(original)
    model.write_bytes(model.read_bytes() + b" ")
    retrained = load_config(overrides=sets).hash()
    assert len({first, edited, retrained}) == 3
    model.unlink()  # an error result still gets a hash
    assert load_config(overrides=sets).hash() not in {first, edited, retrained}
