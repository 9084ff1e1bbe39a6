"""The DICOM node: C-ECHO and C-STORE with dcmtk's tools, forwarding of SR and SEG."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pydicom
import pytest

from _webfakes import fake_stages, free_port, free_ports, make_cr
from calcimg.dicomnode import DicomNode, Forwarder, parse_destination
from calcimg.errors import ConfigError
from calcimg.web.service import Service

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "dicom"
if not SHARED.is_dir():  # a worktree under /work/wt: the corpus sits at /work/shared
    SHARED = Path("/work/shared/dicom")

needs_dcmtk = pytest.mark.skipif(
    shutil.which("storescu") is None or shutil.which("echoscu") is None,
    reason="dcmtk (storescu, echoscu) is not installed: apt-get install dcmtk",
)


@pytest.fixture
def node(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A node over the real pipeline (whatever the detector finds)."""
    svc = Service(tmp_path / "data")
    svc.start()
    n = DicomNode(svc, port=0, ae_title="CALCIMG")
    n.start()
    yield n
    n.stop()
    svc.stop()


def _dcmtk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


@needs_dcmtk
def test_echoscu_gets_an_answer(node: DicomNode) -> None:
    p = _dcmtk("echoscu", "-v", "-aec", "CALCIMG", "127.0.0.1", str(node.port))
    assert p.returncode == 0, p.stderr
    assert "Received Echo Response (Success)" in p.stderr


@needs_dcmtk
def test_echoscu_to_wrong_port_fails() -> None:
    p = _dcmtk("echoscu", "-to", "2", "127.0.0.1", str(free_port()))
    assert p.returncode != 0


# storescu proposes only uncompressed syntaxes unless told which compressed one to offer
SENT = [
    ("RG3_JPLL.dcm", "-xs"),  # JPEG Lossless SV1
    ("RG3_J2KR.dcm", "-xv"),  # JPEG 2000 lossless
    ("RG3_JLSL.dcm", "-xt"),  # JPEG-LS lossless
    ("RG3_RLE.dcm", "-xr"),  # RLE
    ("dx_image.dcm", "-x="),  # DX for presentation, explicit little endian
]


@needs_dcmtk
@pytest.mark.parametrize(("name", "option"), SENT, ids=[s[0] for s in SENT])
def test_storescu_transfer_syntaxes(node: DicomNode, name: str, option: str) -> None:
    path = SHARED / "radiographs" / name
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {SHARED}")
    p = _dcmtk("storescu", option, "-aec", "CALCIMG", "127.0.0.1", str(node.port), str(path))
    assert p.returncode == 0, p.stderr
    svc = node.service
    assert svc.wait_idle(60)
    (row,) = svc.store.list()
    assert row.origin == "dicom STORESCU" and row.state == "done"
    # received and decoded; what the analysis stages make of the film is their business
    # (a stage failing on it is an error result, not a failure of the node)
    result = svc.result(row.id)
    assert result is not None
    assert row.status == "ok" or (result.error and result.error.type == "StageError"), row.error
    sent = pydicom.dcmread(path, stop_before_pixels=True)
    assert row.sop_instance_uid == sent.SOPInstanceUID
    # the file was kept as received (same transfer syntax), under the data directory
    kept = pydicom.dcmread(svc.paths.incoming / row.file_name, stop_before_pixels=True)
    assert kept.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    assert kept.SOPInstanceUID == sent.SOPInstanceUID
    if row.status == "ok":
        assert f"{sent.SOPInstanceUID}.SR.dcm" in (row.dicom_results or "").split(",")


@needs_dcmtk
def test_storescu_flagged_film_is_analysed(
    node: DicomNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_stages(monkeypatch)  # the stand-in detector finds the film's two blobs
    films = [make_cr(tmp_path / f"f{i}.dcm", patient=f"P^{i}") for i in range(3)]
    p = _dcmtk("storescu", "-aec", "CALCIMG", "127.0.0.1", str(node.port), *map(str, films))
    assert p.returncode == 0, p.stderr
    svc = node.service
    assert svc.wait_idle(60)
    rows = svc.store.list()
    assert sorted(r.patient_name or "" for r in rows) == ["P^0", "P^1", "P^2"]
    assert all(r.flag and r.n_findings == 2 and r.top_pattern == "amorphous" for r in rows)
    names = sorted((svc.paths.dicom_dir(rows[0].id)).iterdir())
    assert [n.name.split(".")[-2] for n in names] == ["SEG", "SR"]


@needs_dcmtk
def test_non_image_objects_are_refused(node: DicomNode) -> None:
    sr = SHARED / "non-image" / "test-SR.dcm"
    if not sr.is_file():
        pytest.skip(f"shared corpus not found at {SHARED}")
    p = _dcmtk("storescu", "-aec", "CALCIMG", "127.0.0.1", str(node.port), str(sr))
    assert p.returncode != 0  # no presentation context for SR storage
    assert node.service.store.list() == []


def test_forwarding_sends_sr_and_seg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pynetdicom import AE, evt

    fake_stages(monkeypatch)
    received: list[Any] = []
    got = threading.Event()

    def on_store(event: Any) -> int:
        received.append(event.dataset)
        if len(received) == 2:
            got.set()
        return 0x0000

    pacs = AE(ae_title="PACS")
    pacs.add_supported_context("1.2.840.10008.5.1.4.1.1.88.33")
    pacs.add_supported_context("1.2.840.10008.5.1.4.1.1.66.4")
    server = pacs.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    port = server.server_address[1]
    svc = Service(tmp_path / "data")
    svc.after_analysis = Forwarder(
        svc, parse_destination(f"PACS@127.0.0.1:{port}"), ae_title="CALCIMG"
    )
    try:
        row = svc.receive(
            make_cr(tmp_path / "k.dcm").read_bytes(), original_name="k", origin="test"
        )
        assert got.wait(60)
        assert svc.wait_idle(30)
        assert sorted(ds.Modality for ds in received) == ["SEG", "SR"]
        final = svc.store.get(row.id)
        assert final is not None and final.forward_status == f"sent 2 to PACS@127.0.0.1:{port}"
    finally:
        svc.stop()
        server.shutdown()


# pynetdicom leaves the refused socket for the garbage collector (ResourceWarning)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_forwarding_failure_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_stages(monkeypatch)
    svc = Service(tmp_path / "data")
    port = free_port()  # nobody listens
    svc.after_analysis = Forwarder(
        svc, parse_destination(f"PACS@127.0.0.1:{port}"), ae_title="CALCIMG"
    )
    try:
        row = svc.receive(make_cr(tmp_path / "k.dcm").read_bytes(), original_name="k", origin="t")
        assert svc.wait_idle(60)
        final = svc.store.get(row.id)
        assert final is not None and final.flag is True
        assert final.forward_status == f"error: no association with PACS@127.0.0.1:{port}"
    finally:
        svc.stop()


@pytest.mark.parametrize(
    "text", ["PACS", "PACS@host", "PACS@host:99999", "@host:104", "WAY_TOO_LONG_AE_TITLE@h:104"]
)
def test_parse_destination_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="expected AE@host:port"):
        parse_destination(text)


def test_parse_destination() -> None:
    d = parse_destination("ARCHIVE@10.0.0.5:104")
    assert (d.ae_title, d.host, d.port) == ("ARCHIVE", "10.0.0.5", 104)


def test_bad_ae_title(tmp_path: Path) -> None:
    svc = Service(tmp_path / "data")
    try:
        with pytest.raises(ConfigError, match=r"AE title .* is invalid"):
            DicomNode(svc, port=0, ae_title="BAD\\TITLE")
    finally:
        svc.stop()


@needs_dcmtk
def test_serve_command_end_to_end(tmp_path: Path) -> None:
    """``calcimg serve`` with a DICOM node and a watched folder, as a user runs it."""
    import json
    import os
    import sys
    import time
    import urllib.request

    web_port, dicom_port = free_ports(2)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    env.pop("CALCIMG_TOKEN", None)
    cmd = [
        sys.executable, "-m", "calcimg", "serve", "--port", str(web_port),
        "--data", str(tmp_path / "data"), "--dicom-port", str(dicom_port),
        "--ae-title", "EDNODE", "--watch", str(inbox),
    ]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{web_port}"

    def results() -> list[dict[str, Any]]:
        with urllib.request.urlopen(base + "/api/results", timeout=5) as r:
            out: list[dict[str, Any]] = json.load(r)
            return out

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert results() == []
                break
            except OSError:
                # on exit, its stderr says why (uvicorn exits 3 when it cannot bind)
                exited = server.poll() is not None
                err = server.stderr.read() if exited and server.stderr else ""
                assert not exited, f"calcimg serve exited ({server.returncode}): {err}"
                assert time.monotonic() < deadline, "calcimg serve did not start"
                time.sleep(0.2)
        p = _dcmtk("echoscu", "-aec", "EDNODE", "127.0.0.1", str(dicom_port))
        assert p.returncode == 0, p.stderr
        film = make_cr(tmp_path / "sent.dcm", patient="SENT^BY^DICOM")
        p = _dcmtk("storescu", "-aec", "EDNODE", "127.0.0.1", str(dicom_port), str(film))
        assert p.returncode == 0, p.stderr
        make_cr(tmp_path / "dropped.tmp", patient="DROPPED^IN^FOLDER").rename(inbox / "d.dcm")
        while True:
            rows = results()
            if len(rows) == 2 and all(r["state"] == "done" for r in rows):
                break
            assert time.monotonic() < deadline + 60, rows
            time.sleep(0.2)
        got = {r["patient_name"]: (r["origin"], r["status"]) for r in rows}
        assert got == {
            "SENT^BY^DICOM": ("dicom STORESCU", "ok"),
            "DROPPED^IN^FOLDER": ("watch", "ok"),
        }
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert "DICOM node EDNODE on 127.0.0.1:" in err
