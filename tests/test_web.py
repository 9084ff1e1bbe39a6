"""The worklist web tool: API, uploads, path traversal, token, persistence, browser."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from _webfakes import LiveServer, fake_stages, make_cr, raw_get
from calcimg.cli import main
from calcimg.cli.serve import check_binding, is_loopback
from calcimg.errors import ConfigError
from calcimg.result import validate_result_dict
from calcimg.web.service import Service, sniff_kind
from calcimg.web.store import ImageRow, utc_now
from calcimg.web.watch import FolderWatcher

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "dicom"
if not SHARED.is_dir():  # a worktree under /work/wt: the corpus sits at /work/shared
    SHARED = Path("/work/shared/dicom")
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


@pytest.fixture
def flagged_dcm(tmp_path: Path) -> Path:
    return make_cr(tmp_path / "knee.dcm")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    fake_stages(monkeypatch)
    with LiveServer(tmp_path / "data", refresh_s=1.0) as srv:
        yield srv


def _analyze(srv: LiveServer, path: Path, name: str | None = None) -> dict:  # type: ignore[type-arg]
    with path.open("rb") as fh:
        r = httpx.post(
            f"{srv.url}/api/analyze?wait=30",
            files={"file": (name or path.name, fh, "application/octet-stream")},
            timeout=40,
        )
    assert r.status_code == 200, r.text
    out: dict = r.json()  # type: ignore[type-arg]
    return out


# ------------------------------------------------------------------------------ API


def test_api_analyze_returns_contract_result(server: LiveServer, flagged_dcm: Path) -> None:
    d = _analyze(server, flagged_dcm)
    assert d["state"] == "done" and d["status"] == "ok"
    assert d["flag"] is True and d["n_findings"] == 2
    assert d["top_pattern"] == "amorphous" and d["top_category"] == "dystrophic"
    assert (d["patient_id"], d["accession_number"], d["body_part"]) == ("P0001", "ACC42", "KNEE")
    validate_result_dict(d["result"])
    assert [f["bbox"] for f in d["result"]["findings"]] == [
        [141, 131, 160, 150],
        [324, 354, 337, 367],
    ]
    # the received file is kept under the data directory, named by id
    kept = server.service.paths.incoming / f"{d['id']}.dcm"
    assert kept.read_bytes() == flagged_dcm.read_bytes()


def test_api_results_list_filter_and_detail(server: LiveServer, flagged_dcm: Path) -> None:
    first = _analyze(server, flagged_dcm)
    plain = make_cr(server.service.paths.root.parent / "plain.dcm", blobs=False)
    second = _analyze(server, plain)
    assert second["status"] == "ok" and second["flag"] is False
    rows = httpx.get(f"{server.url}/api/results").json()
    assert [r["id"] for r in rows] == [second["id"], first["id"]]  # newest first
    flagged = httpx.get(f"{server.url}/api/results?flagged=true").json()
    assert [r["id"] for r in flagged] == [first["id"]]
    detail = httpx.get(f"{server.url}/api/results/{first['id']}").json()
    assert [o["id"] for o in detail["outlines"]] == [1, 2]
    assert all(len(poly) >= 4 for o in detail["outlines"] for poly in o["polygons"])
    assert "file_name" not in detail  # internal names are not part of the API
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/api/results", "/api/results/{image_id}", "/api/analyze"} <= set(spec["paths"])
    assert "/api/results/{image_id}/ack" in spec["paths"]


def test_api_ack_is_persistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flagged_dcm: Path
) -> None:
    fake_stages(monkeypatch)
    with LiveServer(tmp_path / "data") as srv:
        d = _analyze(srv, flagged_dcm)
        r = httpx.post(f"{srv.url}/api/results/{d['id']}/ack")
        assert r.status_code == 200 and r.json()["acknowledged"] is True
        first = r.json()["acknowledged_at"]
        # acknowledging twice keeps the first time
        assert httpx.post(f"{srv.url}/api/results/{d['id']}/ack").json()["acknowledged_at"] == first
    with LiveServer(tmp_path / "data") as srv:
        row = httpx.get(f"{srv.url}/api/results/{d['id']}").json()
        assert row["acknowledged"] is True and row["acknowledged_at"] == first


def test_film_rendering_follows_window(server: LiveServer, flagged_dcm: Path) -> None:
    import cv2
    import numpy as np

    d = _analyze(server, flagged_dcm)

    def film(q: str) -> np.ndarray:
        r = httpx.get(f"{server.url}/image/{d['id']}/film.png{q}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        return cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)

    default = film("")
    assert default.shape == (512, 512) and default.dtype == np.uint8
    assert default[150, 140] == 255  # the blob is bright under the default window
    narrow_dark = film("?wc=0.95&ww=0.02")  # everything below 0.94 is black
    assert narrow_dark[400, 400] == 0 and narrow_dark[150, 140] == 0
    wide = film("?wc=0.5&ww=1.0")
    assert 0 < wide[400, 400] < 255
    assert httpx.get(f"{server.url}/image/{d['id']}/film.png?ww=0").status_code == 422
    thumb = httpx.get(f"{server.url}/image/{d['id']}/thumb.png")
    assert thumb.status_code == 200 and thumb.content[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- uploads


def test_upload_rejects_bad_files_with_a_clear_page(server: LiveServer, flagged_dcm: Path) -> None:
    files = [
        ("files", ("notes.txt", b"hello, not an image at all" * 10, "text/plain")),
        ("files", ("empty.dcm", b"", "application/dicom")),
        ("files", ("knee.dcm", flagged_dcm.read_bytes(), "application/dicom")),
    ]
    r = httpx.post(f"{server.url}/upload", files=files)
    assert r.status_code == 400
    assert "notes.txt: not a DICOM file (no &#39;DICM&#39; at byte 128), PNG or TIFF" in r.text
    assert "empty.dcm: empty file" in r.text
    assert "knee.dcm</a>" in r.text  # the good file was still taken
    assert len(server.service.store.list()) == 1


def test_upload_size_limit(tmp_path: Path, flagged_dcm: Path) -> None:
    with LiveServer(tmp_path / "data", max_upload_mb=0.1) as srv:
        r = httpx.post(
            f"{srv.url}/upload",
            files=[("files", ("knee.dcm", flagged_dcm.read_bytes(), "application/dicom"))],
            headers={"Accept": "application/json"},
        )
        assert r.status_code == 400
        assert (
            r.json()["errors"] == ["knee.dcm: larger than the 0 MB limit"]
            or "larger than" in r.json()["errors"][0]
        )
        assert srv.service.store.list() == []


def test_upload_several_files_json(server: LiveServer, flagged_dcm: Path) -> None:
    files = [
        ("files", (f"k{i}.dcm", flagged_dcm.read_bytes(), "application/dicom")) for i in range(3)
    ]
    r = httpx.post(f"{server.url}/upload", files=files, headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.json()["errors"] == []
    assert sorted(a["original_name"] for a in r.json()["accepted"]) == [
        "k0.dcm",
        "k1.dcm",
        "k2.dcm",
    ]
    assert server.service.wait_idle(30)
    assert [r.flag for r in server.service.store.list()] == [True, True, True]


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\0" * 128 + b"DICM" + b"\2\0", "dicom"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 130, "png"),
        (b"II*\x00" + b"\0" * 130, "tiff"),
        (b"MM\x00*" + b"\0" * 130, "tiff"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 130, None),
        (b"\0" * 132, None),
    ],
    ids=["dicom", "png", "tiff-le", "tiff-be", "jpeg", "zeros"],
)
def test_sniff_kind(head: bytes, kind: str | None) -> None:
    assert sniff_kind(head) == kind


# ------------------------------------------------------------------- path traversal


def test_upload_file_names_never_become_paths(
    server: LiveServer, flagged_dcm: Path, tmp_path: Path
) -> None:
    names = ["../../evil.dcm", "..\\..\\evil2.dcm", "/etc/passwd", "a/../../../evil3.dcm"]
    files = [("files", (n, flagged_dcm.read_bytes(), "application/dicom")) for n in names]
    r = httpx.post(f"{server.url}/upload", files=files, headers={"Accept": "application/json"})
    assert r.status_code == 200
    shown = sorted(a["original_name"] for a in r.json()["accepted"])
    assert shown == ["evil.dcm", "evil2.dcm", "evil3.dcm", "passwd"]
    root = server.service.paths.root
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and root not in p.parents]
    assert sorted(p.name for p in outside) == ["knee.dcm"]
    stored = sorted(p.name for p in (root / "incoming").iterdir())
    assert all(len(n) == 36 and n.endswith(".dcm") for n in stored) and len(stored) == 4


@pytest.mark.parametrize(
    "path",
    [
        "/api/results/..%2F..%2Fcalcimg.sqlite",
        "/api/results/../../etc/passwd",
        "/image/..%2Fcalcimg.sqlite",
        "/image/%2e%2e/%2e%2e/etc/passwd",
        "/image/..%2F..%2F..%2Fetc%2Fpasswd/film.png",
        "/static/../calcimg.sqlite",
        "/static/..%2F..%2Fweb%2Fapp.py",
        "/static/%2e%2e/app.py",
        "/image/00000000000000000000000000000000/thumb.png",
    ],
)
def test_urls_cannot_reach_outside(server: LiveServer, flagged_dcm: Path, path: str) -> None:
    d = _analyze(server, flagged_dcm)
    status, body = raw_get(server.url, path)
    assert status in (404, 400), (status, body[:200])
    assert b"SQLite format" not in body and b"root:" not in body and b"create_app" not in body
    # nor through the DICOM result download, which only serves names the worker wrote
    status, body = raw_get(server.url, f"/image/{d['id']}/dicom/..%2F..%2Fcalcimg.sqlite")
    assert status == 404


# ---------------------------------------------------------------------------- token


def test_token_protects_pages_and_api(tmp_path: Path) -> None:
    token = "s3cret-token-123"
    with LiveServer(tmp_path / "data", token=token) as srv:
        assert httpx.get(f"{srv.url}/api/results").status_code == 401
        assert httpx.get(f"{srv.url}/openapi.json").status_code == 401
        assert (
            httpx.get(f"{srv.url}/api/results", headers={"X-Calcimg-Token": "wrong"}).status_code
            == 401
        )
        ok = httpx.get(f"{srv.url}/api/results", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json() == []
        assert (
            httpx.get(f"{srv.url}/api/results", headers={"X-Calcimg-Token": token}).status_code
            == 200
        )
        page = httpx.get(f"{srv.url}/")
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
        with httpx.Client(base_url=srv.url) as c:
            bad = c.post("/login", data={"token": "nope", "next": "/"})
            assert bad.status_code == 401 and "That token is not right" in bad.text
            good = c.post("/login", data={"token": token, "next": "//evil.example/"})
            assert good.status_code == 303 and good.headers["location"] == "/"
            assert c.get("/").status_code == 200  # the cookie now carries the token
            assert c.get("/api/results").status_code == 200


def test_binding_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    check_binding("127.0.0.1", None)
    check_binding("0.0.0.0", "long-enough-token")
    with pytest.raises(ConfigError, match=r"--host 0\.0\.0\.0 is not a loopback address"):
        check_binding("0.0.0.0", None)
    with pytest.raises(ConfigError, match="use at least 8"):
        check_binding("0.0.0.0", "short")


def test_serve_refuses_public_host_without_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CALCIMG_TOKEN", raising=False)
    code = main(["serve", "--host", "0.0.0.0", "--data", str(tmp_path / "d")])
    assert code == 2
    assert "is not a loopback address" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before anything was created
    code = main(["serve", "--data", str(tmp_path / "d"), "--context", "labs.json"])
    assert code == 2
    assert "serve does not take it" in capsys.readouterr().err


# -------------------------------------------------------------- intake, persistence


def test_watched_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_stages(monkeypatch)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_cr(inbox / "a.dcm")
    (inbox / "readme.txt").write_text("not an image")
    svc = Service(tmp_path / "data")
    try:
        w = FolderWatcher(svc, inbox)
        assert w.poll() == 0  # first sight: wait for the file to be stable
        assert w.poll() == 1
        assert w.poll() == 0
        assert svc.wait_idle(30)
        rows = svc.store.list()
        assert [(r.origin, r.original_name, r.flag) for r in rows] == [("watch", "a.dcm", True)]
        w2 = FolderWatcher(svc, inbox)  # a restart does not take the file again
        w2.poll()
        assert w2.poll() == 0
    finally:
        svc.stop()
    assert (inbox / "a.dcm").is_file()  # the folder is never written to


def test_received_but_unanalysed_images_are_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_stages(monkeypatch)
    svc = Service(tmp_path / "data")
    # as if the server stopped right after writing the file: on disk, in the database
    shutil.copy(make_cr(tmp_path / "k.dcm"), svc.paths.incoming / ("a" * 32 + ".dcm"))
    svc.store.add(
        ImageRow(
            id="a" * 32,
            received_at=utc_now(),
            origin="dicom",
            original_name="k.dcm",
            file_name="a" * 32 + ".dcm",
            state="received",
        )
    )
    svc.start()
    row = svc.wait("a" * 32, 30)
    svc.stop()
    assert row is not None and row.state == "done" and row.flag is True
    saved = json.loads((svc.paths.results / ("a" * 32 + ".json")).read_text())
    validate_result_dict(saved)


def test_unreadable_dicom_is_an_error_entry(server: LiveServer) -> None:
    broken = SHARED / "broken" / "MR_truncated.dcm"
    if not broken.is_file():
        pytest.skip(f"shared corpus not found at {SHARED}")
    d = _analyze(server, broken)
    assert d["status"] == "error" and d["flag"] is False
    assert d["thumbnail_url"] is None  # nothing to show: no broken image on the worklist
    assert d["result"]["error"]["type"] in ("DicomReadError", "PixelDecodeError", "NotAnImageError")
    page = httpx.get(f"{server.url}/image/{d['id']}")
    assert page.status_code == 200 and "could not be read" in page.text
    assert d["error"][:40] in page.text


# -------------------------------------------------------------------------- browser


@pytest.mark.slow
def test_browser_upload_view_acknowledge_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flagged_dcm: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian package chromium is not installed (/usr/bin/chromium)")
    from playwright.sync_api import expect, sync_playwright

    fake_stages(monkeypatch)
    data = tmp_path / "data"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        with LiveServer(data, refresh_s=1.0) as srv:
            page.goto(srv.url + "/")
            expect(page.locator("#worklist tr.empty")).to_be_visible()
            page.set_input_files("#file-input", str(flagged_dcm))
            row = page.locator("#worklist tr.flagged")
            expect(row).to_have_count(1, timeout=20_000)
            expect(row).to_contain_text("TEST^FLAGGED")
            expect(row).to_contain_text("FLAG 2")
            expect(row).to_contain_text("amorphous")
            expect(row).to_contain_text("dystrophic")
            expect(row).to_contain_text("not seen")
            expect(row.locator("td.thumb img")).to_be_visible()
            # the flagged-only filter keeps it
            page.check("#flagged-only")
            expect(page.locator("#worklist tr.flagged")).to_have_count(1)
            row.locator("a").first.click()
            page.wait_for_url("**/image/*")
            image_url = page.url
            # the film, the outlines (one group per finding, numbered) and the pattern
            page.wait_for_function("document.getElementById('film').naturalWidth === 512")
            outlines = page.locator("#overlay g.finding-outline")
            expect(outlines).to_have_count(2)
            expect(page.locator("#overlay g#outline-1 text.num")).to_have_text("1")
            assert page.locator("#overlay g#outline-1 polygon").count() >= 1
            # the overlay lies exactly on the film, and finding 1's outline (film
            # coordinates) runs along the edges of its pixels: rows 141-159, cols 131-149
            svg_box = page.locator("#overlay").bounding_box()
            film_box = page.locator("#film").bounding_box()
            assert svg_box == film_box
            bbox = page.evaluate(
                "(() => { const b = document.querySelector('#outline-1 polygon').getBBox();"
                " return [b.y, b.x, b.y + b.height, b.x + b.width]; })()"
            )
            assert bbox == pytest.approx([141, 131, 160, 150], abs=0.6)
            expect(page.locator("#finding-1 .pattern")).to_have_text("amorphous")
            expect(page.locator("#finding-2 .pattern")).to_have_text("globular periarticular")
            expect(page.locator("#finding-1")).to_contain_text("dystrophic")
            expect(page.locator("#finding-1")).to_contain_text("amorphous pattern")
            expect(page.get_by_text("Suggested work-up")).to_be_visible()
            # window/level re-renders the film; zoom changes the scale
            page.locator("#wl-center").evaluate(
                "e => { e.value = 0.9; e.dispatchEvent(new Event('input')); }"
            )
            page.wait_for_function("document.getElementById('film').src.includes('wc=0.9000')")
            # the instant preview filter is dropped once the server's rendering is in
            page.wait_for_function(
                "document.getElementById('film').complete"
                " && document.getElementById('film').style.filter === ''"
            )
            page.click("#zoom-in")
            expect(page.locator("#zoom-label")).to_have_text("150%")
            # acknowledge
            page.click("#ack-button")
            expect(page.locator("#ack-state")).to_contain_text("acknowledged")
        # restart on the same data directory: still acknowledged
        with LiveServer(data, refresh_s=1.0) as srv2:
            page.goto(image_url.replace(image_url.split("/image/")[0], srv2.url))
            expect(page.locator("#ack-state")).to_contain_text("acknowledged")
            page.goto(srv2.url + "/")
            expect(page.locator("#worklist tr.flagged.acked")).to_have_count(1)
            expect(page.locator("#worklist tr.flagged")).to_contain_text("seen")
        browser.close()
