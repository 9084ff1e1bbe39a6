"""Writers: results.jsonl repair, tables, overlays, the paged report (in Chromium)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from calcimg.errors import ConfigError
from calcimg.report import (
    FINDINGS_FILE,
    IMAGES_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    ResultsWriter,
    finding_rows,
    image_rows,
    overlay_path,
    read_results,
    render_overlay,
    write_outputs,
    write_overlay,
    write_report,
)
from calcimg.result import (
    Category,
    CategoryScore,
    Confounder,
    ErrorInfo,
    Finding,
    ImageInfo,
    Location,
    Pattern,
    Result,
    Status,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def finding(fid: int, pattern: Pattern, bbox: tuple[int, int, int, int]) -> Finding:
    scores = {p.value: 0.0 for p in Pattern}
    scores[pattern.value] = 1.0
    return Finding(
        id=fid,
        pattern=pattern,
        pattern_scores=scores,
        confidence=0.5 + 0.1 * fid,
        bbox=bbox,
        centroid_rc=((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2),
        area_mm2=12.5 * fid,
        n_particles=fid,
        descriptors={"extent_mm": 4.0 * fid, "linearity": 0.9, "distribution": "focal"},
        location=Location(nearest_joint="knee", distance_to_joint_mm=10.0, distance_to_bone_mm=2),
        categories=(CategoryScore(name=Category.VASCULAR_ARTERIAL, score=0.7, evidence=("x",)),),
    )


def flagged_result(
    source: str, h: str, *, n: int = 2, shape: tuple[int, int] = (200, 160)
) -> Result:
    findings = tuple(
        finding(i + 1, list(Pattern)[i % 5], (20 + 40 * i, 30, 40 + 40 * i, 60)) for i in range(n)
    )
    mask = np.zeros(shape, np.int32)
    for f in findings:
        r0, c0, r1, c1 = f.bbox
        mask[r0 + 5 : r1 - 5, c0 + 5 : c1 - 5] = f.id
    return Result(
        source=source,
        status=Status.OK,
        calcimg_version="0.1.0",
        sop_instance_uid=f"1.2.3.{abs(hash(source)) % 1000}",
        modality="CR",
        body_part="KNEE",
        image=ImageInfo(
            rows=shape[0],
            columns=shape[1],
            pixel_spacing_mm=(0.2, 0.2),
            spacing_source="imager_pixel_spacing",
            calibrated=True,
        ),
        findings=findings,
        categories=(
            CategoryScore(
                name=Category.VASCULAR_ARTERIAL,
                score=0.8,
                evidence=("tram track",),
                finding_ids=(1,),
            ),
        ),
        differential=("vascular_arterial",),
        workup=("serum calcium",),
        timing_ms={"decode": 1.0},
        confounders=(Confounder(kind="marker", bbox=(150, 100, 180, 140), area_mm2=48.0),),
        params_hash="abc",
        input_hash=h,
        label_mask=mask,
    )


def ok_result(source: str, h: str) -> Result:
    return Result(
        source=source,
        status=Status.OK,
        calcimg_version="0.1.0",
        image=ImageInfo(
            rows=10,
            columns=10,
            pixel_spacing_mm=(0.1, 0.1),
            spacing_source="assumed",
            calibrated=False,
        ),
        params_hash="abc",
        input_hash=h,
    )


def error_result(source: str) -> Result:
    return Result(
        source=source,
        status=Status.ERROR,
        error=ErrorInfo(type="DicomReadError", message=f"{source}: truncated"),
        calcimg_version="0.1.0",
        params_hash="abc",
    )


def test_writer_cuts_a_half_written_last_line_on_resume(tmp_path: Path) -> None:
    with ResultsWriter(tmp_path) as w:
        w.write(ok_result("a.dcm", "1" * 64))
        w.write(ok_result("b.dcm", "2" * 64))
    p = tmp_path / RESULTS_FILE
    full = p.read_text()
    p.write_text(full + full.splitlines()[0][:37])  # a kill in the middle of a line
    assert [r.source for r in read_results(p)] == ["a.dcm", "b.dcm"]
    with ResultsWriter(tmp_path, append=True) as w:
        w.write(ok_result("c.dcm", "3" * 64))
    lines = p.read_text().splitlines()
    assert [json.loads(x)["source"] for x in lines] == ["a.dcm", "b.dcm", "c.dcm"]


def test_read_results_rejects_a_foreign_file(tmp_path: Path) -> None:
    (tmp_path / RESULTS_FILE).write_text('{"schema": "other/1"}\n')
    with pytest.raises(ConfigError, match=r"results.jsonl:1: not a calcimg.result/1 line"):
        read_results(tmp_path / RESULTS_FILE)


def test_tables_flatten_findings_and_count_patterns() -> None:
    h = "a" * 64
    results = [flagged_result("x/a.dcm", h, n=3), flagged_result("y/dup.dcm", h, n=3)]
    rows = image_rows(results)
    assert rows[0]["n_findings"] == 3
    assert rows[0]["n_amorphous"] == 1 and rows[0]["n_finely_speckled"] == 1
    assert rows[0]["n_vascular"] == 0
    assert rows[0]["top_category"] == "vascular_arterial"
    assert rows[0]["duplicate_of"] is None and rows[1]["duplicate_of"] == "x/a.dcm"
    frows = finding_rows(results)
    assert len(frows) == 6
    f2 = frows[1]
    assert (f2["finding_id"], f2["pattern"], f2["area_mm2"]) == (2, "finely_speckled", 25.0)
    assert (f2["bbox_row_min"], f2["bbox_col_min"], f2["bbox_row_max"]) == (60, 30, 80)
    assert f2["desc_extent_mm"] == 8.0 and f2["desc_cnr"] is None
    assert f2["nearest_joint"] == "knee" and f2["top_category_score"] == 0.7


def test_overlay_outlines_findings_from_the_label_mask(tmp_path: Path) -> None:
    r = flagged_result("a.dcm", "b" * 64, n=2)
    pixels = np.full((200, 160), 1000.0, np.float32)
    img = render_overlay(pixels, r, voi_window=(1000.0, 2000.0))
    assert img.shape[0] > 200 and img.shape[1:] == (160, 3) and img.dtype == np.uint8
    # Finding 1's mask is rows 25..34, cols 35..54: its outline is orange (amorphous)
    # in BGR, and the film inside stays gray.
    ring = img[22:38, 32:58]
    assert np.any(np.all(ring == (0, 165, 255), axis=-1))
    assert tuple(img[30, 45]) == (127, 127, 127)
    # The marker is boxed in blue, not in a pattern colour.
    assert tuple(img[150, 120]) == (255, 128, 0)
    path = write_overlay(tmp_path, r, pixels, voi_window=(1000.0, 2000.0))
    assert path == tmp_path / overlay_path(r)
    assert path.exists() and (tmp_path / "overlays" / "thumbs" / path.name).exists()


def test_outputs_regenerate_from_results_jsonl(tmp_path: Path) -> None:
    with ResultsWriter(tmp_path) as w:
        w.write(error_result("z/broken.dcm"))
        w.write(flagged_result("a.dcm", "c" * 64))
        w.write(ok_result("b.dcm", "d" * 64))
        w.write(ok_result("a.dcm", "e" * 64))  # a later line supersedes a.dcm
    results = write_outputs(tmp_path, parquet=True)
    assert [r.source for r in results] == ["a.dcm", "b.dcm", "z/broken.dcm"]
    with (tmp_path / IMAGES_FILE).open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["source"], r["status"], r["flag"]) for r in rows] == [
        ("a.dcm", "ok", "false"),
        ("b.dcm", "ok", "false"),
        ("z/broken.dcm", "error", "false"),
    ]
    assert rows[2]["error_type"] == "DicomReadError"
    assert (tmp_path / FINDINGS_FILE).read_text().count("\n") == 1  # header only
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "images.parquet").num_rows == 3
    assert pq.read_table(tmp_path / "findings.parquet").num_rows == 0


def test_parquet_without_pyarrow_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ResultsWriter(tmp_path) as w:
        w.write(ok_result("b.dcm", "d" * 64))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigError, match=r"--parquet needs pyarrow.*calcimg\[features\]"):
        write_outputs(tmp_path, parquet=True)


def test_report_is_paged_and_drops_stale_pages(tmp_path: Path) -> None:
    results = [flagged_result(f"f{i:03d}.dcm", f"{i:064x}", n=1) for i in range(45)]
    pages = write_report(tmp_path, results, page_rows=20)
    assert [p.name for p in pages] == [REPORT_FILE, "report-2.html", "report-3.html"]
    page3 = (tmp_path / "report-3.html").read_text()
    assert page3.count('class="img"') == 5 and "f044.dcm" in page3
    assert 'href="report-2.html"' in page3
    pages = write_report(tmp_path, results[:10], page_rows=20)
    assert len(pages) == 1 and not (tmp_path / "report-2.html").exists()


def _report_folder(tmp_path: Path) -> Path:
    flagged = [
        flagged_result(f"knee/{name}.dcm", f"{i + 1:064x}", n=i + 1)
        for i, name in enumerate(["zeta", "alpha", "mid"])
    ]
    with ResultsWriter(tmp_path) as w:
        for r in flagged:
            write_overlay(tmp_path, r, np.full((200, 160), 900.0, np.float32))
            w.write(r)
        w.write(ok_result("plain.dcm", "f" * 64))
        w.write(error_result("broken.dcm"))
    write_outputs(tmp_path)
    return tmp_path / REPORT_FILE


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) missing")
def test_report_opens_in_chromium_and_shows_flagged_images(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    report = _report_folder(tmp_path)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri())
            rows = page.locator("#flagged tbody tr.img")
            assert rows.count() == 3
            sources = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(3)]
            assert sources == ["knee/alpha.dcm", "knee/mid.dcm", "knee/zeta.dcm"]
            # Thumbnails load from overlays/thumbs/ (relative files).
            page.wait_for_function(
                "Array.from(document.querySelectorAll('img.thumb')).every("
                "i => i.complete && i.naturalWidth > 0)"
            )
            # Sorting by findings count, descending on the second click.
            header = page.locator("#flagged thead th", has_text="findings")
            header.click()
            header.click()
            first = page.locator("#flagged tbody tr.img").first.locator("td").nth(1)
            assert first.inner_text() == "knee/mid.dcm"  # 3 findings
            # A click shows the image's detail with its findings table.
            detail = page.locator("#flagged tbody tr.detail").first
            assert detail.is_hidden()
            page.locator("#flagged tbody tr.img").first.click()
            assert detail.is_visible()
            assert detail.locator("table tbody tr").count() == 3  # mid.dcm: 3 findings
            assert "broken.dcm" in page.locator("body").inner_text()
        finally:
            browser.close()
    assert errors == []
