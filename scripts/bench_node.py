"""Benchmark: C-STORE of a 3000x3000 JPEG Lossless film to its flag on the worklist.

Starts ``calcimg serve`` (web + DICOM node) on free loopback ports with a fresh data
directory, sends the film by C-STORE (pynetdicom SCU) several times, and for each send
measures the wall time from the start of the association to the moment /api/results
shows the image analysed (state ``done``, with its flag). Target: <= 3 s.

    PYTHONPATH=src python scripts/bench_node.py [--repeat 5] [--size 3000]

The film is drawn (a soft-tissue/bone-like limb with a few dense specks, 12-bit CR,
0.15 mm) and encoded to JPEG Lossless SV1 (1.2.840.10008.1.2.4.70) with dcmtk's
``dcmcjpeg``. The analysis is whatever the stages in this tree do.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1, generate_uid

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def draw_film(size: int, seed: int = 3) -> np.ndarray:
    """12-bit film: air, a soft-tissue limb, a bone shaft, a few dense specks."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float32)
    x = (cc - size / 2) / (size / 2)
    img = np.full((size, size), 300.0, dtype=np.float32)
    limb = np.abs(x) < 0.6
    img[limb] = 1400 + 500 * np.sqrt(np.clip(1 - (x[limb] / 0.6) ** 2, 0, 1))
    bone = np.abs(x) < 0.18
    img[bone] = 2600 + 300 * np.sqrt(np.clip(1 - (x[bone] / 0.18) ** 2, 0, 1))
    for _ in range(6):
        r, c = rng.integers(size // 5, 4 * size // 5, 2)
        c = int(size / 2 + rng.choice([-1, 1]) * rng.uniform(0.25, 0.5) * size / 2)
        rad = rng.uniform(4, 12)
        img[(rr - r) ** 2 + (cc - c) ** 2 <= rad**2] += 900
    img += rng.normal(0, 15, img.shape).astype(np.float32)
    return np.clip(img, 0, 4095).astype(np.uint16)


def write_film(path: Path, size: int) -> Path:
    pixels = draw_film(size)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.PatientName = "BENCH^FILM"
    ds.PatientID = "BENCH"
    ds.BodyPartExamined = "LEG"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.ImagerPixelSpacing = [0.15, 0.15]
    ds.WindowCenter, ds.WindowWidth = 2000, 3000
    ds.PixelData = pixels.tobytes()
    raw = path.with_suffix(".raw.dcm")
    ds.save_as(raw, enforce_file_format=True)
    if shutil.which("dcmcjpeg") is None:
        sys.exit("dcmcjpeg (Debian package dcmtk) is needed to encode JPEG Lossless")
    subprocess.run(["dcmcjpeg", "+e1", str(raw), str(path)], check=True)
    raw.unlink()
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert ts == JPEGLosslessSV1, ts
    return path


def api_results(base: str) -> list[dict]:  # type: ignore[type-arg]
    with urllib.request.urlopen(base + "/api/results?limit=1000", timeout=5) as r:
        out: list[dict] = json.load(r)  # type: ignore[type-arg]
        return out


def send(ds: Dataset, port: int) -> None:
    from pynetdicom import AE

    ae = AE(ae_title="BENCH")
    ae.add_requested_context(CR_STORAGE, [JPEGLosslessSV1])
    assoc = ae.associate("127.0.0.1", port, ae_title="CALCIMG")
    if not assoc.is_established:
        sys.exit("no association with the node")
    status = assoc.send_c_store(ds)
    assoc.release()
    if getattr(status, "Status", None) != 0:
        sys.exit(f"C-STORE failed: {status}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=3000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="calcimg-bench-"))
    film = write_film(tmp / "film.dcm", args.size)
    print(f"film: {args.size}x{args.size} JPEG Lossless SV1, {film.stat().st_size / 1e6:.1f} MB")
    web_port, dicom_port = free_port(), free_port()
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        sys.executable, "-m", "calcimg", "serve", "--port", str(web_port),
        "--data", str(tmp / "data"), "--dicom-port", str(dicom_port),
    ]  # fmt: skip
    server = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                api_results(base)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("server did not start")
                time.sleep(0.1)
        ds = pydicom.dcmread(film)
        times: list[float] = []
        for i in range(args.repeat):
            before = {r["id"] for r in api_results(base)}
            t0 = time.perf_counter()
            send(ds, dicom_port)
            t_store = time.perf_counter() - t0
            while True:
                new = [r for r in api_results(base) if r["id"] not in before]
                if new and new[0]["state"] == "done":
                    break
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            times.append(elapsed)
            row = new[0]
            with urllib.request.urlopen(f"{base}/api/results/{row['id']}", timeout=5) as r:
                timing = json.load(r)["result"]["timing_ms"]
            stages = ", ".join(f"{k} {v:.0f}" for k, v in timing.items())
            print(
                f"run {i + 1}: C-STORE {t_store:.2f} s, flag on worklist after {elapsed:.2f} s "
                f"(status {row['status']}, flag {row['flag']}, {row['n_findings']} findings; "
                f"worker {row['analysis_ms']:.0f} ms; stages ms: {stages})"
            )
        print(
            f"C-STORE to flag on worklist: median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s over {len(times)} runs (target <= 3 s)"
        )
    finally:
        server.terminate()
        server.wait(10)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
