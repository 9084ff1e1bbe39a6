"""Batch runs through the API: statuses, duplicates, resume, select, Dask, overlays."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

import calcimg.pipeline
from batchdata import (
    SHARED_DICOM,
    Folder,
    csv_without_timing,
    lines_without_timing,
    make_folder,
    write_radiograph,
)
from calcimg import __version__
from calcimg.batch import BatchOptions, NotSelectedError, Selector, final_results, run_batch
from calcimg.config import load_config
from calcimg.describe import Description, Descriptions
from calcimg.detect import Detection, Detections
from calcimg.errors import CalcimgError, ConfigError, PixelDecodeError
from calcimg.ingest import read_header, read_radiograph
from calcimg.report import FINDINGS_FILE, IMAGES_FILE, REPORT_FILE, RESULTS_FILE
from calcimg.result import Location, Pattern, Status


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Folder:
    return make_folder(tmp_path_factory.mktemp("films") / "in", n=24)


# ---------------------------------------------------------------------------- select


def test_selector_matches_globs_case_insensitively(tmp_path: Path) -> None:
    knee = read_header(
        write_radiograph(
            tmp_path / "k.dcm",
            1,
            modality="DX",
            body_part="KNEE",
            series_description="Knee AP weight bearing",
        )
    )
    sel = Selector.parse(["modality=CR,DX", "series_description=*knee*"])
    assert sel.reason(knee) is None
    why = Selector.parse(["body_part=HAND*", "body_part=WRIST"]).reason(knee)
    assert why == "(0018,0015) Body Part Examined is 'KNEE'; --select body_part=HAND*,WRIST"
    assert not Selector.parse([])


@pytest.mark.parametrize(
    "spec", ["colour=red", "modality", "modality="], ids=["key", "no-eq", "empty"]
)
def test_selector_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"--select"):
        Selector.parse([spec])


# ----------------------------------------------------------------------- read_header

CORPUS = sorted(SHARED_DICOM.glob("*/*.dcm"))


@pytest.mark.parametrize("path", CORPUS, ids=[f"{p.parent.name}/{p.name}" for p in CORPUS])
def test_read_header_agrees_with_the_full_read(path: Path) -> None:
    try:
        rg = read_radiograph(path)
        full: type[Exception] | None = None
    except CalcimgError as exc:
        full = type(exc)
    try:
        header = read_header(path)
    except CalcimgError as exc:
        # What the header shows is refused exactly as the full read refuses it.
        assert full is type(exc)
        return
    # The header reads: the image decodes, or fails only at decoding.
    if full is None:
        assert header.sop_instance_uid == rg.sop_instance_uid
        assert header.modality == rg.modality
        assert (header.rows, header.columns) == rg.shape
    else:
        assert full is PixelDecodeError


# ------------------------------------------------------------------------- local runs


def test_folder_runs_end_to_end_with_two_workers_and_resumes(
    folder: Folder, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    s = run_batch([folder.root], BatchOptions(out_dir=out, workers=2), tty=False)
    assert s.inputs == folder.n_inputs == 38
    assert (s.analysed, s.skipped, s.errors, s.reused) == (27, 5, 6, 3)
    assert s.computed == 38 - 3  # duplicates are not analysed again
    finals = {r.source: r for r in final_results(out)}
    assert len(finals) == 38
    for p in folder.good + folder.duplicates:
        r = finals[str(p)]
        assert r.status is Status.OK, r.error
        assert r.input_hash == hashlib.sha256(p.read_bytes()).hexdigest()
        assert r.calcimg_version == __version__ and r.params_hash == load_config().hash()
        assert r.sop_instance_uid == pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
    for p in folder.broken:
        assert finals[str(p)].status is Status.ERROR
        assert finals[str(p)].input_hash == hashlib.sha256(p.read_bytes()).hexdigest()
    for p in folder.skipped:
        assert finals[str(p)].status is Status.SKIPPED
    images = csv_without_timing(out / IMAGES_FILE)
    assert len(images) == 38
    # Sorted by path, copies/ comes first: the study's file names its copy.
    dups = {
        Path(r["source"]).name: Path(r["duplicate_of"]).name for r in images if r["duplicate_of"]
    }
    assert dups == {f"img{i:03d}.dcm": f"copy_of_{i:03d}.dcm" for i in (0, 5, 7)}
    assert (out / REPORT_FILE).exists()

    before = {p: (out / p).read_bytes() for p in (RESULTS_FILE, IMAGES_FILE, FINDINGS_FILE)}
    again = run_batch([folder.root], BatchOptions(out_dir=out, workers=2), tty=False)
    assert (again.already_done, again.computed) == (38, 0)
    assert {p: (out / p).read_bytes() for p in before} == before


def test_overwrite_analyses_again_into_a_fresh_file(folder: Folder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    opts = BatchOptions(out_dir=out, workers=0)
    run_batch([folder.root / "study00"], opts, tty=False)
    s = run_batch(
        [folder.root / "study00"], BatchOptions(out_dir=out, workers=0, overwrite=True), tty=False
    )
    assert (s.already_done, s.analysed) == (0, 6)
    assert len((out / RESULTS_FILE).read_text().splitlines()) == 6


def test_changed_parameters_are_not_taken_as_done(folder: Folder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_batch([folder.root / "study01"], BatchOptions(out_dir=out, workers=0), tty=False)
    cfg = load_config(None, ["ingest.assumed_field_of_view_mm=400"])
    s = run_batch(
        [folder.root / "study01"], BatchOptions(out_dir=out, workers=0, config=cfg), tty=False
    )
    assert (s.already_done, s.analysed) == (0, 6)
    assert {r.params_hash for r in final_results(out)} == {cfg.hash()}


def test_select_skips_the_rest_with_the_reason(folder: Folder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    opts = BatchOptions(out_dir=out, workers=0, select=Selector.parse(["modality=DX"]))
    s = run_batch([folder.root / "study00", folder.root / "study01"], opts, tty=False)
    finals = final_results(out)
    dx = [r for r in finals if r.status is Status.OK]
    assert len(dx) == 3 and {r.modality for r in dx} == {"DX"}
    not_selected = [r for r in finals if r.status is Status.SKIPPED]
    assert s.skipped == len(not_selected) == 9
    assert not_selected[0].error is not None
    assert not_selected[0].error.type == NotSelectedError.__name__
    assert "(0008,0060) Modality is 'CR'; --select modality=DX" in not_selected[0].error.message


def test_same_sop_instance_with_other_bytes_reuses_the_analysis(tmp_path: Path) -> None:
    a = write_radiograph(tmp_path / "in" / "a.dcm", 5)
    ds = pydicom.dcmread(a)
    ds.PatientName = "Re^Sent"  # same instance, other bytes (e.g. coerced by a PACS)
    ds.save_as(tmp_path / "in" / "b.dcm")
    s = run_batch([tmp_path / "in"], BatchOptions(out_dir=tmp_path / "out", workers=0), tty=False)
    assert (s.computed, s.reused) == (1, 1)
    a_r, b_r = final_results(tmp_path / "out")
    assert a_r.sop_instance_uid == b_r.sop_instance_uid
    assert a_r.input_hash != b_r.input_hash  # each line says which bytes it stands for


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_results(folder: Folder, tmp_path: Path) -> None:
    paths = [folder.root / "study00", folder.root / "copies", folder.root / "broken"]
    run_batch(paths, BatchOptions(out_dir=tmp_path / "local", workers=2), tty=False)
    s = run_batch(
        paths, BatchOptions(out_dir=tmp_path / "dask", workers=2, scheduler="local"), tty=False
    )
    assert s.inputs == 6 + 3 + 6
    local = lines_without_timing(tmp_path / "local")
    dask = {
        line.replace(str(tmp_path / "dask"), "") for line in lines_without_timing(tmp_path / "dask")
    }
    assert dask == {line.replace(str(tmp_path / "local"), "") for line in local}
    assert csv_without_timing(tmp_path / "local" / IMAGES_FILE) == csv_without_timing(
        tmp_path / "dask" / IMAGES_FILE
    )


# ------------------------------------------------------------------ flagged, in process


def _one_finding(rg, anatomy, *, params):  # type: ignore[no-untyped-def]
    """Stand-in detection: one 12 x 20 px finding at a fixed place on every film."""
    particles = np.zeros((12, 20), np.int32)
    particles[2:10, 3:8] = 1
    particles[4:9, 12:18] = 2
    return Detections(
        items=(Detection(id=1, bbox=(40, 50, 52, 70), particles=particles, confidence=0.8),)
    )


def _describe_vascular(rg, anatomy, detections, *, params):  # type: ignore[no-untyped-def]
    scores = {p: 0.0 for p in Pattern}
    scores[Pattern.VASCULAR] = 1.0
    return Descriptions(
        items=tuple(
            Description(
                detection_id=d.id,
                pattern=Pattern.VASCULAR,
                pattern_scores=scores,
                descriptors={"linearity": 0.9, "parallel_pair": True},
                location=Location(nearest_joint="knee", distance_to_joint_mm=20.0),
                area_mm2=3.4,
                centroid_rc=(46.0, 60.0),
            )
            for d in detections.items
        )
    )


def test_flagged_images_get_overlays_finding_rows_and_a_report(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calcimg.pipeline, "detect", _one_finding)
    monkeypatch.setattr(calcimg.pipeline, "describe", _describe_vascular)
    out = tmp_path / "out"
    paths = [folder.root / "study00", folder.root / "copies"]
    s = run_batch(paths, BatchOptions(out_dir=out, workers=0, parquet=True), tty=False)
    # study00 holds img000-005; copies/ holds copies of 0 and 5 (reused) and of 7.
    assert (s.analysed, s.flagged, s.reused) == (9, 9, 2)
    finals = final_results(out)
    overlays = sorted((out / "overlays").glob("*.png"))
    # Copies share their original's overlay (named by content hash).
    assert len(overlays) == len({r.input_hash for r in finals}) == 7
    assert len(list((out / "overlays" / "thumbs").glob("*.png"))) == 7
    import cv2

    img = cv2.imread(str(overlays[0]))
    assert np.any(np.all(img[38:54, 48:72] == (0, 0, 255), axis=-1))  # red: vascular
    with (out / FINDINGS_FILE).open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9
    assert rows[0]["pattern"] == "vascular" and rows[0]["bbox_row_min"] == "40"
    assert rows[0]["desc_parallel_pair"] == "true" and rows[0]["nearest_joint"] == "knee"
    images = csv_without_timing(out / IMAGES_FILE)
    assert all(r["overlay"].startswith("overlays/") for r in images)
    report = (out / REPORT_FILE).read_text()
    assert report.count('class="img"') == 9 and "overlays/thumbs/" in report
    assert (out / "findings.parquet").exists()


def test_a_copied_folder_keeps_its_outputs_consistent(folder: Folder, tmp_path: Path) -> None:
    """An output folder moved elsewhere still resumes (paths are the inputs', not DIR's)."""
    out = tmp_path / "out"
    run_batch([folder.root / "study02"], BatchOptions(out_dir=out, workers=0), tty=False)
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    s = run_batch([folder.root / "study02"], BatchOptions(out_dir=moved, workers=0), tty=False)
    assert s.already_done == 6


def test_progress_draws_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    import io

    from calcimg.batch import BatchSummary, Progress, summary_table

    s = BatchSummary(inputs=10, analysed=4, flagged=1, computed=4)
    bar = io.StringIO()
    p = Progress(10, bar, tty=True)
    p.update(4, s, force=True)
    p.close()
    text = bar.getvalue()
    assert text.startswith("\r\x1b[K[############..................] 4/10 ")
    assert "img/s ETA " in text and "flag 1" in text and text.endswith("\n")
    log = io.StringIO()
    p = Progress(10, log, tty=False, interval_s=3600)
    p.update(4, s)  # the first line comes at once, the next after interval_s
    p.update(5, s)
    assert log.getvalue().count("progress: ") == 1 and "\r" not in log.getvalue()
    s.elapsed_s = 2.0
    table = summary_table(s)
    assert "  flagged            1" in table and "  images/s           2.00" in table


def test_an_unpicklable_context_is_refused_before_any_work(tmp_path: Path) -> None:
    opts = BatchOptions(out_dir=tmp_path, workers=2, context=lambda rg: None)
    with pytest.raises(
        ConfigError, match=r"clinical context .* cannot be sent to worker processes"
    ):
        run_batch([tmp_path], opts, tty=False)
