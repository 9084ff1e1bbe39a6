"""Screenshots of the worklist and an image page for docs/web.md (docs/img/).

Runs the web tool on a fresh data directory, uploads a few synthetic films from the
issue-3 sample set, and photographs the pages in headless Chromium (Debian's package).
Until the detector lands, the detect/describe/rules stages are replaced by a STAND-IN
that reads each film's synthetic ground truth (NAME.mask.png, NAME.truth.json): the
screenshots show the tool, not detection performance.

    PYTHONPATH=src python scripts/web_screenshots.py [--samples /work/data/tune] [--real]

``--real`` keeps the real stages (use it once the detector is merged).
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from scipy import ndimage

SAMPLES = ("synth_1032", "synth_1042", "synth_1005", "synth_1011", "synth_1024", "synth_1014")
PAGE = "synth_1032"
ACKED = "synth_1042"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def install_truth_stand_in(folder: Path, names: tuple[str, ...]) -> None:
    """Replace the pipeline's detect/describe/rank with readers of the synthetic truth."""
    import calcimg.pipeline as pipeline
    from calcimg.describe import Description, Descriptions
    from calcimg.detect import Detection, Detections
    from calcimg.result import Category, CategoryScore, Location, Pattern
    from calcimg.rules import Assessment, FindingAssessment

    by_uid: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
    for name in names:
        uid = pydicom.dcmread(folder / f"{name}.dcm", stop_before_pixels=True).SOPInstanceUID
        truth = json.loads((folder / f"{name}.truth.json").read_text())
        mask = cv2.imread(str(folder / f"{name}.mask.png"), cv2.IMREAD_UNCHANGED)
        by_uid[str(uid)] = (truth, mask)

    def detect(rg: Any, anatomy: Any, *, params: Any) -> Any:
        truth, mask = by_uid.get(rg.sop_instance_uid or "", ({"lesions": []}, None))
        items = []
        for lesion in truth["lesions"]:
            r0, c0, r1, c1 = lesion["bbox"]
            particles, _ = ndimage.label(mask[r0:r1, c0:c1] == lesion["id"])
            items.append(
                Detection(
                    id=lesion["id"],
                    bbox=(r0, c0, r1, c1),
                    particles=particles.astype(np.int32),
                    confidence=0.6 if lesion["subtle"] else 0.9,
                )
            )
        return Detections(items=tuple(items))

    def describe(rg: Any, anatomy: Any, detections: Any, *, params: Any) -> Any:
        truth, _ = by_uid.get(rg.sop_instance_uid or "", ({"lesions": []}, None))
        out = []
        for lesion, det in zip(truth["lesions"], detections.items, strict=True):
            pattern = Pattern(lesion["pattern"])
            scores = {p: (0.76 if p is pattern else 0.06) for p in Pattern}
            extent = max(det.bbox[2] - det.bbox[0], det.bbox[3] - det.bbox[1])
            out.append(
                Description(
                    detection_id=det.id,
                    pattern=pattern,
                    pattern_scores=scores,
                    descriptors={
                        "n_particles": det.n_particles,
                        "extent_mm": round(extent * rg.mean_spacing_mm, 1),
                        "distribution": "focal",
                    },
                    location=Location(
                        nearest_joint=lesion["joint"], intra_articular=lesion["intra_articular"]
                    ),
                    area_mm2=lesion["area_mm2"],
                    centroid_rc=tuple(lesion["centroid_rc"]),
                    drivers=(lesion["expected_category"], lesion["subtype"]),
                )
            )
        return Descriptions(items=tuple(out))

    def rank(descriptions: Any, *, context: Any, params: Any) -> Any:
        findings, image = [], {}
        for d in descriptions.items:
            cat = Category(d.drivers[0])  # the truth's expected category
            subtype = d.drivers[1].replace("_", " ")
            score = CategoryScore(
                name=cat,
                score=0.62,
                evidence=(
                    f"{d.pattern.value.replace('_', ' ')} pattern ({subtype})",
                    "stand-in: category taken from the synthetic truth",
                ),
            )
            second = CategoryScore(
                name=Category.DYSTROPHIC, score=0.21, evidence=("stand-in: second choice",)
            )
            cats = (score,) if cat is Category.DYSTROPHIC else (score, second)
            findings.append(FindingAssessment(finding_id=d.detection_id, categories=cats))
            image.setdefault(cat, []).append(d.detection_id)
        ranked = tuple(
            CategoryScore(name=c, score=0.62, evidence=("stand-in rule",), finding_ids=tuple(ids))
            for c, ids in image.items()
        )
        return Assessment(
            findings=tuple(findings),
            categories=ranked,
            differential=tuple(c.value.replace("_", " ") for c in image),
            workup=("serum calcium", "inorganic phosphate", "alkaline phosphatase", "albumin")
            if image
            else (),
        )

    pipeline.detect = detect  # type: ignore[assignment]
    pipeline.describe = describe  # type: ignore[assignment]
    pipeline.rank = rank  # type: ignore[assignment]


def main() -> int:
    import httpx
    import uvicorn
    from playwright.sync_api import sync_playwright

    from calcimg.web import create_app

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=Path, default=Path("/work/data/tune"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs/img")
    ap.add_argument("--real", action="store_true", help="use the real stages")
    args = ap.parse_args()
    if not args.real:
        install_truth_stand_in(args.samples, SAMPLES)
    args.out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="calcimg-shots-"))
    app = create_app(data / "data", refresh_s=1.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    ids = {}
    for name in reversed(SAMPLES):
        with (args.samples / f"{name}.dcm").open("rb") as fh:
            r = httpx.post(
                f"{base}/api/analyze?wait=60", files={"file": (f"{name}.dcm", fh)}, timeout=90
            )
        ids[name] = r.json()["id"]
        time.sleep(0.2)  # distinct received times
    httpx.post(f"{base}/api/results/{ids[ACKED]}/ack")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 820})
        page.goto(base + "/")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(args.out / "worklist.png"))
        page.goto(f"{base}/image/{ids[PAGE]}")
        page.wait_for_function("document.getElementById('film').complete")
        page.wait_for_timeout(500)
        page.screenshot(path=str(args.out / "image.png"))
        # zoomed onto finding 2, as a radiographer would look
        page.click("#finding-2 h2")
        page.wait_for_timeout(300)
        page.screenshot(path=str(args.out / "image_zoom.png"))
        browser.close()
    server.should_exit = True
    thread.join(10)
    app.state.service.stop()
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
