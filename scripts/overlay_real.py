"""Overlays of calcimg's anatomy confounders and findings on the real radiographs.

Writes ``docs/img/real_<name>.png``: the film windowed (p0.5-p99.5 of the exposed
field), findings outlined in red with their id and confidence, confounders boxed in
cyan (metal, marker, text) or yellow (collimation). Also prints one line per image.

    PYTHONPATH=src /work/venv/bin/python scripts/overlay_real.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

from calcimg.anatomy import map_anatomy
from calcimg.config import load_config
from calcimg.detect import detect
from calcimg.ingest import read_radiograph

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "dicom" / "radiographs"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/dicom/radiographs")

# The lossy and lossless copies of RG3 are the same film; one is enough.
SKIP = {
    "RG3_J2KI.dcm",
    "RG3_J2KR.dcm",
    "RG3_JLSL.dcm",
    "RG3_JLSN.dcm",
    "RG3_JPLL.dcm",
    "RG3_RLE.dcm",
}


def real_files() -> list[Path]:
    """The real radiographs without calcification: pydicom-data RG1/RG3 and shared/."""
    from pydicom.data import get_testdata_file

    files = [Path(str(get_testdata_file(n))) for n in ("RG1_UNCR.dcm", "RG3_UNCR.dcm")]
    files += [f for f in sorted(SHARED.glob("*.dcm")) if f.name not in SKIP]
    return files


def render(path: Path, out_dir: Path, max_side: int = 1100) -> tuple[int, list[str]]:
    config = load_config()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rg = read_radiograph(path, params=config.ingest)
    anatomy = map_anatomy(rg, params=config.anatomy)
    dets = detect(rg, anatomy, params=config.detect)
    x = rg.normalized()
    lo, hi = np.percentile(x[::2, ::2], [0.5, 99.5])
    gray = np.clip((x - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    s = min(1.0, max_side / max(gray.shape))
    small = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else gray
    rgb = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    for c in anatomy.confounders:
        r0, c0, r1, c1 = (round(v * s) for v in c.bbox)
        color = (0, 255, 255) if c.kind == "collimation" else (255, 255, 0)
        cv2.rectangle(rgb, (c0, r0), (c1 - 1, r1 - 1), color, 2)
        cv2.putText(
            rgb, c.kind, (c0 + 3, max(12, r0 + 14)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1
        )
    for d in dets.items:
        r0, c0, r1, c1 = d.bbox
        full = np.zeros(rg.shape, np.uint8)
        full[r0:r1, c0:c1] = d.mask
        m = cv2.resize(full, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
        m = cv2.dilate(m, np.ones((5, 5), np.uint8))
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, (0, 0, 255), 2)
        cv2.putText(
            rgb,
            f"{d.id}:{d.confidence:.2f}",
            (int(c1 * s) + 4, int(r0 * s) + 10),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (0, 0, 255),
            1,
        )
    out = out_dir / f"real_{path.stem}.png"
    cv2.imwrite(str(out), rgb)
    return len(dets.items), [c.kind for c in anatomy.confounders]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    files = real_files()
    for f in files:
        n, kinds = render(f, args.out)
        total += n
        print(f"{f.name}: {n} finding(s); confounders: {', '.join(kinds) or '-'}")
    print(f"mean findings per image: {total / len(files):.2f} over {len(files)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
