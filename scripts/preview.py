"""Write windowed PNG previews of radiographs (optionally with truth boxes).

Usage::

    PYTHONPATH=src python scripts/preview.py sample_dicoms --out docs/img [--boxes]

Pixels are read through ``calcimg.ingest`` (canonical: bone and metal bright), windowed
to the 0.5-99.7th percentiles, and shrunk to ``--max-side``. With ``--boxes`` the truth
lesions are outlined in red (id and pattern written beside) and confounders in blue.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from calcimg.ingest import read_radiograph

SHORT = {
    "amorphous": "AM",
    "finely_speckled": "SP",
    "globular_periarticular": "GL",
    "vascular": "VA",
    "chondral_line": "CH",
}


def render(dcm: Path, *, boxes: bool, max_side: int) -> np.ndarray:
    rg = read_radiograph(dcm)
    v = rg.normalized()
    lo, hi = np.percentile(v[::2, ::2], [0.5, 99.7])
    img = (np.clip((v - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    out = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    truth_path = dcm.with_name(dcm.name[: -len(".dcm")] + ".truth.json")
    f = min(1.0, max_side / max(out.shape[:2]))
    if f < 1:
        out = cv2.resize(out, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    if boxes and truth_path.exists():
        t = json.loads(truth_path.read_text())
        for c in t.get("confounders", []):
            r0, c0, r1, c1 = (int(x * f) for x in c["bbox"])
            cv2.rectangle(out, (c0, r0), (c1, r1), (255, 128, 0), 1)
        for les in t.get("lesions", []):
            r0, c0, r1, c1 = (int(x * f) for x in les["bbox"])
            pad = 4
            cv2.rectangle(out, (c0 - pad, r0 - pad), (c1 + pad, r1 + pad), (0, 0, 255), 2)
            label = f"{les['id']} {SHORT.get(les['pattern'], '?')}"
            cv2.putText(
                out, label, (c1 + 6, max(12, r0)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", type=Path, help="DICOM files or folders")
    p.add_argument("--out", type=Path, default=Path("docs/img"))
    p.add_argument("--boxes", action="store_true", help="outline truth lesions and confounders")
    p.add_argument("--max-side", type=int, default=1024)
    a = p.parse_args(argv)
    files: list[Path] = []
    for i in a.inputs:
        files += sorted(i.glob("*.dcm")) if i.is_dir() else [i]
    a.out.mkdir(parents=True, exist_ok=True)
    for dcm in files:
        out = a.out / (dcm.stem + ("_boxes" if a.boxes else "") + ".png")
        cv2.imwrite(str(out), render(dcm, boxes=a.boxes, max_side=a.max_side))
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
